r"""Closed-form and exact-recurrence theory for linear (denoising) autoencoders.

Model (docs/science.md, whose labels E1–E21 are cited below). A two-layer linear network :math:`\hat x = W_2 W_1 \tilde x`
(no biases) trained on the loss

.. math::
    \mathcal L = \tfrac12\operatorname{tr}[(I-W)\Sigma(I-W)^\top] + \tfrac{\varepsilon}{2}\|W\|_F^2
                 + \tfrac{\gamma}{2}(\|W_1\|_F^2 + \|W_2\|_F^2),\qquad W = W_2W_1  \quad (E1, E2)

decouples, for eigenbasis-aligned initial conditions, into independent modes with
per-mode loss :math:`\ell_\lambda = \frac\lambda2(1-u)^2 + \frac\varepsilon2u^2 + \frac\gamma2(w_1^2+w_2^2)`,
:math:`u = w_1w_2` (E6). Throughout this module

* ``lam`` = λ, an eigenvalue of Σ; ``eps`` = ε, the noise **variance**; ``gamma`` = γ, weight decay;
* ``lr`` = η, the learning rate; τ = 1/η; time t counts full-batch GD steps ("epochs");
* per mode a = λ − γ, b = ξ = λ + ε, fixed point u* = max(a, 0)/b (E8).

Conventions. The package uses the **mean convention** everywhere: Σ = XᵀX/N with eigenvalues λ,
noise ε = σ², weight decay γ and τ = 1/η. The authors' ``dynamics.py`` uses an **N-scaled**
convention: S = XᵀX = NΣ (eigenvalues λˢ = Nλ), noise Nσ², weight decay Nγ and τˢ = N/η.
Both give identical u(t) because only a/τ and a/b enter (E7b); mixing them silently rescales time
by N. :func:`to_n_scaled` / :func:`from_n_scaled` convert between the two.

Continuous time (gradient flow τ θ̇ = −∇ℓ) is exact only as η → 0; the discrete maps
(:func:`balanced_map`, :func:`mode_map`, :func:`vector_mode_map`) are the exact per-mode
full-batch GD recurrences (E14, E15) at any η.

All functions take floats or arrays that broadcast together and compute in float64.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

__all__ = [
    "fixed_point",
    "balanced_u",
    "balanced_map",
    "mode_map",
    "vector_mode_map",
    "mode_map_step",
    "mode_state_from_weights",
    "hyperbolic_u",
    "hyperbolic_u_from_state",
    "unbalanced_u",
    "eta_max_mode",
    "stability_limit",
    "hessian_top_eigenvalue",
    "steps_to_fraction",
    "noise_to_decay",
    "decay_to_noise",
    "matched_wdae_lr",
    "optimal_lr_dae",
    "optimal_lr_wdae",
    "notebook_lr_wdae",
    "to_n_scaled",
    "from_n_scaled",
    "mode_curves",
]


def _f64(*args):
    """Broadcast the arguments against each other as float64 arrays (read-only views)."""
    return np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in args))


# --------------------------------------------------------------------------------------------
# Fixed points and the balanced closed form
# --------------------------------------------------------------------------------------------


def fixed_point(lam, eps=0.0, gamma=0.0):
    """Stable per-mode fixed point u* = max(λ−γ, 0)/(λ+ε) (E8).

    Modes with λ ≤ γ are never learned (u* = 0); the DAE (γ = 0) shrinks but never zeroes a mode.
    """
    lam, eps, gamma = _f64(lam, eps, gamma)
    return np.maximum(lam - gamma, 0.0) / (lam + eps)


def balanced_u(t, lam, eps=0.0, gamma=0.0, lr=1.0, u0=1e-6):
    r"""Balanced (w₁ = w₂) gradient-flow solution of τu̇ = 2u(a − bu) (E7a, E7b).

    With a = λ − γ, b = λ + ε, τ = 1/lr and x = 2at/τ:

    * a > 0: u = a / [b(1 − e^{−x}) + (a/u₀)e^{−x}]   (cannot overflow; → a/b);
    * a < 0: u = a e^{x} / [b(e^{x} − 1) + a/u₀]        (x ≤ 0, cannot overflow; → 0);
    * a = 0: u = u₀ / (1 + 2bu₀t/τ)                     (exact limit).

    ``expm1`` keeps both forms accurate as a → 0. Finite for any t ≥ 0. Requires u₀ ≥ 0
    (a balanced mode has u = w² ≥ 0; u₀ = 0 stays 0). For negative or unbalanced starts use
    :func:`hyperbolic_u` or :func:`unbalanced_u`.
    """
    t, lam, eps, gamma, lr, u0 = _f64(t, lam, eps, gamma, lr, u0)
    if np.any(u0 < 0):
        raise ValueError("balanced_u needs u0 >= 0; use hyperbolic_u for sign-flipped starts")
    a = lam - gamma
    b = lam + eps
    x = 2.0 * a * t * lr
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        a_u0 = a / u0
        u_pos = a / (b * -np.expm1(-x) + a_u0 * np.exp(-x))
        u_neg = a * np.exp(x) / (b * np.expm1(x) + a_u0)
        u_zero = u0 / (1.0 + 2.0 * b * u0 * t * lr)
    u = np.where(a > 0, u_pos, np.where(a < 0, u_neg, u_zero))
    return np.where(u0 == 0, 0.0, u)


def balanced_map(steps, lam, eps=0.0, gamma=0.0, lr=1.0, u0=1e-6):
    """Exact balanced full-batch GD per mode: u_{k+1} = u_k (1 + η(a − b u_k))² (E14).

    Returns an array of shape broadcast(args) + (steps+1,); index k is step k and k = 0 is u₀.
    Stable (converges to u*) iff 0 < η < 1/(λ−γ); a period-2 orbit appears above that.
    """
    lam, eps, gamma, lr, u0 = _f64(lam, eps, gamma, lr, u0)
    a, b = lam - gamma, lam + eps
    out = np.empty(lam.shape + (int(steps) + 1,))
    out[..., 0] = u = u0
    with np.errstate(over="ignore", invalid="ignore"):  # unstable rates may diverge: inf is the answer
        for k in range(1, int(steps) + 1):
            u = u * (1.0 + lr * (a - b * u)) ** 2
            out[..., k] = u
    return out


def mode_map(steps, lam, eps=0.0, gamma=0.0, lr=1.0, w1=1e-3, w2=1e-3):
    """Exact per-mode GD map of the (possibly unbalanced) scalar network (E14).

    r_k = λ − (λ+ε) w₁w₂;  w₁ ← w₁ + η(w₂ r − γw₁),  w₂ ← w₂ + η(w₁ r − γw₂), both from the old
    values, i.e. plain gradient descent on ℓ_λ (E6). Returns (w1, w2), each of shape
    broadcast(args) + (steps+1,). The default start is balanced with u₀ = 1e-6.
    """
    lam, eps, gamma, lr, w1, w2 = _f64(lam, eps, gamma, lr, w1, w2)
    b = lam + eps
    o1 = np.empty(lam.shape + (int(steps) + 1,))
    o2 = np.empty_like(o1)
    o1[..., 0], o2[..., 0] = w1, w2
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, int(steps) + 1):
            r = lam - b * w1 * w2
            w1, w2 = w1 + lr * (w2 * r - gamma * w1), w2 + lr * (w1 * r - gamma * w2)
            o1[..., k], o2[..., k] = w1, w2
    return o1, o2


def vector_mode_map(steps, lam, eps=0.0, gamma=0.0, lr=1.0, x0=1e-6, y0=0.0, states=False):
    r"""Exact GD map of one mode whose weights are H-vectors (E15).

    With a = W₁v, b = W₂ᵀv (per mode), x = ‖a+b‖²/4, y = ‖a−b‖²/4, u = aᵀb = x − y and ξ = λ+ε:

        x' = x [1 + η(λ − γ − ξu)]²,   y' = y [1 − η(λ + γ − ξu)]².

    Exact for the decoupled per-mode system at any η (cross-mode coupling neglected). An aligned
    balanced start is x₀ = u₀, y₀ = 0, which reduces to :func:`balanced_map`. Returns u of shape
    broadcast(args) + (steps+1,); with ``states`` the pair (u, y), y being the part of the state
    that u does not show (x = u + y).
    """
    lam, eps, gamma, lr, x, y = _f64(lam, eps, gamma, lr, x0, y0)
    out = np.empty(lam.shape + (int(steps) + 1,))
    ys = np.empty_like(out) if states else None
    out[..., 0] = x - y
    if states:
        ys[..., 0] = y
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, int(steps) + 1):
            x, y = mode_map_step(x, y, lam, eps, gamma, lr)
            out[..., k] = x - y
            if states:
                ys[..., k] = y
    return (out, ys) if states else out


def mode_map_step(x, y, lam, eps, gamma, lr):
    """One step (x, y) → (x', y') of the per-mode map of :func:`vector_mode_map`."""
    u = x - y
    xi = lam + eps
    return x * (1.0 + lr * (lam - gamma - xi * u)) ** 2, y * (1.0 - lr * (lam + gamma - xi * u)) ** 2


def mode_state_from_weights(W1, W2, V):
    """Per-mode (x₀, y₀) of the E15 map from actual weights.

    W1: H×d encoder, W2: d×H decoder, V: d×k eigenvectors as columns. With a_i = W₁v_i and
    b_i = W₂ᵀv_i: x₀ = ‖a_i + b_i‖²/4, y₀ = ‖a_i − b_i‖²/4, so u_i(0) = v_iᵀW₂W₁v_i = x₀ − y₀.
    Returns two arrays of length k.
    """
    W1, W2, V = (np.asarray(M, dtype=np.float64) for M in (W1, W2, V))
    A = W1 @ V  # column i = a_i
    B = W2.T @ V  # column i = b_i
    return np.sum((A + B) ** 2, axis=0) / 4.0, np.sum((A - B) ** 2, axis=0) / 4.0


# --------------------------------------------------------------------------------------------
# Unbalanced continuous-time solutions
# --------------------------------------------------------------------------------------------


def _riccati(s, z0, beta, xi, delta):
    """Exact solution of dz/ds = −ξz² + βz + δ with ξ > 0, δ ≥ 0, z₀ ≥ 0, β ≠ 0.

    Roots z₊ ≥ 0 ≥ z₋ (computed without cancellation); with D = ξ(z₊ − z₋) = √(β² + 4ξδ),
    z = [z₊(z₀−z₋) − z₋(z₀−z₊)e^{−Ds}] / [(z₀−z₋) − (z₀−z₊)e^{−Ds}]. The denominator is > 0
    unless z₀ = z₋ (= 0), a fixed point.
    """
    D = np.sqrt(beta * beta + 4.0 * xi * delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        zp = np.where(beta >= 0, (beta + D) / (2.0 * xi), 2.0 * delta / (D - beta))
        zm = np.where(beta >= 0, -2.0 * delta / (beta + D), (beta - D) / (2.0 * xi))
        E = np.exp(-D * s)
        den = (z0 - zm) - (z0 - zp) * E
        z = (zp * (z0 - zm) - zm * (z0 - zp) * E) / den
    return np.where(den > 0, z, z0)


def hyperbolic_u_from_state(t, lam, eps=0.0, lr=1.0, x0=1e-6, y0=0.0):
    r"""Exact noise-only (γ = 0) gradient flow of a mode from its (x, y) state (E11, E15).

    With ξ = λ+ε and s = t/τ, τẋ = 2x(λ − ξu), τẏ = −2y(λ − ξu), u = x − y, so K = xy is
    conserved and x, y each obey a constant-coefficient Riccati equation:
    τẋ = −2ξx² + 2λx + 2ξK,  τẏ = −2ξy² − 2λy + 2ξK. Both are solved in closed form and
    u = x − y. This equals the hyperbolic solution E11 (K = c₀²/16), is regular at c₀ = 0
    (balanced: y ≡ 0, giving E7b; anti-balanced: x ≡ 0, u → 0⁻) and never overflows.
    Requires λ > 0, x₀, y₀ ≥ 0.
    """
    t, lam, eps, lr, x0, y0 = _f64(t, lam, eps, lr, x0, y0)
    xi = lam + eps
    s = t * lr
    K = x0 * y0
    x = _riccati(s, x0, 2.0 * lam, 2.0 * xi, 2.0 * xi * K)
    y = _riccati(s, y0, -2.0 * lam, 2.0 * xi, 2.0 * xi * K)
    return x - y


def hyperbolic_u(t, lam, eps=0.0, lr=1.0, w1=1e-3, w2=1e-3):
    r"""Unbalanced DAE (γ = 0) closed form for the scalar network (E11), any start.

    Uses x₀ = (w₁+w₂)²/4, y₀ = (w₁−w₂)²/4 and :func:`hyperbolic_u_from_state`; this is E11 with
    c₀ = |w₂² − w₁²| = 4√(x₀y₀), written so that it is exact on both branches, for sign-flipped
    starts (u₀ < 0) and for balanced starts (c₀ = 0, where it reduces to :func:`balanced_u`).
    Depends on (w₁, w₂) only through u₀ and c₀. u(∞) = λ/(λ+ε) unless w₂ = −w₁ exactly.
    """
    w1, w2 = _f64(w1, w2)
    return hyperbolic_u_from_state(t, lam, eps, lr, (w1 + w2) ** 2 / 4.0, (w1 - w2) ** 2 / 4.0)


def unbalanced_u(t, lam, eps=0.0, gamma=0.0, lr=1.0, w1=1e-3, w2=1e-3, rtol=1e-12, atol=1e-14):
    r"""Gradient flow of the scalar network (E5) from any start, by accurate ODE integration.

    τẇ₁ = w₂(λ − (λ+ε)w₁w₂) − γw₁,  τẇ₂ = w₁(λ − (λ+ε)w₁w₂) − γw₂, integrated with DOP853 in
    s = t/τ. Weight decay destroys the conserved imbalance (E12, E18: w₁² − w₂² ∝ e^{−2γt/τ}), so
    there is no closed form for γ > 0. ``t`` is a 1-D array of times ≥ 0 (any order);
    lam, eps, gamma, lr, w1, w2 may broadcast (one ODE solve per element).
    Returns (w1, w2, u), each of shape broadcast(params) + t.shape.
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if t.ndim != 1 or np.any(t < 0):
        raise ValueError("t must be a 1-D array of non-negative times")
    params = _f64(lam, eps, gamma, lr, w1, w2)
    shape = params[0].shape
    out = np.empty((2,) + shape + t.shape)
    t_u, inv = np.unique(t, return_inverse=True)  # solve_ivp wants strictly increasing t_eval
    for idx in np.ndindex(shape):
        lm, ep, gm, eta, a, b = (float(p[idx]) for p in params)
        xi = lm + ep

        def rhs(_s, w, lm=lm, xi=xi, gm=gm):
            r = lm - xi * w[0] * w[1]
            return [w[1] * r - gm * w[0], w[0] * r - gm * w[1]]

        s_eval = t_u * eta
        if s_eval[-1] == 0.0:  # nothing to integrate
            out[(slice(None),) + idx] = np.array([a, b])[:, None]
            continue
        sol = solve_ivp(rhs, (0.0, s_eval[-1]), [a, b], method="DOP853", t_eval=s_eval, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"unbalanced_u ODE solve failed: {sol.message}")
        out[(slice(None),) + idx] = sol.y[:, inv]
    return out[0], out[1], out[0] * out[1]


# --------------------------------------------------------------------------------------------
# Stability limits
# --------------------------------------------------------------------------------------------


def eta_max_mode(lam, eps=0.0, gamma=0.0):
    """Per-mode stability limit of balanced GD, η_max = 1/(λ−γ) (inf where λ ≤ γ; E16).

    At u* the map's multiplier is 1 − 2η(λ−γ); ε does not enter.
    """
    lam, eps, gamma = _f64(lam, eps, gamma)
    a = lam - gamma
    with np.errstate(divide="ignore"):
        return np.where(a > 0, 1.0 / np.where(a > 0, a, 1.0), np.inf)


def hessian_top_eigenvalue(lams, eps=0.0, gamma=0.0, hidden=None):
    r"""Top eigenvalue of the full-matrix Hessian of E2 at the aligned balanced minimum.

    The minimum: W₁ = R diag(w)Vᵀ, W₂ = V diag(w)Rᵀ with w_j = √u*_j for the top p = min(H, d)
    modes and 0 beyond. The spectrum is rotation invariant, so work in the eigenbasis
    (A = RᵀW₁V, B = VᵀW₂R, Σ = Λ). With c_j = λ_j + ε, u_j = w_j², m_j = λ_j − c_j u_j, the
    second variation is

        Σ_{j,k} c_k (w_k δB_{jk} + w_j δA_{jk})² − 2 Σ m_j δB_{ji} δA_{ij} + γ(‖δA‖² + ‖δB‖²),

    which is block diagonal: for j = k < p a 2×2 block in (δA_jj, δB_jj); for j < k < p a 4×4
    block in (δA_jk, δB_jk, δA_kj, δB_kj); for j < p ≤ k a 2×2 block in (δA_jk, δB_kj) (H < d) or
    in (δB_jk, δA_kj) (H > d). The top eigenvalue is the max over these blocks, computed exactly
    (stacked ``eigvalsh``), O(H² + Hd) work: milliseconds for d = 784, H = 256.
    """
    lam = np.sort(np.asarray(lams, dtype=np.float64).ravel())[::-1]
    d = lam.size
    H = d if hidden is None else int(hidden)
    p = min(H, d)
    eps, gamma = float(eps), float(gamma)
    c = lam + eps
    u = np.zeros(d)
    u[:p] = fixed_point(lam[:p], eps, gamma)
    w = np.sqrt(u)
    m = lam - c * u
    # j = k < p: eigenvalues (c u + γ) ± (c u − m)
    cu = c[:p] * u[:p]
    top = np.max(cu + gamma + np.abs(cu - m[:p]))
    # j < k < p: 4x4 blocks, in chunks to bound memory for large H
    jj, kk = np.triu_indices(p, 1)
    for start in range(0, jj.size, 200_000):
        j, k = jj[start : start + 200_000], kk[start : start + 200_000]
        blk = np.zeros((j.size, 4, 4))
        wj, wk = w[j], w[k]
        blk[:, 0, 0] = c[k] * wj**2 + gamma
        blk[:, 1, 1] = c[k] * wk**2 + gamma
        blk[:, 0, 1] = blk[:, 1, 0] = c[k] * wj * wk
        blk[:, 2, 2] = c[j] * wk**2 + gamma
        blk[:, 3, 3] = c[j] * wj**2 + gamma
        blk[:, 2, 3] = blk[:, 3, 2] = c[j] * wj * wk
        blk[:, 0, 3] = blk[:, 3, 0] = -m[k]
        blk[:, 1, 2] = blk[:, 2, 1] = -m[j]
        top = max(top, np.linalg.eigvalsh(blk)[:, -1].max())
    if H < d:  # j < H <= k < d: block [[c_k u_j + γ, −λ_k], [−λ_k, c_j u_j + γ]]
        al = c[None, H:] * u[:H, None] + gamma
        be = (c[:H] * u[:H])[:, None] + gamma
        mk = m[None, H:]
        top = max(top, np.max((al + be) / 2 + np.sqrt(((al - be) / 2) ** 2 + mk**2)))
    elif H > d:  # j < d <= k < H: block [[γ, −m_j], [−m_j, γ]]
        top = max(top, gamma + np.max(np.abs(m)))
    return float(top)


def stability_limit(lams, eps=0.0, gamma=0.0, hidden=None):
    """Stability limit of full-batch GD for the whole network at its aligned balanced minimum.

    The project's one stability-limit function: the engines' guard, the training log, the
    metrics table and the figures all use it. η_max = 2 / (top Hessian eigenvalue) from
    :func:`hessian_top_eigenvalue`. A mode with λ ≤ γ stays at the origin (curvature λ + γ), and
    with γ > 0 the imbalance direction has curvature 2γ, so η_max ≤ 1/γ. For the DAE
    (γ = 0) this equals 1/λ₁ whatever ε (top eigenvalue exactly 2λ₁). For the WDAE it is at most
    1/(λ₁ − γ), the top mode's own limit, with equality when that mode curves most (λ₁ well above
    λ₂, γ small against λ₁: the MNIST runs); otherwise a block coupling two modes, or the imbalance
    direction, curves more and the limit can lie well below 1/(λ₁ − γ) (E16). ``lams``: eigenvalues
    of Σ (any order); ``hidden``: H (default d = len(lams)).
    """
    return 2.0 / hessian_top_eigenvalue(lams, eps, gamma, hidden)


# --------------------------------------------------------------------------------------------
# Learning times
# --------------------------------------------------------------------------------------------


def steps_to_fraction(
    f, lam, eps=0.0, gamma=0.0, lr=1.0, u0=1e-6, exact=False, max_steps=10**6, discrete_correction=False
):
    r"""Time for a balanced mode to reach f·u* from u₀ (E10b, E19).

    exact=False: continuous E10b, t_f = τ/(2a) · ln[(f/(1−f)) (u*/u₀ − 1)] (a float, in steps).
    exact=True: the first integer k with u_k ≥ f·u* under :func:`balanced_map`, searched up to
    ``max_steps``. Both return float arrays: 0 if u₀ ≥ f·u* already, inf for modes that are never
    learned (λ ≤ γ) or (exact) not reached within max_steps. 0 < f < 1.

    E10b lags discrete GD by an offset that does **not** vanish as η → 0: per step the map
    multiplies u by (1+ηa)² < e^{2ηa}, which over the ≈ ln(u_f/u₀)/(2ηa) steps of growth adds
    ln(u_f/u₀)/4 steps. discrete_correction=True (continuous only) adds the first-order
    (modified-equation) correction, with u_f = f·u*:

        t_f + ¼ ln(u_f/u₀) + ½ ln[(a − b u_f)/(a − b u₀)],

    which predicts the real-valued crossing of the map to ≲ 0.1 step for η ≤ 0.2 η_max, so its
    ceiling is the exact count up to rounding at integer boundaries.
    """
    f, lam, eps, gamma, lr, u0 = _f64(f, lam, eps, gamma, lr, u0)
    a, b = lam - gamma, lam + eps
    ustar = fixed_point(lam, eps, gamma)
    target = f * ustar
    learnable = a > 0
    done = learnable & (u0 >= target)
    if not exact:
        with np.errstate(divide="ignore", invalid="ignore"):
            tf = np.log(f / (1.0 - f) * (ustar / u0 - 1.0)) / (2.0 * a * lr)
            if discrete_correction:
                tf = tf + 0.25 * np.log(target / u0) + 0.5 * np.log((a - b * target) / (a - b * u0))
        return np.where(~learnable, np.inf, np.where(done, 0.0, tf))
    out = np.where(done, 0.0, np.inf)
    active = learnable & ~done
    u = u0.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, int(max_steps) + 1):
            if not active.any():
                break
            u = u * (1.0 + lr * (a - b * u)) ** 2
            hit = active & (u >= target)
            out[hit] = k
            active &= ~hit
    return out


# --------------------------------------------------------------------------------------------
# Noise <-> weight decay, learning rates, conventions
# --------------------------------------------------------------------------------------------


def noise_to_decay(lam, eps):
    """Weight decay with the same fixed point as noise ε: γ = λε/(λ+ε) (E9)."""
    lam, eps = _f64(lam, eps)
    return lam * eps / (lam + eps)


def decay_to_noise(lam, gamma):
    """Noise with the same fixed point as weight decay γ < λ: ε = λγ/(λ−γ) (E9)."""
    lam, gamma = _f64(lam, gamma)
    return lam * gamma / (lam - gamma)


def matched_wdae_lr(lr, lam, eps):
    """WDAE rate η(λ+ε)/λ at which WDAE(γ = λε/(λ+ε)) equals DAE(ε) at rate η exactly (E17).

    Both give η_WDAE(λ−γ) = ηλ and η_WDAE·λ = η(λ+ε), so the balanced maps coincide per mode.
    """
    lr, lam, eps = _f64(lr, lam, eps)
    return lr * (lam + eps) / lam


def optimal_lr_dae(lam, eps):
    """Notebook "optimal" DAE rate 1/(2λ+3ε) = 1/top Hessian eigenvalue of E6 at w₁=w₂=1 (E13)."""
    lam, eps = _f64(lam, eps)
    return 1.0 / (2.0 * lam + 3.0 * eps)


def optimal_lr_wdae(lam, gamma):
    """Notebook "optimal" WDAE rate 1/(2λ+γ) (E13; the Fig. 3 middle panel)."""
    lam, gamma = _f64(lam, gamma)
    return 1.0 / (2.0 * lam + gamma)


def notebook_lr_wdae(lam, gamma):
    """WDAE rate 1/(2λ+2γ) that the original Fig. 3 code actually runs (times 0.005; D5)."""
    lam, gamma = _f64(lam, gamma)
    return 1.0 / (2.0 * lam + 2.0 * gamma)


def to_n_scaled(n, lam, eps, gamma, lr):
    """Mean convention → N-scaled convention of ``dynamics.py``.

    Returns (λˢ, εˢ, γˢ, τˢ) = (Nλ, Nε, Nγ, N/η).
    """
    n, lam, eps, gamma, lr = _f64(n, lam, eps, gamma, lr)
    return n * lam, n * eps, n * gamma, n / lr


def from_n_scaled(n, lam_s, eps_s, gamma_s, tau_s):
    """N-scaled convention of ``dynamics.py`` → mean convention.

    Returns (λ, ε, γ, η) = (λˢ/N, εˢ/N, γˢ/N, N/τˢ).
    """
    n, lam_s, eps_s, gamma_s, tau_s = _f64(n, lam_s, eps_s, gamma_s, tau_s)
    return lam_s / n, eps_s / n, gamma_s / n, n / tau_s


# --------------------------------------------------------------------------------------------
# xarray front end
# --------------------------------------------------------------------------------------------


def mode_curves(lam, epochs, eps=0.0, gamma=0.0, lr=1.0, u0=1e-6, method="closed"):
    """Balanced per-mode curves u(t) as an xr.DataArray with dims ("mode", "epoch").

    method "closed": :func:`balanced_u` (gradient flow, E7b); "map": :func:`balanced_map`
    (exact discrete GD, E14; epochs must be non-negative integers). Coords: mode = 0..k−1,
    epoch = ``epochs``, lam along mode. Scalar eps, gamma, lr, u0 are stored as attrs; per-mode
    arrays of them become coords along "mode" (their attr is then the JSON list).
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    if lam.ndim != 1:
        raise ValueError("lam must be 1-D")
    epochs = np.asarray(epochs)
    k = lam.size
    pars = {"eps": eps, "gamma": gamma, "lr": lr, "u0": u0}
    col = {n: np.broadcast_to(np.asarray(v, dtype=np.float64), (k,)) for n, v in pars.items()}
    if method == "closed":
        u = balanced_u(epochs[None, :], lam[:, None], *(col[n][:, None] for n in pars))
    elif method == "map":
        if epochs.size and (not np.issubdtype(epochs.dtype, np.integer) or epochs.min() < 0):
            raise ValueError('method="map" needs non-negative integer epochs')
        steps = int(epochs.max()) if epochs.size else 0
        u = balanced_map(steps, lam, *(col[n] for n in pars))[:, epochs]
    else:
        raise ValueError(f"unknown method {method!r}")
    coords = {"mode": np.arange(k), "epoch": epochs, "lam": ("mode", lam)}
    attrs = {"method": method}
    for n, v in pars.items():
        if np.ndim(v) == 0:
            attrs[n] = float(v)
        else:
            coords[n] = ("mode", col[n].copy())
            attrs[n] = json.dumps(col[n].tolist())
    return xr.DataArray(u, dims=("mode", "epoch"), coords=coords, name="u", attrs=attrs)
