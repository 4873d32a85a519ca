"""The engines of the sampled-vs-marginalised-noise experiment (:mod:`daedyn.sampled`): S sampled-noise
linear DAEs trained at once (:class:`SeedBatchSampledEngine`) and one DAE trained on one fixed noisy copy
of the data (:class:`FixedCopyEngine`), both engines of :func:`daedyn.training.drive`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from daedyn import linear, theory
from daedyn.runconfig import LinearConfig
from daedyn.training import (Checkpoint, Engine, Problem, Records, as_tensor, init_weights, initial_weights,
                             minibatches, noise_seed, run_engine)

__all__ = ["SeedBatchSampledEngine", "SeedBatchRun", "FixedCopyEngine", "train_seed_batch", "train_fixed_copy"]


class _SeedBatchTracker(Records):
    """Records of S seeds at once: ``u`` (row, seed, mode) of the tracked modes and the marginalised
    loss per seed (row, seed)."""

    BUFFERS = ("u", "loss")

    def __init__(self, n_log: int, seeds: Sequence[int], modes: Sequence[int], steps_per_epoch: int, dtype, device):
        self.seeds, self.modes, self.steps_per_epoch = list(seeds), list(modes), int(steps_per_epoch)
        self.u = torch.full((n_log, len(self.seeds), len(self.modes)), math.nan, dtype=dtype, device=device)
        self.loss = torch.full((n_log, len(self.seeds)), math.nan, dtype=dtype, device=device)

    def dataset(self, epochs: np.ndarray, lam: np.ndarray) -> xr.Dataset:
        epochs = np.asarray(epochs, dtype=np.int64)
        ds = xr.Dataset({
            "u": (("seed", "epoch", "mode"), self.u.permute(1, 0, 2).double().cpu().numpy(),
                  {"long_name": "mode strength: u_i = v_i^T W v_i (W = W2 W1)", "units": "1"}),
            "loss": (("seed", "epoch"), self.loss.T.double().cpu().numpy(),
                     {"long_name": "marginalised loss (reconstruction + noise + decay)", "units": "1"}),
        }, coords={"seed": ("seed", np.asarray(self.seeds, np.int64), {"long_name": "seed of the noise", "units": "1"}),
                   "epoch": ("epoch", epochs, {"long_name": "epoch: one pass over the data", "units": "1"}),
                   "mode": ("mode", np.asarray(self.modes, np.int64),
                            {"long_name": "eigenmode index: of Sigma, 0 = largest eigenvalue", "units": "1"}),
                   "lam": ("mode", np.asarray(lam, np.float64)[self.modes],
                           {"long_name": "eigenvalue of Sigma = X^T X / N", "units": "1"}),
                   "step": ("epoch", epochs * self.steps_per_epoch,
                            {"long_name": "gradient steps taken: epochs x steps per epoch", "units": "1"})})
        return ds


class _NoiseEngine(Engine):
    """What the seed-batched and the fixed-copy engines share beyond :class:`daedyn.training.Engine`:
    the marginalised problem's stability limit and the gradient step with weight decay."""

    def _guard(self) -> None:
        c = self.config
        self.guard(theory.stability_limit(self.lam, c.eps, c.gamma, c.hidden))

    def _descend(self, g1: torch.Tensor, g2: torch.Tensor) -> None:
        """W ← W − η(g + γW) for both layers (g: the data part of the gradient)."""
        gamma, lr = self.config.gamma, self.config.lr
        if gamma:
            g1.add_(self.W1, alpha=gamma)
            g2.add_(self.W2, alpha=gamma)
        self.W1.add_(g1, alpha=-lr)
        self.W2.add_(g2, alpha=-lr)

    def divergence_note(self) -> str:
        c = self.config
        return (f"learning rate eta={c.lr:g}; the (marginalised) stability limit for this spectrum is "
                f"eta_max={self.eta_max:.6g} (lambda_1={self.lam.max():.6g}, eps={c.eps:g}, gamma={c.gamma:g}, "
                f"H={c.hidden})")


class SeedBatchSampledEngine(_NoiseEngine):
    """S sampled-noise linear DAEs trained at once; the seed is the leading batch dimension.

    ``config`` is the runs' :class:`daedyn.runconfig.LinearConfig` (engine "sampled"); seed s of
    ``seeds`` reproduces :func:`daedyn.linear.train_sampled` with that configuration and ``seed=s``:
    initial weights from :func:`daedyn.training.init_weights` (unless ``W1``/``W2`` are given: (H, d)/(d, H)
    shared by all seeds, or (S, H, d)/(S, d, H) per seed), and a per-seed ``torch.Generator`` seeded with
    :func:`daedyn.training.noise_seed` that draws, per epoch, the minibatch order (when shuffled) and then
    each minibatch's noise N(0, εI). Each step follows the gradient of
    (1/b) Σ ½‖x − W₂W₁x̃‖² + γ/2(‖W₁‖² + ‖W₂‖²) for all seeds with ``torch.bmm``; the products are
    the same as ``train_sampled``'s, so seeds agree with it to rounding.

    Records ``u`` (seed, mode) for the tracked ``modes`` only (u_i = v_iᵀW₂W₁v_i) and the
    marginalised loss per seed (½ mean‖x − Wx‖² + ε/2‖W‖² + γ/2(‖W₁‖² + ‖W₂‖²), one data pass,
    about half a full-batch step); ``record`` returns the mean loss over seeds. Engine of
    :func:`daedyn.training.drive` (:func:`train_seed_batch`).
    """

    def __init__(self, config: LinearConfig, X, lam, V, *, seeds: Sequence[int], modes: Sequence[int],
                 W1=None, W2=None):
        super().__init__(config, lam, W1 is not None)
        dt, dev = self.dtype, self.device
        self.use_data(X, config.batch_size)
        n, d = self.X.shape
        if np.shape(lam) != (d,) or np.shape(V) != (d, d):
            raise ValueError(f"lam must be ({d},) and V ({d}, {d}) for data with d = {d} columns")
        self.seeds = [int(s) for s in seeds]
        self.modes = [int(m) for m in modes]
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        S, H = len(self.seeds), config.hidden
        self.shuffle = config.shuffle and self.batch < n
        if W1 is None and W2 is None:
            pairs = [init_weights(d, H, init_std=config.init_std, seed=s) for s in self.seeds]
            W1, W2 = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        if (W1 is None) != (W2 is None):
            raise ValueError("give both W1 and W2, or neither")
        W1, W2 = as_tensor(W1, dt, dev), as_tensor(W2, dt, dev)
        if W1.dim() == 2:
            W1, W2 = W1.expand(S, -1, -1), W2.expand(S, -1, -1)
        if W1.shape != (S, H, d) or W2.shape != (S, d, H):
            raise ValueError(f"W1 must be ({H}, {d}) or ({S}, {H}, {d}) and W2 ({d}, {H}) or ({S}, {d}, {H}); "
                             f"got {tuple(W1.shape)} and {tuple(W2.shape)}")
        self.W1_0, self.W2_0 = W1.contiguous().clone(), W2.contiguous().clone()
        self.W1, self.W2 = self.W1_0.clone(), self.W2_0.clone()
        self.Vm = as_tensor(np.asarray(V)[:, self.modes], dt, dev)
        self.std = math.sqrt(config.eps)
        self.gens = [torch.Generator(dev).manual_seed(noise_seed(s)) for s in self.seeds]
        self.noise = torch.empty(S, self.batch, d, dtype=dt, device=dev)
        self._guard()
        self.tracker = _SeedBatchTracker(self.records, self.seeds, self.modes, -(-n // self.batch), dt, dev)

    def generators(self) -> dict[str, torch.Generator]:
        return {f"noise{s}": g for s, g in zip(self.seeds, self.gens)}

    @torch.no_grad()
    def record(self, row: int, epoch: int) -> float:
        W1, W2, X, c = self.W1, self.W2, self.X, self.config
        A = torch.matmul(W1, self.Vm)                          # (S, H, m): a_i = W1 v_i
        Bm = torch.matmul(W2.transpose(1, 2), self.Vm)         # (S, H, m): b_i = W2ᵀ v_i
        self.tracker.u[row] = (A * Bm).sum(dim=1)
        h = torch.matmul(X, W1.transpose(1, 2))                # (S, N, H)
        rec = 0.5 * (X.square().sum() - 2 * (h * torch.matmul(X, W2)).sum((1, 2))
                     + (torch.bmm(h.transpose(1, 2), h) * torch.bmm(W2.transpose(1, 2), W2)).sum((1, 2)))
        G = torch.bmm(W1, W1.transpose(1, 2))
        P = torch.bmm(W2.transpose(1, 2), W2)
        loss = rec / X.shape[0] + 0.5 * c.eps * (P * G).sum((1, 2))
        if c.gamma:
            loss = loss + 0.5 * c.gamma * (W1.square().sum((1, 2)) + W2.square().sum((1, 2)))
        self.tracker.loss[row] = loss
        return float(loss.mean())

    @torch.no_grad()
    def step(self, epoch: int) -> None:
        X, S = self.X, len(self.seeds)
        for idx in minibatches(X.shape[0], self.batch, self.gens if self.shuffle else (), self.device):
            xb = X[idx] if torch.is_tensor(idx) else X[idx].expand(S, -1, -1)  # in order: one batch for all
            b = xb.shape[1]
            if self.std:
                nb = self.noise[:, :b]
                for s, g in enumerate(self.gens):
                    nb[s].normal_(0.0, self.std, generator=g)
                xt = xb + nb                                            # x̃ = x + n
            else:
                xt = xb
            h = torch.bmm(xt, self.W1.transpose(1, 2))                  # H = X̃ W1ᵀ
            e = torch.baddbmm(xb, h, self.W2.transpose(1, 2), alpha=-1.0)  # E = X − H W2ᵀ
            g1 = torch.bmm(torch.bmm(e, self.W2).transpose(1, 2), xt).mul_(-1.0 / b)  # −(E W2)ᵀ X̃ / b
            g2 = torch.bmm(e.transpose(1, 2), h).mul_(-1.0 / b)                        # −Eᵀ H / b
            self._descend(g1, g2)

    def fingerprint_extra(self) -> dict:
        return {**super().fingerprint_extra(), "seeds": self.seeds, "modes": self.modes}


@dataclass
class SeedBatchRun(linear.Run):
    """Result of :func:`train_seed_batch`: as :class:`daedyn.linear.Run`, with ``trajectory`` holding
    ``u`` (seed, epoch, mode) and ``loss`` (seed, epoch), and the weights with a leading seed dimension
    ((S, H, d) and (S, d, H))."""

    def dataset(self) -> xr.Dataset:
        """The trajectory with the configuration as coordinates (the weights are not stored)."""
        return self.trajectory


def train_seed_batch(config: LinearConfig, problem: Problem, *, seeds: Sequence[int], modes: Sequence[int], W1=None,
                     W2=None, checkpoint: Checkpoint | None = None, threads: int | None = None,
                     progress: bool = False) -> SeedBatchRun:
    """Train the sampled-noise DAE ``config`` on ``problem`` (its data) for every seed in ``seeds`` at
    once (:class:`SeedBatchSampledEngine`, driven by :func:`daedyn.training.drive`)."""
    if config.engine != "sampled":
        raise ValueError(f"{config.label}: the seed-batched trainer samples noise; engine is {config.engine!r}")
    engine = SeedBatchSampledEngine(config, problem.data(f"{config.label}: the seed-batched engine"), problem.lam,
                                    problem.V, seeds=seeds, modes=modes, W1=W1, W2=W2)
    return run_engine(engine, SeedBatchRun, checkpoint=checkpoint, threads=threads, progress=progress)


class FixedCopyEngine(_NoiseEngine):
    """Linear DAE trained on one fixed noisy copy x̃ₙ = xₙ + nₙ of the data (target xₙ).

    ``config`` is a :class:`daedyn.runconfig.LinearConfig` with engine "datapass" (each epoch is one
    pass over the fixed pairs (x̃ₙ, xₙ)); ``config.eps`` is the variance of the copy's noise and
    ``config.seed`` the copy: it is drawn once, at construction, from a CPU ``torch.Generator`` seeded
    with :func:`daedyn.training.noise_seed` (seed), in float64, then cast; the minibatch order (when
    ``batch_size`` < N and ``shuffle``) comes from the same generator, one permutation per epoch. A
    step follows the gradient of (1/b) Σ ½‖xₙ − W₂W₁x̃ₙ‖² + γ/2(‖W₁‖² + ‖W₂‖²) over the batch.
    Initial weights as in :func:`daedyn.training.init_weights` unless given. Records through the
    linear engines' tracker (``u`` of all modes, singular values, the marginalised loss terms for
    noise ε, norms, balancedness). Full batch, the fixed point (γ = 0) is
    :func:`daedyn.sampled.fixed_copy_minimiser` on (X, X̃). The stability guard uses the marginalised problem's
    limit, which the copy's curvature matches to first order. Engine of :func:`daedyn.training.drive`
    (:func:`train_fixed_copy`).
    """

    def __init__(self, config: LinearConfig, X, lam, V, W1=None, W2=None):
        super().__init__(config, lam, W1 is not None)
        dt, dev = self.dtype, self.device
        X64 = torch.as_tensor(np.asarray(X, dtype=np.float64))
        n, d = X64.shape
        self.gen = torch.Generator("cpu").manual_seed(noise_seed(config.seed))
        noise = math.sqrt(config.eps) * torch.randn(n, d, generator=self.gen, dtype=torch.float64)
        self.Xt = (X64 + noise).to(dtype=dt, device=dev)
        self.use_data(X64, config.batch_size)
        self.shuffle = config.shuffle and self.batch < n
        self.W1_0, self.W2_0 = initial_weights(d, config.hidden, config.init_std, config.seed, W1, W2, dt, dev)
        self.W1, self.W2 = self.W1_0.clone(), self.W2_0.clone()
        self.V = as_tensor(V, dt, dev)
        self._guard()
        self.tracker = linear._Tracker(as_tensor(self.lam, dt, dev), config.eps, config.gamma, config.hidden,
                                       self.records)

    def generators(self) -> dict[str, torch.Generator]:
        return {"order": self.gen} if self.shuffle else {}

    @torch.no_grad()
    def record(self, row: int, epoch: int) -> float:
        return self.tracker.record(row, self.W1 @ self.V, self.W2.T @ self.V)

    @torch.no_grad()
    def step(self, epoch: int) -> None:
        for idx in minibatches(self.X.shape[0], self.batch, [self.gen] if self.shuffle else (), self.device):
            xb, xt = self.X[idx], self.Xt[idx]
            h = xt @ self.W1.T
            e = torch.addmm(xb, h, self.W2.T, alpha=-1.0)
            g1 = ((e @ self.W2).T @ xt).mul_(-1.0 / xb.shape[0])
            g2 = (e.T @ h).mul_(-1.0 / xb.shape[0])
            self._descend(g1, g2)


def train_fixed_copy(config: LinearConfig, problem: Problem, *, W1=None, W2=None, checkpoint: Checkpoint | None = None,
                     threads: int | None = None, progress: bool = False) -> linear.Run:
    """Train on the fixed noisy copy ``config.seed`` of ``problem.X`` (:class:`FixedCopyEngine`, driven by
    :func:`daedyn.training.drive`)."""
    if config.engine != "datapass":
        raise ValueError(f"{config.label}: a fixed copy is a pass over fixed data; engine is {config.engine!r}")
    engine = FixedCopyEngine(config, problem.data(f"{config.label}: the fixed-copy engine"), problem.lam, problem.V,
                             W1, W2)
    return run_engine(engine, linear.Run, checkpoint=checkpoint, threads=threads, progress=progress)

