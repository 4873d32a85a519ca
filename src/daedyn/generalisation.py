r"""Generalisation of linear (denoising) autoencoders trained on N samples: train and held-out error.

Setting
-------
A network W = W₂W₁ (rank ≤ H) is trained on the first N samples, whose second moment is
Σ̂ = XᵀX/N = V̂Λ̂V̂ᵀ (λ̂ descending). It is evaluated on held-out inputs (the test split) with
second moment Σ_test. Everything is computed in the *training* eigenbasis:

* M = V̂ᵀWV̂ = B₂ᵀA₁ with A₁ = W₁V̂ and B₂ = W₂ᵀV̂ (both H×d, as the linear engines hold them),
  and uᵢ = Mᵢᵢ the mode strengths;
* C = V̂ᵀΣ_testV̂ (d×d), the held-out second moment in that basis, with diagonal
  cᵢ = v̂ᵢᵀΣ_test v̂ᵢ. C is not diagonal: the sample eigenvectors do not diagonalise the
  held-out moment, and the exact error of a non-aligned W needs all of it.

Convention
----------
Every error here is **half the squared error summed over the d features, averaged over
samples**, the convention of the training loss (``loss_reconstruction`` = ½ mean‖x − Wx‖²):

* train error           E_train = ½ tr[(I−M)Λ̂(I−M)ᵀ]  (+ ε/2 ‖M‖²_F, the marginalised noise term, if asked)
* test reconstruction   E_rec   = ½ tr[(I−M)C(I−M)ᵀ]  = ½ mean_test ‖x − Wx‖²
* test denoising        E_den   = E_rec + σ²_test/2 ‖M‖²_F = ½ mean_test E_n‖x − W(x + n)‖²,
  n ~ N(0, σ²_test I) independent of x (exact for a linear map: the cross term has mean zero).

For an aligned W (M = diag u) they reduce to the per-mode sums

    E_train = ½ Σᵢ [λ̂ᵢ(1−uᵢ)² + εuᵢ²],     E_den = ½ Σᵢ [cᵢ(1−uᵢ)² + σ²_test uᵢ²]
            = ½ [tr Σ_test − Σᵢ(2uᵢ − uᵢ²)cᵢ + σ²_test Σᵢuᵢ²],

which is half the common "per-sample error without the ½". Per mode the best strength is the
Wiener factor uᵢ = cᵢ/(cᵢ + σ²_test); a DAE trained with noise ε ends at uᵢ = λ̂ᵢ/(λ̂ᵢ + ε) on its H
strongest modes, so ε = σ²_test is optimal exactly when cᵢ = λ̂ᵢ (accurate sample eigenvectors
and eigenvalues), and without test noise any shrinkage (uᵢ < 1) raises the test error, since
(1 − uᵢ)² grows as uᵢ falls below 1.

Mean convention throughout (Σ = XᵀX/N, ε and σ²_test are variances, one epoch = one
full-batch step). Numpy functions compute in float64; :func:`state_errors` is the torch version
for the training engines' trackers. The experiment over N and ε (combining its runs, their
theory, metrics and claims) is :mod:`daedyn.generalisation_analysis`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import brentq

from daedyn import theory
from daedyn.heldout import heldout_moment, state_errors

__all__ = [
    "heldout_moment",
    "eigenbasis_weights",
    "train_error",
    "heldout_error",
    "mode_train_error",
    "mode_heldout_error",
    "wiener_u",
    "trained_u",
    "final_heldout_error",
    "optimal_noise",
    "mode_trajectories",
    "early_stopping",
    "error_trajectories",
    "state_errors",
]


# --------------------------------------------------------------------------------------------
# closed-form errors of a given network (float64 numpy)
# --------------------------------------------------------------------------------------------


def eigenbasis_weights(A1, B2) -> np.ndarray:
    """M = V̂ᵀWV̂ = B₂ᵀA₁ from A₁ = W₁V̂ and B₂ = W₂ᵀV̂ (..., H, d); shape (..., d, d)."""
    A1, B2 = np.asarray(A1, dtype=np.float64), np.asarray(B2, dtype=np.float64)
    return np.swapaxes(B2, -1, -2) @ A1


def _quadratic_error(M, S, noise):
    """½ tr[(I−M)S(I−M)ᵀ] + noise/2 ‖M‖²_F for (..., d, d) stacks; `noise` broadcasts on the batch."""
    M = np.asarray(M, dtype=np.float64)
    E = np.eye(M.shape[-1]) - M
    rec = 0.5 * np.einsum("...ij,jk,...ik->...", E, np.asarray(S, dtype=np.float64), E)
    return rec + 0.5 * np.asarray(noise, dtype=np.float64) * np.sum(M * M, axis=(-2, -1))


def train_error(M, lam, eps=0.0) -> np.ndarray:
    """½ tr[(I−M)Λ̂(I−M)ᵀ] + ε/2 ‖M‖²_F: clean train error (ε = 0) or the marginalised DAE loss."""
    return _quadratic_error(M, np.diag(np.asarray(lam, dtype=np.float64)), eps)


def heldout_error(M, C, sigma2_test=0.0) -> np.ndarray:
    """½ tr[(I−M)C(I−M)ᵀ] + σ²_test/2 ‖M‖²_F: the expected held-out denoising error of M.

    With ``sigma2_test = 0`` this is the reconstruction error on clean held-out inputs.
    """
    return _quadratic_error(M, C, sigma2_test)


def _mode_error(u, weight, noise):
    """½ Σᵢ[wᵢ(1−uᵢ)² + noise·uᵢ²] over the last axis; u may cover only the first k ≤ d modes
    (the others count as uᵢ = 0, contributing ½wᵢ)."""
    u = np.asarray(u, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    k = u.shape[-1]
    if k > weight.shape[-1]:
        raise ValueError(f"u has {k} modes but only {weight.shape[-1]} weights are given")
    noise = np.asarray(noise, dtype=np.float64)[..., None]
    learned = np.sum(weight[..., :k] * (1.0 - u) ** 2 + noise * u * u, axis=-1)
    return 0.5 * (learned + np.sum(weight[..., k:], axis=-1))


def mode_train_error(u, lam, eps=0.0) -> np.ndarray:
    """Per-mode train error ½Σᵢ[λ̂ᵢ(1−uᵢ)² + εuᵢ²] of an aligned W (uᵢ = 0 past u's length)."""
    return _mode_error(u, lam, eps)


def mode_heldout_error(u, c, sigma2_test=0.0) -> np.ndarray:
    """Per-mode held-out error ½Σᵢ[cᵢ(1−uᵢ)² + σ²_test uᵢ²] of an aligned W.

    Equal to ½[tr Σ_test − Σᵢ(2uᵢ−uᵢ²)cᵢ + σ²_test Σᵢuᵢ²] when `c` holds all d modes. `u`
    (..., k) broadcasts against `c` (..., d) and `sigma2_test` against the batch shape.
    """
    return _mode_error(u, c, sigma2_test)


# --------------------------------------------------------------------------------------------
# fixed points, the optimal training noise and early stopping
# --------------------------------------------------------------------------------------------


def wiener_u(c, sigma2_test):
    """The per-mode optimum cᵢ/(cᵢ + σ²_test) (1 where both vanish)."""
    c, s2 = np.broadcast_arrays(np.asarray(c, dtype=np.float64), np.asarray(sigma2_test, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c + s2 > 0, c / (c + s2), 1.0)


def trained_u(lam, eps=0.0, hidden: int | None = None, gamma=0.0) -> np.ndarray:
    """Fixed point of training: uᵢ = max(λ̂ᵢ−γ, 0)/(λ̂ᵢ+ε) on the H strongest modes, 0 on the rest.

    `lam` (d,) must be descending; `eps`, `gamma` broadcast against a leading batch shape
    (result (..., d)). Modes with λ̂ᵢ ≤ 0 (N < d) carry no signal and stay at 0.
    """
    lam = np.asarray(lam, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)[..., None]
    gamma = np.asarray(gamma, dtype=np.float64)[..., None]
    pos = lam > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(pos, theory.fixed_point(np.where(pos, lam, 1.0), eps, gamma), 0.0)
    if hidden is not None:
        u = np.where(np.arange(lam.size) < int(hidden), u, 0.0)
    return u


def final_heldout_error(lam, c, eps, sigma2_test=0.0, hidden: int | None = None) -> np.ndarray:
    """Held-out denoising error of the trained fixed point (:func:`trained_u`, per-mode formula);
    shape broadcast(eps, sigma2_test)."""
    eps, s2 = np.broadcast_arrays(np.asarray(eps, dtype=np.float64), np.asarray(sigma2_test, dtype=np.float64))
    return mode_heldout_error(trained_u(lam, eps, hidden), c, s2)


def _noise_slope(lam, c, eps, sigma2_test, hidden):
    """d/dε of :func:`final_heldout_error`: Σ_{i<H, λ̂ᵢ>0} λ̂ᵢ(cᵢε − σ²_test λ̂ᵢ)/(λ̂ᵢ+ε)³."""
    k = lam.size if hidden is None else min(int(hidden), lam.size)
    lam, c = lam[:k], c[:k]
    pos = lam > 0
    lam, c = lam[pos], c[pos]
    return float(np.sum(lam * (c * eps - sigma2_test * lam) / (lam + eps) ** 3))


def optimal_noise(lam, c, sigma2_test, hidden: int | None = None, *, grid_points: int = 400) -> np.ndarray:
    """ε* = argmin over ε ≥ 0 of the held-out denoising error of the trained fixed point.

    The fixed point is uᵢ = λ̂ᵢ/(λ̂ᵢ+ε) on the H strongest sample modes (:func:`trained_u`);
    the error is :func:`mode_heldout_error` with the held-out cᵢ, whose slope in ε is
    Σᵢ λ̂ᵢ(cᵢε − σ²_test λ̂ᵢ)/(λ̂ᵢ+ε)³. So ε* = σ²_test when cᵢ = λ̂ᵢ, and ε* = 0 when
    σ²_test = 0 (any shrinkage then raises the error). Found by a log-spaced scan from
    1e-6·λ̂₁ to 1e3·λ̂₁ (which also picks the better of two local minima, should there be two),
    then the root of the slope between the neighbours of the best grid point (Brent, to
    rounding). Vectorised over `sigma2_test`.
    """
    lam = np.asarray(lam, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    s2_all = np.asarray(sigma2_test, dtype=np.float64)
    if np.any(s2_all < 0):
        raise ValueError(f"sigma2_test must be >= 0, got {sigma2_test!r}")
    grid = np.r_[0.0, np.geomspace(1e-6 * float(lam.max()), 1e3 * float(lam.max()), grid_points)]
    out = np.empty(s2_all.shape)
    for idx, s2 in np.ndenumerate(s2_all):
        j = int(np.argmin(final_heldout_error(lam, c, grid, s2, hidden)))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        slope_lo, slope_hi = (_noise_slope(lam, c, e, s2, hidden) for e in (lo, hi))
        if j == 0 and slope_lo >= 0:
            out[idx] = 0.0
        elif slope_lo < 0 < slope_hi:
            out[idx] = brentq(lambda e: _noise_slope(lam, c, e, s2, hidden), lo, hi, xtol=1e-15, rtol=1e-15)
        else:  # a minimum at the end of the scan: ε* beyond 1e3·λ̂₁ (nothing worth learning)
            out[idx] = grid[j]
    return out


def mode_trajectories(steps: int, lam, eps=0.0, lr=1.0, *, hidden: int | None = None, x0=1e-6, y0=0.0,
                      gamma=0.0) -> np.ndarray:
    """Per-mode theory uᵢ(t), t = 0…steps, of full-batch GD, on the H strongest modes (0 elsewhere).

    The exact discrete per-mode map from each mode's state (x₀ = ‖aᵢ+bᵢ‖²/4, y₀ = ‖aᵢ−bᵢ‖²/4,
    :func:`daedyn.theory.mode_state_from_weights`; balanced starts: x₀ = u₀, y₀ = 0), cross-mode
    coupling neglected (:func:`daedyn.theory.vector_mode_map`). Modes past H are set to 0, their
    value once the H hidden units are taken by stronger modes (an uncoupled map would learn them
    too). Arguments broadcast to (..., d); returns (..., d, steps+1).
    """
    u = theory.vector_mode_map(steps, lam, eps, gamma, lr, x0=x0, y0=y0)
    if hidden is not None:
        d = u.shape[-2]
        u = np.where((np.arange(d) < int(hidden))[:, None], u, 0.0)
    return u


def early_stopping(epochs, error, axis: int = -1):
    """(epoch, error) at the first minimum of `error` along `axis`, the best early-stopping point.

    The minimum sits at the last epoch when training longer never hurts.
    """
    error = np.asarray(error, dtype=np.float64)
    j = np.argmin(error, axis=axis)
    return np.asarray(epochs)[j], np.take_along_axis(error, np.expand_dims(j, axis), axis).squeeze(axis)


def error_trajectories(steps: int, lam, c, *, lr: float, eps: float = 0.0, sigma2_test=0.0,
                       hidden: int | None = None, x0=1e-6, y0=0.0) -> xr.Dataset:
    """Theory train and held-out errors over training, and the best epoch to stop, for one ε.

    ``lam``, ``c`` (d,): the training eigenvalues and held-out variances of one N; ``x0``, ``y0``:
    each mode's initial state (:func:`mode_trajectories`). Returns ``u(mode, epoch)``,
    ``train_error(epoch)`` (clean, ½Σλ̂ᵢ(1−uᵢ)²), ``test_error(sigma2_test, epoch)`` (held-out
    denoising, ½Σ[cᵢ(1−uᵢ)² + σ²_test uᵢ²]) and, per σ²_test, ``stop_epoch`` and ``stop_error``,
    the first minimum of the held-out error (the last epoch when training longer never hurts).
    """
    lam, c = np.asarray(lam, dtype=np.float64), np.asarray(c, dtype=np.float64)
    s2 = np.atleast_1d(np.asarray(sigma2_test, dtype=np.float64))
    u = mode_trajectories(steps, lam, eps, lr, hidden=hidden, x0=x0, y0=y0)      # (d, steps+1)
    test = mode_heldout_error(u.T[None], c, s2[:, None])                          # (sigma2, steps+1)
    epochs = np.arange(int(steps) + 1)
    stop, best = early_stopping(epochs, test)
    return xr.Dataset(
        {"u": (("mode", "epoch"), u), "train_error": ("epoch", mode_train_error(u.T, lam)),
         "test_error": (("sigma2_test", "epoch"), test), "stop_epoch": ("sigma2_test", stop),
         "stop_error": ("sigma2_test", best)},
        coords={"mode": np.arange(lam.size), "epoch": epochs, "sigma2_test": s2},
        attrs={"eps": float(eps), "lr": float(lr), "hidden": -1 if hidden is None else int(hidden)})
