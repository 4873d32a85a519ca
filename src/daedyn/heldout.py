r"""A held-out set seen from a training spectrum: its second moment in the training eigenbasis
(:func:`heldout_moment`) and the held-out errors of recorded network states in torch, for the
linear engines' trackers (:func:`state_errors`).

Kept apart from :mod:`daedyn.generalisation` (which re-exports both and explains the setting) so
that the held-out moments and the training runs depend only on this file: an edit of the
experiment's theory, metrics or claims must not recompute them.

Convention: errors are half the squared error summed over the d features, averaged over samples,
like the training loss. In the training eigenbasis V̂ with A₁ = W₁V̂, B₂ = W₂ᵀV̂ (H×d),
M = V̂ᵀWV̂ = B₂ᵀA₁ and the held-out moment C = V̂ᵀΣ_testV̂:

* held-out reconstruction  ½ tr[(I−M)C(I−M)ᵀ] = ½ mean_test ‖x − Wx‖²;
* held-out denoising       the same + σ²_test/2 ‖M‖²_F = ½ mean_test E_n‖x − W(x + n)‖²,
  n ~ N(0, σ²_test I) independent of x (exact for a linear map);
* train (clean)            ½ tr[(I−M)Λ̂(I−M)ᵀ].
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from daedyn import spectrum as _spectrum

__all__ = ["heldout_moment", "state_errors"]


def heldout_moment(x, spec: xr.Dataset, *, block_size: int = 4096, progress: bool = False) -> xr.Dataset:
    """C = V̂ᵀΣ_testV̂ of held-out inputs `x` in the eigenbasis of a training spectrum `spec`.

    `x` is anything :func:`daedyn.spectrum.second_moment` reads block-wise (a lazily opened
    DataArray, an array); all its rows are used. Σ_test is accumulated in float64. When the
    training spectrum is centred (``center`` = 1), the held-out inputs are centred with the
    *training* mean (the preprocessing a deployed model would apply), not their own.
    Returns ``test_moment(component, component2)``, its diagonal ``c(component)``, the
    training ``eigenvalue(component)`` and the attributes ``n_test``, ``trace_test``
    (= tr Σ_test = tr C), ``n_samples`` (training N) and ``center``.
    """
    V = np.asarray(spec["eigenvector"].values, dtype=np.float64)
    d = V.shape[0]
    if x.shape[1] != d:
        raise ValueError(f"the held-out inputs have {x.shape[1]} features but the training spectrum "
                         f"has {d}; pair a test split with the training set of the same source")
    second, mean_test = _spectrum.second_moment(x, center=False, block_size=block_size,
                                                progress=progress)
    center = bool(spec.attrs.get("center", 0))
    if center:  # E[(x − μ)(x − μ)ᵀ] = S − m μᵀ − μ mᵀ + μ μᵀ, μ the training mean
        mu = np.asarray(spec["mean"].values, dtype=np.float64)
        second = second - np.outer(mean_test, mu) - np.outer(mu, mean_test) + np.outer(mu, mu)
    C = V.T @ second @ V
    C = 0.5 * (C + C.T)
    k = np.arange(d)
    return xr.Dataset(
        {
            "test_moment": (("component", "component2"), C, {
                "long_name": "held-out second moment: in the training eigenbasis, C = V^T Sigma_test V",
                "units": "1"}),
            "c": ("component", np.diag(C).copy(), {
                "long_name": "held-out variance: along each training eigenvector, c_i = v_i^T Sigma_test v_i",
                "units": "1"}),
            "eigenvalue": ("component", np.asarray(spec["eigenvalue"].values, dtype=np.float64), {
                "long_name": "training eigenvalue: of the training second moment (descending)", "units": "1"}),
        },
        coords={"component": ("component", k, {"long_name": "eigen-component index: of the training spectrum "
                                                             "(0 = largest eigenvalue)", "units": "1"}),
                "component2": ("component2", k, {"long_name": "eigen-component index, second axis: of the "
                                                               "training spectrum, second axis of test_moment",
                                                  "units": "1"})},
        attrs={"n_test": int(x.shape[0]), "trace_test": float(np.trace(second)),
               "n_samples": int(spec.attrs["n_samples"]), "center": int(center),
               "matrix": "covariance about the training mean" if center
               else "uncentred second moment X_test^T X_test / N_test"},
    )



def state_errors(A1, B2, C, sigma2_test=0.0, *, lam=None, P=None, G=None) -> dict:
    """Train, held-out reconstruction and held-out denoising errors of states (A₁, B₂), in torch.

    ``A1`` = W₁V̂ and ``B2`` = W₂ᵀV̂ are (..., H, d) (a leading batch of recorded states is
    allowed), ``C`` = V̂ᵀΣ_testV̂ (d, d) symmetric, on the same device and dtype.
    ``sigma2_test`` is a float or a 1-D sequence of test-noise variances (then the denoising
    error gets a trailing axis). ``lam`` (d,) adds the clean train error; ``P`` = B₂B₂ᵀ and
    ``G`` = A₁A₁ᵀ are reused when the caller has them. Cost per state: one H×d by d×d product
    (O(H·d²)) and a few O(H²·d) ones, never a d×d product of two dense matrices:

        tr(MC) = Σ (A₁C) ⊙ B₂,   tr(MCMᵀ) = Σ (A₁CA₁ᵀ) ⊙ P,   ‖M‖²_F = Σ G ⊙ P.

    Returns a dict of tensors: ``test_reconstruction`` (...), ``test_denoising`` (...[, S]),
    ``weight_norm_sq`` = ‖W‖²_F (...) and, with ``lam``, ``train_error`` (...). The trace
    expansion loses about 1e-7·tr Σ_test of absolute accuracy in float32.
    """
    import torch  # here, so that daedyn.generalisation (which re-exports this) needs no torch to import

    At = A1.transpose(-1, -2)
    AC = A1 @ C                                             # (..., H, d)
    if P is None:
        P = B2 @ B2.transpose(-1, -2)
    if G is None:
        G = A1 @ At
    tr_mc = (AC * B2).sum((-2, -1))
    tr_mcm = ((AC @ At) * P).sum((-2, -1))
    norm_sq = (G * P).sum((-2, -1))
    rec = 0.5 * (torch.diagonal(C).sum() - 2.0 * tr_mc + tr_mcm)
    s2 = torch.as_tensor(sigma2_test, dtype=rec.dtype, device=rec.device)
    if s2.ndim > 1:
        raise ValueError("sigma2_test must be a float or a 1-D sequence")
    if s2.ndim == 1:
        den = rec[..., None] + 0.5 * s2 * norm_sq[..., None]
    else:
        den = rec + 0.5 * s2 * norm_sq
    out = {"test_reconstruction": rec, "test_denoising": den, "weight_norm_sq": norm_sq}
    if lam is not None:
        u = (A1 * B2).sum(-2)
        q_lam = (A1 * lam) @ At
        out["train_error"] = 0.5 * (lam.sum() - 2.0 * (lam * u).sum(-1) + (q_lam * P).sum((-2, -1)))
    return out
