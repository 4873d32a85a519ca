"""Nonlinear (ReLU/tanh) autoencoders, DAEs and WDAEs with sampled input noise (paper Fig. 6).

Model and loss
--------------
x̂ = W₂ φ(W₁x̃) with W₁ ∈ R^{H×d}, W₂ ∈ R^{d×H}, no biases, φ ∈ {relu, tanh, identity}. The
loss is torch's mean squared error over all N·d elements (as in the paper's ReLU code),

    L_net = 1/(N·d) Σ_n ‖x_n − W₂ φ(W₁ x̃_n)‖²,        x̃_n = x_n + σ z_n,  z_n ~ N(0, I_d),

with the clean input as target. ``noise_std`` σ is a noise **standard deviation** (the paper's
Fig. 6 uses σ = 2, i.e. variance σ² = 4; D10 in docs/science.md); the noise is drawn afresh for every
step. Weight decay is torch's: ``torch.optim.SGD(weight_decay=wd)`` adds wd·W to each gradient,
i.e. it minimises L_net + wd/2 (‖W₁‖²_F + ‖W₂‖²_F). Plain SGD (no momentum); full batch by
default (one step = one epoch, lr 0.9, 2000 epochs, wd 0.0045 at paper scale), or minibatches
of ``batch_size`` rows in a fresh random order each epoch.

Linear theory in the same units (E21)
-------------------------------------
The linear theory (:mod:`daedyn.theory`) uses the mean convention L_rec = 1/(2N) Σ_n ‖x_n − x̂_n‖²
with weight decay γ/2 (‖W₁‖² + ‖W₂‖²) and noise variance ε. Since L_net = (2/d)·L_rec, one SGD
step with learning rate η is

    W ← W − η(∇L_net + wd·W) = W − (2η/d)·[∇L_rec + (wd·d/2)·W],

i.e. gradient descent on the theory's loss with η_eff = 2η/d and γ_eff = wd·d/2 (the per-step
shrink factor 1 − η_eff·γ_eff = 1 − η·wd is unchanged), and ε = σ² (for a linear network the
noise-averaged loss is E1 with ε = σ², Bishop 1995). :func:`theory_params` computes this map;
MNIST (d = 784): η_eff = 2.30e-3, γ_eff = 1.76, ε = 4.

Measurement (the paper's "mapping")
-----------------------------------
With Σ = XᵀX/N = VΛVᵀ (uncentred, λ descending) and outputs x̂_n, the learned mapping along the
eigen-direction v_i is

    m_i = v_iᵀ Ĉ v_i / λ_i,     Ĉ = (1/N) Σ_n x̂_n x_nᵀ  (cross moment of outputs and clean inputs),

which for a linear network x̂ = Wx equals v_iᵀWΣv_i/λ_i = v_iᵀWv_i, the mode strength u_i. It is
computed as m = Σ_n (X̂V_k)_{n,i} (XV_k)_{n,i} / (N λ_i) with XV_k precomputed (never a d×d
matrix), in float64 from the run's X̂V_k. Every ``log_every`` epochs, at epoch 0 and at the last
epoch the trainer records, for the top ``k_modes`` modes and the state after that many epochs:

* ``mapping``: m_i with x̂ from the **clean** inputs;
* ``mapping_noisy``: m_i with x̂ from the **noisy** forward pass that the next step uses (the
  paper's measurement, D8; for the last epoch a pass with fresh noise and no update follows).
  With minibatches it is an extra full-batch pass whose noise comes from a separate measurement
  generator, so recording does not change the training trajectory. Equal to ``mapping`` when
  σ = 0;
* ``loss``: L_net of that noisy pass (without the weight-decay term); ``loss_clean``: L_net on
  the clean inputs (clean reconstruction MSE over N·d elements);
* ``norm_w1``, ``norm_w2``: Frobenius norms.

Initialisation and seeds
------------------------
W₁ then W₂ are drawn by :func:`daedyn.linear.init_weights` (CPU generator, float64, N(0,
init_std²), cast to the run's dtype), so a seed gives the same initial weights as the linear
engines. The training noise (and minibatch order) comes from a generator on the run's device
seeded with :func:`daedyn.linear.noise_seed` (``seed``), drawn exactly as
:func:`daedyn.linear.train_sampled` draws it; an identity-activation network therefore follows
the same trajectory as the linear sampled engine run at (η_eff, ε, γ_eff).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from daedyn.linear import (EXPLODE_FACTOR, Checkpoint, DivergenceError, Run, _fingerprint, _initial, _num_threads,
                           _Progress, _Records, _data_and_batch,
                           _resolve_dtype, _tensor, log_epochs, noise_seed, resolve_device,
                           second_moment_spectrum)

__all__ = ["ACTIVATIONS", "NoiseSource", "NonlinearRun", "forward", "half_times", "linear_theory",
           "measurement_seed", "objective", "theory_params", "train"]

#: φ of the hidden layer
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda z: z}

_META = {
    "mapping": ("learned mapping m_i = v_i^T C v_i / lam_i, C = (1/N) sum_n x_hat_n x_n^T, "
                "x_hat from CLEAN inputs", "1"),
    "mapping_noisy": ("learned mapping m_i as above, x_hat from the NOISY pre-update forward pass "
                      "(the paper's measurement)", "1"),
    "loss": ("training loss: MSE over N*d elements on the noisy pre-update forward pass "
             "(no weight-decay term)", "1"),
    "loss_clean": ("clean reconstruction error: MSE over N*d elements on clean inputs",
                   "1"),
    "norm_w1": ("Frobenius norm of W1", "1"),
    "norm_w2": ("Frobenius norm of W2", "1"),
}


def measurement_seed(seed: int) -> int:
    """Seed of the measurement-noise generator of minibatch runs (not the training stream)."""
    return int(np.random.SeedSequence([int(seed), 0xDAE, 1]).generate_state(1, dtype=np.uint32)[0])


class NoiseSource:
    """Gaussian input corruption x̃ = x + σz, z ~ N(0, I), σ = ``noise_std`` (a standard deviation).

    Draws from its own ``torch.Generator`` on ``device`` seeded with ``seed`` (the trainer uses
    :func:`daedyn.linear.noise_seed` of the run's seed), into a reused buffer of up to
    ``max_rows`` rows: :meth:`corrupt` returns a view that the next call overwrites. σ = 0
    returns x itself and draws nothing.
    """

    def __init__(self, noise_std: float, seed: int, max_rows: int, d: int, *, dtype=torch.float32,
                 device="cpu"):
        if noise_std < 0:
            raise ValueError("noise_std is a standard deviation and must be >= 0")
        self.std = float(noise_std)
        self.generator = torch.Generator(device).manual_seed(int(seed))
        self.noise = torch.empty(max_rows, d, dtype=dtype, device=device)
        self.out = torch.empty_like(self.noise)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        if not self.std:
            return x
        b = x.shape[0]
        nb = self.noise[:b]
        nb.normal_(0.0, self.std, generator=self.generator)   # same call as train_sampled
        return torch.add(x, nb, out=self.out[:b])

    def permutation(self, n: int) -> torch.Tensor:
        """A random order of n rows from the same stream (minibatch shuffling)."""
        return torch.randperm(n, generator=self.generator, device=self.noise.device)


def forward(W1, W2, x, activation: str = "relu"):
    """x̂ = φ(x W₁ᵀ) W₂ᵀ for a batch x (rows are samples)."""
    return ACTIVATIONS[activation](x @ W1.T) @ W2.T


def objective(W1, W2, x_noisy, x, *, activation: str = "relu", weight_decay: float = 0.0):
    """The objective one SGD step descends: MSE(x̂(x̃), x) over all elements + wd/2 (‖W₁‖² + ‖W₂‖²).

    Its gradient is ∇MSE + wd·W, the gradient torch's SGD(weight_decay=wd) uses.
    """
    mse = F.mse_loss(forward(W1, W2, x_noisy, activation), x)
    return mse + 0.5 * weight_decay * (W1.square().sum() + W2.square().sum())


def theory_params(lr: float, noise_std: float, weight_decay: float, d: int) -> dict:
    """Hyperparameters of the network in the linear theory's units (module docstring, E21).

    Returns {"lr": η_eff = 2η/d, "eps": ε = σ² (noise variance), "gamma": γ_eff = wd·d/2}.
    """
    return {"lr": 2.0 * float(lr) / d, "eps": float(noise_std) ** 2, "gamma": float(weight_decay) * d / 2.0}


# ---------------------------------------------------------------------------------------
# tracking


class _Tracker(_Records):
    """Preallocated records of the measurement (module docstring), in float64 on the device."""

    BUFFERS = ("mapping", "mapping_noisy", "scalars")

    def __init__(self, X, Vk, lam_k, n_log, activation):
        n = X.shape[0]
        self.X, self.Vk, self.activation = X, Vk, activation
        self.XV = X.double() @ Vk.double()                   # N×k, once
        self.scale = 1.0 / (n * lam_k.double())               # 1/(N λ_i)
        kw = dict(dtype=torch.float64, device=X.device)
        self.mapping = torch.empty(n_log, Vk.shape[1], **kw)
        self.mapping_noisy = torch.empty_like(self.mapping)
        self.scalars = torch.empty(n_log, 4, **kw)            # loss, loss_clean, norm_w1, norm_w2
        self.first_loss = None

    def _mapping(self, xhat, out):
        torch.sum((xhat @ self.Vk).double() * self.XV, dim=0, out=out)
        out.mul_(self.scale)

    @torch.no_grad()
    def record(self, row, epoch, W1, W2, xhat_noisy, loss_noisy, lr, lam):
        self._mapping(xhat_noisy, self.mapping_noisy[row])
        xhat = forward(W1, W2, self.X, self.activation)
        self._mapping(xhat, self.mapping[row])
        s = self.scalars[row]
        s[0], s[1] = loss_noisy, F.mse_loss(xhat, self.X)
        s[2], s[3] = torch.linalg.vector_norm(W1), torch.linalg.vector_norm(W2)
        loss = float(s[0])
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss) or loss > EXPLODE_FACTOR * max(abs(self.first_loss), 1e-30):
            raise DivergenceError(
                f"training diverged by epoch {epoch} (loss {loss:.4g}, initial {self.first_loss:.4g}); "
                f"in theory units eta_eff*lam_1 = {lr * float(lam[0]):.3g} (linear GD needs < 1)")

    def dataset(self, epochs, lam, attrs):
        mp = self.mapping.cpu().numpy()
        data = {"mapping": (("epoch", "mode"), mp),
                "mapping_noisy": (("epoch", "mode"), self.mapping_noisy.cpu().numpy())}
        sc = self.scalars.cpu().numpy()
        for j, name in enumerate(("loss", "loss_clean", "norm_w1", "norm_w2")):
            data[name] = (("epoch",), sc[:, j])
        ds = xr.Dataset(data, coords={
            "epoch": ("epoch", np.asarray(epochs, dtype=np.int64)),
            "mode": ("mode", np.arange(len(lam), dtype=np.int64)),
            "lam": ("mode", np.asarray(lam, dtype=np.float64)),
        }, attrs=attrs)
        for name, (long_name, units) in _META.items():
            ds[name].attrs.update(long_name=long_name, units=units)
        ds["epoch"].attrs.update(long_name="epoch (one full-batch SGD step; for minibatch runs one "
                                 "pass over the data); state after that many epochs", units="1")
        ds["mode"].attrs.update(long_name="eigenmode index of Sigma (descending eigenvalue)", units="1")
        ds["lam"].attrs.update(long_name="eigenvalue of Sigma = X^T X / N (uncentred)",
                               units="1")
        return ds


# ---------------------------------------------------------------------------------------
# trainer


@dataclass
class NonlinearRun(Run):
    """:class:`daedyn.linear.Run` of a nonlinear network (x̂ = W₂ φ(W₁x̃))."""

    def weights(self) -> xr.Dataset:
        ds = super().weights()
        act = self.trajectory.attrs.get("activation", "phi")
        for name, what in [("w1", "encoder W1"), ("w2", "decoder W2")]:
            ds[name].attrs["long_name"] = f"final {what} (column convention, x_hat = W2 {act}(W1 x))"
        return ds


def train(X, *, hidden: int, activation: str = "relu", lr: float, epochs: int, noise_std: float = 0.0,
          weight_decay: float = 0.0, batch_size: int | None = None, shuffle: bool = True,
          init_std: float = 1e-3, seed: int = 0, dtype="float32", device="auto", lam=None, V=None,
          k_modes: int = 4, log_every: int = 10, W1=None, W2=None, progress: bool = False,
          threads: int | None = None, checkpoint=None, checkpoint_every: int = 100) -> NonlinearRun:
    """Train x̂ = W₂φ(W₁x̃) by SGD on the mean MSE with sampled Gaussian input noise (Fig. 6).

    ``X`` (N×d) are the clean inputs (also the targets). ``noise_std`` is the noise standard
    deviation σ (variance σ²); ``weight_decay`` is torch SGD's wd (adds wd·W to the gradient).
    ``lam`` (≥ k,), ``V`` (d×≥k): Σ's eigenvalues (descending) and eigenvectors as columns, used
    for the measurement only; computed from X in float64 when not given. Only the top
    ``k_modes`` are used. ``batch_size`` None: full batch (one step per epoch); otherwise one
    epoch is a pass over minibatches in a fresh random order (when ``shuffle``). Initial weights:
    :func:`daedyn.linear.init_weights` (``seed``, ``init_std``) unless ``W1`` (H×d), ``W2`` (d×H)
    are given. See the module docstring for the recorded quantities. Raises
    :class:`daedyn.linear.DivergenceError` when the recorded loss is non-finite or explodes.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if hidden < 1 or epochs < 0 or not lr > 0 or noise_std < 0 or weight_decay < 0:
        raise ValueError("need hidden >= 1, epochs >= 0, lr > 0, noise_std >= 0, weight_decay >= 0")
    device, dt = resolve_device(device), _resolve_dtype(dtype)
    Xt, B = _data_and_batch(X, batch_size, dt, device)
    n, d = Xt.shape
    full = B == n
    k = int(k_modes)
    if not 1 <= k <= d:
        raise ValueError(f"k_modes must be in [1, {d}], got {k_modes}")
    if (lam is None) != (V is None):
        raise ValueError("give both lam and V, or neither")
    if lam is None:
        lam, V = second_moment_spectrum(X)
    lam_k = np.asarray(lam.cpu().numpy() if torch.is_tensor(lam) else lam, dtype=np.float64)[:k]
    V_k = _tensor(V, dt, device)[:, :k].contiguous()
    if lam_k.shape != (k,) or V_k.shape != (d, k) or not np.all(lam_k > 0):
        raise ValueError(f"need >= {k} positive eigenvalues and V with {d} rows and >= {k} columns")
    given = W1 is not None
    W1_0, W2_0 = _initial(d, hidden, init_std, seed, W1, W2, dt, device)
    epochs_log = log_epochs(epochs, log_every)
    tracker = _Tracker(Xt, V_k, torch.as_tensor(lam_k, device=device), len(epochs_log), activation)
    eff = theory_params(lr, noise_std, weight_decay, d)
    train_noise = NoiseSource(noise_std, noise_seed(seed), B, d, dtype=dt, device=device)
    measure_noise = train_noise if full else NoiseSource(noise_std, measurement_seed(seed), n, d,
                                                         dtype=dt, device=device)
    act = ACTIVATIONS[activation]
    ckpt = Checkpoint(checkpoint, checkpoint_every, _fingerprint(
        "nonlinear", lam_k, n=n, hidden=hidden, activation=activation, lr=lr, epochs=epochs,
        noise_std=noise_std, weight_decay=weight_decay, batch_size=B, shuffle=bool(shuffle), init_std=init_std,
        seed=seed, dtype=str(dt), device=str(device), log_every=log_every, given=W1 is not None))
    generators = {"train": train_noise.generator, "measure": measure_noise.generator}

    with _num_threads(threads):
        W1_ = W1_0.clone().requires_grad_(True)
        W2_ = W2_0.clone().requires_grad_(True)
        opt = torch.optim.SGD([W1_, W2_], lr=float(lr), weight_decay=float(weight_decay))  # stateless
        start, row = ckpt.resume(tracker, {"W1": W1_, "W2": W2_}, generators)
        bar = _Progress(epochs, progress, "nonlinear.train")
        for t in range(start, epochs + 1):
            if ckpt.due(t, start):
                ckpt.save(t, row, tracker, {"W1": W1_, "W2": W2_}, generators)
            last = t == epochs
            record = row < len(epochs_log) and t == epochs_log[row]
            step_pass = full and not last      # this step's pre-update noisy pass is the measured one
            if step_pass:
                xhat = act(train_noise.corrupt(Xt) @ W1_.T) @ W2_.T
                loss = F.mse_loss(xhat, Xt)
            if record:
                if not step_pass:
                    with torch.no_grad():
                        xhat = act(measure_noise.corrupt(Xt) @ W1_.T) @ W2_.T
                        loss = F.mse_loss(xhat, Xt)
                tracker.record(row, t, W1_.detach(), W2_.detach(), xhat.detach(), loss.detach(),
                               eff["lr"], lam_k)
                row += 1
            if last:
                break
            if full:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            else:
                order = train_noise.permutation(n) if shuffle else None
                for start in range(0, n, B):
                    xb = Xt[start:start + B] if order is None else Xt[order[start:start + B]]
                    loss = F.mse_loss(act(train_noise.corrupt(xb) @ W1_.T) @ W2_.T, xb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            bar.update(t + 1)
        bar.close()
    ckpt.remove()
    attrs = dict(engine="nonlinear", activation=activation, hidden=int(hidden), lr=float(lr),
                 epochs=int(epochs), noise_std=float(noise_std), noise_var=float(noise_std) ** 2,
                 weight_decay=float(weight_decay), init_std=float(init_std), seed=int(seed),
                 noise_seed=noise_seed(seed), dtype=str(dt).replace("torch.", ""), device=str(device),
                 log_every=int(log_every), n_samples=int(n), n_features=int(d), k_modes=k,
                 batch_size=int(B), shuffle=int(bool(shuffle) and not full),
                 n_steps=int(epochs * -(-n // B)), init="given" if given else "random",
                 lr_theory=eff["lr"], eps_theory=eff["eps"], gamma_theory=eff["gamma"],
                 loss_convention="torch MSE: mean over N*d elements; SGD weight_decay adds wd*W to the gradient",
                 noise_convention="noise_std is a standard deviation; x_tilde = x + noise_std * N(0, I), "
                                  "fresh every step; noise_var = noise_std^2")
    if not full:
        attrs["measurement_seed"] = measurement_seed(seed)
    ds = tracker.dataset(epochs_log, lam_k, attrs)
    return NonlinearRun(ds, *(w.detach().cpu().numpy() for w in (W1_, W2_, W1_0, W2_0)))


# ---------------------------------------------------------------------------------------
# linear theory beside the network


def linear_theory(lam, epochs, *, lr: float, noise_std: float, weight_decay: float, d: int,
                  init_std: float, hidden: int) -> xr.DataArray:
    """Per-mode linear theory for a network trained with these hyperparameters (E21).

    The hyperparameters are mapped to theory units by :func:`theory_params` (η_eff = 2η/d,
    ε = σ², γ_eff = wd·d/2) and each mode follows the exact per-mode GD map of a linear network
    whose mode weights are H-vectors, :func:`daedyn.theory.vector_mode_map` (E15):
    x' = x[1 + η(λ − γ − ξu)]², y' = y[1 − η(λ + γ − ξu)]², u = x − y, ξ = λ + ε.

    Initial state: the expectation under the i.i.d. N(0, s²) init (s = ``init_std``). With
    a = W₁v_i and b = W₂ᵀv_i, both with H independent N(0, s²) entries,
    x₀ = E‖a+b‖²/4 = H s²/2 and y₀ = E‖a−b‖²/4 = H s²/2, so u(0) = 0 = E[u(0)] and the growing
    part starts from H s²/2 (1.28e-4 for H = 256, s = 1e-3). One u₀ for all modes and runs, no
    fitting (unlike the paper's heuristic, D3). Cross-mode coupling and the nonlinearity are
    neglected: the curve is a reference for timing and plateaus, not a prediction of a ReLU net.

    ``lam``: eigenvalues of Σ (k,); ``epochs``: recorded epochs (non-negative integers) or an int
    (then 0..epochs). Returns dims ("mode", "epoch"), coords lam along mode, attrs with the inputs
    and their theory-unit values.
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    epochs = np.arange(int(epochs) + 1) if np.ndim(epochs) == 0 else np.asarray(epochs, dtype=np.int64)
    eff = theory_params(lr, noise_std, weight_decay, d)
    x0 = y0 = hidden * init_std**2 / 2.0
    steps = int(epochs.max()) if epochs.size else 0
    from daedyn import theory  # here, not at the top: a theory edit must not retrain networks

    u = theory.vector_mode_map(steps, lam, eff["eps"], eff["gamma"], eff["lr"], x0=x0, y0=y0)[:, epochs]
    return xr.DataArray(u, dims=("mode", "epoch"), name="mapping_theory", coords={
        "mode": np.arange(lam.size), "epoch": epochs, "lam": ("mode", lam)}, attrs={
        "long_name": "linear per-mode theory (E15 map) for the same hyperparameters in theory units",
        "units": "1", "lr": float(lr), "noise_std": float(noise_std), "weight_decay": float(weight_decay),
        "n_features": int(d), "hidden": int(hidden), "init_std": float(init_std),
        "lr_theory": eff["lr"], "eps_theory": eff["eps"], "gamma_theory": eff["gamma"],
        "x0": float(x0), "y0": float(y0)})


def half_times(curve: xr.DataArray, *, fraction: float = 0.5, min_final: float = 1e-2) -> xr.DataArray:
    """First recorded epoch at which a curve reaches ``fraction`` of its final value, per mode.

    ``curve`` has an "epoch" dimension (any others are kept); the final value is the value at the
    last recorded epoch. The result is at the recording resolution (like the paper's table) and
    NaN where the level is never reached or where the final value is below ``min_final`` (a mode
    that was not learned, e.g. WDAE modes with λ ≤ γ_eff; the paper's "never").
    """
    c = curve.transpose(..., "epoch")
    values = c.values.astype(np.float64)
    epochs = c["epoch"].values
    final = values[..., -1:]
    reached = values >= fraction * final
    first = np.where(reached.any(axis=-1), epochs[np.argmax(reached, axis=-1)], np.nan)
    first = np.where(final[..., 0] >= min_final, first, np.nan)
    out = xr.DataArray(first, dims=c.dims[:-1], coords={k: v for k, v in c.coords.items()
                                                        if "epoch" not in v.dims})
    out.attrs.update(long_name=f"first recorded epoch with value >= {fraction:g} x final value "
                               f"(NaN: never, or final < {min_final:g})", units="1")
    return out
