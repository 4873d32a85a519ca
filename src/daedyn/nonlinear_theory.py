r"""Exact high-dimensional theory of a nonlinear denoising autoencoder trained by online SGD, and the
engine that trains the same network at finite D (docs/science.md, E25–E30).

Model
-----
Inputs are Gaussian with a spiked covariance in D dimensions,

    x = Σ_r √λ_r c_r v_r + √b z,    c_r ~ N(0, 1), z ~ N(0, I_D),   Ω = E[xxᵀ] = b I + Σ_r λ_r v_r v_rᵀ,

with P orthonormal spike directions v_r (the first P coordinate axes: the bulk is isotropic, so the
choice is no loss of generality). The network sees x̃ = x + σξ, ξ ~ N(0, I_D), and reconstructs the
clean x (σ = 0: a plain autoencoder):

    x̂ = Σ_k a_k g(h_k),    h_k = w_k·x̃/√D,    k = 1 … K,

encoder rows w_k with O(1) entries, decoder columns a_k of O(1) norm; tied weights set a_k = w_k/√D.
Online SGD takes a fresh sample every step on ℓ = ½|x − x̂|² + (γ/2)(Σ_k|a_k|² + Σ_k|w_k|²/D), at
learning rate η for the encoder and η/D for the decoder (E25):

    Δa_k = (η/D) [(x − x̂) g(h_k) − γ a_k],     Δw_k = η [e_k g'(h_k) x̃/√D − (γ/D) w_k],   e_k = a_k·(x − x̂).

Time is t = steps/D. As D → ∞ the order parameters (E26)

    Q = WWᵀ/D,  M = WV/√D,  T = AᵀA,  S = AᵀV,  R_kl = a_k·w_l/√D

(K×K, K×P, K×K, K×P, K×K) concentrate and follow deterministic ODEs (:func:`rhs`, E27–E28):
first-order terms η·E[…] (the mean gradient projected on v_r, w_l and a_l) and second-order terms
η²·E[…] (the square of one step, summed over D steps per unit time). Every average is over the
jointly Gaussian fields h (noisy preactivations), h⁰ = Wx/√D (clean), y = Aᵀx, ỹ = Aᵀx̃, s = Vᵀx̃
and t = Vᵀx, whose covariance is a function of (Q, M, T, S, R) and σ² alone
(:func:`field_covariance`): the noisy input stays jointly Gaussian with the clean target, so noise
changes only that covariance. The errors on noisy and on clean inputs are exact functions of the
order parameters at any D (:func:`errors`, E30).

Averages (E29)
--------------
g = erf(·/√2): g' = √(2/π) e^{−h²/2} is a Gaussian factor, so an average with one or two factors g'
is a re-weighted Gaussian average (a tilted covariance); what is left, E[g g], E[u g], E[u v], is
closed (:func:`averages_erf`). g = ReLU: every average is E[u v Θ(h_S)] over a set S of at most four
units (:func:`orthant_moment`): Stein's lemma, applied twice, reduces it to Gaussian orthant
probabilities of |S|, |S|−1 and |S|−2 units. Those of at most three units are closed (arcsines);
that of four distinct units (needed only in the η² term of Q and only for K ≥ 4) has no closed
form and is a one-dimensional integral along Plackett's path from the identity, evaluated by
Gauss–Legendre quadrature (:func:`orthant`), within 1e-8 of a 400-node rule on random covariances.

The simulation (:class:`daedyn.nonlinear_online.OnlineEngine`) trains the same network at finite D on fresh samples, every
(σ², η) condition and seed at once, driven by :func:`daedyn.training.drive` with checkpoints; it
records the exact order parameters of its weights. It also trains on real data made to have a
spiked covariance exactly (:func:`daedyn.nonlinear_online.spiked_data`): then only the higher moments differ from the
theory's Gaussian, which is what the Gaussian-equivalence comparison measures.

One module, above the usual 600 lines, because it is one derivation read together: the fields'
covariance, the averages of both activations with their orthant integrals, and the ODEs that use
them (the simulation is in :mod:`daedyn.nonlinear_online`, the comparison in
:mod:`daedyn.nonlinear_theory_analysis`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, ClassVar

import numpy as np

from daedyn.runconfig import RunConfig

__all__ = ["ACTIVATIONS", "NonlinearTheoryConfig", "Order", "averages", "averages_erf",
           "averages_relu", "errors", "field_covariance", "initial_weights", "integrate", "order_from_weights",
           "orthant", "orthant_moment", "rhs", "theory"]

ACTIVATIONS = ("erf", "relu")
SQ2PI = math.sqrt(2 / math.pi)
ORDER = ("Q", "M", "T", "S", "R")
#: long names and dimensions of the order parameters in result files
ORDER_META = {
    "Q": ("encoder overlaps Q: Q_kl = w_k.w_l/D", ("unit", "unit2")),
    "M": ("encoder-spike overlaps M: M_kr = w_k.v_r/sqrt(D)", ("unit", "spike")),
    "T": ("decoder overlaps T: T_kl = a_k.a_l", ("unit", "unit2")),
    "S": ("decoder-spike overlaps S: S_kr = a_k.v_r", ("unit", "spike")),
    "R": ("decoder-encoder overlaps R: R_kl = a_k.w_l/sqrt(D)", ("unit", "unit2")),
}


# ---------------------------------------------------------------------------------------------
# configuration


@dataclasses.dataclass(frozen=True)
class NonlinearTheoryConfig(RunConfig):
    """One run: one activation and input source, every (noise variance, learning rate) condition and
    seed (schema: nonlinear_theory_experiment).

    ``source`` "gaussian" draws spiked Gaussian inputs with ``spikes``; "data" trains on the rows of a
    dataset made spiked by :func:`daedyn.nonlinear_online.spiked_data` with its top ``data_spikes`` directions (``spikes`` is
    None until the job has read the data)."""

    KIND: ClassVar[str] = "nonlinear_theory_experiment"
    OPTIONAL: ClassVar[tuple[str, ...]] = ("n_samples", "spikes", "data_spikes", "eval_samples")
    META: ClassVar[dict[str, tuple[str, str]]] = {
        "activation": ("activation: hidden-layer activation g (erf: erf(h/sqrt 2))", ""),
        "source": ("inputs: gaussian (spiked Gaussian) or data (a dataset made spiked)", ""),
        "dim": ("input dimension D", "1"),
        "hidden": ("number of hidden units K", "1"),
        "bulk": ("bulk variance b: the variance of every input direction", "1"),
        "weight_decay": ("weight decay gamma: penalty gamma/2 (tr T + tr Q)", "1"),
        "tied": ("tied weights: 1 where a_k = w_k/sqrt(D)", "1"),
        "init_seed": ("initial seed: of the shared initial weights and of the sample streams", "1"),
        "n_samples": ("dataset rows: how many rows the data run samples from", "1"),
        "dataset": ("dataset: of a data run (empty: spiked Gaussian inputs)", ""),
    }

    activation: str
    source: str
    n_samples: int | None
    dim: int
    hidden: int
    spikes: tuple | None
    data_spikes: int | None
    bulk: float
    noise_var: tuple
    lr: tuple
    tied: bool
    weight_decay: float
    time: float
    record_every: float
    seeds: int
    init_seed: int
    init_overlap: float
    init_std: float
    dec_std: float
    eval_samples: int | None
    device: str

    def __post_init__(self):
        if self.dataset is None:                  # the experiment's `dataset: null` (no data run)
            object.__setattr__(self, "dataset", "")
        super().__post_init__()
        where = f"{self.family} run {self.label}"
        if self.source == "gaussian" and self.spikes is None:
            raise ValueError(f"{where}: Gaussian inputs need spikes")
        if self.source == "data" and self.spikes is None and self.data_spikes is None:
            raise ValueError(f"{where}: a data run needs data_spikes (how many top directions are spikes)")
        if self.hidden > self.dim or self.n_spikes > self.dim:
            raise ValueError(f"{where}: need hidden <= dim and len(spikes) <= dim")

    #: what the engine base reads
    dtype: ClassVar[str] = "float64"
    log_every: ClassVar[int] = 1

    @property
    def n_spikes(self) -> int:
        return len(self.spikes) if self.spikes is not None else int(self.data_spikes)

    @property
    def block(self) -> int:
        """SGD steps between records: one engine epoch."""
        return max(1, round(self.record_every * self.dim))

    @property
    def epochs(self) -> int:
        return max(1, round(self.time * self.dim / self.block))

    @property
    def conditions(self) -> list[tuple[float, float]]:
        """(σ², η) of every condition, noise variance outer."""
        return list(itertools.product(self.noise_var, self.lr))

    def with_spikes(self, spikes, source: str | None = None) -> "NonlinearTheoryConfig":
        """The same run with the spike variances fixed (a data run, once its data are read)."""
        return dataclasses.replace(self, spikes=tuple(float(s) for s in spikes), source=source or self.source)


# ---------------------------------------------------------------------------------------------
# order parameters and fields


@dataclasses.dataclass
class Order:
    """Order parameters with any leading batch shape: Q, T, R (…, K, K), M, S (…, K, P)."""

    Q: np.ndarray
    M: np.ndarray
    T: np.ndarray
    S: np.ndarray
    R: np.ndarray

    def map(self, f, *others: "Order") -> "Order":
        return Order(*(f(getattr(self, n), *(getattr(o, n) for o in others)) for n in ORDER))

    def __add__(self, other):
        return self.map(np.add, other)

    def __sub__(self, other):
        return self.map(np.subtract, other)

    def scale(self, c) -> "Order":
        c = np.asarray(c, dtype=float)
        return self.map(lambda a: a * c.reshape(c.shape + (1,) * (a.ndim - c.ndim)))

    def flat(self) -> np.ndarray:
        """Every entry, concatenated along the last axis (…, 3K² + 2KP)."""
        lead = self.Q.shape[:-2]
        return np.concatenate([getattr(self, n).reshape(lead + (-1,)) for n in ORDER], axis=-1)

    @classmethod
    def unflat(cls, v: np.ndarray, K: int, P: int) -> "Order":
        sizes = [K * K, K * P, K * K, K * P, K * K]
        shapes = [(K, K), (K, P), (K, K), (K, P), (K, K)]
        parts = np.split(v, np.cumsum(sizes)[:-1], axis=-1)
        return cls(*(p.reshape(v.shape[:-1] + s) for p, s in zip(parts, shapes)))


def field_slices(K: int, P: int) -> dict[str, slice]:
    """Positions of the fields h, h0, y, yt, s, t in :func:`field_covariance`."""
    names, sizes = ("h", "h0", "y", "yt", "s", "t"), (K, K, K, K, P, P)
    edges = np.cumsum((0,) + sizes)
    return {n: slice(int(a), int(b)) for n, a, b in zip(names, edges[:-1], edges[1:])}


def _t(a):
    return np.swapaxes(a, -1, -2)


def field_covariance(op: Order, lam, bulk: float, noise_var) -> np.ndarray:
    """Covariance (…, n, n) of the fields [h, h⁰, y, ỹ, s, t] (n = 4K + 2P) under x ~ N(0, Ω), x̃ = x + σξ."""
    lam = np.asarray(lam, dtype=float)
    s2 = np.asarray(noise_var, dtype=float)[..., None, None]
    b = float(bulk)
    Q, M, T, S, R = op.Q, op.M, op.T, op.S, op.R
    K, P = M.shape[-2], M.shape[-1]
    MLM = (M * lam) @ _t(M)
    SLS = (S * lam) @ _t(S)
    MLS = (M * lam) @ _t(S)          # [k, l] = Σ λ_r M_kr S_lr
    Rt = _t(R)                       # [k, l] = R_lk = a_l·w_k/√D
    shape = np.broadcast_shapes(Q.shape[:-2], s2.shape[:-2])
    C = np.zeros(shape + (4 * K + 2 * P,) * 2)
    f = field_slices(K, P)

    def put(a, c, block):
        C[..., f[a], f[c]] = block
        if a != c:
            C[..., f[c], f[a]] = _t(np.broadcast_to(block, C[..., f[a], f[c]].shape))

    put("h", "h", (b + s2) * Q + MLM)
    put("h", "h0", b * Q + MLM)
    put("h0", "h0", b * Q + MLM)
    put("h", "y", b * Rt + MLS)
    put("h0", "y", b * Rt + MLS)
    put("h", "yt", (b + s2) * Rt + MLS)
    put("h0", "yt", b * Rt + MLS)
    put("y", "y", b * T + SLS)
    put("y", "yt", b * T + SLS)
    put("yt", "yt", (b + s2) * T + SLS)
    put("h", "s", M * (b + s2 + lam))
    put("h", "t", M * (b + lam))
    put("h0", "s", M * (b + lam))
    put("h0", "t", M * (b + lam))
    put("y", "s", S * (b + lam))
    put("y", "t", S * (b + lam))
    put("yt", "s", S * (b + s2 + lam))
    put("yt", "t", S * (b + lam))
    eye = np.eye(P)
    put("s", "s", (b + s2 + lam) * eye)
    put("s", "t", (b + lam) * eye)
    put("t", "t", (b + lam) * eye)
    return C


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


# ---------------------------------------------------------------------------------------------
# the ODEs


def rhs(op: Order, lam, bulk, noise_var, lr, weight_decay, *, activation: str, tied: bool = False) -> Order:
    """d(order parameters)/dt, t = steps/D (E27–E28), batched over leading dims.

    ``noise_var`` (σ²) and ``lr`` (η) broadcast against the batch shape of ``op``. First-order terms
    (η times a mean gradient projected on v_r, w_l/√D or a_l) and second-order terms (η² times the
    mean square of one step, with |x − x̂|² ≈ bD, |x̃|² ≈ (b + σ²)D and (x − x̂)·x̃ ≈ bD).
    """
    K, P = op.M.shape[-2:]
    b, wd = float(bulk), float(weight_decay)
    s2 = np.asarray(noise_var, dtype=float)
    eta = np.asarray(lr, dtype=float)[..., None, None]
    C = field_covariance(op, lam, b, s2)
    A = averages(C, K, activation)
    f = field_slices(K, P)
    ks = np.arange(K)
    GG, PY, PLG, PGG = A["GG"], A["PY"], A["PLG"], A["PGG"]
    LG = A["LG"]
    T = op.T
    # first-order parts: E[g_k (target − x̂)·direction] and E[e_k g'_k field]
    dec_S = _t(LG[..., f["t"], :]) - GG @ op.S                                    # E[g_k (t_r − Σ S_mr g_m)]
    enc_M = PY[..., f["s"]] - np.einsum("...km,...krm->...kr", T, PLG[..., f["s"], :])    # E[e_k g'_k s_r]
    dec_W = _t(LG[..., f["h0"], :]) - GG @ op.R                                   # E[g_k (h0_l − Σ R_ml g_m)]
    enc_A = PY[..., f["yt"]] - np.einsum("...lm,...lkm->...lk", T, PLG[..., f["yt"], :])  # [l, k] E[e_l g'_l ỹ_k]
    dec_A = _t(LG[..., f["y"], :]) - GG @ T                                       # E[g_k e_l]
    enc_W = PY[..., f["h"]] - np.einsum("...km,...klm->...kl", T, PLG[..., f["h"], :])    # E[e_k g'_k h_l]
    # second-order parts
    G_dd = b * GG                                                                 # b E[g_k g_l]
    y_of = PLG[..., ks, f["y"].start + ks, :]                                     # [l, k] = E[g'_l y_l g_k]
    G_de = b * _t(y_of - np.einsum("...lm,...lkm->...lk", T, PGG))               # [k, l] = b E[g_k e_l g'_l]
    t2 = np.einsum("...ln,...kln->...kl", T, A["PPYG"])
    G_ee = (b + s2)[..., None, None] * (A["PPYY"] - t2 - _t(t2)
                                        + np.einsum("...km,...ln,...klmn->...kl", T, T, A["PPGG"]))
    if tied:
        Pm = dec_W + enc_W
        dQ = eta * (Pm + _t(Pm) - 2 * wd * op.Q) + eta ** 2 * (G_dd + G_de + _t(G_de) + G_ee)
        dM = eta * (dec_S + enc_M - wd * op.M)
        return Order(dQ, dM, dQ, dM, dQ)
    dQ = eta * (enc_W + _t(enc_W) - 2 * wd * op.Q) + eta ** 2 * G_ee
    dM = eta * (enc_M - wd * op.M)
    dT = eta * (dec_A + _t(dec_A) - 2 * wd * T) + eta ** 2 * G_dd
    dS = eta * (dec_S - wd * op.S)
    dR = eta * (dec_W + _t(enc_A) - 2 * wd * op.R) + eta ** 2 * G_de
    return Order(dQ, dM, dT, dS, dR)


def integrate(op0: Order, times, lam, bulk, noise_var, lr, weight_decay, *, activation: str, tied: bool = False,
              dt: float = 0.01) -> list[Order]:
    """Classical RK4 from t = times[0] to each of ``times`` (ascending), steps of at most ``dt`` that end
    exactly on every time. Returns the order parameters at each time."""
    f = lambda o: rhs(o, lam, bulk, noise_var, lr, weight_decay, activation=activation, tied=tied)  # noqa: E731
    out, op, now = [op0], op0, float(times[0])
    for t in times[1:]:
        n = max(1, math.ceil((t - now) / dt - 1e-9))
        h = (t - now) / n
        for _ in range(n):
            k1 = f(op)
            k2 = f(op + k1.scale(h / 2))
            k3 = f(op + k2.scale(h / 2))
            k4 = f(op + k3.scale(h))
            op = op + (k1 + k2.scale(2) + k3.scale(2) + k4).scale(h / 6)
        now = float(t)
        out.append(op)
    return out


def errors(op: Order, lam, bulk, noise_var, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """(denoising, reconstruction) error: ½E|x − x̂|² − bD/2 on noisy and on clean inputs (E30).

    Exact at any D for Gaussian inputs, from the order parameters of the weights."""
    K, P = op.M.shape[-2:]
    C = field_covariance(op, lam, bulk, noise_var)
    f = field_slices(K, P)
    half = 0.5 * float(np.sum(lam))
    out = []
    for h in ("h", "h0"):
        idx = np.r_[np.arange(f[h].start, f[h].stop), np.arange(f["y"].start, f["y"].stop)]
        GG, LG = two_point(C[..., idx[:, None], idx[None, :]], K, activation)
        yg = np.trace(LG[..., K:, :], axis1=-2, axis2=-1)
        out.append(half - yg + 0.5 * np.sum(op.T * GG, axis=(-2, -1)))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# finite-D networks: initial weights, order parameters of weights


def initial_weights(config: NonlinearTheoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Shared initial weights (W (K×D), A (D×K)), float64, from ``init_seed``.

    W = init_std·G + √D M₀ on the spike axes, M₀ ~ N(0, init_overlap²) (macroscopic overlaps, so no
    seed waits on a saddle of order 1/√D), A ~ N(0, dec_std²/D) per entry (tied: A = Wᵀ/√D)."""
    rng = np.random.default_rng(config.init_seed)
    K, D, P = config.hidden, config.dim, config.n_spikes
    W = config.init_std * rng.standard_normal((K, D))
    W[:, :P] += math.sqrt(D) * config.init_overlap * rng.standard_normal((K, P))
    A = W.T / math.sqrt(D) if config.tied else config.dec_std * rng.standard_normal((D, K)) / math.sqrt(D)
    return W, A


def order_from_weights(W, A, P: int) -> Order:
    """Exact order parameters of weights W (…, K, D), A (…, D, K); spikes on the first P axes."""
    W, A = np.asarray(W, float), np.asarray(A, float)
    D = W.shape[-1]
    return Order(W @ _t(W) / D, W[..., :P] / math.sqrt(D), _t(A) @ A, _t(A[..., :P, :]),
                 _t(A) @ _t(W) / math.sqrt(D))


def theory(config: NonlinearTheoryConfig, times, op0: Order, *, dt: float = 0.01) -> Order:
    """The theory for every condition of ``config`` at ``times``, from the order parameters ``op0``
    (one network's, shared by every condition): Order with leading dims (noise_var, lr, time)."""
    conds = np.array(config.conditions)
    batch = op0.map(lambda a: np.broadcast_to(a, (len(conds),) + a.shape).copy())
    traj = integrate(batch, list(times), config.spikes, config.bulk, conds[:, 0], conds[:, 1], config.weight_decay,
                     activation=config.activation, tied=config.tied, dt=dt)
    nv, nl = len(config.noise_var), len(config.lr)
    return Order(*(np.stack([getattr(o, n) for o in traj], axis=1).reshape((nv, nl, len(times)) + getattr(op0, n).shape)
                   for n in ORDER))


# ---------------------------------------------------------------------------------------------
# result files


def order_dataset(config: NonlinearTheoryConfig, times, op: Order, *, prefix: str = "", seed_dim: bool = True,
                  extra: dict | None = None):
    """Order parameters (noise_var, lr, [seed,] time, …) and their errors (E30) as an xarray Dataset;
    ``prefix`` "theory_" names the theory's."""
    import xarray as xr

    noise = np.asarray(config.noise_var, float).reshape((-1, 1) + (1,) * (1 + seed_dim))
    dn, rc = errors(op, config.spikes, config.bulk, noise, config.activation)
    lead = ("noise_var", "lr") + (("seed",) if seed_dim else ()) + ("t",)
    # a long_name is "short name: definition" (daedyn.store keeps the short name, the rest goes to comment)
    short, what = ("theory ", " (theory, D -> infinity)") if prefix else ("", "")
    data = {f"{prefix}{n}": (lead + dims, getattr(op, n), {"long_name": short + long + what, "units": "1"})
            for n, (long, dims) in ORDER_META.items()}
    data[f"{prefix}err_denoise"] = (lead, dn, {"long_name": f"{short}denoising error: 1/2 E|x - f(x~)|^2 - bD/2, "
                                                            "Gaussian inputs, from the order parameters" + what,
                                               "units": "1"})
    data[f"{prefix}err_recon"] = (lead, rc, {"long_name": f"{short}reconstruction error: 1/2 E|x - f(x)|^2 - bD/2, "
                                                          "Gaussian inputs, from the order parameters" + what,
                                             "units": "1"})
    for name, values in (extra or {}).items():
        kind = "denoising" if "denoise" in name else "reconstruction"
        data[name] = (lead, values, {"long_name": f"{kind} error on the data: 1/2 |x - f(x)|^2 - bD/2 measured on the data's "
                                                  f"evaluation rows (1/2 |x|^2 - bD/2 by its mean)", "units": "1"})
    coords = {
        "noise_var": ("noise_var", np.asarray(config.noise_var, float),
                      {"long_name": "input noise variance sigma^2", "units": "1"}),
        "lr": ("lr", np.asarray(config.lr, float), {"long_name": "learning rate: eta (decoder: eta/D)", "units": "1"}),
        "t": ("t", np.asarray(times, float), {"long_name": "training time: t = SGD steps / D", "units": "1"}),
        "spike": ("spike", np.arange(config.n_spikes), {"long_name": "spike index r", "units": "1"}),
        "spike_var": ("spike", np.asarray(config.spikes, float),
                      {"long_name": "spike variance: lambda_r above the bulk", "units": "1"}),
        "unit": ("unit", np.arange(config.hidden), {"long_name": "hidden unit k", "units": "1"}),
        "unit2": ("unit2", np.arange(config.hidden), {"long_name": "hidden unit l", "units": "1"}),
    }
    if seed_dim:
        coords["seed"] = ("seed", np.arange(config.seeds), {"long_name": "SGD replica (sample stream)", "units": "1"})
    return xr.Dataset(data, coords=coords)
