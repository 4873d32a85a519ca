"""Gaussian averages of the nonlinear autoencoder's order-parameter ODEs (:mod:`daedyn.nonlinear_theory`).

g = erf(·/√2): g' = √(2/π) e^{−h²/2} is a Gaussian factor, so an average with one or two factors g'
is a re-weighted Gaussian average (a tilted covariance); what is left, E[g g], E[u g], E[u v], is
closed (:func:`averages_erf`). g = ReLU: every average is E[u v Θ(h_S)] over a set S of at most four
units (:func:`orthant_moment`): Stein's lemma, applied twice, reduces it to Gaussian orthant
probabilities of |S|, |S|−1 and |S|−2 units. Those of at most three units are closed (arcsines);
that of four distinct units (needed only in the η² term of Q and only for K ≥ 4) has no closed
form and is a one-dimensional integral along Plackett's path from the identity, evaluated by
Gauss–Legendre quadrature (:func:`orthant`), within 1e-8 of a 400-node rule on random covariances.

Every function takes the fields' covariance C (..., F, F) from
:func:`daedyn.nonlinear_theory.field_covariance`, whose first K fields are the noisy
preactivations h.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

__all__ = ["ACTIVATIONS", "SQ2PI", "averages", "averages_erf", "averages_relu", "erf_gg", "orthant", "orthant_moment",
           "relu_gg", "two_point"]

ACTIVATIONS = ("erf", "relu")
SQ2PI = math.sqrt(2 / math.pi)


# ---------------------------------------------------------------------------------------------
# Gaussian averages: erf


def erf_gg(c, a, d):
    """E[g(u)g(v)] for g = erf(·/√2), var u = a, var v = d, cov c."""
    return (2 / np.pi) * np.arcsin(c / np.sqrt((1 + a) * (1 + d)))


def relu_gg(c, a, d):
    """E[relu(u) relu(v)] (arc-cosine kernel of degree 1)."""
    nrm = np.sqrt(np.maximum(a * d, 1e-300))
    cos = np.clip(c / nrm, -1.0, 1.0)
    th = np.arccos(cos)
    return nrm / (2 * np.pi) * (np.sin(th) + (np.pi - th) * cos)


def two_point(C, K: int, activation: str):
    """GG[k, m] = E[g_k g_m] and LG[u, m] = E[u g_m] for every field u (closed forms, both activations)."""
    Chh = C[..., :K, :K]
    d = np.diagonal(Chh, axis1=-2, axis2=-1)
    if activation == "erf":
        GG = erf_gg(Chh, d[..., :, None], d[..., None, :])
        LG = C[..., :, :K] * (SQ2PI / np.sqrt(1 + d))[..., None, :]
    else:
        GG = relu_gg(Chh, d[..., :, None], d[..., None, :])
        LG = 0.5 * C[..., :, :K]                                # Stein: E[u relu(h)] = cov(u, h) E[Θ(h)]
    return GG, LG


def averages_erf(C, K: int) -> dict[str, np.ndarray]:
    """Every average the ODEs need, g = erf(·/√2), in closed form (module docstring).

    With y at positions 2K … 3K−1 and the fields u of :func:`field_covariance`:
    GG[k,m] = E[g_k g_m], LG[u,m] = E[u g_m], PY[k,u] = E[g'_k y_k u], PLG[k,u,m] = E[g'_k u g_m],
    PGG[k,m,n] = E[g'_k g_m g_n], PPYY[k,l] = E[g'_k g'_l y_k y_l], PPYG[k,l,n] = E[g'_k g'_l y_k g_n],
    PPGG[k,l,m,n] = E[g'_k g'_l g_m g_n].
    """
    GG, LG = two_point(C, K, "erf")
    ks = np.arange(K)
    y = 2 * K + ks
    # one factor g'_k: tilt by e^{-h_k²/2}
    ck = np.swapaxes(C[..., :, :K], -1, -2)                     # (…, K, n): C[k, u]
    dk = np.diagonal(C[..., :K, :K], axis1=-2, axis2=-1)        # (…, K)
    C1 = C[..., None, :, :] - ck[..., :, :, None] * ck[..., :, None, :] / (1 + dk)[..., :, None, None]
    p1 = SQ2PI / np.sqrt(1 + dk)                                # (…, K)
    PY = p1[..., :, None] * C1[..., ks, y, :]                   # (…, K, n)
    d1 = np.diagonal(C1[..., :K, :K], axis1=-2, axis2=-1)       # (…, K, K): tilted var of h_m
    PLG = p1[..., :, None, None] * C1[..., :, :, :K] * (SQ2PI / np.sqrt(1 + d1))[..., :, None, :]
    PGG = p1[..., :, None, None] * erf_gg(C1[..., :K, :K], d1[..., :, :, None], d1[..., :, None, :])
    # two factors g'_k g'_l: tilt by e^{-(h_k² + h_l²)/2}, on the fields h and y only
    F = np.r_[np.arange(K), y]
    Cs = C[..., F[:, None], F[None, :]]                         # (…, 2K, 2K)
    A = np.empty(Cs.shape[:-2] + (K, K, 2, 2))
    A[..., 0, 0] = 1 + dk[..., :, None]
    A[..., 1, 1] = 1 + dk[..., None, :]
    A[..., 0, 1] = A[..., 1, 0] = C[..., :K, :K]
    det = A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] ** 2
    Ainv = np.stack([np.stack([A[..., 1, 1], -A[..., 0, 1]], -1), np.stack([-A[..., 1, 0], A[..., 0, 0]], -1)], -2)
    Ainv = Ainv / det[..., None, None]
    cross = Cs[..., :, :K].swapaxes(-1, -2)                     # (…, K, 2K): C[k, u]
    G = np.stack([np.broadcast_to(cross[..., :, None, :], Ainv.shape[:-2] + (2 * K,)),
                  np.broadcast_to(cross[..., None, :, :], Ainv.shape[:-2] + (2 * K,))], -1)
    C2 = Cs[..., None, None, :, :] - np.einsum("...ui,...ij,...vj->...uv", G, Ainv, G)
    p2 = (2 / np.pi) / np.sqrt(det)                             # (…, K, K)
    yk = K + ks                                                 # y_k inside F
    PPYY = p2 * C2[..., ks[:, None], ks[None, :], yk[:, None], yk[None, :]]
    d2 = np.diagonal(C2[..., :K, :K], axis1=-2, axis2=-1)       # (…, K, K, K)
    PPYG = p2[..., None] * C2[..., ks[:, None], ks[None, :], yk[:, None], :K] * SQ2PI / np.sqrt(1 + d2)
    PPGG = p2[..., None, None] * erf_gg(C2[..., :K, :K], d2[..., :, None], d2[..., None, :])
    return dict(GG=GG, LG=LG, PY=PY, PLG=PLG, PGG=PGG, PPYY=PPYY, PPYG=PPYG, PPGG=PPGG)


# ---------------------------------------------------------------------------------------------
# Gaussian averages: ReLU, through orthant probabilities

#: Gauss–Legendre nodes of Plackett's integral for the four-unit orthant probability
PLACKETT_NODES = 24


@functools.lru_cache(maxsize=8)
def _plackett_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes s and weights on [0, 1] of Gauss–Legendre after s = 1 − (1 − u)², which absorbs the
    1/√(1 − s²ρ²) endpoint behaviour of a correlation near ±1."""
    x, w = np.polynomial.legendre.leggauss(n)
    u, wu = (x + 1) / 2, w / 2
    return 1 - (1 - u) ** 2, wu * 2 * (1 - u)


def _p2(r):
    return 0.25 + np.arcsin(np.clip(r, -1.0, 1.0)) / (2 * np.pi)


#: the six pairs of four units and their complements
_PAIRS = [((i, j), tuple(k for k in range(4) if k not in (i, j))) for i, j in itertools.combinations(range(4), 2)]


def orthant(C, nodes: int = PLACKETT_NODES) -> np.ndarray:
    """P(h > 0) for h ~ N(0, C), C (…, m, m) with m ≤ 4.

    m ≤ 3 in closed form (1, 1/2, 1/4 + asin ρ/2π, 1/8 + Σ asin ρ_ij/4π). m = 4 by Plackett's
    identity ∂P/∂ρ_ij = φ₂(0, 0; ρ_ij) P(other two > 0 | h_i = h_j = 0) integrated along
    R(s) = I + s(R − I) from P(I) = 1/16, with ``nodes`` Gauss–Legendre nodes (:func:`_plackett_rule`).
    """
    C = np.asarray(C, dtype=float)
    m = C.shape[-1]
    if m == 0:
        return np.ones(C.shape[:-2])
    if m == 1:
        return np.full(C.shape[:-2], 0.5)
    d = np.sqrt(np.maximum(np.diagonal(C, axis1=-2, axis2=-1), 1e-300))
    R = C / (d[..., :, None] * d[..., None, :])
    if m == 2:
        return _p2(R[..., 0, 1])
    if m == 3:
        return 0.125 + (np.arcsin(np.clip(R[..., 0, 1], -1, 1)) + np.arcsin(np.clip(R[..., 0, 2], -1, 1))
                        + np.arcsin(np.clip(R[..., 1, 2], -1, 1))) / (4 * np.pi)
    if m != 4:
        raise ValueError(f"orthant probabilities of at most 4 units, got {m}")
    s, w = _plackett_rule(nodes)
    Rs = R[..., None, :, :] * s[:, None, None]                  # off-diagonals s·ρ (diagonal fixed below)
    idx = np.arange(4)
    Rs[..., idx, idx] = 1.0
    total = np.zeros(Rs.shape[:-2])
    for (i, j), (k, l) in _PAIRS:
        rho = Rs[..., i, j]
        det = 1 - rho ** 2
        # conditional covariance of (k, l) given (h_i, h_j) = 0
        a_k = (Rs[..., k, i] - rho * Rs[..., k, j]) / det
        b_k = (Rs[..., k, j] - rho * Rs[..., k, i]) / det
        a_l = (Rs[..., l, i] - rho * Rs[..., l, j]) / det
        b_l = (Rs[..., l, j] - rho * Rs[..., l, i]) / det
        ckk = 1 - a_k * Rs[..., k, i] - b_k * Rs[..., k, j]
        cll = 1 - a_l * Rs[..., l, i] - b_l * Rs[..., l, j]
        ckl = Rs[..., k, l] - a_k * Rs[..., l, i] - b_k * Rs[..., l, j]
        r = ckl / np.sqrt(np.maximum(ckk * cll, 1e-300))
        total = total + R[..., None, i, j] / (2 * np.pi * np.sqrt(np.maximum(det, 1e-300))) * _p2(r)
    return 1 / 16 + np.sum(total * w, axis=-1)


def _phi0(var):
    """Density of N(0, var) at 0."""
    return 1 / np.sqrt(2 * np.pi * np.maximum(var, 1e-300))


def _condition(Cm, cv, j):
    """Condition (h, v) on h_j = 0: the covariance of the other units and their covariance with v."""
    m = Cm.shape[-1]
    rest = [i for i in range(m) if i != j]
    cjj = np.maximum(Cm[..., j, j], 1e-300)
    cj = Cm[..., rest, j]
    Cr = Cm[..., rest, :][..., :, rest] - cj[..., :, None] * cj[..., None, :] / cjj[..., None, None]
    vr = cv[..., rest] - cv[..., j, None] * cj / cjj[..., None]
    return Cr, vr


def orthant_moment(Cm, cu, cv, cuv, nodes: int = PLACKETT_NODES, p_s=None) -> np.ndarray:
    """E[u v Π_{j∈S} Θ(h_j)] for zero-mean jointly Gaussian units h_S (covariance ``Cm`` (…, m, m)) and
    fields u, v (``cu``, ``cv`` (…, m): their covariances with h_S; ``cuv``: theirs).

    Stein's lemma on u, then on v under the conditional law given h_j = 0:
    E[u v Θ_S] = C_uv P(S) + Σ_j C_uj φ_j(0) Σ_{i≠j} C_vi|j φ_i|j(0) P(S∖{i,j} | h_i = h_j = 0),
    every P an :func:`orthant` probability (``p_s``: P(S), when already known)."""
    m = Cm.shape[-1]
    out = cuv * (orthant(Cm, nodes) if p_s is None else p_s)
    for j in range(m):
        Cj, vj = _condition(Cm, cv, j)
        inner = 0.0
        for a in range(m - 1):
            Cji, _ = _condition(Cj, vj, a)
            inner = inner + vj[..., a] * _phi0(Cj[..., a, a]) * orthant(Cji, nodes)
        out = out + cu[..., j] * _phi0(Cm[..., j, j]) * inner
    return out


@functools.lru_cache(maxsize=16)
def _relu_entries(K: int, n: int):
    """The ReLU averages as orthant moments: name → shape, and for each set size m the entries
    (name, flat position, u, v, units S) grouped as index arrays."""
    y = lambda k: 2 * K + k                                   # noqa: E731
    shapes = {"PLG": (K, n, K), "PGG": (K, K, K), "PPYY": (K, K), "PPYG": (K, K, K), "PPGG": (K, K, K, K)}
    specs = {
        "PLG": lambda k, u, m: (u, m, {k, m}),
        "PGG": lambda k, m, l: (m, l, {k, m, l}),
        "PPYY": lambda k, l: (y(k), y(l), {k, l}),
        "PPYG": lambda k, l, m: (y(k), m, {k, l, m}),
        "PPGG": lambda k, l, m, o: (m, o, {k, l, m, o}),
    }
    groups: dict[int, list] = {}
    for name, shape in shapes.items():
        for flat, index in enumerate(itertools.product(*map(range, shape))):
            u, v, units = specs[name](*index)
            groups.setdefault(len(units), []).append((name, flat, u, v, sorted(units)))
    out = {}
    for m, rows in groups.items():
        names = np.array([r[0] for r in rows])
        out[m] = (names, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                  np.array([r[3] for r in rows]), np.array([r[4] for r in rows]).reshape(len(rows), m))
    return shapes, out


def averages_relu(C, K: int, nodes: int = PLACKETT_NODES) -> dict[str, np.ndarray]:
    """The averages of :func:`averages_erf` for g = ReLU, each an :func:`orthant_moment` of at most four units
    (E[Θ_k] = 1/2 makes PY and LG closed: PY[k,u] = cov(y_k, u)/2, LG[u,m] = cov(u, h_m)/2)."""
    GG, LG = two_point(C, K, "relu")
    n = C.shape[-1]
    lead = C.shape[:-2]
    shapes, groups = _relu_entries(K, n)
    out = {name: np.zeros(lead + (int(np.prod(shape)),)) for name, shape in shapes.items()}
    for m, (names, flat, u, v, units) in groups.items():
        Cm = C[..., units[:, :, None], units[:, None, :]]
        cu = C[..., u[:, None], units]
        cv = C[..., v[:, None], units]
        sets, which = np.unique(units, axis=0, return_inverse=True)   # P(S) once per set of units
        p_s = orthant(C[..., sets[:, :, None], sets[:, None, :]], nodes)[..., which.ravel()]
        values = orthant_moment(Cm, cu, cv, C[..., u, v], nodes, p_s=p_s)
        for name in shapes:
            sel = names == name
            out[name][..., flat[sel]] = values[..., sel]
    res = {name: out[name].reshape(lead + shape) for name, shape in shapes.items()}
    res["PY"] = 0.5 * C[..., 2 * K:3 * K, :]
    return dict(GG=GG, LG=LG, **res)


def averages(C, K: int, activation: str) -> dict[str, np.ndarray]:
    if activation == "erf":
        return averages_erf(C, K)
    if activation == "relu":
        return averages_relu(C, K)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
