"""Batches of runs that share a spectrum, trained as one tensor along a leading run dimension.

A sweep's runs often differ only in hyperparameters (lr, eps, gamma, seed, init_std, q, ...) while
their state has the same shapes. A batched engine (:class:`daedyn.depth.BatchedDepthEngine`,
:class:`daedyn.masking.BatchedMaskingEngine`) holds every run's state with a leading run dimension
and steps them all with batched products (``torch.bmm``), so a thousand small runs cost a few large
matrix products per step instead of a thousand small ones. It is an ordinary
:class:`daedyn.training.Engine`, driven by the one loop :func:`daedyn.training.drive`, so checkpoints
and resume of the whole batch come from there. This module holds what every family's batch shares:

* :func:`check_batchable` and :func:`batch_groups`: which runs can share a batch (equal values of the
  family's shared keys: shapes, dtype, device, epochs, log_every and what fixes the spectrum), with
  an error naming the key that differs;
* :class:`BatchEngine`: what a one-run engine does for itself, per run: the stability guard before
  the first step (one error naming every run above its own limit; ``allow_unstable`` per run),
  divergence detection (the error names each diverged run, the epoch and why, in the one-run
  engine's words), the checkpoint fingerprint of every configuration;
* :func:`train_engine`: drives the engine and splits it into one run per configuration, laid out by
  :func:`daedyn.training.collect_run` exactly as a run trained alone.

A batched run equals the one-run engine's run up to rounding: the batched products and the per-run
scalars applied as tensors round differently from the one-run engine's fused operations in the
last bit (float64: within 1e-12 of each array's scale; float32: within 1e-6).
"""

from __future__ import annotations

import abc
import math
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from daedyn import training
from daedyn.training import (EXPLODE_FACTOR, Checkpoint, DivergenceError, Engine, UnstableLearningRateError,
                             code_sha256, collect_run, fingerprint, num_threads, stability_guard)

__all__ = ["BatchEngine", "batch_groups", "check_batchable", "train_engine"]


def _value(config, key: str):
    return getattr(config, key)


def check_batchable(configs: Sequence, keys: Sequence[str]) -> None:
    """A ValueError naming the first key of ``keys`` whose value differs between ``configs`` (and
    the two runs), or that they are of different families; nothing when they can share a batch."""
    if not configs:
        raise ValueError("a batch needs at least one run configuration")
    first = configs[0]
    for cfg in configs[1:]:
        if type(cfg) is not type(first):
            raise ValueError(f"runs {first.label} and {cfg.label} are of different families "
                             f"({type(first).__name__}, {type(cfg).__name__}); a batch holds one family")
        for key in keys:
            a, b = _value(first, key), _value(cfg, key)
            if a != b:
                raise ValueError(
                    f"runs {first.label} seed {first.seed} and {cfg.label} seed {cfg.seed} cannot share a batch: "
                    f"{key} differs ({a!r} against {b!r}); the runs of one batch must share {', '.join(keys)}. "
                    "Split the configurations with batch_groups and train each group as its own batch")


def batch_groups(configs: Sequence, keys: Sequence[str]) -> list[list[int]]:
    """The indices of ``configs`` grouped by equal values of ``keys`` (each group one batch), groups in
    the order of their first member, members in order."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault((type(cfg), *(repr(_value(cfg, k)) for k in keys)), []).append(i)
    return list(groups.values())


class BatchEngine(Engine):
    """A :class:`daedyn.training.Engine` whose state holds ``n`` runs along a leading dimension.

    ``configs`` are the runs' configurations (after any the engine resolves, such as a matched decay);
    ``config`` is the first, whose shared settings (epochs, log_every, dtype, device) hold for all.
    A subclass sets its batched state, ``tracker``, ``W1_0``/``W2_0`` (n, …), calls :meth:`guard_runs`
    before the first step and returns :meth:`check`'s value from :meth:`record`. ``ONE_RUN`` is the
    one-run engine whose divergence words each run's error reuses (:meth:`why_run`).
    """

    ONE_RUN: type[Engine]

    def __init__(self, configs: Sequence, lam):
        configs = list(configs)
        super().__init__(configs[0], lam, False)
        self.configs = configs
        self.n = len(configs)
        # each run's first recorded loss, the reference of its divergence test; in state() so that a
        # resumed batch keeps it
        self.first_loss = torch.full((self.n,), math.nan, dtype=torch.float64)

    @abc.abstractmethod
    def batch_state(self) -> dict[str, torch.Tensor]:
        """The batched tensors of the training state (without the divergence references)."""

    def state(self) -> dict[str, torch.Tensor]:
        return {**self.batch_state(), "first_loss": self.first_loss}

    def guard_runs(self, limits) -> None:
        """Each run's learning rate against its own stability limit (``limits``, one per run), before
        the first step: one :class:`~daedyn.training.UnstableLearningRateError` naming every run at
        or above its limit that does not allow it (``allow_unstable``); the others as alone."""
        self.eta_max = np.asarray(limits, dtype=np.float64)
        unstable = []
        for cfg, eta_max in zip(self.configs, self.eta_max):
            try:
                stability_guard(cfg, self.lam, eta_max=float(eta_max))
            except UnstableLearningRateError as err:
                unstable.append(f"seed {cfg.seed}: {err}")
        if unstable:
            raise UnstableLearningRateError(
                f"{len(unstable)} of the {self.n} runs of the batch are at or above their stability limit; "
                "none was trained:\n" + "\n".join(unstable))

    def run_view(self, i: int) -> SimpleNamespace:
        """What the one-run engine's divergence words read, for run ``i``."""
        return SimpleNamespace(config=self.configs[i], lam=self.lam, eta_max=float(self.eta_max[i]),
                               given=self.given, W1_0=self.W1_0[i], W2_0=self.W2_0[i])

    def why_run(self, i: int) -> str:
        """Run ``i``'s :meth:`~daedyn.training.Engine.why_diverged`, in the one-run engine's words."""
        view = self.run_view(i)
        view.divergence_note = lambda: self.ONE_RUN.divergence_note(view)
        return Engine.why_diverged(view)

    def divergence_note(self) -> str:
        lr = [c.lr for c in self.configs]
        return (f"{self.n} runs, learning rates eta={min(lr):g} to {max(lr):g}; their stability limits "
                f"eta_max={self.eta_max.min():.6g} to {self.eta_max.max():.6g}")

    def check(self, epoch: int, losses: torch.Tensor) -> float:
        """Divergence of each run at a recorded epoch (:func:`daedyn.training.drive`'s test, per run:
        a non-finite loss, or one above ``EXPLODE_FACTOR`` times the run's first): a
        :class:`~daedyn.training.DivergenceError` naming every such run, its loss and why. Returns the
        mean loss of the runs, the loss the batch's progress lines show."""
        loss = losses.detach().double().cpu()
        unset = torch.isnan(self.first_loss)
        self.first_loss[unset] = loss[unset]
        first = self.first_loss
        bad = ~torch.isfinite(loss) | (loss > EXPLODE_FACTOR * first.abs().clamp_min(1e-30))
        if bool(bad.any()):
            runs = [f"{self.configs[i].label} seed {self.configs[i].seed} (loss {loss[i]:.4g}, initial loss "
                    f"{first[i]:.4g}): {self.why_run(i)}" for i in torch.nonzero(bad).ravel().tolist()]
            raise DivergenceError(f"training diverged by epoch {epoch} in {len(runs)} of the {self.n} runs of the "
                                  "batch: " + "; ".join(runs))
        return float(loss.mean())

    def derived_run(self, i: int) -> dict:
        """Run ``i``'s :meth:`~daedyn.training.Engine.derived` facts."""
        return {**self.derived(), "eta_max": float(self.eta_max[i])}

    def fingerprint(self) -> str:
        return fingerprint(self.config, self.lam, self, configs=[c.to_dict() for c in self.configs],
                           **self.fingerprint_extra())

    def describe(self) -> str:
        """The batch in progress lines: engine, runs, and what the loss is."""
        first, last = self.configs[0], self.configs[-1]
        span = f"{first.label} seed {first.seed}" + (f" ... {last.label} seed {last.seed}" if self.n > 1 else "")
        return f"{type(self).__name__} of {self.n} runs ({span}; loss: their mean)"


def train_engine(engine: BatchEngine, run_cls, *, checkpoint: Checkpoint | None = None, threads: int | None = None,
                 progress: bool = False) -> list:
    """Drive the batch (:func:`daedyn.training.drive`) and return one ``run_cls`` per configuration,
    in order, each laid out as :func:`daedyn.training.run_engine` lays out a run trained alone. The
    tracker gives each run's records (``tracker.run(i)``)."""
    if checkpoint is not None:
        checkpoint.fingerprint = engine.fingerprint()
        checkpoint.code = code_sha256(engine, checkpoint.sources)
    with num_threads(threads):
        loop = training.drive(engine, engine.config, checkpoint=checkpoint, progress=progress, desc=engine.describe())
    weights = [t.detach().cpu().numpy() for t in (*engine.final_weights(), engine.W1_0, engine.W2_0)]
    return [collect_run(run_cls, cfg, engine.tracker.run(i), engine.lam, engine.derived_run(i),
                        [w[i].copy() for w in weights], loop)
            for i, cfg in enumerate(engine.configs)]
