"""The one training loop of daedyn, and what every engine shares.

:func:`drive` owns the epoch loop of every engine (linear exact / data pass / sampled, the
nonlinear trainer, and any engine added later):

* start, or resume from a :class:`Checkpoint` (weights, records, random generators) of the same run
  and code;
* the checkpoint cadence (every ``checkpoint.every`` epochs, and the final state, which the job
  removes once the run file is written: :func:`daedyn.jobs.checkpoints`);
* the recording cadence (epoch 0, every ``log_every`` epochs and the final epoch,
  :func:`log_epochs`);
* divergence detection (a non-finite recorded loss, or one above ``EXPLODE_FACTOR`` times the
  first recorded loss, raises :class:`DivergenceError`, naming the learning rate against its limit
  or the initial weights, whichever is the likelier cause, and removes the checkpoint); a batched
  engine returns one loss per run and the error names every diverged run;
* progress: one log line (epoch, loss, elapsed, ETA) every ~10 % of the run and at each
  checkpoint, and a tqdm bar only when stderr is a terminal (a SLURM log gets no bar redraws).

An engine supplies only its state and its step (:class:`Engine`). A batched engine trains several
runs as one tensor (runs along the leading dimension of its state, configurations in
``engine.configs``): each run gets its own stability guard and divergence check, one checkpoint
holds the whole batch, and :func:`run_batch` splits the result into one run per configuration.
Engines that draw random numbers (sampled noise, minibatch order) also hand over their
generators, so that a resumed run continues the same streams and ends bit-identical to an
uninterrupted one (same device and thread count).

Seed conventions shared by every engine: :func:`init_weights` draws the initial weights from a
CPU generator seeded with the run's seed, and :func:`noise_seed` derives the seed of the noise /
shuffling generator, so the same seed gives the same initial weights in every engine, dtype and
device.

Why one module: the loop, the engine contract, checkpoints, the stability guard and the batch
helpers are one mechanism, and a checkpoint records the SHA-256 of this file as the code of that
mechanism (:func:`code_sha256`); split, every checkpoint would have to name each part.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import inspect
import json
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

__all__ = [
    "Checkpoint", "DivergenceError", "Engine", "Loop", "Problem", "Records", "UnstableLearningRateError",
    "as_tensor", "batch_groups", "check_batch", "collect_run", "data_and_batch", "drive", "fingerprint", "init_weights",
    "initial_weights", "log_epochs", "minibatches", "noise_seed", "num_threads", "resolve_device", "resolve_dtype",
    "run_batch", "run_engine", "stability_guard",
]

log = logging.getLogger(__name__)

#: a recorded loss above this multiple of the first recorded loss counts as divergence
EXPLODE_FACTOR = 1e6


class DivergenceError(FloatingPointError):
    """Training diverged (non-finite or exploding loss); ``runs``: the diverged runs' indices in a batch."""

    def __init__(self, message: str, runs: Sequence[int] = ()):
        super().__init__(message)
        self.runs = list(runs)


class UnstableLearningRateError(ValueError):
    """The learning rate is at or above the network's stability limit (and that was not allowed)."""


# ---------------------------------------------------------------------------------------
# devices, tensors, seeds


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; "cpu", "cuda", "cuda:k" are passed through."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}")
    return torch.device(device)


def resolve_dtype(dtype) -> torch.dtype:
    table = {"float32": torch.float32, "float64": torch.float64,
             torch.float32: torch.float32, torch.float64: torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return table[dtype]


def as_tensor(a, dtype, device) -> torch.Tensor:
    if torch.is_tensor(a):
        return a.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


@contextlib.contextmanager
def num_threads(n: int | None):
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


def init_weights(d: int, hidden: int, *, init_std: float, seed: int):
    """Initial weights (W1 (H×d), W2 (d×H)) as float64 numpy arrays, entries N(0, init_std²).

    Drawn in float64 by ``torch.Generator("cpu").manual_seed(seed)``: W1 first, then W2.
    """
    g = torch.Generator("cpu").manual_seed(int(seed))
    w1 = torch.randn(hidden, d, generator=g, dtype=torch.float64) * init_std
    w2 = torch.randn(d, hidden, generator=g, dtype=torch.float64) * init_std
    return w1.numpy(), w2.numpy()


def initial_weights(d, hidden, init_std, seed, W1, W2, dtype, device):
    """The run's initial weights as tensors: ``W1``/``W2`` when given, else :func:`init_weights`."""
    if (W1 is None) != (W2 is None):
        raise ValueError("give both W1 and W2, or neither")
    if W1 is None:
        W1, W2 = init_weights(d, hidden, init_std=init_std, seed=seed)
    W1, W2 = as_tensor(W1, dtype, device), as_tensor(W2, dtype, device)
    if W1.shape != (hidden, d) or W2.shape != (d, hidden):
        raise ValueError(f"W1 must be ({hidden}, {d}) and W2 ({d}, {hidden}); "
                         f"got {tuple(W1.shape)} and {tuple(W2.shape)}")
    return W1.contiguous(), W2.contiguous()


def noise_seed(seed: int) -> int:
    """Seed of an engine's noise/shuffle generator, derived from the run's ``seed``.

    Derived with numpy's SeedSequence so that it is not the init generator's stream.
    """
    return int(np.random.SeedSequence([int(seed), 0xDAE]).generate_state(1, dtype=np.uint32)[0])


def data_and_batch(X, batch_size, dtype, device) -> tuple[torch.Tensor, int]:
    """The data as a contiguous tensor and the minibatch size (None: the full batch)."""
    Xt = as_tensor(X, dtype, device).contiguous()
    n = Xt.shape[0]
    B = n if batch_size is None else int(batch_size)
    if not 1 <= B <= n:
        raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")
    return Xt, B


def log_epochs(epochs: int, log_every: int) -> np.ndarray:
    """Recorded epochs: 0, log_every, 2·log_every, … and always the final epoch."""
    if epochs < 0 or log_every < 1:
        raise ValueError("need epochs >= 0 and log_every >= 1")
    return np.unique(np.r_[np.arange(0, epochs + 1, log_every), epochs]).astype(np.int64)


# ---------------------------------------------------------------------------------------
# stability


def stability_guard(config, lam, *, eta_max: float, strict: bool = True, units: str = "") -> float:
    """Check the run's learning rate against the network's stability limit ``eta_max``
    (:func:`daedyn.theory.stability_limit`, computed by the engine).

    With lr ≥ η_max a strict guard raises :class:`UnstableLearningRateError` before the first
    step, unless the config says ``allow_unstable``; otherwise it logs a WARNING with the same
    numbers. Returns lr/η_max. ``units`` names the units of η_max when they are not the config's
    own (the nonlinear trainer's limit is the linear theory's, in the network's units).
    """
    lam1 = float(np.max(lam))
    lr = float(config.lr)
    ratio = lr / eta_max
    if ratio < 1:
        log.info("%s: lr = %g is %.3g of the stability limit eta_max = %.6g%s (lambda_1 = %.6g)",
                 config.label, lr, ratio, eta_max, units, lam1)
        return ratio
    what = (f"{config.family} run {config.label}: learning rate lr = {lr:g} is {ratio:.3g} x the network's "
            f"stability limit eta_max = {eta_max:.6g}{units} (lambda_1 = {lam1:.6g}")
    for name in ("eps", "gamma"):
        if hasattr(config, name):
            what += f", {name} = {getattr(config, name):g}"
    what += ")"
    if strict and not getattr(config, "allow_unstable", False):
        raise UnstableLearningRateError(
            f"{what}. Above the limit gradient descent oscillates or diverges instead of following the "
            f"theory. Lower lr below {eta_max:.6g}, or set `allow_unstable: true` on experiment "
            f"{config.experiment or '(this run)'} to study the unstable regime on purpose.")
    log.warning("%s; training anyway (%s)", what,
                "allow_unstable: true" if strict else "the limit is the linear theory's, only approximate here")
    return ratio


class GuardChecked(Exception):
    """Raised by :meth:`Engine.guard` under :func:`guard_only`: the run's learning rate passed its check."""


_GUARD_ONLY = threading.local()


@contextlib.contextmanager
def guard_only():
    """Inside the block a family's ``train`` stops at the stability guard, before any training: raising
    :class:`GuardChecked` when the run passes, :class:`UnstableLearningRateError` when it does not. A
    bundle checks every run this way first, so that it fails before training, naming every unstable run."""
    before, _GUARD_ONLY.active = getattr(_GUARD_ONLY, "active", False), True
    try:
        yield
    finally:
        _GUARD_ONLY.active = before


# ---------------------------------------------------------------------------------------
# batches of runs


def _shared(config, per_run: set[str]) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in per_run}


def check_batch(configs: Sequence, per_run: set[str]) -> None:
    """A ValueError naming the first key outside ``per_run`` (the keys runs of a batch may differ in)
    on which a configuration differs from the first, and both values."""
    if not configs:
        raise ValueError("a batch needs at least one run configuration")
    first = _shared(configs[0], per_run)
    for i, config in enumerate(configs[1:], 1):
        for key, value in _shared(config, per_run).items():
            if value != first[key]:
                raise ValueError(
                    f"runs 0 ({configs[0].label}) and {i} ({config.label}) cannot train as one batch: they differ in "
                    f"{key} ({first[key]!r} vs {value!r}); runs of a batch may differ only in {sorted(per_run)}. "
                    "Split them with batch_groups")


def batch_groups(configs: Sequence, per_run: set[str]) -> list[list[int]]:
    """Indices of ``configs`` in groups that can train as one batch (equal in every key outside
    ``per_run``), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(json.dumps(_shared(config, per_run), sort_keys=True, default=str), []).append(i)
    return list(groups.values())


# ---------------------------------------------------------------------------------------
# checkpoints


class Records:
    """Preallocated record buffers of a tracker (named in ``BUFFERS``), checkpointable."""

    BUFFERS: tuple[str, ...] = ()

    def state(self, rows: int) -> dict:
        """The first ``rows`` records, for :class:`Checkpoint`."""
        return {name: getattr(self, name)[:rows].cpu().clone() for name in self.BUFFERS}

    def restore(self, state: dict) -> None:
        for name in self.BUFFERS:
            getattr(self, name)[: state[name].shape[0]] = state[name]


class Checkpoint:
    """Resumable training state, written atomically every ``every`` epochs to ``path``.

    The state holds the engine's tensors, the rows recorded so far, the step count, the first
    recorded loss (the divergence reference) and the engine's random generators, so a run killed
    at any moment and started again with the same configuration resumes from the last checkpoint
    and ends with exactly the result of an uninterrupted run (same device and thread count). A
    checkpoint written by another run (its fingerprint differs) is ignored; one written by other code
    (the engine's module, this one or ``sources``: the package modules whose edits rerun the job,
    :meth:`daedyn.kinds.Kind.sources`) is ignored with a WARNING naming the changed modules, so that no
    run mixes two code versions; an unreadable one is set aside as ``<path>.corrupt``. In each case the
    run starts afresh. At its end a run saves its final state; whoever writes the result removes the
    checkpoint afterwards (:meth:`remove`), so a job killed before its result file was in place
    resumes at the final epoch instead of training again.
    """

    def __init__(self, path, every: int, sources: Sequence[str] = ()):
        self.path = Path(path)
        self.every = int(every)
        self.sources = tuple(sources)
        self.fingerprint = ""
        self.code: dict[str, str] = {}

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            fingerprint = state["fingerprint"]
        except Exception as err:  # any unreadable file: torch raises zip, pickle and key errors
            aside = self.path.with_name(self.path.name + ".corrupt")
            os.replace(self.path, aside)
            log.warning("checkpoint %s is unreadable (%s: %s); set aside as %s, starting afresh",
                        self.path, type(err).__name__, err, aside)
            return None
        if fingerprint != self.fingerprint:
            log.warning("checkpoint %s belongs to another run; starting afresh", self.path)
            return None
        code = state.get("code", {})
        changed = sorted(m for m in code.keys() | self.code.keys() if code.get(m) != self.code.get(m))
        if changed:
            log.warning("checkpoint %s was written by other code (changed since: %s); restarting from epoch 0 "
                        "so that the run is not a mix of two code versions", self.path, ", ".join(changed))
            return None
        log.warning("resuming from %s at epoch %d", self.path, state["epoch"])
        return state

    def due(self, epoch: int, start: int) -> bool:
        return self.every > 0 and epoch > start and epoch % self.every == 0

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"fingerprint": self.fingerprint, "code": self.code, **state}, tmp)
        os.replace(tmp, self.path)  # atomic: a kill mid-save keeps the previous checkpoint

    def remove(self) -> None:
        """Remove the checkpoint, an interrupted save and one set aside as unreadable."""
        for suffix in ("", ".tmp", ".corrupt"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)


PACKAGE = Path(__file__).resolve().parent


def fingerprint(config, lam, engine, **extra) -> str:
    """What must match for a checkpoint to be resumed: the run configuration, the spectrum, the
    engine and ``extra`` facts of the run (given initial weights, data size, device). The code is
    compared separately (:func:`code_sha256`), so that a code change is reported as such."""
    lam_sha = hashlib.sha256(np.ascontiguousarray(lam, dtype=np.float64).tobytes()).hexdigest()
    return json.dumps({"config": config.to_dict(), "engine": type(engine).__name__, "lam_sha256": lam_sha,
                       **extra}, sort_keys=True, default=str)


def code_sha256(engine, sources: Sequence[str] = ()) -> dict[str, str]:
    """SHA-256 of each module whose code a run's numbers depend on: the engine's, this one and
    ``sources`` (package modules, ``"linear"``, ``"jobs/linear"``), named relative to the package."""
    files = [Path(inspect.getsourcefile(type(engine))).resolve(), Path(__file__).resolve(),
             *(PACKAGE / f"{module}.py" for module in sources)]
    return {(str(f.relative_to(PACKAGE).with_suffix("")) if f.is_relative_to(PACKAGE) else str(f)):
            hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


# ---------------------------------------------------------------------------------------
# the loop


@dataclass(frozen=True)
class Problem:
    """What a run trains on: Σ's spectrum and, for the engines that pass over data, the data.

    ``lam`` (d,): the eigenvalues of Σ = XᵀX/N, descending; ``V`` (d, d): its orthonormal
    eigenvectors as columns; ``X`` (N, d): the (centred) data, needed by every engine that passes
    over data; ``C`` (d, d): the held-out moment VᵀΣ_testV in the basis V, needed by linear runs
    that record held-out errors. Every family's ``train(config, problem, **runtime)`` takes one.
    """

    lam: np.ndarray
    V: np.ndarray
    X: np.ndarray | torch.Tensor | None = None
    C: np.ndarray | None = None

    @property
    def d(self) -> int:
        return int(np.shape(self.lam)[0])

    def data(self, who: str) -> np.ndarray | torch.Tensor:
        """``X``, or a ValueError naming ``who`` (the run and its engine) when the problem has no data."""
        if self.X is None:
            raise ValueError(f"{who} needs the data X; the problem holds only the spectrum")
        return self.X


def minibatches(n: int, batch: int, generators: Sequence[torch.Generator] = (), device=None):
    """The row indices of one epoch's minibatches: one pass over ``n`` rows in batches of ``batch``
    (the last may be smaller).

    Without ``generators`` the rows come in order (slices). With them, each generator draws one
    permutation of the rows (on its own device, then moved to ``device``), so the draws are those
    of one ``torch.randperm`` per generator per epoch; one generator yields index tensors (b,),
    several yield (len(generators), b), one row order per generator.
    """
    orders = [torch.randperm(n, generator=g, device=g.device).to(device) for g in generators]
    order = None if not orders else orders[0] if len(orders) == 1 else torch.stack(orders)
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        yield slice(lo, hi) if order is None else order[..., lo:hi]


class Engine(abc.ABC):
    """An engine of :func:`drive` and :func:`run_engine`: the state of one run and its step.

    The base holds what every engine shares, set up by :meth:`__init__` before the subclass builds
    its state: ``config``, ``lam`` (float64), ``device``, ``dtype``, ``records`` (rows the tracker
    must hold) and ``given`` (initial weights were given). :meth:`use_data` sets ``X`` and the
    minibatch size ``batch`` of an engine that passes over data, :meth:`guard` the stability limit
    ``eta_max``. A subclass supplies ``tracker``, ``W1_0``/``W2_0``, :meth:`record` and
    :meth:`step`, and its :meth:`divergence_note`; the other members have defaults for an engine
    whose state is (``W1``, ``W2``) and that draws no random numbers.

    A batched engine passes the list of its runs' configurations as ``config``: they become
    ``configs`` and ``config`` is the first (whose shared keys, such as epochs, log_every, dtype and
    device, hold for all). Its state, ``W1_0``/``W2_0`` and final weights carry the run dimension
    first, :meth:`guard` takes one limit per run, :meth:`record` returns one loss per run,
    :meth:`divergence_note` takes the run's index, its tracker's ``run(i)`` has run i's
    ``dataset(epochs, lam)`` and :meth:`derived` values of shape (runs,) are per run (:func:`run_batch`).
    """

    #: the runs' configurations of a batched engine, else None
    configs: list | None = None

    #: the records, preallocated for ``records`` rows (set by the subclass)
    tracker: Records
    #: the initial weights (H×d and d×H, or with a leading seed dimension), kept for the run file
    W1_0: torch.Tensor
    W2_0: torch.Tensor
    #: the data (N×d) of an engine that passes over data (:meth:`use_data`), else None
    X: torch.Tensor | None = None
    #: minibatch size of an engine that passes over data in minibatches, else None
    batch: int | None = None

    def __init__(self, config, lam, given: bool):
        if isinstance(config, (list, tuple)):
            self.configs, config = list(config), config[0]
        self.config = config
        self.device, self.dtype = resolve_device(config.device), resolve_dtype(config.dtype)
        self.lam = np.asarray(lam.cpu().numpy() if torch.is_tensor(lam) else lam, dtype=np.float64)
        self.given = bool(given)
        self.records = len(log_epochs(config.epochs, config.log_every))

    def use_data(self, X, batch_size) -> None:
        """``X`` as a contiguous tensor of the run's dtype and device, and ``batch`` (None: full batch)."""
        self.X, self.batch = data_and_batch(X, batch_size, self.dtype, self.device)

    def guard(self, eta_max, **kwargs) -> None:
        """Check the learning rate against the stability limit ``eta_max`` before the first step
        (:func:`stability_guard`, ``kwargs`` passed on) and keep the limit for :meth:`divergence_note`.

        A batched engine gives one limit per run and checks each run's lr against its own; the error
        names every run at or above its limit (``allow_unstable`` holds per run). Under
        :func:`guard_only` a run (or batch) that passes stops here with :class:`GuardChecked`."""
        if self.configs is None:
            self.eta_max = eta_max
            stability_guard(self.config, self.lam, eta_max=eta_max, **kwargs)
        else:
            self.eta_max = np.asarray(eta_max, dtype=np.float64)
            unstable = []
            for i, (config, limit) in enumerate(zip(self.configs, self.eta_max, strict=True)):
                try:
                    stability_guard(config, self.lam, eta_max=float(limit), **kwargs)
                except UnstableLearningRateError as err:
                    unstable.append(f"run {i}: {err}")
            if unstable:
                raise UnstableLearningRateError(f"{len(unstable)} of {len(self.configs)} runs of the batch are at or "
                                                "above their stability limit:\n" + "\n".join(unstable))
        if getattr(_GUARD_ONLY, "active", False):
            raise GuardChecked

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors that make up the training state (checkpointed, restored in place)."""
        return {"W1": self.W1, "W2": self.W2}

    def generators(self) -> dict[str, torch.Generator]:
        """Random generators the steps draw from ({} when none)."""
        return {}

    @abc.abstractmethod
    def record(self, row: int, epoch: int) -> float:
        """Record the current state as row ``row`` of the tracker; return the loss."""

    @abc.abstractmethod
    def step(self, epoch: int) -> None:
        """Advance one epoch (all its minibatches)."""

    @abc.abstractmethod
    def divergence_note(self) -> str:
        """Words for a divergence message: the learning rate against its stability limit (a batched
        engine takes the run's index)."""

    def why_diverged(self, run: int | None = None) -> str:
        """:meth:`divergence_note`, and the initial weights when they are large enough to be the cause.

        ``eta_max`` holds at a fixed point, where every layer's singular values are at most 1 (√u*
        for a balanced network). Initial weights with larger singular values s₁, s₂ curve the loss
        about (s₁² + s₂²)/2 times as much, so gradient descent can diverge from the first step at a
        learning rate well below ``eta_max``; the message must then point at the initial scale.
        """
        if run is None:
            c, eta_max, note, W1_0, W2_0 = self.config, self.eta_max, self.divergence_note(), self.W1_0, self.W2_0
        else:  # one run of a batch
            c, eta_max, note = self.configs[run], float(self.eta_max[run]), self.divergence_note(run)
            W1_0, W2_0 = self.W1_0[run], self.W2_0[run]
        s1, s2 = (float(torch.linalg.matrix_norm(w.detach().double(), ord=2).max()) for w in (W1_0, W2_0))
        factor = (s1**2 + s2**2) / 2
        if factor <= 1 or c.lr * factor < eta_max:
            return note
        source = ("the given initial weights" if self.given or getattr(c, "init", "random") != "random"
                  else f"init_std = {c.init_std:g}")
        return (f"{note}. The initial weights are the likelier cause: {source} gives W1 and W2 "
                f"largest singular values {s1:.3g} and {s2:.3g} (at most 1 at a fixed point), which curves the loss "
                f"about {factor:.3g} times as much at the start, where gradient descent needs lr below about "
                f"eta_max/{factor:.3g} = {eta_max / factor:.3g}; lower init_std rather than lr")

    def final_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current (W1, W2) in the data's basis, for the run file."""
        return self.W1, self.W2

    def derived(self) -> dict:
        """Facts of the run that follow from its configuration and data (:data:`DERIVED_META`): the
        number of gradient steps and, for a minibatch engine, the batch size."""
        if self.batch is None:
            return {"n_steps": self.config.epochs}
        return {"n_steps": self.config.epochs * -(-self.X.shape[0] // self.batch), "batch_size": int(self.batch)}

    def fingerprint_extra(self) -> dict:
        """Facts beyond the configuration and spectrum that a resumed checkpoint must share."""
        extra = {"given_weights": self.given}
        if self.configs is not None:  # every run of the batch, in order
            extra["batch"] = [config.to_dict() for config in self.configs]
        if self.X is not None:
            extra.update(n=int(self.X.shape[0]), device=str(self.device))
        return extra

    def fingerprint(self) -> str:
        """The fingerprint of this run's checkpoints (:func:`fingerprint`)."""
        return fingerprint(self.config, self.lam, self, **self.fingerprint_extra())


def hms(seconds: float) -> str:
    """A duration as h:mm:ss (``?`` when it is not known yet)."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _loss_text(loss) -> str:
    """A recorded loss for a progress line: the value, or a batch's mean and max over its runs."""
    if np.ndim(loss):
        return f"loss {np.mean(loss):.6g} (mean of {np.size(loss)} runs, max {np.max(loss):.6g})"
    return f"loss {loss:.6g}"


class _Progress:
    """A log line every ~10 % of the run and at each checkpoint; a tqdm bar on a terminal."""

    def __init__(self, total: int, start: int, desc: str, enabled: bool):
        self.total, self.start, self.desc, self.enabled = total, start, desc, enabled
        self.t0 = time.perf_counter()
        self.next = start + max(1, total // 10)
        self.bar = tqdm(total=total, initial=start, desc=desc, unit="epoch", mininterval=1.0,
                        disable=not (enabled and sys.stderr.isatty()))

    def line(self, epoch: int, loss, why: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        done = epoch - self.start
        eta = elapsed / done * (self.total - epoch) if done > 0 else math.nan
        log.info("%s: epoch %d/%d (%d%%), %s, elapsed %s, ETA %s%s", self.desc, epoch,
                 self.total, 100 * epoch // max(self.total, 1), _loss_text(loss), hms(elapsed), hms(eta), why)

    def update(self, epoch: int, loss, checkpoint_next: bool = False) -> None:
        """``checkpoint_next``: a checkpoint line for this epoch follows, so no periodic line."""
        self.bar.update(epoch - self.bar.n)
        if epoch >= self.next:
            if not checkpoint_next:
                self.line(epoch, loss)
            self.next = epoch + max(1, self.total // 10)

    def close(self) -> None:
        self.bar.close()


@dataclass
class Loop:
    """What :func:`drive` reports: the recorded epochs and the epochs the run resumed from."""

    epochs: np.ndarray
    resumed_from: list[int]


def drive(engine: Engine, config, *, checkpoint: Checkpoint | None = None, progress: bool = False,
          desc: str = "") -> Loop:
    """Run ``engine`` for ``config.epochs`` epochs, recording at :func:`log_epochs`.

    With a ``checkpoint`` the state is saved every ``checkpoint.every`` epochs and at the end, and a
    run with the same fingerprint resumes from it. The final state stays until the caller has put the
    result in place and removes it (a run resumed at its final epoch trains no further); a diverged
    run removes it at once (it is final, there is nothing to resume). ``engine.record`` returns the
    loss, or a batched engine's losses (one per run), each checked against its own first loss.
    """
    epochs = log_epochs(config.epochs, config.log_every)
    start, row, first_loss, loss = 0, 0, None, math.nan
    resumed_from = []
    if checkpoint is not None:
        saved = checkpoint.load()
        if saved is not None:
            with torch.no_grad():
                for name, tensor in engine.state().items():
                    tensor.copy_(saved["tensors"][name])
            engine.tracker.restore(saved["tracker"])
            for name, generator in engine.generators().items():
                generator.set_state(saved["generators"][name])
            start, row = saved["epoch"], saved["row"]
            first_loss, loss = (np.asarray(v) if isinstance(v, list) else v
                                for v in (saved["first_loss"], saved["loss"]))
            resumed_from = [*saved["resumed_from"], start]

    def save(t: int) -> None:
        checkpoint.save({
            "epoch": t, "row": row, "resumed_from": resumed_from,  # a batch's losses as lists (weights_only load)
            **{k: v.tolist() if isinstance(v, np.ndarray) else v
               for k, v in (("first_loss", first_loss), ("loss", loss))},
            "tensors": {k: v.detach().cpu().clone() for k, v in engine.state().items()},
            "tracker": engine.tracker.state(row),
            "generators": {k: g.get_state() for k, g in engine.generators().items()}})

    who = config.label if engine.configs is None else f"{len(engine.configs)} runs from {config.label}"
    bar = _Progress(config.epochs, start, desc or f"{type(engine).__name__} {who}", progress)
    try:
        for t in range(start, config.epochs + 1):
            if checkpoint is not None and t < config.epochs and checkpoint.due(t, start):
                save(t)
                bar.line(t, loss, f" (checkpoint {checkpoint.path.name})")
            if row < len(epochs) and t == epochs[row]:
                loss = engine.record(row, t)
                loss = np.asarray(loss, dtype=np.float64) if np.ndim(loss) else loss
                first_loss = loss if first_loss is None else first_loss
                bad = ~np.isfinite(loss) | (loss > EXPLODE_FACTOR * np.maximum(np.abs(first_loss), 1e-30))
                if np.any(bad):
                    raise _diverged(engine, t, loss, first_loss, bad)
                row += 1
            if t == config.epochs:
                break
            engine.step(t)
            bar.update(t + 1, loss, checkpoint is not None and checkpoint.due(t + 1, start))
        if checkpoint is not None and start < config.epochs:
            save(config.epochs)  # removed by the caller once the result file is in place
    except DivergenceError:
        if checkpoint is not None:
            checkpoint.remove()
        raise
    finally:
        bar.close()
    if progress:
        log.info("%s: done, %d epochs in %.1f s (%s)", bar.desc, config.epochs - start,
                 time.perf_counter() - bar.t0, _loss_text(loss))
    return Loop(epochs, resumed_from)


def _diverged(engine: Engine, epoch: int, loss, first_loss, bad) -> DivergenceError:
    """The error for the diverged run, or for every diverged run of a batch (its index, label and seed)."""
    if not np.ndim(loss):
        return DivergenceError(f"training diverged by epoch {epoch} (loss {loss:.4g}, initial loss {first_loss:.4g}); "
                               f"{engine.why_diverged()}")
    runs = np.flatnonzero(bad).tolist()
    what = "; ".join(f"run {i} ({engine.configs[i].label}, seed {getattr(engine.configs[i], 'seed', '-')}): "
                     f"loss {loss[i]:.4g}, initial loss {first_loss[i]:.4g}; {engine.why_diverged(i)}" for i in runs)
    return DivergenceError(
        f"training diverged by epoch {epoch} in {len(runs)} of {len(loss)} runs of the batch: {what}", runs)



#: long_name and units of the facts an engine derives from its configuration and data
DERIVED_META = {
    "n_steps": ("gradient steps: number of gradient steps of the run", "1"),
    "batch_size": ("minibatch size (N: full batch)", "1"),
    "eta_max": ("stability limit eta_max: of the learning rate, checked before the first step", "1"),
    "eps_matched": ("matched Gaussian noise variance: isotropic, matched to the masking noise, "
                    "(1-q)/q mean(diag Sigma)",
                    "1"),
}


def run_engine(engine: Engine, run_cls, *, checkpoint: Checkpoint | None = None, threads: int | None = None,
               progress: bool = False):
    """Drive ``engine`` (:func:`drive`) and collect its result as ``run_cls``.

    The engine's ``config`` and ``derived()`` facts become scalar coordinates of the trajectory,
    the one place a run's hyperparameters are stored (the run file's layout is ``run_cls.dataset``).
    """
    cfg = engine.config
    if checkpoint is not None:
        checkpoint.fingerprint = engine.fingerprint()
        checkpoint.code = code_sha256(engine, checkpoint.sources)
    with num_threads(threads):
        loop = drive(engine, cfg, checkpoint=checkpoint, progress=progress)
    weights = [t.detach().cpu().numpy() for t in (*engine.final_weights(), engine.W1_0, engine.W2_0)]
    return collect_run(run_cls, cfg, engine.tracker, engine.lam, engine.derived(), weights, loop)


def collect_run(run_cls, config, tracker, lam, derived: dict, weights, loop: Loop):
    """One run's result as ``run_cls``: its tracker's trajectory with ``derived`` facts and the
    configuration as scalar coordinates, and its (final W1, W2, initial W1, W2) ``weights``.
    Shared by :func:`run_engine` and :func:`run_batch`, so that a run of a batch is laid out exactly
    like one trained alone."""
    trajectory = tracker.dataset(loop.epochs, lam).assign_coords(
        {name: ((), value, dict(zip(("long_name", "units"), DERIVED_META[name]))) for name, value in derived.items()})
    trajectory = trajectory.assign_coords({k: ((), v, a) for k, (v, a) in config.coords().items() if v is not None})
    return run_cls(config, trajectory, *weights, resumed_from=loop.resumed_from)


def run_batch(engine: Engine, run_cls, *, checkpoint: Checkpoint | None = None, threads: int | None = None,
              progress: bool = False) -> list:
    """Drive a batched ``engine`` (:func:`drive`, one checkpoint for the whole batch) and split its
    result into one ``run_cls`` per configuration of ``engine.configs``, in order, each laid out by
    :func:`collect_run` as :func:`run_engine` lays out a run trained alone: run i's records are
    ``engine.tracker.run(i)``, its weights index i of the batched ones, and a :meth:`Engine.derived`
    value of shape (runs,) holds one fact per run."""
    if checkpoint is not None:
        checkpoint.fingerprint = engine.fingerprint()
        checkpoint.code = code_sha256(engine, checkpoint.sources)
    with num_threads(threads):
        loop = drive(engine, engine.config, checkpoint=checkpoint, progress=progress)
    weights = [t.detach().cpu().numpy() for t in (*engine.final_weights(), engine.W1_0, engine.W2_0)]
    derived = engine.derived()
    return [collect_run(run_cls, config, engine.tracker.run(i), engine.lam,
                        {k: v[i] if np.ndim(v) else v for k, v in derived.items()}, [w[i] for w in weights], loop)
            for i, config in enumerate(engine.configs)]
