r"""Linear DAEs with Bernoulli masking (dropout) noise: theory and two engines.

Model and loss
--------------
The two-layer linear network x̂ = W₂W₁x̃ of :mod:`daedyn.linear`, but the input is corrupted
by a fresh Bernoulli mask m (each entry kept with probability q, independently) instead of
Gaussian noise, in one of two forms:

* ``"unscaled"``: x̃ = m ⊙ x;
* ``"inverted"`` (inverted dropout): x̃ = m ⊙ x / q, so that E[x̃] = x.

With Σ = XᵀX/N (mean convention), D = diag(diag Σ) (the per-feature second moments) and
ρ = (1−q)/q, both forms have E[x̃xᵀ] = κΣ and E[x̃x̃ᵀ] = κ²(Σ + ρD), with κ = q (unscaled) or
κ = 1 (inverted). Averaged over masks the loss is

    ℒ = ½ tr Σ − κ tr(WΣ) + κ²/2 tr[W(Σ + ρD)Wᵀ] + γ/2 (‖W₁‖²_F + ‖W₂‖²_F),

which for the inverted form is ½tr[(I−W)Σ(I−W)ᵀ] + ρ/2 tr(WDWᵀ): a Gaussian DAE whose noise
covariance is ρD instead of εI. The unscaled loss is the inverted one at κW = qW, so (with
W'ᵢ = √q Wᵢ) unscaled GD at rate η and decay γ *is* inverted GD at rate qη and decay γ/q, and
its u = vᵀWv is the inverted u divided by q.

Fixed point (:func:`fixed_point`, without weight decay): for H ≥ d, W* = Σ(qΣ + (1−q)D)⁺
(unscaled) and W* = Σ(Σ + ρD)⁺ (inverted), the marginalised-denoising closed form without a
bias. The loss is ½‖(W − W*)R^{1/2}‖²_F + const with R = E[x̃x̃ᵀ], so a bottleneck H < d keeps
the rank-H part that matters most under R: W* = P_H W_full, P_H the projector on the top H
eigenvectors of W_full R W_fullᵀ = E[xx̃ᵀ] R⁺ E[x̃xᵀ] (reduced-rank regression). The
pseudo-inverse is needed because a feature of zero variance (MNIST's border pixels) makes R
singular; GD never moves W along it, and it leaves every u_i of a mode with λ_i > 0 unchanged.
The modes couple through the off-diagonal of VᵀDV, so u_i* = v_iᵀW*v_i (:func:`mode_fixed_point`)
is not the per-mode value below: at q = 0.5 on MNIST they differ by about 0.02.

Per-mode approximation (:func:`effective_noise`, :func:`per_mode_u`)
--------------------------------------------------------------------
In Σ's eigenbasis D becomes D̃ = VᵀDV, which is not diagonal (unless D ∝ I), so the modes
do not decouple. Keeping only its diagonal gives, for the **inverted** form, a Gaussian DAE
per mode with

    ε_i^eff = ρ v_iᵀ D v_i = ((1−q)/q) v_iᵀ diag(Σ) v_i,

u_i* = λ_i/(λ_i + ε_i^eff) and the per-mode dynamics of :mod:`daedyn.theory` with ε = ε_i^eff.
For the **unscaled** form the same approximation applies after the rescaling above:
u_i = ũ_i/q where ũ_i follows the inverted per-mode dynamics at rate qη, decay γ/q, from the
initial weights times √q; hence u_i* = λ_i/(qλ_i + (1−q) v_iᵀ D v_i). The approximation is
exact when diag Σ ∝ I; :func:`max_error_per_mode` measures how far it lies from training.

Engines
-------
:class:`MarginalMaskingEngine` runs full-batch GD on ℒ exactly, in Σ's eigenbasis, with
A₁ = W₁V and B = W₂ᵀV (both H×d), Λ and R̃ = Λ + N, N = ρD̃ (d×d, full):

    A₁ ← (1−ηγ)A₁ + ηκ BΛ − ηκ² (BBᵀ) A₁R̃,
    B  ← (1−ηγ)B  + ηκ A₁Λ − ηκ² (A₁R̃A₁ᵀ) B,

one O(d²H) product (A₁R̃) and four O(dH²) products per step. For comparison the same engine
trains the network with Gaussian noise in place of the masks (config ``noise``): N =
diag(ε_i^eff) (the per-mode approximation, trained) or N = ε_m I with the matched variance
ε_m = ρ mean(diag Σ) (:func:`noise_covariance`). :class:`SampledMaskingEngine` is a real masked
DAE: fresh masks for every (mini)batch and step, the gradient of the batch mean of
½‖x − W₂W₁x̃‖² (+ weight decay). Both are driven by :func:`daedyn.training.drive` (through
:func:`train`, which returns a :class:`MaskingRun`) and record through
:class:`daedyn.tracking.ProductTracker` the two-layer records, the losses being the marginalised
ℒ above (``loss_reconstruction`` is the clean ½tr[(I−W)Σ(I−W)ᵀ] and ``loss_noise`` the rest of
ℒ without decay), plus per mode ε_i^eff and the initial state (x₀, y₀) the approximation starts
from. Before the first step the guard compares lr with :func:`stability_bound`.
:class:`daedyn.masking_batched.BatchedMaskingEngine` (through :func:`daedyn.masking_batched.train_batch`)
trains many marginal-engine runs that
share the spectrum and width as one tensor with a leading run dimension and its own batched step: each
run equals the run trained alone by :class:`MarginalMaskingEngine` to rounding, not bit for bit.
"""

from __future__ import annotations


import numpy as np
import torch
import xarray as xr

from daedyn import theory, training
from daedyn.linear import Run, _check_orthogonal, corrupted_batch_step
from daedyn.runconfig import MaskingConfig
from daedyn.tracking import ProductTracker
from daedyn.training import Checkpoint, Engine, Problem, as_tensor, initial_weights, minibatches, noise_seed, run_engine

__all__ = [
    "FORMS",
    "MarginalMaskingEngine",
    "MaskingRun",
    "SampledMaskingEngine",
    "effective_noise",
    "fixed_point",
    "input_moments",
    "matched_eps",
    "max_error_per_mode",
    "mode_fixed_point",
    "noise_covariance",
    "per_mode_fixed_point",
    "per_mode_u",
    "stability_bound",
    "train",
]

#: the two masking forms: x̃ = m ⊙ x and x̃ = m ⊙ x / q
FORMS = ("unscaled", "inverted")


def _check(q: float, form: str) -> tuple[float, float]:
    """(κ, ρ) of a masking form, after checking q and the form name."""
    if form not in FORMS:
        raise ValueError(f"masking form must be one of {FORMS}, got {form!r}")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"keep probability q must be in (0, 1], got {q}")
    return (q if form == "unscaled" else 1.0), (1.0 - q) / q


# --------------------------------------------------------------------------------------------
# theory
# --------------------------------------------------------------------------------------------


def input_moments(sigma, q: float, form: str = "inverted"):
    """(E[x̃xᵀ], E[x̃x̃ᵀ]) = (κΣ, κ²(Σ + ρ diag Σ)) for masks with keep probability q."""
    kappa, rho = _check(q, form)
    sigma = np.asarray(sigma, dtype=np.float64)
    return kappa * sigma, kappa**2 * (sigma + rho * np.diag(np.diag(sigma)))


def _reduced_rank(cross, corr, hidden: int | None) -> np.ndarray:
    """argmin over rank-``hidden`` W of −tr(W·cross) + ½tr(W·corr·Wᵀ): P_H·crossᵀ·corr⁺ (module
    docstring). corr's eigenvalues below 1e-10 of its largest count as zero (zero-variance features)."""
    full = cross.T @ np.linalg.pinv(corr, rcond=1e-10, hermitian=True)
    d = full.shape[0]
    if hidden is None or hidden >= d:
        return full
    if hidden < 1:
        raise ValueError(f"hidden must be a positive number of units, got {hidden}")
    _, vecs = np.linalg.eigh(full @ corr @ full.T)                 # ascending
    top = vecs[:, d - hidden:]
    return top @ (top.T @ full)


def fixed_point(sigma, q: float, form: str = "inverted", hidden: int | None = None) -> np.ndarray:
    """Minimiser of the masked loss without weight decay: W* = E[xx̃ᵀ] E[x̃x̃ᵀ]⁺, of rank ``hidden``.

    H ≥ d (``hidden`` None or ≥ d): unscaled Σ(qΣ + (1−q) diag Σ)⁺, inverted
    Σ(Σ + ((1−q)/q) diag Σ)⁺; a bottleneck keeps its top-H part (module docstring). Where a
    feature has zero variance, W* is 0 along it (GD leaves that column at its start; no u_i of a
    mode with λ_i > 0 depends on it).
    """
    cross, corr = input_moments(sigma, q, form)
    return _reduced_rank(cross, corr, hidden)


def mode_fixed_point(lam, V, q: float, form: str = "inverted", hidden: int | None = None) -> np.ndarray:
    """u_i* = v_iᵀ W* v_i of the exact (coupled) fixed point :func:`fixed_point`, for every mode.

    ``lam`` (d,), ``V`` (d×d): Σ's whole spectrum (diag Σ = Σ_k V_ik² λ_k follows from it);
    computed in the eigenbasis, where Σ is Λ and diag Σ is VᵀDV. Unlike
    :func:`per_mode_fixed_point` it keeps the coupling of the modes through VᵀDV's off-diagonal.
    """
    lam, V = np.asarray(lam, dtype=np.float64), np.asarray(V, dtype=np.float64)
    kappa, _ = _check(q, form)
    noise = noise_covariance(V, V**2 @ lam, q)
    W = _reduced_rank(kappa * np.diag(lam), kappa**2 * (np.diag(lam) + noise), hidden)
    return np.diag(W).copy()


def effective_noise(V, diag_sigma, q: float) -> np.ndarray:
    """ε_i^eff = ((1−q)/q) v_iᵀ diag(Σ) v_i for every eigenvector v_i (the columns of V).

    The per-mode Gaussian noise variance of the inverted form; the unscaled form uses the same
    values after its rescaling (see the module docstring).
    """
    _, rho = _check(q, "inverted")
    V = np.asarray(V, dtype=np.float64)
    return rho * np.einsum("ji,j,ji->i", V, np.asarray(diag_sigma, dtype=np.float64), V)


def matched_eps(diag_sigma, q: float) -> float:
    """One Gaussian noise variance for the whole input: ((1−q)/q) mean(diag Σ).

    The isotropic noise with the same total variance as inverted-dropout noise; it equals every
    ε_i^eff when diag Σ ∝ I.
    """
    _, rho = _check(q, "inverted")
    return float(rho * np.mean(np.asarray(diag_sigma, dtype=np.float64)))


def per_mode_fixed_point(lam, eps_eff, q: float, form: str = "inverted"):
    """u_i* of the per-mode approximation: λ/(λ+ε^eff) (inverted), λ/(q(λ+ε^eff)) (unscaled)."""
    kappa, _ = _check(q, form)
    lam, eps_eff = np.broadcast_arrays(np.asarray(lam, float), np.asarray(eps_eff, float))
    den = kappa * (lam + eps_eff)
    return np.divide(lam, den, out=np.zeros(lam.shape), where=den > 0)   # a dead direction: 0


def per_mode_u(steps: int, lam, eps_eff, q: float, form: str = "inverted", gamma: float = 0.0,
               lr: float = 1.0, x0=1e-6, y0=0.0) -> np.ndarray:
    """Per-mode approximation of masked full-batch GD: one decoupled DAE per mode.

    Each mode follows the exact per-mode map :func:`daedyn.theory.vector_mode_map` with noise
    ε_i^eff (cross-mode coupling through the off-diagonal D̃ neglected) from its state
    (x₀, y₀) = (‖a+b‖²/4, ‖a−b‖²/4) of a = W₁v_i, b = W₂ᵀv_i
    (:func:`daedyn.theory.mode_state_from_weights`). For the unscaled form the map runs at rate
    qη, decay γ/q, from (qx₀, qy₀), and u is divided by q. Shape broadcast(args) + (steps+1,).
    """
    kappa, _ = _check(q, form)
    u = theory.vector_mode_map(steps, lam, eps_eff, gamma / kappa, lr * kappa,
                               kappa * np.asarray(x0, float), kappa * np.asarray(y0, float))
    return u / kappa


def max_error_per_mode(u, u_ref, dim: str = "epoch"):
    """max over ``dim`` of |u − u_ref| per mode (xarray in, xarray out; numpy: the last axis)."""
    if isinstance(u, xr.DataArray):
        return np.abs(u - u_ref).max(dim)
    return np.abs(np.asarray(u) - np.asarray(u_ref)).max(axis=-1)


# --------------------------------------------------------------------------------------------
# engines
# --------------------------------------------------------------------------------------------

_META = {
    "loss": ("marginalised loss: 1/2 tr S - k tr(W S) + k^2/2 tr[W (S + N) W^T] + decay (S = Sigma, k = q "
             "unscaled or 1 inverted, N the noise covariance, r diag S for masks, r = (1-q)/q)", "1"),
    "loss_noise": ("noise term of the loss: loss - loss_reconstruction - loss_decay (inverted "
                   "masks: r/2 tr(W diag S W^T))", "1"),
}


def noise_covariance(V, diag_sigma, q: float, noise: str = "masking") -> np.ndarray:
    """The input-noise covariance in Σ's eigenbasis, per unit κ² (d×d, float64).

    masking: ρVᵀDV (D = diag Σ, ρ = (1−q)/q), full; per_mode: its diagonal diag(ε_i^eff);
    gaussian: the matched isotropic variance ((1−q)/q) mean(diag Σ) times I.
    """
    _, rho = _check(q, "inverted")
    V, diag_sigma = np.asarray(V, dtype=np.float64), np.asarray(diag_sigma, dtype=np.float64)
    if noise == "masking":
        return rho * V.T @ (diag_sigma[:, None] * V)
    if noise == "per_mode":
        return np.diag(effective_noise(V, diag_sigma, q))
    if noise == "gaussian":
        return np.eye(diag_sigma.size) * matched_eps(diag_sigma, q)
    raise ValueError(f"noise must be 'masking', 'per_mode' or 'gaussian', got {noise!r}")


def stability_bound(lam, noise_cov, q: float, form: str = "inverted", gamma: float = 0.0) -> float:
    """The learning-rate limit the guard uses: η_max = 1/(κμ₁ + γ), μ₁ the top eigenvalue of Λ + N.

    N = :func:`noise_covariance` (so Λ + N is the eigenbasis form of Σ + ((1−q)/q) diag Σ for
    masks), κ = 1 (inverted) or q (unscaled). The limit of the masked network has no closed form
    (the modes couple). This is the Gaussian DAE's exact limit 1/λ₁ (:func:`daedyn.theory.stability_limit`)
    with λ₁ replaced by μ₁ ≥ λ₁, a conservative choice: 1/(κλ₁) itself lies up to ~20 % above the
    limit of masked networks, whereas this bound stayed below it (0.2–1× of it) at every balanced
    minimum checked against the Hessian in the tests; for MNIST-like data, where λ₁ dominates
    diag Σ, μ₁ ≈ λ₁.
    """
    kappa, _ = _check(q, form)
    mu1 = float(np.linalg.eigvalsh(np.diag(np.asarray(lam, dtype=np.float64)) + noise_cov)[-1])
    return 1.0 / (kappa * mu1 + gamma)


def _spectrum(lam: np.ndarray, V, diag_sigma, kw):
    """(V, diag Σ) as checked float64 arrays, and (λ, V) as tensors of the run's dtype and device."""
    d = lam.size
    V_np, diag_np = np.asarray(V, dtype=np.float64), np.asarray(diag_sigma, dtype=np.float64).ravel()
    if V_np.shape != (d, d) or diag_np.shape != (d,):
        raise ValueError(f"need V ({d}, {d}) and diag_sigma ({d},), got {V_np.shape} and {diag_np.shape}")
    V_t = as_tensor(V_np, **kw)
    _check_orthogonal(V_t)
    return V_np, diag_np, as_tensor(lam, **kw), V_t


def _per_mode(config: MaskingConfig, V_np, diag_np, W1_0, W2_0, V) -> dict:
    """A run's per-mode facts for its trajectory: ε_i^eff and the initial state (x₀, y₀) of each mode."""
    with torch.no_grad():
        a, b = (W1_0 @ V).double().cpu().numpy(), (W2_0.T @ V).double().cpu().numpy()
    one = {"units": "1"}
    return {
        "eps_eff": (effective_noise(V_np, diag_np, config.q), {
            "long_name": "per-mode noise variance: of the approximation, ((1-q)/q) v_i^T diag(Sigma) v_i",
            "units": "1"}),
        "x0": (np.sum((a + b) ** 2, 0) / 4.0, {"long_name": "initial state x0: |W1 v_i + W2^T v_i|^2 / 4", **one}),
        "y0": (np.sum((a - b) ** 2, 0) / 4.0, {"long_name": "initial state y0: |W1 v_i - W2^T v_i|^2 / 4", **one}),
    }


def _note(c: MaskingConfig, eta_max: float) -> str:
    """A run's learning rate against its stability bound, for a divergence message."""
    return (f"learning rate eta={c.lr:g}; the stability estimate for this spectrum and noise is "
            f"eta_max={eta_max:.6g} (q={c.q:g}, {c.form}, noise {c.noise}, gamma={c.gamma:g})")


class _MaskedModel(Engine):
    """What both one-run masking engines share beyond :class:`daedyn.training.Engine`: the noise
    covariance, initial weights, stability bound, tracker and the records."""

    ENGINE = ""

    def __init__(self, config: MaskingConfig, lam, V, diag_sigma, W1, W2):
        if config.engine != self.ENGINE:
            raise ValueError(f"{config.label}: engine is {config.engine!r}, not {self.ENGINE!r}")
        self.kappa, self.rho = _check(config.q, config.form)
        super().__init__(config, np.asarray(lam, dtype=np.float64).ravel(), W1 is not None)
        d = self.lam.size
        kw = dict(dtype=self.dtype, device=self.device)
        V_np, diag_np, self.lam_t, self.V = _spectrum(self.lam, V, diag_sigma, kw)
        noise = noise_covariance(V_np, diag_np, config.q, config.noise)
        self.R = as_tensor(np.diag(self.lam) + noise, **kw)                # Λ + N
        # a diagonal noise covariance makes A1R a column scaling (O(dH), as in ExactEngine)
        self.R_diag = None if config.noise == "masking" else torch.diagonal(self.R).clone()
        self.eps_matched = matched_eps(diag_np, config.q)
        self.W1_0, self.W2_0 = initial_weights(d, config.hidden, config.init_std, config.seed, W1, W2, **kw)
        self.guard(stability_bound(self.lam, noise, config.q, config.form, config.gamma))
        self.tracker = ProductTracker(self.lam_t, 0.0, config.gamma, config.hidden, self.records, 2, meta=_META,
                                      per_mode=_per_mode(config, V_np, diag_np, self.W1_0, self.W2_0, self.V))

    def _times_r(self, A1: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """A1 (Λ + N)."""
        if self.R_diag is None:
            return torch.mm(A1, self.R, out=out)
        return torch.mul(A1, self.R_diag, out=out)

    def _record(self, row: int, A1: torch.Tensor, B: torch.Tensor) -> float:
        """Records with the noise term loss − clean reconstruction − decay (module docstring)."""
        k = self.kappa
        P = B @ B.T
        q_r = self._times_r(A1) @ A1.T                                             # A1 (Λ+N) A1ᵀ
        q_lam = (A1 * self.lam_t) @ A1.T
        lam_u = torch.dot(self.lam_t, (A1 * B).sum(0))                             # tr(WΣ)
        penalty = (1.0 - k) * lam_u + 0.5 * (k * k * (P * q_r).sum() - (P * q_lam).sum())
        return self.tracker.record(row, A1, B, penalty=penalty)

    def divergence_note(self) -> str:
        return _note(self.config, self.eta_max)

    def derived(self) -> dict:
        return {**super().derived(), "eta_max": self.eta_max, "eps_matched": self.eps_matched}


class MarginalMaskingEngine(_MaskedModel):
    """Full-batch GD on the noise-averaged loss, exactly, in Σ's eigenbasis (module docstring).

    ``config`` (:class:`daedyn.runconfig.MaskingConfig`, engine "marginal"); ``lam`` (d,), ``V``
    (d×d): Σ's spectrum; ``diag_sigma`` (d,): Σ's diagonal in the data's basis. Initial weights:
    :func:`daedyn.training.init_weights` (``seed``, ``init_std``) unless W1 (H×d), W2 (d×H) are
    given. ``noise`` "masking" costs O(d²H + dH²) per step; "per_mode" (VᵀDV replaced by its
    diagonal: Gaussian noise of covariance V diag(ε_i^eff) Vᵀ) and "gaussian" (one matched
    variance) cost O(dH²). Comparing the per-mode network with the masked one from the same
    start isolates what the off-diagonal of VᵀDV does.
    """

    ENGINE = "marginal"

    def __init__(self, config: MaskingConfig, lam, V, diag_sigma, W1=None, W2=None):
        super().__init__(config, lam, V, diag_sigma, W1, W2)
        eta = float(config.lr)
        with torch.no_grad():
            self.A1 = (self.W1_0 @ self.V).contiguous()
            self.B = (self.W2_0.T @ self.V).contiguous()
            self.eta_k_lam = self.lam_t * (eta * self.kappa)
            self.eta_k2 = eta * self.kappa**2
            self.c = 1.0 - eta * config.gamma
            self.A1R = torch.empty_like(self.A1)
            self.N1, self.N2 = torch.empty_like(self.A1), torch.empty_like(self.B)
            self.P = torch.empty(config.hidden, config.hidden, dtype=self.dtype, device=self.device)
            self.Q = torch.empty_like(self.P)

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, "B": self.B}

    def record(self, row: int, epoch: int) -> float:
        with torch.no_grad():
            return self._record(row, self.A1, self.B)

    def step(self, epoch: int) -> None:
        del epoch  # full batch: every epoch is the same deterministic step
        with torch.no_grad():
            A1, B, A1R, P, Q, c = self.A1, self.B, self.A1R, self.P, self.Q, self.c
            self._times_r(A1, out=A1R)                 # A1 R̃: the only O(d²H) product (masks)
            torch.mm(B, B.T, out=P)
            torch.mm(A1R, A1.T, out=Q)
            torch.mul(B, self.eta_k_lam, out=self.N1).add_(A1, alpha=c).addmm_(P, A1R, alpha=-self.eta_k2)
            torch.mul(A1, self.eta_k_lam, out=self.N2).add_(B, alpha=c).addmm_(Q, B, alpha=-self.eta_k2)
            A1.copy_(self.N1)                          # in place: state() tensors stay the live state
            B.copy_(self.N2)

    def final_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current (W1, W2) in the data's basis."""
        with torch.no_grad():
            return self.A1 @ self.V.T, (self.B @ self.V.T).T


class SampledMaskingEngine(_MaskedModel):
    """A real masked linear DAE: (minibatch) GD with fresh Bernoulli masks every step.

    For a batch x_1…x_B and masks m_b (entries 1 with probability q) drawn anew each step,
    x̃_b = m_b ⊙ x_b (unscaled) or m_b ⊙ x_b / q (inverted), the step follows the gradient of
    (1/B)Σ_b ½‖x_b − W₂W₁x̃_b‖² + γ/2(‖W₁‖² + ‖W₂‖²): with H = X̃W₁ᵀ and E = X − HW₂ᵀ,
    ∇W₂ = −EᵀH/B + γW₂ and ∇W₁ = −(EW₂)ᵀX̃/B + γW₁, an unbiased estimate of the gradient of
    the marginalised loss. Epochs, minibatches (``batch_size``) and shuffling follow
    :class:`daedyn.linear.SampledEngine`; masks and order come from a ``torch.Generator`` on the
    device seeded with :func:`daedyn.training.noise_seed` (``seed``). Σ's spectrum and diagonal
    (for the records) are computed from X in float64 unless given. Costs O(N·d·H) per epoch.
    """

    ENGINE = "sampled"

    def __init__(self, config: MaskingConfig, X, lam=None, V=None, diag_sigma=None, W1=None, W2=None):
        x64 = np.asarray(X.detach().cpu().numpy() if torch.is_tensor(X) else X, dtype=np.float64)
        if (lam is None) != (V is None):
            raise ValueError("give both lam and V, or neither")
        if lam is None:
            from daedyn import spectrum  # not in the workflow, whose jobs pass their spectrum file's

            lam, V = spectrum.eigh_descending(spectrum.second_moment(x64)[0])
        if diag_sigma is None:
            diag_sigma = np.mean(x64**2, axis=0)
        super().__init__(config, lam, V, diag_sigma, W1, W2)
        self.use_data(x64, config.batch_size)
        self.shuffle = config.shuffle and self.batch < self.X.shape[0]
        self.W1, self.W2 = self.W1_0.clone(), self.W2_0.clone()
        self.gen = torch.Generator(self.device).manual_seed(noise_seed(config.seed))
        self.uniform = torch.empty(self.batch, self.lam.size, dtype=self.dtype, device=self.device)
        self.g1, self.g2 = torch.empty_like(self.W1), torch.empty_like(self.W2)
        self.scale = 1.0 / config.q if config.form == "inverted" else 1.0

    def generators(self) -> dict[str, torch.Generator]:
        return {"noise": self.gen}

    def record(self, row: int, epoch: int) -> float:
        with torch.no_grad():
            return self._record(row, self.W1 @ self.V, self.W2.T @ self.V)

    def step(self, epoch: int) -> None:
        del epoch
        X, W1, W2, g1, g2 = self.X, self.W1, self.W2, self.g1, self.g2
        eta, gamma, q = float(self.config.lr), self.config.gamma, self.config.q
        with torch.no_grad():
            for idx in minibatches(X.shape[0], self.batch, [self.gen] if self.shuffle else (), self.device):
                xb = X[idx]
                keep = self.uniform[: xb.shape[0]].uniform_(generator=self.gen) < q
                xt = (xb * keep).mul_(self.scale)                          # x̃ = m ⊙ x (/ q)
                corrupted_batch_step(W1, W2, g1, g2, xb, xt, eta, gamma)


class MaskingRun(Run):
    """Result of a masking run (:class:`daedyn.linear.Run`'s layout)."""

    MODEL = "x_hat = W2 W1 x_tilde, x_tilde = m * x (unscaled) or m * x / q (inverted)"
    TITLE = "daedyn masking-noise linear run"
    SUMMARY = ("Trajectory of a two-layer linear DAE with Bernoulli masking noise (or its Gaussian comparisons) "
               "trained by gradient descent: mode strengths, singular values, loss terms, weight norms, the "
               "per-mode noise of the approximation; initial and final weights.")


def train(config: MaskingConfig, problem: Problem, *, diag_sigma=None, W1=None, W2=None,
          checkpoint: Checkpoint | None = None, threads: int | None = None, progress: bool = False) -> MaskingRun:
    """Train a masked linear DAE on the loop driver with the engine ``config.engine`` on ``problem``.

    The marginal engine uses Σ's spectrum and ``diag_sigma`` (default: computed from ``problem.X``,
    else from the spectrum as Σ_k V_ik² λ_k); the sampled engine needs ``problem.X``. ``W1``, ``W2``:
    optional initial weights. Returns a :class:`MaskingRun`.
    """
    X, lam, V = problem.X, problem.lam, problem.V
    _check_rows(config, X)
    if config.engine == "sampled":
        engine = SampledMaskingEngine(config, problem.data(f"{config.label}: engine 'sampled'"), lam, V, diag_sigma,
                                      W1, W2)
    else:
        engine = MarginalMaskingEngine(config, lam, V, _diag_sigma(problem) if diag_sigma is None else diag_sigma,
                                       W1, W2)
    return run_engine(engine, MaskingRun, checkpoint=checkpoint, threads=threads, progress=progress)


def _diag_sigma(problem: Problem) -> np.ndarray:
    """Σ's diagonal: from the data when the problem has them, else from the spectrum as Σ_k V_ik² λ_k."""
    if problem.X is not None:
        return np.mean(np.asarray(problem.X, dtype=np.float64) ** 2, axis=0)
    return np.asarray(problem.V, dtype=np.float64) ** 2 @ np.asarray(problem.lam, dtype=np.float64)


def _check_rows(config: MaskingConfig, X) -> None:
    if config.n_samples is not None and X is not None and config.n_samples != np.shape(X)[0]:
        raise ValueError(f"{config.label}: n_samples is {config.n_samples} but the data have {np.shape(X)[0]} rows")


