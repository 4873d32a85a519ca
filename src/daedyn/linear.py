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
Every engine is a class that holds its state and takes one step
(:class:`ExactEngine`, :class:`daedyn.linear_batched.BatchedExactEngine`, :class:`DatapassEngine`,
:class:`SampledEngine`);
the epoch loop, checkpoints, recording cadence, divergence detection and progress belong to
:func:`daedyn.training.drive`.
The functions :func:`train_exact`, :func:`train_datapass` and :func:`train_sampled` (or
:func:`train`, which dispatches on ``config.engine``) take a :class:`daedyn.runconfig.LinearConfig`
(or keywords for one) and return a :class:`Run`.

* :func:`train_exact` runs this recurrence in Σ's eigenbasis from (λ, V) alone. With
  A₁ = W₁V (H×d) and A₂ = VᵀW₂ (d×H), Σ becomes Λ and a step needs only the two H×H
  Gram matrices P = A₂ᵀA₂ and Q = A₁ diag(λ+ε) A₁ᵀ:

      A₁ ← (1−ηγ)A₁ + η A₂ᵀΛ − η P A₁ diag(λ+ε)
      A₂ ← (1−ηγ)A₂ + η ΛA₁ᵀ − η A₂ Q

  i.e. four O(d·H²) matrix products per step and never a d×d product. It is the same
  trajectory as the data pass (exactly, rounding aside), because V is orthogonal.
* :func:`daedyn.linear_batched.train_batch` runs this recurrence for many configurations at once
  (:class:`daedyn.linear_batched.BatchedExactEngine`): the runs along a leading dimension, four batched products per
  step, lr, ε, γ, seed and init_std per run; each run's file is :func:`train_exact`'s to
  rounding. :func:`daedyn.linear_batched.batch_groups` sorts a sweep's configurations into batches.
* :func:`train_datapass` is the reference: each step forms the full-batch gradient from
  X·W₁ᵀ·W₂ᵀ (O(N·d·H)), as the paper's own code does, with the noise marginalised.
* :func:`train_sampled` is a real DAE: fresh Gaussian noise N(0, εI) for every
  (mini)batch and step, gradient of ½‖x − Wx̃‖² averaged over the batch (+ weight decay).
  One epoch is one pass over the data (one step when ``batch_size`` is None).

Initialisation
--------------
Unless W1/W2 are given, the weights are drawn by :func:`daedyn.training.init_weights`: a CPU
``torch.Generator`` seeded with ``seed`` draws W₁ (H×d) first and then W₂ (d×H), entries
i.i.d. N(0, init_std²), in float64, then cast to the run's dtype and device. The same seed
therefore gives the same initial weights in every engine, dtype and device. The noise and
the shuffling of :func:`train_sampled` come from a second generator on the run's device,
seeded with a number derived from ``seed`` (:func:`daedyn.training.noise_seed`), so they are
not correlated with the initial weights.

Stability guard
---------------
Before the first step every engine computes the network's stability limit η_max
(:func:`daedyn.theory.stability_limit` for the run's λ, ε, γ and H). With lr ≥ η_max the run
stops with an error naming lr, η_max and λ₁, unless the config says ``allow_unstable``.

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
  ``loss_reconstruction`` is also the clean training error ½·mean‖x − Wx‖²;
* ``norm_w1``, ``norm_w2`` (Frobenius) and ``balancedness`` = ‖W₁W₁ᵀ − W₂ᵀW₂‖_F;
* with a held-out moment ``C`` = VᵀΣ_testV (config ``heldout``): ``test_reconstruction``, the
  error ½·mean‖x − Wx‖² on the clean held-out inputs, and ``test_denoising`` (epoch,
  sigma2_test), the expected error ½·mean E‖x − W(x + n)‖² with test noise n ~ N(0, σ²_test I)
  for each σ²_test of ``config.sigma2_test`` (:func:`daedyn.heldout.state_errors`, exact
  for any W, O(H·d²) per record).

The loss terms use the trace expansion ½(Σλ_i − 2Σλ_iu_i + tr(PQ_λ)), so in float32 their
absolute error is about 1e-7·tr Σ. The driver checks the recorded loss for divergence (so a
large ``log_every`` notices it late).

Runtime options
---------------
Not part of the configuration, because they do not change a result: ``threads`` sets torch's
CPU intra-op threads for the run (None: leave as is; on a CPU shared with other busy processes
one thread can beat two, because multithreaded BLAS waits for descheduled threads);
``progress`` writes progress lines to the log (and a bar on a terminal); ``checkpoint`` is a
:class:`daedyn.training.Checkpoint`.

Why one module: its three one-run engines share their base, records and run layout (the linear
records are also the base of :class:`daedyn.tracking.ProductTracker`), and most of its length is this
derivation. The batched exact engine lives in :mod:`daedyn.linear_batched`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import xarray as xr

from daedyn import training
from daedyn.runconfig import LinearConfig
from daedyn.training import (Checkpoint, Engine, Problem, Records, as_tensor, initial_weights, minibatches, noise_seed,
                             num_threads, run_engine)

__all__ = ["DatapassEngine", "ExactEngine", "Run", "SampledEngine",
           "corrupted_batch_step", "train", "train_datapass", "train_exact",
           "train_sampled"]

log = logging.getLogger(__name__)


def _check_orthogonal(V: torch.Tensor) -> None:
    """O(d²) probe: ‖VᵀVz − z‖ ≈ 0 for a random z (the eigenbasis must be orthonormal)."""
    z = torch.randn(V.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = z.to(device=V.device, dtype=V.dtype)
    err = float(torch.linalg.vector_norm(V.T @ (V @ z) - z) / torch.linalg.vector_norm(z))
    if not err < 1e-3:
        raise ValueError(f"V must have orthonormal columns (‖VᵀVz − z‖/‖z‖ = {err:.2g})")


# ---------------------------------------------------------------------------------------
# tracking

_SCALARS = ("loss", "loss_reconstruction", "loss_noise", "loss_decay",
            "norm_w1", "norm_w2", "balancedness")

_META = {
    "u": ("mode strength: u_i = v_i^T W v_i (W = W2 W1)", "1"),
    "singular_values": ("singular values of W: W = W2 W1, descending (the paper's 'actual', D2)", "1"),
    "loss": ("marginalised loss: E2 = reconstruction + noise + decay (computed from Sigma)",
             "1"),
    "loss_reconstruction": ("reconstruction error: 1/2 tr[(I-W) Sigma (I-W)^T] = 1/2 mean_n |x_n - W x_n|^2",
                            "1"),
    "loss_noise": ("input-noise term of the loss: eps/2 |W|_F^2 (marginalised input-noise term of E1)", "1"),
    "loss_decay": ("weight-decay term of the loss: gamma/2 (|W1|_F^2 + |W2|_F^2) (weight-decay term of E2)", "1"),
    "norm_w1": ("Frobenius norm of W1", "1"),
    "norm_w2": ("Frobenius norm of W2", "1"),
    "balancedness": ("|W1 W1^T - W2^T W2|_F", "1"),
}

_TEST_META = {
    "test_reconstruction": ("held-out reconstruction error: 1/2 mean_n |x_n - W x_n|^2 (clean held-out inputs)",
                            "1"),
    "test_denoising": ("held-out denoising error: expected 1/2 mean_n E|x_n - W (x_n + n)|^2, "
                       "n ~ N(0, sigma2_test I)", "1"),
}


class _Tracker(Records):
    """Records the tracked quantities into preallocated device buffers, in Σ's eigenbasis.

    Works on A1 = W1 V (H×d) and B2 = A2ᵀ = W2ᵀV (H×d): u_i = Σ_h A1[h,i] B2[h,i],
    ‖W‖²_F = tr(P G) with P = B2B2ᵀ = W2ᵀW2 and G = A1A1ᵀ = W1W1ᵀ. With the held-out moment
    ``C`` = VᵀΣ_testV (d×d, same dtype and device) it also records the held-out errors, the
    denoising one for each test-noise variance of ``sigma2_test``.

    With ``runs`` it records a batch of runs at once (:class:`daedyn.linear_batched.BatchedExactEngine`): the states are
    (runs, H, d), ``eps`` and ``gamma`` one value per run, the same formulas batched (batched QR and
    SVD), every buffer gets a run dimension after the record's, and ``run(i)`` gives run i's dataset.
    """

    BUFFERS = ("u", "sv", "scalars")

    def __init__(self, lam: torch.Tensor, eps, gamma, hidden: int, n_log: int,
                 C: torch.Tensor | None = None, sigma2_test: tuple[float, ...] = (), runs: int | None = None):
        d = lam.shape[0]
        self.lam, self.trace, self.host = lam, float(lam.sum()), None
        if runs is None:
            self.eps, self.gamma, batch = float(eps), float(gamma), ()
        else:  # per run: (runs,) for the scalars, (runs, 1, 1) for the H×H Gram matrices
            self.eps, self.gamma = (as_tensor(np.broadcast_to(np.asarray(v, dtype=np.float64), (runs,)).copy(),
                                              lam.dtype, lam.device) for v in (eps, gamma))
            batch = (runs,)
        self.k = min(d, hidden)
        kw = dict(dtype=lam.dtype, device=lam.device)
        self.u = torch.empty(n_log, *batch, d, **kw)
        self.sv = torch.empty(n_log, *batch, self.k, **kw)
        self.scalars = torch.empty(n_log, *batch, len(_SCALARS), **kw)
        self.C, self.sigma2_test = C, tuple(sigma2_test)
        if C is not None:
            from daedyn.heldout import state_errors  # only runs with a held-out set need it

            self.state_errors = state_errors
            self.test = torch.empty(n_log, *batch, 1 + len(self.sigma2_test), **kw)  # reconstruction, denoising
            self.BUFFERS = (*self.BUFFERS, "test")

    def record(self, row: int, A1, B2, P=None, Q=None):
        """Store the state (A1, B2) as row ``row``; pass P = B2B2ᵀ, Q = A1diag(λ+ε)A1ᵀ if known.

        Returns the loss (a batch: the losses, a float64 array). The singular values are left NaN
        when the loss is not finite (the SVD fails on such input; the driver then stops the run as
        diverged).
        """
        lam, eps, gamma = self.lam, self.eps, self.gamma
        eps_m = eps[:, None, None] if torch.is_tensor(eps) else eps
        # A2 = Q2R2 and A1ᵀ = Q1R1 (R: min(d,H)×H). Then G = A1A1ᵀ = R1ᵀR1 costs O(H³) instead
        # of O(dH²), and the singular values of A2A1 = Q2(R2R1ᵀ)Q1ᵀ are those of the small core
        # R2R1ᵀ. One CPU thread for these LAPACK calls: two gain little here and, on a busy
        # CPU, a two-thread SVD sometimes stalls for hundreds of milliseconds.
        threads = 1 if self.u.device.type == "cpu" else None
        with num_threads(threads):
            R2 = torch.linalg.qr(B2.mT, mode="r").R
            R1 = torch.linalg.qr(A1.mT, mode="r").R
        G = R1.mT @ R1
        if P is None:
            P = R2.mT @ R2
        if Q is None:
            Q_lam = (A1 * lam) @ A1.mT                     # A1 Λ A1ᵀ
        else:
            Q_lam = Q - eps_m * G if torch.is_tensor(eps) or eps else Q
        u = self.u[row]
        torch.sum(A1 * B2, dim=-2, out=u)
        n1sq, n2sq = A1.square().sum((-2, -1)), B2.square().sum((-2, -1))
        lam_u = torch.dot(lam, u) if u.dim() == 1 else (u * lam).sum(-1)
        rec = 0.5 * (self.trace - 2.0 * lam_u + (P * Q_lam).sum((-2, -1)))
        noise = 0.5 * eps * (P * G).sum((-2, -1))
        decay = 0.5 * gamma * (n1sq + n2sq)
        self.scalars[row] = torch.stack([rec + noise + decay, rec, noise, decay, n1sq.sqrt(), n2sq.sqrt(),
                                         torch.linalg.matrix_norm(G - P)], -1)
        if self.C is not None:
            err = self.state_errors(A1, B2, self.C, list(self.sigma2_test), P=P, G=G)
            self.test[row, ..., 0] = err["test_reconstruction"]
            self.test[row, ..., 1:] = err["test_denoising"]
        loss = self.scalars[row, ..., 0].double().cpu().numpy()
        finite = np.isfinite(loss)
        with num_threads(threads):
            if finite.all():
                self.sv[row] = torch.linalg.svdvals(R2 @ R1.mT)
            elif finite.any():  # a batch with diverged runs: the others' singular values
                keep = torch.as_tensor(finite, device=R1.device)
                self.sv[row] = math.nan
                self.sv[row, keep] = torch.linalg.svdvals(R2[keep] @ R1[keep].mT)
            else:
                self.sv[row] = math.nan
        return loss if loss.ndim else float(loss)

    def run(self, i: int) -> SimpleNamespace:
        """Run ``i`` of a batch: its ``dataset(epochs, lam)``."""
        return SimpleNamespace(dataset=lambda epochs, lam: self.dataset(epochs, lam, run=i))

    def dataset(self, epochs: np.ndarray, lam: np.ndarray, run: int | None = None) -> xr.Dataset:
        """The trajectory (of run ``run`` of a batch)."""
        def take(name: str) -> np.ndarray:
            if run is None:
                return getattr(self, name).double().cpu().numpy()
            if self.host is None:  # a batch split into runs: every buffer to the host once, not once a run
                self.host = {b: getattr(self, b).double().cpu().numpy() for b in self.BUFFERS}
            return self.host[name][:, run]

        sc = take("scalars")
        data = {"u": (("epoch", "mode"), take("u")),
                "singular_values": (("epoch", "sv"), take("sv"))}
        for j, name in enumerate(_SCALARS):
            data[name] = (("epoch",), sc[:, j])
        coords = {
            "epoch": ("epoch", np.asarray(epochs, dtype=np.int64)),
            "mode": ("mode", np.arange(lam.shape[0], dtype=np.int64)),
            "lam": ("mode", np.asarray(lam, dtype=np.float64)),
            "sv": ("sv", np.arange(self.k, dtype=np.int64)),
        }
        meta = dict(_META)
        if self.C is not None:
            test = take("test")
            data["test_reconstruction"] = (("epoch",), test[:, 0])
            meta["test_reconstruction"] = _TEST_META["test_reconstruction"]
            if self.sigma2_test:
                data["test_denoising"] = (("epoch", "sigma2_test"), test[:, 1:])
                meta["test_denoising"] = _TEST_META["test_denoising"]
                coords["sigma2_test"] = ("sigma2_test", np.asarray(self.sigma2_test, dtype=np.float64),
                                         {"long_name": "test-noise variance: of the Gaussian test noise", "units": "1"})
        ds = xr.Dataset(data, coords=coords)
        for name, (long_name, units) in meta.items():
            ds[name].attrs.update(long_name=long_name, units=units)
        ds["epoch"].attrs.update(long_name="epoch: one full-batch GD step (for minibatch runs one pass over "
                                 "the data)", units="1")
        ds["mode"].attrs.update(long_name="eigenmode index: of Sigma, by descending eigenvalue",
                                units="1")
        ds["lam"].attrs.update(long_name="eigenvalue of Sigma: Sigma = X^T X / N (uncentred)",
                               units="1")
        ds["sv"].attrs.update(long_name="singular value rank: 0 = largest", units="1")
        return ds


# ---------------------------------------------------------------------------------------
# result


@dataclass
class Run:
    """Result of a training run.

    ``config`` is the run configuration; ``trajectory`` the tracked xr.Dataset (dims epoch, mode,
    ...; the configuration as scalar coordinates); ``W1`` (H×d), ``W2`` (d×H) the final weights
    and ``W1_init``, ``W2_init`` the initial ones, all numpy arrays in the run's dtype and in the
    data's original basis (the exact engine rotates back with V); ``resumed_from`` the epochs the
    run resumed from checkpoints. :meth:`dataset` is the layout of a run file.
    """

    config: LinearConfig
    trajectory: xr.Dataset
    W1: np.ndarray
    W2: np.ndarray
    W1_init: np.ndarray
    W2_init: np.ndarray
    resumed_from: list[int] = dataclasses.field(default_factory=list)

    #: weights stored in a run file (the linear per-mode theory needs the initial ones)
    STORED_WEIGHTS = ("w1_init", "w2_init", "w1", "w2")
    MODEL = "x_hat = W2 W1 x"
    TITLE = "daedyn linear run"
    SUMMARY = ("Trajectory of a two-layer linear autoencoder trained by gradient descent: mode strengths, "
               "singular values, loss terms, weight norms; initial and final weights.")

    def weights(self) -> xr.Dataset:
        """Initial and final weights as an xr.Dataset with dims ("hidden", "feature")."""
        hf, fh = ("hidden", "feature"), ("feature", "hidden")
        ds = xr.Dataset({
            "w1_init": (hf, self.W1_init), "w2_init": (fh, self.W2_init),
            "w1": (hf, self.W1), "w2": (fh, self.W2),
        })
        for name, what in [("w1", "encoder W1"), ("w2", "decoder W2")]:
            ds[name].attrs.update(long_name=f"final {what}: column convention, {self.MODEL}", units="1")
            ds[name + "_init"].attrs.update(long_name=f"initial {what}", units="1")
        return ds

    def dataset(self) -> xr.Dataset:
        """The run file: trajectory and stored weights along (run, seed), every hyperparameter once,
        as a coordinate along ``run`` (so runs of a sweep combine into one dataset)."""
        cfg, traj = self.config, self.trajectory
        scalars = [name for name, var in traj.coords.items() if not var.dims]
        ds = xr.merge([traj.drop_vars(scalars), self.weights()[list(self.STORED_WEIGHTS)]])
        ds = ds.expand_dims(run=[cfg.run or "run"], seed=[cfg.seed])
        ds = ds.assign_coords({name: ("run", [traj[name].item()], dict(traj[name].attrs)) for name in scalars})
        ds["run"].attrs.update(long_name="run name: the run's condition within the experiment")
        ds["seed"].attrs.update(long_name="seed: of the initial weights (and of the noise)", units="1")
        ds.attrs = {**traj.attrs, "title": f"{self.TITLE} {cfg.label} seed {cfg.seed}",
                    "summary": self.SUMMARY}
        return ds


# ---------------------------------------------------------------------------------------
# engines


def _heldout_moment(config: LinearConfig, C, d: int) -> np.ndarray | None:
    """The held-out moment C as a symmetric float64 (d, d) array, or None; checked against the config."""
    if C is None:
        if config.heldout is not None or config.sigma2_test:
            raise ValueError(f"{config.label}: heldout = {config.heldout!r}, sigma2_test = {list(config.sigma2_test)} "
                             "need the held-out moment C = V^T Sigma_test V (rule heldout_moment); none was given")
        return None
    C = np.ascontiguousarray(C.cpu().numpy() if torch.is_tensor(C) else C, dtype=np.float64)
    if C.shape != (d, d):
        raise ValueError(f"{config.label}: the held-out moment C must be ({d}, {d}), got {C.shape}")
    scale = max(float(np.abs(C).max()), 1e-300)
    if not np.all(np.isfinite(C)) or float(np.abs(C - C.T).max()) > 1e-10 * scale:
        raise ValueError(f"{config.label}: the held-out moment C must be a finite symmetric matrix")
    return C


class _LinearEngine(Engine):
    """What the linear engines share beyond :class:`daedyn.training.Engine`: the spectrum in the
    basis V, the initial weights, the two-layer tracker and its guard, all set up before the first
    step. ``C`` (d×d) is the held-out moment VᵀΣ_testV in the basis V, needed when the config names a
    held-out set (``heldout``) or test-noise variances (``sigma2_test``). ``config`` may be a list of
    configurations (a batch, :class:`daedyn.linear_batched.BatchedExactEngine`): then the initial weights, the stability
    limits and the tracker's ε, γ are per run."""

    def __init__(self, config: LinearConfig | list[LinearConfig], lam, V, W1, W2, X=None, C=None):
        if (lam is None) != (V is None):
            raise ValueError("give both lam and V, or neither")
        if lam is None:
            from daedyn import spectrum  # not in the workflow, whose jobs pass their spectrum file's

            lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
        super().__init__(config, lam, W1 is not None)
        config = self.config
        self.lam_t = as_tensor(self.lam, self.dtype, self.device)
        self.V = as_tensor(V, self.dtype, self.device)
        d = self.lam.shape[0]
        if self.V.shape != (d, d):
            raise ValueError(f"V must be ({d}, {d}), got {tuple(self.V.shape)}")
        from daedyn import theory  # only the guard uses it: a theory edit changes no trained result

        runs = [config] if self.configs is None else self.configs
        limits = {(c.eps, c.gamma): theory.stability_limit(self.lam, c.eps, c.gamma, c.hidden)
                  for c in runs}  # one per distinct (ε, γ): the runs share H and the spectrum
        weights = [initial_weights(d, c.hidden, c.init_std, c.seed, W1, W2, self.dtype, self.device) for c in runs]
        if self.configs is None:
            self.W1_0, self.W2_0 = weights[0]
            self.guard(limits[config.eps, config.gamma])
            eps, gamma = config.eps, config.gamma
        else:
            self.W1_0, self.W2_0 = (torch.stack(w) for w in zip(*weights))
            self.guard([limits[c.eps, c.gamma] for c in runs])
            eps, gamma = [c.eps for c in runs], [c.gamma for c in runs]
        self.C = _heldout_moment(config, C, d)
        self.tracker = _Tracker(self.lam_t, eps, gamma, config.hidden, self.records,
                                None if self.C is None else as_tensor(self.C, self.dtype, self.device),
                                config.sigma2_test, runs=None if self.configs is None else len(runs))

    def divergence_note(self, run: int | None = None) -> str:
        """The learning rate against its limit (of run ``run`` of a batch; of every run when None)."""
        if self.configs is not None and run is None:
            return "; ".join(f"run {i}: {self.divergence_note(i)}" for i in range(len(self.configs)))
        c, eta_max = (self.config, self.eta_max) if run is None else (self.configs[run], self.eta_max[run])
        return (f"learning rate eta={c.lr:g}; the stability limit for this spectrum is eta_max={eta_max:.6g} "
                f"(lambda_1={self.lam.max():.6g}, eps={c.eps:g}, gamma={c.gamma:g}, H={c.hidden})")

    def fingerprint_extra(self) -> dict:
        extra = super().fingerprint_extra()
        if self.C is not None:  # records made with another held-out moment must not be resumed
            extra["heldout_sha256"] = hashlib.sha256(self.C.tobytes()).hexdigest()
        return extra


class ExactEngine(_LinearEngine):
    """Full-batch GD on the marginalised loss, in Σ's eigenbasis from (λ, V) alone.

    State A1 = W1 V and B2 = A2ᵀ = W2ᵀ V, both H×d and contiguous; one step forms the Gram
    matrices P = A2ᵀA2 and Q = A1 diag(λ+ε) A1ᵀ (reused by the record of the same epoch) and
    updates into double buffers (no allocation inside the loop).
    """

    def __init__(self, config: LinearConfig, lam, V, W1=None, W2=None, C=None):
        super().__init__(config, lam, V, W1, W2, C=C)
        _check_orthogonal(self.V)
        V_t, H = self.V, config.hidden
        self.A1, self.B2 = (self.W1_0 @ V_t).contiguous(), (self.W2_0.T @ V_t).contiguous()
        self.N1, self.N2 = torch.empty_like(self.A1), torch.empty_like(self.B2)
        self.A1s = torch.empty_like(self.A1)
        self.P = torch.empty(H, H, dtype=self.dtype, device=self.device)
        self.Q = torch.empty_like(self.P)
        self.s = self.lam_t + config.eps                 # diag(λ+ε): the noisy-input correlation
        self.eta, self.c = float(config.lr), 1.0 - float(config.lr) * float(config.gamma)
        self.eta_lam = self.lam_t * self.eta
        self.fresh = False                               # P, Q belong to the current state

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, "B2": self.B2}

    def _grams(self) -> None:
        if not self.fresh:
            torch.mul(self.A1, self.s, out=self.A1s)
            torch.mm(self.B2, self.B2.T, out=self.P)         # P = A2ᵀA2 = W2ᵀW2
            torch.mm(self.A1s, self.A1.T, out=self.Q)        # Q = A1 diag(λ+ε) A1ᵀ
            self.fresh = True

    def record(self, row: int, epoch: int) -> float:
        self._grams()
        return self.tracker.record(row, self.A1, self.B2, self.P, self.Q)

    def step(self, epoch: int) -> None:
        self._grams()
        A1, B2, eta = self.A1, self.B2, self.eta
        # A1' = c A1 + η B2Λ − η P A1 diag(λ+ε)
        torch.mul(B2, self.eta_lam, out=self.N1).add_(A1, alpha=self.c).addmm_(self.P, self.A1s, alpha=-eta)
        # A2'ᵀ = c B2 + η A1Λ − η Q B2   (Q symmetric, so (A2 Q)ᵀ = Q B2)
        torch.mul(A1, self.eta_lam, out=self.N2).add_(B2, alpha=self.c).addmm_(self.Q, B2, alpha=-eta)
        self.A1, self.N1, self.B2, self.N2 = self.N1, A1, self.N2, B2
        self.fresh = False

    def final_weights(self):
        return self.A1 @ self.V.T, (self.B2 @ self.V.T).T


class DatapassEngine(_LinearEngine):
    """Reference full-batch GD on the marginalised loss from a pass over the data (O(N·d·H)).

    With H = XW₁ᵀ (N×H) and E = X − HW₂ᵀ (N×d), the gradients are
    ∇W₂ = −EᵀH/N + εW₂W₁W₁ᵀ + γW₂ and ∇W₁ = −(EW₂)ᵀX/N + εW₂ᵀW₂W₁ + γW₁
    (noise marginalised: the ε‖W‖²/2 term).
    """

    def __init__(self, config: LinearConfig, X, lam=None, V=None, W1=None, W2=None, C=None):
        super().__init__(config, lam, V, W1, W2, X=X, C=C)
        self.X = as_tensor(X, self.dtype, self.device).contiguous()  # full batch: no minibatch size
        n, d = self.X.shape
        self.W1, self.W2 = self.W1_0.clone(), self.W2_0.clone()
        self.Hh = torch.empty(n, config.hidden, dtype=self.dtype, device=self.device)
        self.E = torch.empty(n, d, dtype=self.dtype, device=self.device)
        self.EW2 = torch.empty_like(self.Hh)
        self.g1, self.g2 = torch.empty_like(self.W1), torch.empty_like(self.W2)

    def record(self, row: int, epoch: int) -> float:
        return self.tracker.record(row, self.W1 @ self.V, self.W2.T @ self.V)

    def step(self, epoch: int) -> None:
        X, W1, W2, g1, g2 = self.X, self.W1, self.W2, self.g1, self.g2
        n = X.shape[0]
        eps, gamma = self.config.eps, self.config.gamma
        torch.mm(X, W1.T, out=self.Hh)                                # H = X W1ᵀ
        torch.addmm(X, self.Hh, W2.T, alpha=-1.0, out=self.E)         # E = X − H W2ᵀ
        torch.mm(self.E, W2, out=self.EW2)
        # ∇W1 = −(E W2)ᵀ X / N + ε W2ᵀW2 W1 + γ W1
        torch.mm(self.EW2.T, X, out=g1).mul_(-1.0 / n)
        # ∇W2 = −Eᵀ H / N + ε W2 W1 W1ᵀ + γ W2
        torch.mm(self.E.T, self.Hh, out=g2).mul_(-1.0 / n)
        if eps:
            g1.addmm_(W2.T @ W2, W1, alpha=eps)
            g2.addmm_(W2, W1 @ W1.T, alpha=eps)
        if gamma:
            g1.add_(W1, alpha=gamma)
            g2.add_(W2, alpha=gamma)
        W1.add_(g1, alpha=-float(self.config.lr))
        W2.add_(g2, alpha=-float(self.config.lr))


def corrupted_batch_step(W1, W2, g1, g2, xb, xt, eta: float, gamma: float) -> None:
    """One gradient step, in place, on (1/B)Σ_b ½‖x_b − W₂W₁x̃_b‖² + γ/2(‖W₁‖² + ‖W₂‖²) for a batch of
    clean rows ``xb`` and their corrupted copies ``xt`` (Gaussian noise, masks, ...); ``g1``, ``g2``
    are gradient buffers shaped like W1, W2."""
    h = xt @ W1.T                                                  # H = X̃ W1ᵀ
    e = torch.addmm(xb, h, W2.T, alpha=-1.0)                       # E = X − H W2ᵀ
    inv_b = 1.0 / xb.shape[0]
    torch.mm((e @ W2).T, xt, out=g1).mul_(-inv_b)                  # −(E W2)ᵀ X̃ / B
    torch.mm(e.T, h, out=g2).mul_(-inv_b)                          # −Eᵀ H / B
    if gamma:
        g1.add_(W1, alpha=gamma)
        g2.add_(W2, alpha=gamma)
    W1.add_(g1, alpha=-eta)
    W2.add_(g2, alpha=-eta)


class SampledEngine(_LinearEngine):
    """A real linear DAE: (minibatch) GD with fresh Gaussian input noise every step.

    For a batch x_1…x_B and noise n_b ~ N(0, εI) drawn anew each step, x̃ = x + n, the step
    follows the gradient of (1/B)Σ_b ½‖x_b − W₂W₁x̃_b‖² + γ/2(‖W₁‖² + ‖W₂‖²):
    with H = X̃W₁ᵀ and E = X − HW₂ᵀ, ∇W₂ = −EᵀH/B + γW₂, ∇W₁ = −(EW₂)ᵀX̃/B + γW₁, an unbiased
    estimate of the marginalised gradient. An epoch is one pass over the data in minibatches of
    ``batch_size`` rows (the last one may be smaller), in a fresh random order each epoch when
    ``shuffle``; ``batch_size`` None means full batch, one step per epoch (not shuffled). Noise and
    order come from a ``torch.Generator`` on the device seeded with :func:`noise_seed` (seed), so
    CPU and CUDA runs draw different noise.
    """

    def __init__(self, config: LinearConfig, X, lam=None, V=None, W1=None, W2=None, C=None):
        super().__init__(config, lam, V, W1, W2, X=X, C=C)
        self.use_data(X, config.batch_size)
        n, d = self.X.shape
        self.shuffle = config.shuffle and self.batch < n
        self.W1, self.W2 = self.W1_0.clone(), self.W2_0.clone()
        self.gen = torch.Generator(self.device).manual_seed(noise_seed(config.seed))
        self.noise = torch.empty(self.batch, d, dtype=self.dtype, device=self.device)
        self.g1, self.g2 = torch.empty_like(self.W1), torch.empty_like(self.W2)

    def generators(self) -> dict[str, torch.Generator]:
        return {"noise": self.gen}

    def record(self, row: int, epoch: int) -> float:
        return self.tracker.record(row, self.W1 @ self.V, self.W2.T @ self.V)

    def step(self, epoch: int) -> None:
        X, W1, W2, g1, g2 = self.X, self.W1, self.W2, self.g1, self.g2
        eps, gamma, eta = self.config.eps, self.config.gamma, float(self.config.lr)
        std = math.sqrt(eps)
        for idx in minibatches(X.shape[0], self.batch, [self.gen] if self.shuffle else (), self.device):
            xb = X[idx]
            if eps:
                nb = self.noise[: xb.shape[0]]
                nb.normal_(0.0, std, generator=self.gen)
                xt = xb + nb                                           # x̃ = x + n
            else:
                xt = xb
            corrupted_batch_step(W1, W2, g1, g2, xb, xt, eta, gamma)


def _config(config: LinearConfig | None, engine: str, n_samples: int | None, overrides: dict) -> LinearConfig:
    """The run configuration: ``config`` with ``overrides``, or one made from the schema's defaults."""
    if config is None:
        config = LinearConfig.make(engine=engine, n_samples=n_samples, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    if config.engine != engine:
        raise ValueError(f"{config.label}: engine is {config.engine!r}, not {engine!r}")
    if n_samples is not None and config.n_samples is not None and config.n_samples != n_samples:
        raise ValueError(f"{config.label}: n_samples is {config.n_samples} but the data have {n_samples} rows")
    return config


def train_exact(lam, V, config: LinearConfig | None = None, *, W1=None, W2=None, C=None,
                checkpoint: Checkpoint | None = None, threads: int | None = None, progress: bool = False,
                **overrides) -> Run:
    """Full-batch GD on the marginalised loss, run in Σ's eigenbasis from (λ, V) alone.

    ``lam`` (d,) are Σ's eigenvalues (descending), ``V`` (d, d) its orthonormal eigenvectors as
    columns (checked with a random probe). One step costs O(d·H²) (:class:`ExactEngine`); the
    trajectory is that of :func:`train_datapass` on data with this Σ. ``config`` (or keywords
    for :meth:`LinearConfig.make`, e.g. ``hidden=16, lr=0.01, epochs=200, eps=0.5``) gives the
    run; ``W1`` (H×d), ``W2`` (d×H) optional initial weights; ``C`` (d×d) the held-out moment
    VᵀΣ_testV, whose errors are then recorded too (config ``heldout``, ``sigma2_test``).
    """
    config = _config(config, "exact", None, overrides)
    return run_engine(ExactEngine(config, lam, V, W1, W2, C), Run, checkpoint=checkpoint, threads=threads,
                      progress=progress)


def train_datapass(X, config: LinearConfig | None = None, *, lam=None, V=None, W1=None, W2=None, C=None,
                   checkpoint: Checkpoint | None = None, threads: int | None = None, progress: bool = False,
                   **overrides) -> Run:
    """Reference full-batch GD from a pass over the data X (N×d) (:class:`DatapassEngine`).

    ``lam``, ``V`` (Σ's spectrum, used for the tracking and the guard) are computed from X in
    float64 when not given; ``C`` as for :func:`train_exact`, in the basis V.
    """
    config = _config(config, "datapass", int(np.shape(X)[0]), overrides)
    return run_engine(DatapassEngine(config, X, lam, V, W1, W2, C), Run, checkpoint=checkpoint,
                      threads=threads, progress=progress)


def train_sampled(X, config: LinearConfig | None = None, *, lam=None, V=None, W1=None, W2=None, C=None,
                  checkpoint: Checkpoint | None = None, threads: int | None = None, progress: bool = False,
                  **overrides) -> Run:
    """A real linear DAE with fresh Gaussian input noise every step (:class:`SampledEngine`); ``C``
    as for :func:`train_datapass`."""
    config = _config(config, "sampled", int(np.shape(X)[0]), overrides)
    return run_engine(SampledEngine(config, X, lam, V, W1, W2, C), Run, checkpoint=checkpoint, threads=threads,
                      progress=progress)


def train(config: LinearConfig, problem: Problem, **runtime) -> Run:
    """Train with the engine ``config.engine`` on ``problem`` (its ``X`` is needed by the data-pass
    engines, its ``C`` by held-out records). ``runtime``: ``W1``, ``W2`` (initial weights),
    ``checkpoint``, ``threads``, ``progress``."""
    if config.engine == "exact":
        return train_exact(problem.lam, problem.V, config, C=problem.C, **runtime)
    trainer = train_datapass if config.engine == "datapass" else train_sampled
    return trainer(problem.data(f"{config.label}: engine {config.engine!r}"), config, lam=problem.lam, V=problem.V,
                   C=problem.C, **runtime)
