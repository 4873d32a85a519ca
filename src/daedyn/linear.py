"""Full-batch (and minibatch) gradient descent for linear AEs, DAEs and WDAEs (torch).

Model and loss
--------------
x̂ = W₂W₁x̃ with W₁ ∈ R^{H×d} (encoder), W₂ ∈ R^{d×H} (decoder), column convention, no
biases, untied weights, W = W₂W₁. In the mean convention Σ = XᵀX/N = VΛVᵀ (λ descending,
eigenvectors v_i as the columns of V) the marginalised loss is (E1, E2 in docs/science.md)

    L = ½ tr[(I−W)Σ(I−W)ᵀ]  +  ε/2 ‖W‖²_F  +  γ/2 (‖W₁‖²_F + ‖W₂‖²_F)
        (reconstruction)       (noise)          (weight decay)

with noise variance ε and weight decay γ. One step of full-batch gradient descent with
learning rate η is one "epoch" (τ = 1/η); with M = Σ − W(Σ + εI) (E3)

    W₁ ← W₁ + η (W₂ᵀM − γW₁),      W₂ ← W₂ + η (MW₁ᵀ − γW₂).

Engines
-------
* :func:`train_exact` runs this recurrence in Σ's eigenbasis from (λ, V) alone. With
  A₁ = W₁V (H×d) and A₂ = VᵀW₂ (d×H), Σ becomes Λ and a step needs only the two H×H
  Gram matrices P = A₂ᵀA₂ and Q = A₁ diag(λ+ε) A₁ᵀ:

      A₁ ← (1−ηγ)A₁ + η A₂ᵀΛ − η P A₁ diag(λ+ε)
      A₂ ← (1−ηγ)A₂ + η ΛA₁ᵀ − η A₂ Q

  i.e. four O(d·H²) matrix products per step and never a d×d product. It is the same
  trajectory as the data pass (exactly, rounding aside), because V is orthogonal.
* :func:`train_datapass` is the reference: each step forms the full-batch gradient from
  X·W₁ᵀ·W₂ᵀ (O(N·d·H)), as the paper's own code does, with the noise marginalised.
* :func:`train_sampled` is a real DAE: fresh Gaussian noise N(0, εI) for every
  (mini)batch and step, gradient of ½‖x − Wx̃‖² averaged over the batch (+ weight decay).
  One epoch is one pass over the data (one step when ``batch_size`` is None).

Initialisation
--------------
Unless W1/W2 are given, the weights are drawn by :func:`init_weights`: a CPU
``torch.Generator`` seeded with ``seed`` draws W₁ (H×d) first and then W₂ (d×H), entries
i.i.d. N(0, init_std²), in float64, then cast to the run's dtype and device. The same seed
therefore gives the same initial weights in every engine, dtype and device. The noise and
the shuffling of :func:`train_sampled` come from a second generator on the run's device,
seeded with a number derived from ``seed`` (:func:`noise_seed`), so they are not correlated
with the initial weights.

Tracking
--------
Every ``log_every`` epochs, at epoch 0 and at the final epoch each engine records (in the
eigenbasis, so all engines record the same quantities from the same formulas):

* ``u`` (epoch, mode): u_i = v_iᵀWv_i for all d modes;
* ``singular_values`` (epoch, sv): the min(d, H) singular values of W, descending (the
  paper's "actual" curves of Fig. 5, D2), computed from the H×H core R₂R₁ᵀ of the QR
  factorisations A₂ = Q₂R₂, A₁ᵀ = Q₁R₁ (never a d×d SVD);
* the marginalised loss terms ``loss``, ``loss_reconstruction``, ``loss_noise``,
  ``loss_decay`` computed from Σ (also for the sampled engine, so that runs compare);
  ``train_error`` = ½·mean‖x − Wx‖² on the clean training data, which is the same number as
  ``loss_reconstruction``;
* ``norm_w1``, ``norm_w2`` (Frobenius) and ``balancedness`` = ‖W₁W₁ᵀ − W₂ᵀW₂‖_F.

The loss terms use the trace expansion ½(Σλ_i − 2Σλ_iu_i + tr(PQ_λ)), so in float32 their
absolute error is about 1e-7·tr Σ. Divergence (a non-finite loss, or a loss above 1e6 times
the initial loss) is checked at every recorded epoch (so a large ``log_every`` notices it
late) and raises :class:`DivergenceError`.

Common options
--------------
``dtype`` "float32" (default) or "float64"; ``device`` "auto" (CUDA when available), "cpu"
or "cuda[:k]"; ``threads`` sets torch's CPU intra-op threads for the run (None: leave as
is; on a CPU shared with other busy processes one thread can beat two, because
multithreaded BLAS waits for descheduled threads); ``progress`` shows a tqdm bar.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

__all__ = [
    "Checkpoint",
    "DivergenceError",
    "Run",
    "init_weights",
    "log_epochs",
    "noise_seed",
    "resolve_device",
    "second_moment_spectrum",
    "stability_limit",
    "train_datapass",
    "train_exact",
    "train_sampled",
]

log = logging.getLogger(__name__)

#: a loss above this multiple of the initial loss counts as divergence
EXPLODE_FACTOR = 1e6


class DivergenceError(FloatingPointError):
    """Training diverged (non-finite or exploding loss)."""


# ---------------------------------------------------------------------------------------
# small helpers


class Checkpoint:
    """Resumable training state, written atomically every ``every`` epochs to ``path``.

    The state holds the weights, the rows recorded so far, the step count and (sampled
    engine) the noise generator, so a run killed at any moment and started again with the
    same arguments resumes from the last checkpoint and ends with exactly the result of an
    uninterrupted run (same device and thread count). A checkpoint written by a run with
    other arguments (its ``fingerprint`` differs) is ignored.
    """

    def __init__(self, path, every: int, fingerprint: dict):
        self.path = None if path is None else Path(path)
        self.every = int(every)
        self.fingerprint = json.dumps(fingerprint, sort_keys=True, default=str)

    def load(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s belongs to another run; starting afresh", self.path)
            return None
        log.warning("resuming from %s at epoch %d", self.path, state["epoch"])
        return state

    def resume(self, tracker, tensors: dict, generators: dict | None = None) -> tuple[int, int]:
        """Restore `tensors` (in place), the tracker and the generators; return (epoch, rows recorded).

        The tracker needs ``state(rows)`` and ``restore(state)``; (0, 0) means a fresh start.
        """
        state = self.load()
        if state is None:
            return 0, 0
        with torch.no_grad():
            for name, tensor in tensors.items():
                tensor.copy_(state["tensors"][name])
        tracker.restore(state["tracker"])
        for name, generator in (generators or {}).items():
            generator.set_state(state["generators"][name])
        return state["epoch"], state["row"]

    def due(self, epoch: int, start: int) -> bool:
        return self.path is not None and self.every > 0 and epoch > start and epoch % self.every == 0

    def save(self, epoch: int, row: int, tracker, tensors: dict, generators: dict | None = None) -> None:
        """Save weights `tensors`, the first `row` records of `tracker` and the random `generators`."""
        state = {"fingerprint": self.fingerprint, "epoch": epoch, "row": row,
                 "tensors": {k: v.detach().cpu().clone() for k, v in tensors.items()},
                 "tracker": tracker.state(row),
                 "generators": {k: g.get_state() for k, g in (generators or {}).items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)  # atomic: a kill mid-save keeps the previous checkpoint

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _fingerprint(engine: str, lam: np.ndarray, **kwargs) -> dict:
    """What must match for a checkpoint to be resumed: the arguments, the spectrum and the code
    of the training modules (a checkpoint written before a code change is not resumed)."""
    digest = hashlib.sha256(np.ascontiguousarray(lam, dtype=np.float64).tobytes()).hexdigest()
    code = hashlib.sha256()
    for module in ("linear.py", "nonlinear.py"):
        code.update((Path(__file__).parent / module).read_bytes())
    return {"engine": engine, "lam_sha256": digest, "code_sha256": code.hexdigest(), **kwargs}


def stability_limit(lam, eps: float = 0.0, gamma: float = 0.0) -> float:
    """Largest stable learning rate η_max of full-batch GD, from the per-mode linearisation.

    At a balanced per-mode fixed point u* = (λ−γ)/(λ+ε) the Hessian of the per-mode loss
    (E6) has eigenvalues 2(λ−γ) (along u) and 2γ (along the imbalance w₁²−w₂²); ε drops out
    (E16). GD is stable iff η < 2/(top eigenvalue), so

        η_max = min( 1/(λ₁−γ),  1/γ  [γ > 0],  2/(λ_j+γ) for the largest λ_j ≤ γ ),

    where a mode with λ_j ≤ γ stays at the origin, whose Hessian has eigenvalues γ ± λ_j.
    DAE/AE (γ = 0): η_max = 1/λ₁, independent of ε. WDAE: ≈ 1/(λ₁−γ); the exact whole-network
    limit is slightly lower because of cross-mode curvature (E16), and unbalanced
    starts with large weights have sharper minima. ``eps`` is accepted for symmetry and
    documentation; it does not enter.
    """
    del eps  # the balanced fixed point's curvature does not depend on ε
    lam = np.asarray(lam, dtype=np.float64).ravel()
    gamma = float(gamma)
    limits = []
    learned = lam[lam > gamma]
    if learned.size:
        limits.append(1.0 / (learned.max() - gamma))
        if gamma > 0:
            limits.append(1.0 / gamma)
    stuck = lam[lam <= gamma]
    if stuck.size and stuck.max() + gamma > 0:
        limits.append(2.0 / (stuck.max() + gamma))
    return float(min(limits)) if limits else math.inf


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; "cpu", "cuda", "cuda:k" are passed through."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}")
    return torch.device(device)


def _resolve_dtype(dtype) -> torch.dtype:
    table = {"float32": torch.float32, "float64": torch.float64,
             torch.float32: torch.float32, torch.float64: torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return table[dtype]


def init_weights(d: int, hidden: int, *, init_std: float = 1e-4, seed: int = 0):
    """Initial weights (W1 (H×d), W2 (d×H)) as float64 numpy arrays, entries N(0, init_std²).

    Drawn in float64 by ``torch.Generator("cpu").manual_seed(seed)``: W1 first, then W2.
    """
    g = torch.Generator("cpu").manual_seed(int(seed))
    w1 = torch.randn(hidden, d, generator=g, dtype=torch.float64) * init_std
    w2 = torch.randn(d, hidden, generator=g, dtype=torch.float64) * init_std
    return w1.numpy(), w2.numpy()


def noise_seed(seed: int) -> int:
    """Seed of the noise/shuffle generator of :func:`train_sampled`, derived from ``seed``.

    Derived with numpy's SeedSequence so that it is not the init generator's stream.
    """
    return int(np.random.SeedSequence([int(seed), 0xDAE]).generate_state(1, dtype=np.uint32)[0])


def log_epochs(epochs: int, log_every: int) -> np.ndarray:
    """Recorded epochs: 0, log_every, 2·log_every, … and always the final epoch."""
    if epochs < 0 or log_every < 1:
        raise ValueError("need epochs >= 0 and log_every >= 1")
    return np.unique(np.r_[np.arange(0, epochs + 1, log_every), epochs]).astype(np.int64)


def second_moment_spectrum(X) -> tuple[np.ndarray, np.ndarray]:
    """(λ descending, V eigenvectors as columns) of the uncentred Σ = XᵀX/N, in float64."""
    x = np.asarray(X.detach().cpu().numpy() if torch.is_tensor(X) else X, dtype=np.float64)
    lam, V = np.linalg.eigh(x.T @ x / x.shape[0])
    return lam[::-1].copy(), V[:, ::-1].copy()


def _tensor(a, dtype, device):
    if torch.is_tensor(a):
        return a.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _initial(d, hidden, init_std, seed, W1, W2, dtype, device):
    if (W1 is None) != (W2 is None):
        raise ValueError("give both W1 and W2, or neither")
    if W1 is None:
        W1, W2 = init_weights(d, hidden, init_std=init_std, seed=seed)
    W1, W2 = _tensor(W1, dtype, device), _tensor(W2, dtype, device)
    if W1.shape != (hidden, d) or W2.shape != (d, hidden):
        raise ValueError(f"W1 must be ({hidden}, {d}) and W2 ({d}, {hidden}); "
                         f"got {tuple(W1.shape)} and {tuple(W2.shape)}")
    return W1.contiguous(), W2.contiguous()


@contextlib.contextmanager
def _num_threads(n: int | None):
    """Temporarily set torch's intra-op CPU threads (None: leave as is)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Progress:
    """tqdm bar over epochs, or a line on stderr every 10 % when tqdm is missing."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.total, self.enabled, self.bar, self.next_pct = total, enabled, None, 10
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="epoch", mininterval=1.0)
            except ImportError:
                self.desc = desc

    def update(self, epoch: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(epoch - self.bar.n)
        elif self.total and 100 * epoch >= self.next_pct * self.total:
            print(f"{self.desc}: {100 * epoch // self.total}% ({epoch}/{self.total} epochs)",
                  file=sys.stderr)
            self.next_pct = 100 * epoch // self.total + 10

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------
# tracking

_SCALARS = ("loss", "loss_reconstruction", "loss_noise", "loss_decay",
            "norm_w1", "norm_w2", "balancedness")

_META = {
    "u": ("mode strength u_i = v_i^T W v_i (W = W2 W1)", "1"),
    "singular_values": ("singular values of W = W2 W1, descending (the paper's 'actual', D2)", "1"),
    "loss": ("marginalised loss E2 = reconstruction + noise + decay (computed from Sigma)",
             "1"),
    "loss_reconstruction": ("1/2 tr[(I-W) Sigma (I-W)^T] = 1/2 mean_n |x_n - W x_n|^2",
                            "1"),
    "loss_noise": ("eps/2 |W|_F^2 (marginalised input-noise term of E1)", "1"),
    "loss_decay": ("gamma/2 (|W1|_F^2 + |W2|_F^2) (weight-decay term of E2)", "1"),
    "train_error": ("mean clean reconstruction error 1/2 mean_n |x_n - W x_n|^2 "
                    "(identical to loss_reconstruction)", "1"),
    "norm_w1": ("Frobenius norm of W1", "1"),
    "norm_w2": ("Frobenius norm of W2", "1"),
    "balancedness": ("|W1 W1^T - W2^T W2|_F", "1"),
}


class _Records:
    """Checkpointing of a tracker's preallocated record buffers (named in ``BUFFERS``)."""

    BUFFERS: tuple[str, ...] = ()
    first_loss: float | None = None

    def state(self, rows: int) -> dict:
        """The first `rows` records and the divergence reference, for :class:`Checkpoint`."""
        state = {name: getattr(self, name)[:rows].cpu().clone() for name in self.BUFFERS}
        state["first_loss"] = float("nan") if self.first_loss is None else self.first_loss
        return state

    def restore(self, state: dict) -> None:
        for name in self.BUFFERS:
            buffer = getattr(self, name)
            buffer[: state[name].shape[0]] = state[name]
        self.first_loss = None if math.isnan(state["first_loss"]) else state["first_loss"]


class _Tracker(_Records):
    """Records the tracked quantities into preallocated device buffers, in Σ's eigenbasis.

    Works on A1 = W1 V (H×d) and B2 = A2ᵀ = W2ᵀV (H×d): u_i = Σ_h A1[h,i] B2[h,i],
    ‖W‖²_F = tr(P G) with P = B2B2ᵀ = W2ᵀW2 and G = A1A1ᵀ = W1W1ᵀ.
    """

    BUFFERS = ("u", "sv", "scalars")

    def __init__(self, lam: torch.Tensor, eps: float, gamma: float, hidden: int, n_log: int,
                 lr: float):
        d = lam.shape[0]
        self.lam, self.eps, self.gamma, self.lr = lam, float(eps), float(gamma), float(lr)
        self.trace = float(lam.sum())
        self.k = min(d, hidden)
        kw = dict(dtype=lam.dtype, device=lam.device)
        self.u = torch.empty(n_log, d, **kw)
        self.sv = torch.empty(n_log, self.k, **kw)
        self.scalars = torch.empty(n_log, len(_SCALARS), **kw)
        self.first_loss = None

    def record(self, row: int, epoch: int, A1, B2, P=None, Q=None) -> None:
        """Store the state (A1, B2) as row ``row``; pass P = B2B2ᵀ, Q = A1diag(λ+ε)A1ᵀ if known."""
        lam, eps, gamma = self.lam, self.eps, self.gamma
        # A2 = Q2R2 and A1ᵀ = Q1R1 (R: min(d,H)×H). Then G = A1A1ᵀ = R1ᵀR1 costs O(H³) instead
        # of O(dH²), and the singular values of A2A1 = Q2(R2R1ᵀ)Q1ᵀ are those of the small core
        # R2R1ᵀ. One CPU thread for these LAPACK calls: two gain little here and, on a busy
        # CPU, a two-thread SVD sometimes stalls for hundreds of milliseconds.
        threads = 1 if self.u.device.type == "cpu" else None
        with _num_threads(threads):
            R2 = torch.linalg.qr(B2.T, mode="r").R
            R1 = torch.linalg.qr(A1.T, mode="r").R
        G = R1.T @ R1
        if P is None:
            P = R2.T @ R2
        if Q is None:
            Q_lam = (A1 * lam) @ A1.T                      # A1 Λ A1ᵀ
        else:
            Q_lam = Q - eps * G if eps else Q
        u = self.u[row]
        torch.sum(A1 * B2, dim=0, out=u)
        n1sq, n2sq = A1.square().sum(), B2.square().sum()
        rec = 0.5 * (self.trace - 2.0 * torch.dot(lam, u) + (P * Q_lam).sum())
        noise = 0.5 * eps * (P * G).sum()
        decay = 0.5 * gamma * (n1sq + n2sq)
        s = self.scalars[row]
        s[0], s[1], s[2], s[3] = rec + noise + decay, rec, noise, decay
        s[4], s[5] = n1sq.sqrt(), n2sq.sqrt()
        s[6] = torch.linalg.matrix_norm(G - P)
        self._check(float(s[0]), epoch)      # before the SVD, which fails on non-finite input
        with _num_threads(threads):
            self.sv[row] = torch.linalg.svdvals(R2 @ R1.T)

    def _check(self, loss: float, epoch: int) -> None:
        if self.first_loss is None:
            self.first_loss = loss
        bad = not math.isfinite(loss) or loss > EXPLODE_FACTOR * max(abs(self.first_loss), 1e-30)
        if bad:
            lam1 = float(self.lam.max())
            limit = stability_limit(self.lam.cpu().numpy(), self.eps, self.gamma)
            raise DivergenceError(
                f"training diverged by epoch {epoch} (loss {loss:.4g}, initial loss "
                f"{self.first_loss:.4g}) with learning rate eta={self.lr:g}; the stability "
                f"limit for this spectrum is eta_max={limit:.6g} (lambda_1={lam1:.6g}, "
                f"eps={self.eps:g}, gamma={self.gamma:g}; 1/lambda_1 for AE/DAE, "
                f"~1/(lambda_1-gamma) for WDAE)")

    def dataset(self, epochs: np.ndarray, lam: np.ndarray, attrs: dict) -> xr.Dataset:
        sc = self.scalars.double().cpu().numpy()
        data = {"u": (("epoch", "mode"), self.u.double().cpu().numpy()),
                "singular_values": (("epoch", "sv"), self.sv.double().cpu().numpy())}
        for j, name in enumerate(_SCALARS):
            data[name] = (("epoch",), sc[:, j])
        data["train_error"] = (("epoch",), sc[:, 1].copy())
        ds = xr.Dataset(data, coords={
            "epoch": ("epoch", np.asarray(epochs, dtype=np.int64)),
            "mode": ("mode", np.arange(lam.shape[0], dtype=np.int64)),
            "lam": ("mode", np.asarray(lam, dtype=np.float64)),
            "sv": ("sv", np.arange(self.k, dtype=np.int64)),
        }, attrs=attrs)
        for name, (long_name, units) in _META.items():
            ds[name].attrs.update(long_name=long_name, units=units)
        ds["epoch"].attrs.update(long_name="epoch (one full-batch GD step; for minibatch runs one "
                                 "pass over the data)", units="1")
        ds["mode"].attrs.update(long_name="eigenmode index of Sigma (descending eigenvalue)",
                                units="1")
        ds["lam"].attrs.update(long_name="eigenvalue of Sigma = X^T X / N (uncentred)",
                               units="1")
        ds["sv"].attrs.update(long_name="rank of the singular value (0 = largest)", units="1")
        return ds


# ---------------------------------------------------------------------------------------
# result


@dataclass
class Run:
    """Result of a training run.

    ``trajectory`` is the tracked xr.Dataset; ``W1`` (H×d), ``W2`` (d×H) the final weights
    and ``W1_init``, ``W2_init`` the initial ones, all numpy arrays in the run's dtype and in
    the data's original basis (the exact engine rotates back with V).
    """

    trajectory: xr.Dataset
    W1: np.ndarray
    W2: np.ndarray
    W1_init: np.ndarray
    W2_init: np.ndarray

    def weights(self) -> xr.Dataset:
        """Initial and final weights as an xr.Dataset with dims ("hidden", "feature")."""
        hf, fh = ("hidden", "feature"), ("feature", "hidden")
        ds = xr.Dataset({
            "w1_init": (hf, self.W1_init), "w2_init": (fh, self.W2_init),
            "w1": (hf, self.W1), "w2": (fh, self.W2),
        }, attrs=dict(self.trajectory.attrs))
        for name, what in [("w1", "encoder W1"), ("w2", "decoder W2")]:
            ds[name].attrs.update(long_name=f"final {what} (column convention, x_hat = W2 W1 x)",
                                  units="1")
            ds[name + "_init"].attrs.update(long_name=f"initial {what}", units="1")
        return ds


def _attrs(engine, lam, *, hidden, lr, eps, gamma, init_std, seed, dtype, device, log_every,
           n_steps, given, **extra):
    attrs = dict(engine=engine, hidden=int(hidden), lr=float(lr), eps=float(eps),
                 gamma=float(gamma), init_std=float(init_std), seed=int(seed),
                 dtype=str(dtype).replace("torch.", ""), device=str(device),
                 log_every=int(log_every), n_steps=int(n_steps), n_features=int(len(lam)),
                 init="given" if given else "random",
                 stability_limit=stability_limit(lam, eps, gamma))
    attrs.update(extra)
    return attrs


def _check_common(hidden, lr, epochs, eps, gamma):
    if hidden < 1 or epochs < 0 or not lr > 0 or eps < 0 or gamma < 0:
        raise ValueError("need hidden >= 1, epochs >= 0, lr > 0, eps >= 0, gamma >= 0")


def _check_orthogonal(V: torch.Tensor) -> None:
    """O(d²) probe: ‖VᵀVz − z‖ ≈ 0 for a random z (the eigenbasis must be orthonormal)."""
    z = torch.randn(V.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = z.to(device=V.device, dtype=V.dtype)
    err = float(torch.linalg.vector_norm(V.T @ (V @ z) - z) / torch.linalg.vector_norm(z))
    if not err < 1e-3:
        raise ValueError(f"V must have orthonormal columns (‖VᵀVz − z‖/‖z‖ = {err:.2g})")


def _spectrum_tensors(X, lam, V, dtype, device):
    if (lam is None) != (V is None):
        raise ValueError("give both lam and V, or neither")
    if lam is None:
        lam, V = second_moment_spectrum(X)
    lam_np = np.asarray(lam.cpu().numpy() if torch.is_tensor(lam) else lam, dtype=np.float64)
    return lam_np, _tensor(lam_np, dtype, device), _tensor(V, dtype, device)


# ---------------------------------------------------------------------------------------
# engines


def train_exact(lam, V, *, hidden: int, lr: float, epochs: int, eps: float = 0.0,
                gamma: float = 0.0, init_std: float = 1e-4, seed: int = 0, dtype="float32",
                device="auto", log_every: int = 10, W1=None, W2=None,
                progress: bool = False, threads: int | None = None, checkpoint=None,
                checkpoint_every: int = 500) -> Run:
    """Full-batch GD on the marginalised loss E2, run in Σ's eigenbasis from (λ, V) alone.

    ``lam`` (d,) are Σ's eigenvalues (descending), ``V`` (d, d) its orthonormal eigenvectors as
    columns (checked with a random probe). One step costs O(d·H²): the Gram matrices
    P = A₂ᵀA₂ and Q = A₁diag(λ+ε)A₁ᵀ and the products PA₁diag(λ+ε), A₂Q (see the module
    docstring). Same trajectory as
    :func:`train_datapass` on data with this Σ. Initial weights: :func:`init_weights`
    (``seed``, ``init_std``) unless ``W1`` (H×d), ``W2`` (d×H) are given. With a
    ``checkpoint`` path the state is saved every ``checkpoint_every`` epochs and a run with
    the same arguments resumes from it (:class:`Checkpoint`).
    """
    _check_common(hidden, lr, epochs, eps, gamma)
    device, dt = resolve_device(device), _resolve_dtype(dtype)
    lam_np, lam_t, V_t = _spectrum_tensors(None, lam, V, dt, device)
    ckpt = Checkpoint(checkpoint, checkpoint_every, _fingerprint(
        "exact", lam_np, hidden=hidden, lr=lr, eps=eps, gamma=gamma, init_std=init_std, seed=seed,
        dtype=str(_resolve_dtype(dtype)), epochs=epochs, log_every=log_every, given=W1 is not None))
    d = lam_np.shape[0]
    if V_t.shape != (d, d):
        raise ValueError(f"V must be ({d}, {d}), got {tuple(V_t.shape)}")
    _check_orthogonal(V_t)
    given = W1 is not None
    W1_0, W2_0 = _initial(d, hidden, init_std, seed, W1, W2, dt, device)
    epochs_log = log_epochs(epochs, log_every)
    tracker = _Tracker(lam_t, eps, gamma, hidden, len(epochs_log), lr)

    with torch.no_grad(), _num_threads(threads):
        # state: A1 = W1 V and B2 = A2ᵀ = W2ᵀ V, both H×d and contiguous; N1, N2 are the
        # double buffers of the next state (no allocation inside the loop)
        A1, B2 = (W1_0 @ V_t).contiguous(), (W2_0.T @ V_t).contiguous()
        N1, N2 = torch.empty_like(A1), torch.empty_like(B2)
        A1s = torch.empty_like(A1)
        P = torch.empty(hidden, hidden, dtype=dt, device=device)
        Q = torch.empty_like(P)
        s = lam_t + eps                      # diag(λ+ε): the noisy-input correlation
        eta, c = float(lr), 1.0 - float(lr) * float(gamma)
        eta_lam = lam_t * eta
        start, row = ckpt.resume(tracker, {"A1": A1, "B2": B2})
        bar = _Progress(epochs, progress, "train_exact")
        for t in range(start, epochs + 1):
            if ckpt.due(t, start):
                ckpt.save(t, row, tracker, {"A1": A1, "B2": B2})
            torch.mul(A1, s, out=A1s)
            torch.mm(B2, B2.T, out=P)            # P = A2ᵀA2 = W2ᵀW2
            torch.mm(A1s, A1.T, out=Q)           # Q = A1 diag(λ+ε) A1ᵀ
            if row < len(epochs_log) and t == epochs_log[row]:
                tracker.record(row, t, A1, B2, P, Q)
                row += 1
            if t == epochs:
                break
            # A1' = c A1 + η B2Λ − η P A1 diag(λ+ε)
            torch.mul(B2, eta_lam, out=N1).add_(A1, alpha=c).addmm_(P, A1s, alpha=-eta)
            # A2'ᵀ = c B2 + η A1Λ − η Q B2   (Q symmetric, so (A2 Q)ᵀ = Q B2)
            torch.mul(A1, eta_lam, out=N2).add_(B2, alpha=c).addmm_(Q, B2, alpha=-eta)
            A1, N1, B2, N2 = N1, A1, N2, B2
            bar.update(t + 1)
        bar.close()
        W1_f, W2_f = A1 @ V_t.T, (B2 @ V_t.T).T
    ckpt.remove()
    attrs = _attrs("exact", lam_np, hidden=hidden, lr=lr, eps=eps, gamma=gamma, init_std=init_std,
                   seed=seed, dtype=dt, device=device, log_every=log_every, n_steps=epochs,
                   given=given)
    return Run(tracker.dataset(epochs_log, lam_np, attrs), *_np(W1_f, W2_f, W1_0, W2_0))


def _data_and_batch(X, batch_size, dtype, device) -> tuple[torch.Tensor, int]:
    """The data as a contiguous tensor and the minibatch size (None: the full batch)."""
    Xt = _tensor(X, dtype, device).contiguous()
    n = Xt.shape[0]
    B = n if batch_size is None else int(batch_size)
    if not 1 <= B <= n:
        raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")
    return Xt, B


def _np(*ts):
    return [t.detach().cpu().numpy() for t in ts]


def train_datapass(X, *, hidden: int, lr: float, epochs: int, eps: float = 0.0, gamma: float = 0.0,
                   lam=None, V=None, init_std: float = 1e-4, seed: int = 0, dtype="float32",
                   device="auto", log_every: int = 10, W1=None, W2=None,
                   progress: bool = False, threads: int | None = None, checkpoint=None,
                   checkpoint_every: int = 500) -> Run:
    """Reference full-batch GD on E2 computed from a pass over the data (O(N·d·H) per step).

    With H = XW₁ᵀ (N×H) and E = X − HW₂ᵀ (N×d), the gradients are
    ∇W₂ = −EᵀH/N + εW₂W₁W₁ᵀ + γW₂ and ∇W₁ = −(EW₂)ᵀX/N + εW₂ᵀW₂W₁ + γW₁
    (noise marginalised: the ε‖W‖²/2 term of E1). ``lam``, ``V`` (Σ's spectrum, used for the
    tracking only) are computed from X in float64 when not given.
    """
    _check_common(hidden, lr, epochs, eps, gamma)
    device, dt = resolve_device(device), _resolve_dtype(dtype)
    Xt = _tensor(X, dt, device).contiguous()
    n, d = Xt.shape
    lam_np, lam_t, V_t = _spectrum_tensors(X, lam, V, dt, device)
    given = W1 is not None
    W1_0, W2_0 = _initial(d, hidden, init_std, seed, W1, W2, dt, device)
    epochs_log = log_epochs(epochs, log_every)
    tracker = _Tracker(lam_t, eps, gamma, hidden, len(epochs_log), lr)
    ckpt = Checkpoint(checkpoint, checkpoint_every, _fingerprint(
        "datapass", lam_np, n=n, hidden=hidden, lr=lr, eps=eps, gamma=gamma, init_std=init_std,
        seed=seed, dtype=str(dt), epochs=epochs, log_every=log_every, given=given))
    eta = float(lr)
    with torch.no_grad(), _num_threads(threads):
        W1_, W2_ = W1_0.clone(), W2_0.clone()
        Hh = torch.empty(n, hidden, dtype=dt, device=device)
        E = torch.empty(n, d, dtype=dt, device=device)
        EW2 = torch.empty_like(Hh)
        g1, g2 = torch.empty_like(W1_), torch.empty_like(W2_)
        start, row = ckpt.resume(tracker, {"W1": W1_, "W2": W2_})
        bar = _Progress(epochs, progress, "train_datapass")
        for t in range(start, epochs + 1):
            if ckpt.due(t, start):
                ckpt.save(t, row, tracker, {"W1": W1_, "W2": W2_})
            if row < len(epochs_log) and t == epochs_log[row]:
                tracker.record(row, t, W1_ @ V_t, W2_.T @ V_t)
                row += 1
            if t == epochs:
                break
            torch.mm(Xt, W1_.T, out=Hh)                                # H = X W1ᵀ
            torch.addmm(Xt, Hh, W2_.T, alpha=-1.0, out=E)              # E = X − H W2ᵀ
            torch.mm(E, W2_, out=EW2)
            # ∇W1 = −(E W2)ᵀ X / N + ε W2ᵀW2 W1 + γ W1
            torch.mm(EW2.T, Xt, out=g1).mul_(-1.0 / n)
            # ∇W2 = −Eᵀ H / N + ε W2 W1 W1ᵀ + γ W2
            torch.mm(E.T, Hh, out=g2).mul_(-1.0 / n)
            if eps:
                g1.addmm_(W2_.T @ W2_, W1_, alpha=eps)
                g2.addmm_(W2_, W1_ @ W1_.T, alpha=eps)
            if gamma:
                g1.add_(W1_, alpha=gamma)
                g2.add_(W2_, alpha=gamma)
            W1_.add_(g1, alpha=-eta)
            W2_.add_(g2, alpha=-eta)
            bar.update(t + 1)
        bar.close()
    ckpt.remove()
    attrs = _attrs("datapass", lam_np, hidden=hidden, lr=lr, eps=eps, gamma=gamma,
                   init_std=init_std, seed=seed, dtype=dt, device=device, log_every=log_every,
                   n_steps=epochs, given=given, n_samples=int(n))
    return Run(tracker.dataset(epochs_log, lam_np, attrs), *_np(W1_, W2_, W1_0, W2_0))


def train_sampled(X, *, hidden: int, lr: float, epochs: int, eps: float, gamma: float = 0.0,
                  batch_size: int | None = None, shuffle: bool = True, lam=None, V=None,
                  init_std: float = 1e-4, seed: int = 0, dtype="float32", device="auto",
                  log_every: int = 10, W1=None, W2=None, progress: bool = False,
                  threads: int | None = None, checkpoint=None, checkpoint_every: int = 500) -> Run:
    """A real linear DAE: (minibatch) GD with fresh Gaussian input noise every step.

    For a batch x_1…x_B and noise n_b ~ N(0, εI) drawn anew each step, x̃ = x + n, the step
    follows the gradient of (1/B)Σ_b ½‖x_b − W₂W₁x̃_b‖² + γ/2(‖W₁‖² + ‖W₂‖²):
    with H = X̃W₁ᵀ and E = X − HW₂ᵀ, ∇W₂ = −EᵀH/B + γW₂, ∇W₁ = −(EW₂)ᵀX̃/B + γW₁
    (unbiased for the gradient of E2, E20). An epoch is one pass over the data in
    minibatches of ``batch_size`` rows (the last one may be smaller), in a fresh random order
    each epoch when ``shuffle``; ``batch_size=None`` means full batch, one step per epoch
    (then the order does not matter and is not shuffled). Noise and order come from a
    ``torch.Generator`` on ``device`` seeded with :func:`noise_seed` (``seed``), so CPU and
    CUDA runs draw different noise. Tracked losses are the marginalised E1/E2 terms from Σ.
    """
    _check_common(hidden, lr, epochs, eps, gamma)
    device, dt = resolve_device(device), _resolve_dtype(dtype)
    Xt, B = _data_and_batch(X, batch_size, dt, device)
    n, d = Xt.shape
    full = B == n
    steps_per_epoch = -(-n // B)
    lam_np, lam_t, V_t = _spectrum_tensors(X, lam, V, dt, device)
    given = W1 is not None
    W1_0, W2_0 = _initial(d, hidden, init_std, seed, W1, W2, dt, device)
    epochs_log = log_epochs(epochs, log_every)
    tracker = _Tracker(lam_t, eps, gamma, hidden, len(epochs_log), lr)
    gen = torch.Generator(device).manual_seed(noise_seed(seed))
    ckpt = Checkpoint(checkpoint, checkpoint_every, _fingerprint(
        "sampled", lam_np, n=n, hidden=hidden, lr=lr, eps=eps, gamma=gamma, init_std=init_std,
        seed=seed, dtype=str(dt), epochs=epochs, log_every=log_every, given=given, batch_size=B,
        shuffle=bool(shuffle), device=str(device)))
    std, eta = math.sqrt(eps), float(lr)
    with torch.no_grad(), _num_threads(threads):
        W1_, W2_ = W1_0.clone(), W2_0.clone()
        noise = torch.empty(B, d, dtype=dt, device=device)
        g1, g2 = torch.empty_like(W1_), torch.empty_like(W2_)
        start, row = ckpt.resume(tracker, {"W1": W1_, "W2": W2_}, {"noise": gen})
        bar = _Progress(epochs, progress, "train_sampled")
        for epoch in range(start, epochs + 1):
            if ckpt.due(epoch, start):
                ckpt.save(epoch, row, tracker, {"W1": W1_, "W2": W2_}, {"noise": gen})
            if row < len(epochs_log) and epoch == epochs_log[row]:
                tracker.record(row, epoch, W1_ @ V_t, W2_.T @ V_t)
                row += 1
            if epoch == epochs:
                break
            order = (torch.randperm(n, generator=gen, device=device)
                     if shuffle and not full else None)
            for start in range(0, n, B):
                stop = min(start + B, n)
                xb = Xt[start:stop] if order is None else Xt[order[start:stop]]
                nb = noise[: stop - start]
                if eps:
                    nb.normal_(0.0, std, generator=gen)
                    xt = xb + nb                                       # x̃ = x + n
                else:
                    xt = xb
                h = xt @ W1_.T                                         # H = X̃ W1ᵀ
                e = torch.addmm(xb, h, W2_.T, alpha=-1.0)             # E = X − H W2ᵀ
                inv_b = 1.0 / (stop - start)
                torch.mm((e @ W2_).T, xt, out=g1).mul_(-inv_b)        # −(E W2)ᵀ X̃ / B
                torch.mm(e.T, h, out=g2).mul_(-inv_b)                 # −Eᵀ H / B
                if gamma:
                    g1.add_(W1_, alpha=gamma)
                    g2.add_(W2_, alpha=gamma)
                W1_.add_(g1, alpha=-eta)
                W2_.add_(g2, alpha=-eta)
            bar.update(epoch + 1)
        bar.close()
    ckpt.remove()
    attrs = _attrs("sampled", lam_np, hidden=hidden, lr=lr, eps=eps, gamma=gamma, init_std=init_std,
                   seed=seed, dtype=dt, device=device, log_every=log_every,
                   n_steps=epochs * steps_per_epoch, given=given, n_samples=int(n),
                   batch_size=int(B), shuffle=int(bool(shuffle) and not full),
                   noise_seed=noise_seed(seed))
    return Run(tracker.dataset(epochs_log, lam_np, attrs), *_np(W1_, W2_, W1_0, W2_0))
