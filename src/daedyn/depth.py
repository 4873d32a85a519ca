r"""Depth-L linear (denoising) autoencoders: per-mode theory and an exact full-batch engine.

Model and loss
--------------
x̂ = W_L ⋯ W₂W₁x̃ with L ≥ 2 weight matrices, W₁ ∈ R^{H₁×d}, W_l ∈ R^{H_l×H_{l−1}},
W_L ∈ R^{d×H_{L−1}}, no biases; W = W_L⋯W₁. In the mean convention Σ = XᵀX/N = VΛVᵀ the
loss with marginalised Gaussian input noise of variance ε and weight decay γ is

    ℒ = ½ tr[(I−W)Σ(I−W)ᵀ] + ε/2 ‖W‖²_F + γ/2 Σ_l ‖W_l‖²_F,

the two-layer loss of :mod:`daedyn.linear` with the decay summed over all L layers.
With M = Σ − W(Σ+εI) the gradients are ∇W_l = −(W_L⋯W_{l+1})ᵀ M (W_{l−1}⋯W₁)ᵀ + γW_l.

Per-mode theory (aligned, balanced)
-----------------------------------
If every layer is aligned with Σ's eigenbasis and balanced, mode i has the same weight w in
every layer, u = w^L, and the per-mode loss is λ/2 (1−u)² + ε/2 u² + γL/2 w². Gradient
descent on each layer's w is then exact for the matrix network (all layers receive the same
update), giving the discrete map (:func:`mode_map`)

    w ← w + η [ w^{L−1} (λ − (λ+ε) w^L) − γ w ],

and, as η → 0 with τ = 1/η, the gradient flow (:func:`mode_rate`)

    τ u̇ = L [ |u|^{2−2/L} (λ − (λ+ε)u) − γu ].

For L = 2 this is the paper's balanced equation τu̇ = 2u(λ − γ − (λ+ε)u). Its nonzero fixed
points solve u^{1−2/L}(λ − (λ+ε)u) = γ (:func:`fixed_points`). The DAE's λ/(λ+ε) does not
depend on L; the weight decay with the same fixed point as noise ε (a WDAE, ε = 0) is
γ_L = λ^{2−2/L} ε/(λ+ε)^{2−2/L} (:func:`matched_decay`; λε/(λ+ε) for L = 2). For L ≥ 3 and
γ > 0 the origin is stable (the decay −γu beats the growth |u|^{2−2/L} near 0) and an unstable
fixed point u₋ > 0 separates the starts that decay to 0 from those that learn: a WDAE started
below u₋ never learns, whereas a DAE (γ = 0) learns every mode. Learning times come from
t(u) = (τ/L) ∫_{u₀}^{u} dv / [v^{2−2/L}(λ − (λ+ε)v) − γv] by quadrature (:func:`learning_time`).

Engine
------
:class:`DepthEngine` runs full-batch GD on ℒ exactly, in Σ's eigenbasis like
:func:`daedyn.linear.train_exact`: only the first and last layers touch d, as A₁ = W₁V (H₁×d)
and B = W_LᵀV (H_{L−1}×d); the middle layers stay H×H. With C = W_{L−1}⋯W₂ (identity for
L = 2), S = diag(λ+ε), P = BBᵀ, Q = A₁SA₁ᵀ, D = CᵀB and E = CA₁, one step is

    A₁  ← (1−ηγ)A₁  + η DΛ − η (CᵀPC) A₁S
    B   ← (1−ηγ)B   + η EΛ − η (CQCᵀ) B
    W_l ← (1−ηγ)W_l + η U_lᵀ K R_lᵀ,        K = BΛA₁ᵀ − PCQ   (H_{L−1}×H₁),

with U_l = W_{L−1}⋯W_{l+1} and R_l = W_{l−1}⋯W₂ (identity when empty): seven O(d·H²)
products per step (four for L = 2, where the step is :func:`~daedyn.linear.train_exact`'s
operation for operation, so the trajectories agree bit for bit).

The engine is driven by the one loop :func:`daedyn.training.drive` (through :func:`train`, which
returns a :class:`DepthRun`) and records through :class:`daedyn.tracking.ProductTracker`: the
two-layer records (u_i = v_iᵀWv_i, singular values of W, loss terms, norms) plus each layer's norm.
:class:`daedyn.depth_batched.BatchedDepthEngine` (through :func:`daedyn.depth_batched.train_batch`) trains
many runs that share the spectrum,
depth and widths as one tensor with a leading run dimension and its own batched step: each run
equals the run trained alone by :class:`DepthEngine` to rounding, not bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.integrate import quad
from scipy.optimize import brentq

from daedyn import training
from daedyn.linear import Run, _check_orthogonal
from daedyn.runconfig import DepthConfig
from daedyn.tracking import ProductTracker
from daedyn.training import Checkpoint, Engine, Problem, as_tensor, run_engine

__all__ = [
    "DepthEngine",
    "DepthRun",
    "eta_max_mode",
    "fixed_points",
    "init_layers",
    "learning_time",
    "limit",
    "matched_decay",
    "mode_map",
    "mode_rate",
    "time_to_fraction",
    "train",
]


def _f64(*args):
    return np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in args))


def _check_depth(depth) -> None:
    d = np.asarray(depth)
    if np.any(d < 2) or np.any(d != np.round(d)):
        raise ValueError(f"depth L (the number of weight matrices) must be an integer >= 2, got {depth}")


# --------------------------------------------------------------------------------------------
# per-mode theory
# --------------------------------------------------------------------------------------------


def matched_decay(lam, eps, depth=2):
    """Weight decay γ_L = λ^{2−2/L} ε/(λ+ε)^{2−2/L} whose WDAE fixed point is the DAE's λ/(λ+ε)."""
    _check_depth(depth)
    lam, eps, L = _f64(lam, eps, depth)
    return eps * (lam / (lam + eps)) ** (2.0 - 2.0 / L)


def mode_rate(u, lam, eps=0.0, gamma=0.0, depth=2):
    """τu̇ = L[|u|^{2−2/L}(λ − (λ+ε)u) − γu] of an aligned balanced mode (gradient flow)."""
    _check_depth(depth)
    u, lam, eps, gamma, L = _f64(u, lam, eps, gamma, depth)
    return L * (np.abs(u) ** (2.0 - 2.0 / L) * (lam - (lam + eps) * u) - gamma * u)


def _roots(lam: float, eps: float, gamma: float, L: float) -> tuple[float, float]:
    """(u₊, u₋): the stable nonzero fixed point and the threshold below which u → 0."""
    b = lam + eps
    p = 1.0 - 2.0 / L
    if lam <= 0:
        return math.nan, math.nan
    if p == 0.0:                                     # L = 2: u* = (λ−γ)/b, origin unstable
        return ((lam - gamma) / b, 0.0) if lam > gamma else (math.nan, math.nan)
    if gamma == 0.0:
        return lam / b, 0.0

    def g(u):                                        # the fixed-point condition
        return u**p * (lam - b * u) - gamma

    top = p * lam / ((p + 1.0) * b)                  # maximiser of u^p (λ − bu)
    if g(top) <= 0.0:                                # decay too strong: only the origin
        return math.nan, math.nan
    lo = brentq(g, 0.0, top, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    hi = brentq(g, top, lam / b, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    return hi, lo


def fixed_points(lam, eps=0.0, gamma=0.0, depth=2):
    """Nonzero fixed points (u₊, u₋) of the aligned balanced mode, u ≥ 0.

    u₊ is stable, u₋ the unstable threshold: a start u₀ > u₋ goes to u₊, a start below u₋
    decays to the (then stable) origin. u₋ = 0 when the origin is unstable (L = 2 with λ > γ,
    or γ = 0). Both are nan when the origin is the only fixed point (the mode is never
    learned: λ ≤ γ for L = 2; γ above max_u u^{1−2/L}(λ − (λ+ε)u) for L ≥ 3).
    """
    _check_depth(depth)
    lam, eps, gamma, L = _f64(lam, eps, gamma, depth)
    out = np.vectorize(_roots, otypes=[float, float])(lam, eps, gamma, L)
    return out[0], out[1]


def limit(lam, eps=0.0, gamma=0.0, depth=2, u0=1e-6):
    """Where the aligned balanced flow from u₀ ≥ 0 ends: u₊ if u₀ > u₋, else 0."""
    up, um = fixed_points(lam, eps, gamma, depth)
    u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), up.shape)
    return np.where(np.isfinite(up) & (u0 > um), up, np.where(u0 == um, u0, 0.0))


def eta_max_mode(lam, eps=0.0, gamma=0.0, depth=2):
    """Per-mode stability limit 2/h of the aligned balanced map at its fixed point.

    h is the top eigenvalue of the per-mode Hessian in the L layer weights: at u₊,
    max(L(λ+ε)u₊^{2−2/L} − (L−2)γ, 2γ) (= 2(λ−γ) and 2γ for L = 2); at the origin of a mode
    that is not learned, γ + λ for L = 2 and γ for L ≥ 3.
    """
    up, _ = fixed_points(lam, eps, gamma, depth)
    lam, eps, gamma, L = _f64(lam, eps, gamma, depth)
    with np.errstate(invalid="ignore"):
        learned = np.maximum(L * (lam + eps) * np.abs(up) ** (2.0 - 2.0 / L) - (L - 2.0) * gamma,
                             2.0 * gamma)
    origin = gamma + np.where(L == 2, lam, 0.0)
    h = np.where(np.isfinite(up), learned, origin)
    with np.errstate(divide="ignore"):
        return np.where(h > 0, 2.0 / np.where(h > 0, h, 1.0), np.inf)


def _time(u1, lam, eps, gamma, lr, u0, L) -> float:
    if u1 == u0:
        return 0.0
    if not (u0 > 0 and u1 > 0 and lr > 0):
        return math.nan
    up, um = _roots(lam, eps, gamma, L)
    lo, hi = min(u0, u1), max(u0, u1)
    if any(math.isfinite(r) and lo <= r <= hi for r in (up, um)):
        return math.inf                              # a fixed point lies in the way
    b, p = lam + eps, 1.0 - 2.0 / L

    def rate(s):                                     # 1/(u̇τ/(Lu)) in s = ln v: smooth, no 0-singularity
        v = math.exp(s)
        return 1.0 / (v**p * (lam - b * v) - gamma)

    if (rate(math.log(u0)) > 0) != (u1 > u0):
        return math.inf                              # the flow runs the other way
    val, _ = quad(rate, math.log(u0), math.log(u1), epsabs=0.0, epsrel=1e-13, limit=500)
    return val / (L * lr)


def learning_time(u, lam, eps=0.0, gamma=0.0, lr=1.0, u0=1e-6, depth=2):
    """Time (in GD steps, τ = 1/lr) for the aligned balanced flow to go from u₀ to u, by quadrature.

    t(u) = (τ/L) ∫_{u₀}^{u} dv / [v^{2−2/L}(λ − (λ+ε)v) − γv], integrated in s = ln v with
    :func:`scipy.integrate.quad` (relative tolerance 1e-13). inf when u is never reached (a
    fixed point lies between u₀ and u, or the flow runs the other way); nan unless u₀, u > 0.
    """
    _check_depth(depth)
    args = _f64(u, lam, eps, gamma, lr, u0, depth)
    return np.vectorize(_time, otypes=[float])(*args)


def time_to_fraction(f, lam, eps=0.0, gamma=0.0, lr=1.0, u0=1e-6, depth=2):
    """Time for the aligned balanced flow to reach f times its limit (:func:`limit`) from u₀.

    inf for modes that are not learned from u₀ (the limit is 0). 0 < f < 1.
    """
    target = np.asarray(f, dtype=np.float64) * limit(lam, eps, gamma, depth, u0)
    t = learning_time(np.where(target > 0, target, 1.0), lam, eps, gamma, lr, u0, depth)
    return np.where(target > 0, t, np.inf)


def mode_map(steps, lam, eps=0.0, gamma=0.0, lr=1.0, w0=0.05, depth=2):
    """Exact full-batch GD of an aligned balanced mode: w ← w + η[w^{L−1}(λ − (λ+ε)w^L) − γw].

    Returns u = w^L with shape broadcast(args) + (steps+1,); index k is step k. For L = 2 this
    is :func:`daedyn.theory.balanced_map` with u₀ = w₀².
    """
    _check_depth(depth)
    lam, eps, gamma, lr, w, L = _f64(lam, eps, gamma, lr, w0, depth)
    b = lam + eps
    out = np.empty(lam.shape + (int(steps) + 1,))
    out[..., 0] = w**L
    with np.errstate(over="ignore", invalid="ignore"):   # unstable rates diverge: inf is the answer
        for k in range(1, int(steps) + 1):
            u = w**L
            w = w + lr * (w ** (L - 1) * (lam - b * u) - gamma * w)
            out[..., k] = w**L
    return out


# --------------------------------------------------------------------------------------------
# engine
# --------------------------------------------------------------------------------------------


def _widths(hidden, depth: int) -> list[int]:
    _check_depth(depth)
    widths = [int(hidden)] * (depth - 1) if np.ndim(hidden) == 0 else [int(h) for h in hidden]
    if len(widths) != depth - 1 or min(widths) < 1:
        raise ValueError(f"hidden must be one width >= 1 or depth-1 = {depth - 1} widths >= 1 "
                         f"(H_1 ... H_{depth - 1}), got {hidden!r}")
    return widths


def _shapes(d: int, widths: list[int]) -> list[tuple[int, int]]:
    dims = [d, *widths, d]
    return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]


def init_layers(d: int, hidden, depth: int, *, init_std: float = 1e-4, seed: int = 0):
    """Random initial weights [W₁, …, W_L] as float64 numpy arrays, entries N(0, init_std²).

    Drawn like :func:`daedyn.training.init_weights`: one CPU ``torch.Generator`` seeded with
    ``seed``, in float64, layer by layer from W₁ (H₁×d) to W_L (d×H_{L−1}); for L = 2 these are
    exactly ``init_weights``'s (W1, W2).
    """
    g = torch.Generator("cpu").manual_seed(int(seed))
    return [(torch.randn(*shape, generator=g, dtype=torch.float64) * init_std).numpy()
            for shape in _shapes(d, _widths(hidden, depth))]


_DEPTH_META = {
    "u": ("mode strength: u_i = v_i^T W v_i (W = W_L ... W_1)", "1"),
    "singular_values": ("singular values of W: W = W_L ... W_1, descending", "1"),
    "loss": ("marginalised loss: reconstruction + noise + decay (computed from Sigma)",
             "1"),
    "loss_decay": ("weight-decay term of the loss: gamma/2 sum_l |W_l|_F^2 (weight decay on every layer)", "1"),
    "norm_w1": ("norm of the first layer: Frobenius norm of W_1", "1"),
    "norm_w2": ("norm of the last layer: Frobenius norm of W_L", "1"),
    "balancedness": ("balancedness: max_l |W_l W_l^T - W_(l+1)^T W_(l+1)|_F over adjacent layers", "1"),
}


def _chain(mats):
    """W_k ⋯ W_j for mats = [W_j, …, W_k] (None: the identity)."""
    out = None
    for m in mats:
        out = m if out is None else m @ out
    return out


def _basis(V, d: int, kw) -> torch.Tensor:
    """Σ's eigenvectors as a checked (d, d) tensor of the run's dtype and device."""
    V = as_tensor(V, **kw)
    if V.shape != (d, d):
        raise ValueError(f"V must be ({d}, {d}), got {tuple(V.shape)}")
    _check_orthogonal(V)
    return V


def _matched(config: DepthConfig, lam: np.ndarray) -> DepthConfig:
    """The configuration the run trains: with ``match_eps`` > 0, ``gamma`` = γ_L at mode ``match_mode``."""
    if config.match_eps <= 0:
        return config
    if config.match_mode >= lam.size:
        raise ValueError(f"{config.label}: match_mode {config.match_mode} is not a mode of the d = {lam.size} inputs")
    gamma = float(matched_decay(lam[config.match_mode], config.match_eps, config.depth))
    if config.gamma not in (0.0, gamma):
        raise ValueError(f"{config.label}: gamma = {config.gamma:g} and match_eps exclude each other")
    return dataclasses.replace(config, gamma=gamma)


def _start(config: DepthConfig, V: torch.Tensor, layers, kw):
    """A run's start in the eigenbasis, (A₁, [W₂ … W_{L−1}], B, W₁, W_L⋯W₂): ``layers`` when given,
    else aligned and balanced (``init="aligned"``) or :func:`init_layers` (``seed``, ``init_std``)."""
    d = V.shape[0]
    L, widths, rank = config.depth, config.hidden_widths, min(d, *config.hidden_widths)
    if layers is None and config.init == "random":
        layers = init_layers(d, widths, L, init_std=config.init_std, seed=config.seed)
    if layers is None:                               # aligned and balanced: w0 on the first `rank` modes
        mats = []
        for rows, cols in _shapes(d, widths):
            m = torch.zeros(rows, cols, **kw)
            m[range(rank), range(rank)] = config.w0
            mats.append(m)
        A1, B = mats[0], mats[-1].T.contiguous()
        mids = [m.clone().contiguous() for m in mats[1:-1]]
        return (A1, mids, B, *_product_weights(A1, mids, B, V))
    mats = [as_tensor(m, **kw) for m in layers]
    if [tuple(m.shape) for m in mats] != _shapes(d, widths):
        raise ValueError(f"layers must have shapes {_shapes(d, widths)} (W_1 first), got "
                         f"{[tuple(m.shape) for m in mats]}")
    # the same products as ExactEngine's initial state, so that L = 2 matches it bit for bit
    A1, B = (mats[0] @ V).contiguous(), (mats[-1].T @ V).contiguous()
    return A1, [m.clone().contiguous() for m in mats[1:-1]], B, mats[0].clone(), _chain(mats[1:]).clone()


def _product_weights(A1, mids, B, V):
    """(W₁, W_L⋯W₂) in the data's basis from the eigenbasis state (one run, or a batch along the first
    dimension)."""
    C = _chain(mids)
    D = B if C is None else C.mT @ B
    return A1 @ V.mT, (D @ V.mT).mT


def _note(c: DepthConfig, eta_max: float, lam: np.ndarray) -> str:
    """A run's learning rate against its stability limit, for a divergence message."""
    what = ("of the two-layer network" if c.depth == 2 else
            "(the smallest per-mode limit of the aligned balanced map; larger or unbalanced weights can "
            "need a smaller rate)")
    return (f"learning rate eta={c.lr:g}; the stability limit {what} is eta_max={eta_max:.6g} "
            f"(depth L={c.depth}, lambda_1={lam.max():.6g}, eps={c.eps:g}, gamma={c.gamma:g})")


def _eta_max(lam: np.ndarray, config: DepthConfig) -> float:
    """The guard's limit: the two-layer network's for L = 2, else the smallest per-mode limit."""
    from daedyn import theory  # only the guard uses it: a theory edit changes no trained result

    if config.depth == 2:
        return float(theory.stability_limit(lam, config.eps, config.gamma, config.hidden_widths[0]))
    return float(np.min(eta_max_mode(lam, config.eps, config.gamma, config.depth)))


class DepthEngine(Engine):
    """Full-batch GD of a depth-L linear DAE/WDAE on the marginalised loss, in Σ's eigenbasis.

    ``config`` (:class:`daedyn.runconfig.DepthConfig`) gives L = ``depth``, the hidden widths,
    ε, γ and the start; ``lam`` (d,) and ``V`` (d×d) are Σ's eigenvalues (descending) and
    orthonormal eigenvectors (columns). With ``match_eps`` > 0 the decay is γ_L =
    :func:`matched_decay` at the eigenvalue of mode ``match_mode``, and ``engine.config`` is the
    configuration with that ``gamma``. Initial weights, in this order of precedence:

    * ``layers`` = [W₁, …, W_L] in the data's basis;
    * ``init="aligned"``: aligned and balanced, every layer's weight for mode i equal to ``w0``
      for i < min(d, H₁, …, H_{L−1}), so u_i = w0^L and every higher mode is 0. The hidden units
      are the eigen-directions themselves (any rotation of the hidden spaces gives the same
      trajectory of W);
    * ``init="random"``: :func:`init_layers` (``seed``, ``init_std``).

    The step is described in the module docstring. Before it, the stability guard compares
    ``lr`` with η_max: :func:`daedyn.theory.stability_limit` of the two-layer network for L = 2,
    and for L > 2 the smallest per-mode limit :func:`eta_max_mode` of the aligned balanced map
    at its fixed point (cross-mode and unbalanced directions are not in it, so an unbalanced
    random start can need a somewhat smaller rate). ``weights()`` returns the current layers in
    the data's basis; the run file stores the first layer W₁ as ``w1`` and the product of the
    layers above it, W_L⋯W₂, as ``w2`` (so that W = w2·w1, as for two layers).
    """

    def __init__(self, config: DepthConfig, lam, V, layers: Sequence | None = None):
        super().__init__(config, np.asarray(lam, dtype=np.float64).ravel(), layers is not None)
        kw = dict(dtype=self.dtype, device=self.device)
        self.V = _basis(V, self.lam.size, kw)
        self.config = config = _matched(config, self.lam)
        widths = config.hidden_widths
        with torch.no_grad():
            self.A1, self.mids, self.B, self.W1_0, self.W2_0 = _start(config, self.V, layers, kw)
            self.lam_t = as_tensor(self.lam, **kw)
            self.s = self.lam_t + config.eps             # diag(λ+ε): the noisy-input correlation
            self.eta_lam = self.lam_t * config.lr
            self.c = 1.0 - config.lr * config.gamma
            self.A1s = torch.empty_like(self.A1)
            self.N1, self.N2 = torch.empty_like(self.A1), torch.empty_like(self.B)
            self.P = torch.empty(widths[-1], widths[-1], **kw)
            self.Q = torch.empty(widths[0], widths[0], **kw)
        self.guard(_eta_max(self.lam, config))
        self.tracker = ProductTracker(self.lam_t, config.eps, config.gamma, widths[0], self.records, config.depth,
                                      meta=_DEPTH_META)

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, **{f"W{l + 2}": m for l, m in enumerate(self.mids)}, "B": self.B}

    def record(self, row: int, epoch: int) -> float:
        with torch.no_grad():
            A1, B, mids = self.A1, self.B, self.mids
            if not mids:                                           # two layers: the two-layer records
                return self.tracker.record(row, A1, B)
            D = _chain(mids).T @ B
            left = [A1 @ A1.T] + [m @ m.T for m in mids]          # W_l W_lᵀ, l < L
            right = [m.T @ m for m in mids] + [B @ B.T]           # W_{l+1}ᵀ W_{l+1}
            bal = torch.stack([torch.linalg.matrix_norm(a - b) for a, b in zip(left, right)]).max()
            sq = [A1.square().sum(), *(m.square().sum() for m in mids), B.square().sum()]
            return self.tracker.record(row, A1, D, layer_sq_norms=sq, balancedness=bal)

    def step(self, epoch: int) -> None:
        del epoch  # full batch: every epoch is the same deterministic step
        with torch.no_grad():
            A1, B, mids, A1s, P, Q = self.A1, self.B, self.mids, self.A1s, self.P, self.Q
            eta, c, new = float(self.config.lr), self.c, []
            torch.mul(A1, self.s, out=A1s)
            torch.mm(B, B.T, out=P)                               # P = BBᵀ = W_LᵀW_L
            torch.mm(A1s, A1.T, out=Q)                            # Q = A1 diag(λ+ε) A1ᵀ
            if mids:
                C = _chain(mids)                                  # W_{L−1} ⋯ W_2
                D, E = C.T @ B, C @ A1
                PD, QE = C.T @ P @ C, C @ Q @ C.T
                K = torch.addmm((B * self.lam_t) @ A1.T, P @ C, Q, alpha=-1.0)
                for k, m in enumerate(mids):
                    up, down = _chain(mids[k + 1:]), _chain(mids[:k])
                    g = K if up is None else up.T @ K
                    g = g if down is None else g @ down.T
                    new.append(torch.add(m * c, g, alpha=eta))
            else:
                D, E, PD, QE = B, A1, P, Q
            # A1' = c A1 + η DΛ − η (DDᵀ) A1 diag(λ+ε)
            torch.mul(D, self.eta_lam, out=self.N1).add_(A1, alpha=c).addmm_(PD, A1s, alpha=-eta)
            # B'  = c B  + η EΛ − η (E diag(λ+ε) Eᵀ) B
            torch.mul(E, self.eta_lam, out=self.N2).add_(B, alpha=c).addmm_(QE, B, alpha=-eta)
            A1.copy_(self.N1)                 # in place: state() tensors stay the live state
            B.copy_(self.N2)
            for m, n in zip(mids, new):
                m.copy_(n)

    def divergence_note(self) -> str:
        return _note(self.config, self.eta_max, self.lam)

    def derived(self) -> dict:
        return {**super().derived(), "eta_max": self.eta_max}

    def final_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W₁, W_L⋯W₂) in the data's basis: the first layer and the product of those above it."""
        with torch.no_grad():
            return _product_weights(self.A1, self.mids, self.B, self.V)

    def weights(self) -> list[np.ndarray]:
        """The current layers [W₁, …, W_L] in the data's basis (numpy, the run's dtype)."""
        with torch.no_grad():
            mats = [self.A1 @ self.V.T, *self.mids, (self.B @ self.V.T).T]
            return [m.detach().cpu().numpy().copy() for m in mats]


class DepthRun(Run):
    """Result of a depth-L run (:class:`daedyn.linear.Run`'s layout): ``W1`` is the first layer,
    ``W2`` the product W_L⋯W₂ of the layers above it, so that W = W2·W1."""

    MODEL = "x_hat = W2 W1 x, W2 = W_L ... W_2"
    TITLE = "daedyn depth-L linear run"
    SUMMARY = ("Trajectory of a depth-L linear autoencoder trained by full-batch gradient descent: mode "
               "strengths, singular values, loss terms, layer norms; initial and final first layer and "
               "product of the layers above it.")


def train(config: DepthConfig, problem: Problem, *, layers: Sequence | None = None,
          checkpoint: Checkpoint | None = None, threads: int | None = None, progress: bool = False) -> DepthRun:
    """Train a depth-L linear DAE/WDAE (:class:`DepthEngine`) on the loop driver, on the spectrum of
    ``problem``; ``layers`` optional initial weights [W₁, …, W_L]. Returns a :class:`DepthRun`.
    """
    return run_engine(DepthEngine(config, problem.lam, problem.V, layers), DepthRun, checkpoint=checkpoint,
                      threads=threads, progress=progress)


