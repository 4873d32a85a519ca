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

Fixed point (H ≥ d, :func:`fixed_point`): W* = Σ(qΣ + (1−q)D)⁻¹ (unscaled) and
W* = Σ(Σ + ρD)⁻¹ (inverted), the marginalised-denoising closed form without a bias.

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
A₁ = W₁V and B = W₂ᵀV (both H×d), Λ and R̃ = Λ + ρD̃ (d×d, full):

    A₁ ← (1−ηγ)A₁ + ηκ BΛ − ηκ² (BBᵀ) A₁R̃,
    B  ← (1−ηγ)B  + ηκ A₁Λ − ηκ² (A₁R̃A₁ᵀ) B,

one O(d²H) product (A₁R̃) and four O(dH²) products per step. :class:`SampledMaskingEngine`
is a real masked DAE: fresh masks for every (mini)batch and step, the gradient of the batch
mean of ½‖x − W₂W₁x̃‖² (+ weight decay). Both fit the training driver's Engine protocol and
record through :class:`daedyn.tracking.ProductTracker` the two-layer records, the losses
being the marginalised ℒ above (``loss_reconstruction`` is the clean ½tr[(I−W)Σ(I−W)ᵀ] and
``loss_noise`` the rest of ℒ without decay).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from daedyn import theory
from daedyn.claims import _grade, _row
from daedyn.linear import (
    _check_orthogonal,
    _resolve_dtype,
    init_weights,
    noise_seed,
    resolve_device,
    second_moment_spectrum,
)
from daedyn.tracking import ProductTracker
from daedyn.trajectories import run_dims, run_index, run_param

__all__ = [
    "FORMS",
    "MarginalMaskingEngine",
    "SampledMaskingEngine",
    "add_theory",
    "claims",
    "effective_noise",
    "fixed_point",
    "input_moments",
    "matched_eps",
    "max_error_per_mode",
    "metrics",
    "per_mode_fixed_point",
    "per_mode_u",
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


def fixed_point(sigma, q: float, form: str = "inverted") -> np.ndarray:
    """Minimiser of the masked loss for H ≥ d: W* = E[xx̃ᵀ] E[x̃x̃ᵀ]⁻¹.

    Unscaled: Σ(qΣ + (1−q) diag Σ)⁻¹; inverted: Σ(Σ + ((1−q)/q) diag Σ)⁻¹. Needs the
    noisy-input correlation to be invertible (every feature with a nonzero second moment when
    q < 1).
    """
    cross, corr = input_moments(sigma, q, form)
    return np.linalg.solve(corr, cross).T       # W* = cross · corr⁻¹, both symmetric


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
    "loss": ("marginalised masked loss 1/2 tr S - k tr(W S) + k^2/2 tr[W (S + r diag S) W^T] "
             "+ decay (S = Sigma, k = q unscaled or 1 inverted, r = (1-q)/q)", "(data units)^2"),
    "loss_noise": ("masking part of the marginalised loss: loss - loss_reconstruction - "
                   "loss_decay (inverted: r/2 tr(W diag S W^T))", "(data units)^2"),
}


def _initial(d, hidden, init_std, seed, W1, W2, dtype, device):
    if (W1 is None) != (W2 is None):
        raise ValueError("give both W1 and W2, or neither")
    if W1 is None:
        W1, W2 = init_weights(d, hidden, init_std=init_std, seed=seed)
    W1 = torch.as_tensor(np.asarray(W1), dtype=dtype, device=device)
    W2 = torch.as_tensor(np.asarray(W2), dtype=dtype, device=device)
    if W1.shape != (hidden, d) or W2.shape != (d, hidden):
        raise ValueError(f"W1 must be ({hidden}, {d}) and W2 ({d}, {hidden}); "
                         f"got {tuple(W1.shape)} and {tuple(W2.shape)}")
    return W1.contiguous(), W2.contiguous()


class _MaskedModel:
    """What both masking engines share: the spectrum, D̃ = VᵀDV, the tracker and the records."""

    def _setup(self, lam, V, diag_sigma, *, hidden, q, form, lr, gamma, n_log, dtype, device,
               engine, **attrs):
        self.kappa, self.rho = _check(float(q), form)
        if hidden < 1 or not lr > 0 or gamma < 0 or n_log < 1:
            raise ValueError("need hidden >= 1, lr > 0, gamma >= 0 and n_log >= 1")
        self.device, self.dtype = resolve_device(device), _resolve_dtype(dtype)
        self.q, self.form, self.lr, self.gamma = float(q), form, float(lr), float(gamma)
        self.lam_np = np.asarray(lam, dtype=np.float64).ravel()
        d = self.lam_np.size
        diag_np = np.asarray(diag_sigma, dtype=np.float64).ravel()
        V_np = np.asarray(V, dtype=np.float64)
        if V_np.shape != (d, d) or diag_np.shape != (d,):
            raise ValueError(f"need V ({d}, {d}) and diag_sigma ({d},), got {V_np.shape} and "
                             f"{diag_np.shape}")
        kw = dict(dtype=self.dtype, device=self.device)
        self.lam = torch.as_tensor(self.lam_np, **kw)
        self.V = torch.as_tensor(V_np, **kw)
        _check_orthogonal(self.V)
        self.Dt = torch.as_tensor(V_np.T @ (diag_np[:, None] * V_np), **kw)   # VᵀDV
        self.eps_eff = effective_noise(V_np, diag_np, self.q)
        limit = 1.0 / (self.kappa * self.lam_np.max())
        self.tracker = ProductTracker(
            self.lam, 0.0, gamma, min(d, hidden), n_log, lr, 2, meta=_META,
            limit_note=(f"the per-mode estimate of the stability limit is eta_max ~ "
                        f"1/(k lambda_1) = {limit:.6g} (k = {self.kappa:g}; masking couples the "
                        "modes, so the exact limit can be somewhat lower)"))
        self.attrs = dict(engine=engine, hidden=int(hidden), lr=self.lr, q=self.q, form=form,
                          gamma=self.gamma, n_features=d, dtype=str(self.dtype).replace("torch.", ""),
                          device=str(self.device), stability_limit=limit, **attrs)

    def _penalty(self, A1, D, P, _G, Q_lam):
        """ℒ − clean reconstruction − decay, from the eigenbasis state (see the module doc)."""
        k, rho = self.kappa, self.rho
        lam_u = torch.dot(self.lam, (A1 * D).sum(0))                  # tr(WΣ)
        mask = rho * (P * ((A1 @ self.Dt) @ A1.T)).sum()              # ρ tr(W D Wᵀ)
        return (1.0 - k) * lam_u + 0.5 * (k * k - 1.0) * (P * Q_lam).sum() + 0.5 * k * k * mask

    def _record(self, row, epoch, A1, B) -> float:
        bal = torch.linalg.matrix_norm(A1 @ A1.T - B @ B.T)
        sq = [A1.square().sum(), B.square().sum()]
        return self.tracker.record_product(row, epoch, A1, B, self._penalty, sq, bal)

    def _initial_state(self, A1, B) -> None:
        """Per-mode (x₀, y₀) = (‖a+b‖²/4, ‖a−b‖²/4) of the initial a = W₁v_i, b = W₂ᵀv_i."""
        a, b = A1.double().cpu().numpy(), B.double().cpu().numpy()
        self.x0, self.y0 = np.sum((a + b) ** 2, 0) / 4.0, np.sum((a - b) ** 2, 0) / 4.0

    def dataset(self, epochs) -> xr.Dataset:
        """The recorded trajectory at ``epochs`` (one per recorded row) as an xr.Dataset.

        Besides the tracker's records it holds, per mode, ``eps_eff`` and the initial state
        ``x0``, ``y0`` that the per-mode approximation (:func:`per_mode_u`) starts from.
        """
        ds = self.tracker.dataset(np.asarray(epochs), self.lam_np, dict(self.attrs))
        ds["eps_eff"] = ("mode", self.eps_eff, {
            "long_name": "per-mode noise of the approximation ((1-q)/q) v_i^T diag(Sigma) v_i",
            "units": "(data units)^2"})
        ds["x0"] = ("mode", self.x0, {"long_name": "initial |W1 v_i + W2^T v_i|^2 / 4", "units": "1"})
        ds["y0"] = ("mode", self.y0, {"long_name": "initial |W1 v_i - W2^T v_i|^2 / 4", "units": "1"})
        return ds


class MarginalMaskingEngine(_MaskedModel):
    """Full-batch GD on the mask-averaged loss, exactly, in Σ's eigenbasis (module docstring).

    ``lam`` (d,), ``V`` (d×d): Σ's spectrum; ``diag_sigma`` (d,): Σ's diagonal in the data's
    basis; ``q``: keep probability; ``form``: "unscaled" or "inverted". Initial weights:
    :func:`daedyn.linear.init_weights` (``seed``, ``init_std``) unless W1 (H×d), W2 (d×H) are
    given. Costs O(d²H + dH²) per step (O(dH²) with ``per_mode``).

    ``per_mode=True`` trains the per-mode approximation itself: the same network and start with
    VᵀDV replaced by its diagonal, i.e. Gaussian noise of covariance V diag(ε_i^eff) Vᵀ
    (inverted form). Its modes couple only as a Gaussian DAE's do, so comparing it with the
    masked run isolates what the off-diagonal of VᵀDV does.
    """

    def __init__(self, lam, V, diag_sigma, *, hidden: int, q: float, lr: float, n_log: int,
                 form: str = "inverted", gamma: float = 0.0, init_std: float = 1e-4, seed: int = 0,
                 W1=None, W2=None, per_mode: bool = False, dtype="float32", device="auto"):
        self._setup(lam, V, diag_sigma, hidden=hidden, q=q, form=form, lr=lr, gamma=gamma,
                    n_log=n_log, dtype=dtype, device=device, engine="masking_marginal",
                    init_std=float(init_std), seed=int(seed),
                    init="given" if W1 is not None else "random", per_mode=int(bool(per_mode)))
        if per_mode:
            self.Dt = torch.diag(torch.diagonal(self.Dt))
        d = self.lam_np.size
        W1_0, W2_0 = _initial(d, hidden, init_std, seed, W1, W2, self.dtype, self.device)
        with torch.no_grad():
            self.A1 = (W1_0 @ self.V).contiguous()
            self.B = (W2_0.T @ self.V).contiguous()
            self._initial_state(self.A1, self.B)
            self.R = torch.diag(self.lam) + self.rho * self.Dt            # Λ + ρD̃
            # per-mode: R̃ is diagonal, so A1R̃ is a column scaling (O(dH), as in train_exact)
            self.R_diag = torch.diagonal(self.R).clone() if per_mode else None
            self.eta_k_lam = self.lam * (self.lr * self.kappa)
            self.eta_k2 = self.lr * self.kappa**2
            self.c = 1.0 - self.lr * self.gamma
            self.A1R = torch.empty_like(self.A1)
            self.N1, self.N2 = torch.empty_like(self.A1), torch.empty_like(self.B)
            self.P = torch.empty(hidden, hidden, dtype=self.dtype, device=self.device)
            self.Q = torch.empty_like(self.P)

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, "B": self.B}

    def generators(self) -> dict[str, torch.Generator]:
        return {}

    def record(self, row: int, epoch: int) -> float:
        with torch.no_grad():
            return self._record(row, epoch, self.A1, self.B)

    def step(self, epoch: int) -> None:
        del epoch  # full batch: every epoch is the same deterministic step
        with torch.no_grad():
            A1, B, A1R, P, Q, c = self.A1, self.B, self.A1R, self.P, self.Q, self.c
            if self.R_diag is None:
                torch.mm(A1, self.R, out=A1R)              # A1 R̃: the only O(d²H) product
            else:
                torch.mul(A1, self.R_diag, out=A1R)
            torch.mm(B, B.T, out=P)
            torch.mm(A1R, A1.T, out=Q)
            torch.mul(B, self.eta_k_lam, out=self.N1).add_(A1, alpha=c).addmm_(P, A1R, alpha=-self.eta_k2)
            torch.mul(A1, self.eta_k_lam, out=self.N2).add_(B, alpha=c).addmm_(Q, B, alpha=-self.eta_k2)
            A1.copy_(self.N1)
            B.copy_(self.N2)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (W1, W2) in the data's basis (numpy, the run's dtype)."""
        with torch.no_grad():
            return ((self.A1 @ self.V.T).cpu().numpy(), (self.B @ self.V.T).T.cpu().numpy())


class SampledMaskingEngine(_MaskedModel):
    """A real masked linear DAE: (minibatch) GD with fresh Bernoulli masks every step.

    For a batch x_1…x_B and masks m_b (entries 1 with probability q) drawn anew each step,
    x̃_b = m_b ⊙ x_b (unscaled) or m_b ⊙ x_b / q (inverted), the step follows the gradient of
    (1/B)Σ_b ½‖x_b − W₂W₁x̃_b‖² + γ/2(‖W₁‖² + ‖W₂‖²): with H = X̃W₁ᵀ and E = X − HW₂ᵀ,
    ∇W₂ = −EᵀH/B + γW₂ and ∇W₁ = −(EW₂)ᵀX̃/B + γW₁, an unbiased estimate of the gradient of
    the marginalised loss. Epochs, minibatches and shuffling follow
    :func:`daedyn.linear.train_sampled` (``batch_size=None``: full batch, one step per epoch);
    masks and order come from a ``torch.Generator`` on ``device`` seeded with
    :func:`daedyn.linear.noise_seed` (``seed``). Σ's spectrum and diagonal (for the records)
    are computed from X in float64 unless given. Costs O(N·d·H) per epoch.
    """

    def __init__(self, X, *, hidden: int, q: float, lr: float, n_log: int, form: str = "inverted",
                 gamma: float = 0.0, batch_size: int | None = None, shuffle: bool = True,
                 lam=None, V=None, diag_sigma=None, init_std: float = 1e-4, seed: int = 0,
                 W1=None, W2=None, dtype="float32", device="auto"):
        x64 = np.asarray(X.detach().cpu().numpy() if torch.is_tensor(X) else X, dtype=np.float64)
        if (lam is None) != (V is None):
            raise ValueError("give both lam and V, or neither")
        if lam is None:
            lam, V = second_moment_spectrum(x64)
        if diag_sigma is None:
            diag_sigma = np.mean(x64**2, axis=0)
        n, d = x64.shape
        B = n if batch_size is None else int(batch_size)
        if not 1 <= B <= n:
            raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")
        self._setup(lam, V, diag_sigma, hidden=hidden, q=q, form=form, lr=lr, gamma=gamma,
                    n_log=n_log, dtype=dtype, device=device, engine="masking_sampled",
                    init_std=float(init_std), seed=int(seed),
                    init="given" if W1 is not None else "random", n_samples=n, batch_size=B,
                    shuffle=int(bool(shuffle) and B < n), noise_seed=noise_seed(seed))
        self.X = torch.as_tensor(x64, dtype=self.dtype, device=self.device).contiguous()
        self.batch, self.shuffle = B, bool(shuffle) and B < n
        self.W1, self.W2 = (w.clone() for w in
                            _initial(d, hidden, init_std, seed, W1, W2, self.dtype, self.device))
        with torch.no_grad():
            self._initial_state(self.W1 @ self.V, self.W2.T @ self.V)
        self.gen = torch.Generator(self.device).manual_seed(noise_seed(seed))
        self.uniform = torch.empty(B, d, dtype=self.dtype, device=self.device)
        self.g1, self.g2 = torch.empty_like(self.W1), torch.empty_like(self.W2)
        self.scale = 1.0 / self.q if form == "inverted" else 1.0

    def state(self) -> dict[str, torch.Tensor]:
        return {"W1": self.W1, "W2": self.W2}

    def generators(self) -> dict[str, torch.Generator]:
        return {"noise": self.gen}

    def record(self, row: int, epoch: int) -> float:
        with torch.no_grad():
            return self._record(row, epoch, self.W1 @ self.V, self.W2.T @ self.V)

    def step(self, epoch: int) -> None:
        del epoch
        X, n, B, W1, W2, g1, g2 = self.X, self.X.shape[0], self.batch, self.W1, self.W2, self.g1, self.g2
        eta, gamma = self.lr, self.gamma
        with torch.no_grad():
            order = torch.randperm(n, generator=self.gen, device=self.device) if self.shuffle else None
            for start in range(0, n, B):
                stop = min(start + B, n)
                xb = X[start:stop] if order is None else X[order[start:stop]]
                keep = self.uniform[: stop - start].uniform_(generator=self.gen) < self.q
                xt = (xb * keep).mul_(self.scale)                          # x̃ = m ⊙ x (/ q)
                h = xt @ W1.T                                              # H = X̃ W1ᵀ
                e = torch.addmm(xb, h, W2.T, alpha=-1.0)                  # E = X − H W2ᵀ
                inv_b = 1.0 / (stop - start)
                torch.mm((e @ W2).T, xt, out=g1).mul_(-inv_b)             # −(E W2)ᵀ X̃ / B
                torch.mm(e.T, h, out=g2).mul_(-inv_b)                     # −Eᵀ H / B
                if gamma:
                    g1.add_(W1, alpha=gamma)
                    g2.add_(W2, alpha=gamma)
                W1.add_(g1, alpha=-eta)
                W2.add_(g2, alpha=-eta)

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (W1, W2) (numpy, the run's dtype)."""
        return self.W1.cpu().numpy().copy(), self.W2.cpu().numpy().copy()


# --------------------------------------------------------------------------------------------
# experiment helpers: theory, metrics and claims on trajectory datasets (xarray in, xarray out)
# --------------------------------------------------------------------------------------------
#
# They take a dataset (layout: :mod:`daedyn.trajectories`) holding the masked network's ``u``,
# the coordinate ``lam``, the per-mode ``eps_eff``, ``x0`` and ``y0`` that the engines record,
# and the run parameters ``q``, ``form``, ``lr`` and ``gamma``. Optional references to compare
# with, each with the dims of ``u``: ``u_per_mode``, the same network trained with per-mode
# noise ε_i^eff (``MarginalMaskingEngine(per_mode=True)``), and ``u_gauss``, a Gaussian DAE
# with one matched variance (run parameter ``eps_matched``).


def add_theory(ds: xr.Dataset) -> xr.Dataset:
    """Add ``u_approx`` (the per-mode approximation :func:`per_mode_u` at the recorded epochs)
    and ``u_star_approx`` (its fixed points :func:`per_mode_fixed_point`)."""
    epochs = ds["epoch"].values
    if epochs.size == 0 or epochs[0] != 0 or np.any(np.diff(epochs) <= 0):
        raise ValueError("the trajectory must be recorded at increasing epochs starting at 0")
    extra = run_dims(ds)
    dims = (*extra, "mode", "epoch")
    lam = ds["lam"].values
    approx = np.empty(tuple(ds.sizes[d] for d in dims))
    star = np.empty(approx.shape[:-1])
    per_mode = {k: ds[k].broadcast_like(ds["u"].isel(epoch=0)).transpose(*extra, "mode").values
                for k in ("eps_eff", "x0", "y0")}
    for idx in run_index(ds):
        pos = tuple(idx[d] for d in extra)
        q, lr, gamma = (run_param(ds, k, idx) for k in ("q", "lr", "gamma"))
        form = run_param(ds, "form", idx, kind=str)
        eps, x0, y0 = (per_mode[k][pos] for k in ("eps_eff", "x0", "y0"))
        approx[pos] = per_mode_u(int(epochs[-1]), lam, eps, q, form, gamma, lr, x0, y0)[:, epochs]
        star[pos] = per_mode_fixed_point(lam, eps, q, form)
    out = ds.copy()
    out["u_approx"] = xr.DataArray(approx, dims=dims, attrs={
        "long_name": "per-mode approximation: one decoupled DAE per mode with noise eps_eff",
        "units": "1"}).transpose(*ds["u"].dims)
    out["u_star_approx"] = (dims[:-1], star, {
        "long_name": "fixed point of the per-mode approximation", "units": "1"})
    return out


def metrics(ds: xr.Dataset) -> xr.Dataset:
    """Per run and mode: how far the per-mode approximation (and ``u_gauss``) lie from training.

    ``max_err_approx`` = max over epochs |u − u_approx| (:func:`max_error_per_mode`),
    ``final_err_approx`` the same at the last epoch, and likewise ``max_err_per_mode`` /
    ``max_err_gauss`` (and their final errors) when ``ds`` holds ``u_per_mode`` / ``u_gauss``.
    ``ds`` must hold the variables of :func:`add_theory`.
    """
    extra = run_dims(ds)
    dims = (*extra, "mode")
    u = ds["u"].transpose(*dims, "epoch")
    res = xr.Dataset(coords={**{d: ds[d] for d in extra if d in ds.coords}, "mode": ds["mode"].values,
                             "lam": ("mode", ds["lam"].values)})
    res["u_final"] = u.isel(epoch=-1, drop=True)
    res["u_star_approx"] = ds["u_star_approx"].transpose(*dims)
    res["eps_eff"] = ds["eps_eff"].broadcast_like(res["u_final"]).transpose(*dims)
    refs = [(name, f"u_{name}") for name in ("approx", "per_mode", "gauss") if f"u_{name}" in ds]
    for name, var in refs:
        ref = ds[var].transpose(*dims, "epoch")
        res[f"max_err_{name}"] = max_error_per_mode(u, ref).transpose(*dims)
        res[f"final_err_{name}"] = np.abs(u - ref).isel(epoch=-1, drop=True)
    for k in ("q", "eps_matched"):
        if k in ds.variables or k in ds.attrs:
            res[k] = (tuple(extra), np.reshape([run_param(ds, k, idx) for idx in run_index(ds)],
                                               tuple(ds.sizes[d] for d in extra)))
    for name in res.data_vars:
        res[name].attrs = {"units": "1" if "eps" not in name else "(data units)^2"}
    return res.drop_vars([c for c in res.coords if c not in (*extra, "mode", "lam")])


def _per_q(m: xr.Dataset, var: str) -> list[tuple[float, float, int, float]]:
    """Per q: (q, largest error over runs and modes, the mode where it occurs, mean over modes)."""
    qs = m["q"]
    err = m[var].transpose(*qs.dims, "mode").values.reshape(qs.size, -1)
    out = []
    for q in np.unique(qs.values):
        e = err[qs.values.ravel() == q].max(axis=0)
        out.append((float(q), float(e.max()), int(m["mode"][int(np.argmax(e))]), float(e.mean())))
    return out


def claims(m: xr.Dataset, tol: float = 0.05) -> list[dict]:
    """Claims rows (:data:`daedyn.claims.COLUMNS`) from :func:`metrics` of a masking experiment.

    1. The per-mode theory (decoupled modes with ε_i^eff, from the actual start) lies within
       ``tol`` of masked training: max over epochs and modes of |u − u_approx|, for every q.
    2. (with ``max_err_per_mode``) Training with per-mode noise ε_i^eff from the same start lies
       within ``tol`` of masked training: the off-diagonal of VᵀDV matters little.
    3. (with ``max_err_gauss``) Per-mode noise describes masked training better than one matched
       Gaussian variance: a smaller mean over modes of the max error, for every q (the per-mode
       network if present, else the per-mode theory).
    ``m`` needs the run parameter ``q`` as a variable.
    """
    def worst_of(var):
        per = _per_q(m, var)
        return per, np.array([w for _, w, _, _ in per])

    def listed(per):
        return "; ".join(f"q={q:g}: {w:.3g} (mode {k})" for q, w, k, _ in per)

    approx, worst = worst_of("max_err_approx")
    rows = [_row(
        "masking: per-mode theory", "Per mode, masking noise acts like Gaussian noise of "
        "variance eps_i = ((1-q)/q) v_i^T diag(Sigma) v_i: the decoupled per-mode theory from the "
        "actual start follows masked training", f"max over epochs and modes of |u - u_approx|: "
        f"{listed(approx)}", f"<= {tol:g}",
        _grade(bool(np.all(worst <= tol)), bool(np.all(worst <= 2 * tol))),
        "the theory also neglects the cross-mode coupling of a random start (as in Fig. 5)")]
    reference = "approx"
    if "max_err_per_mode" in m:
        reference = "per_mode"
        net, worst = worst_of("max_err_per_mode")
        rows.append(_row(
            "masking: off-diagonal coupling", "Training with per-mode noise eps_i from the same "
            "start follows masked training: the off-diagonal of V^T diag(Sigma) V matters little",
            f"max over epochs and modes of |u - u_per_mode|: {listed(net)}", f"<= {tol:g}",
            _grade(bool(np.all(worst <= tol)), bool(np.all(worst <= 2 * tol))),
            "both networks from the same initial weights, same learning rate"))
    if "max_err_gauss" in m:
        ours, gauss = _per_q(m, f"max_err_{reference}"), _per_q(m, "max_err_gauss")
        better = np.array([a[3] < g[3] for a, g in zip(ours, gauss)])
        what = "per-mode network" if reference == "per_mode" else "per-mode theory"
        rows.append(_row(
            "masking: vs Gaussian noise", "Per-mode noise eps_i describes masked training better "
            "than a Gaussian DAE with one matched variance ((1-q)/q) mean(diag Sigma)",
            f"max error over epochs, mean over modes (largest), {what} vs Gaussian: " + "; ".join(
                f"q={a[0]:g}: {a[3]:.3g} ({a[1]:.3g}) vs {g[3]:.3g} ({g[1]:.3g})"
                for a, g in zip(ours, gauss)),
            "per-mode smaller for every q", _grade(bool(np.all(better)), bool(np.any(better))),
            "modes: those in the metrics; the Gaussian DAE starts from the same weights"))
    return rows
