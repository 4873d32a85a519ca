"""Job entry points: one module per workflow step (``daedyn.jobs.<step>``).

The workflow's scripts only unpack ``snakemake.input/output/params`` and call
these functions; they are just as usable from a shell or a notebook. Each job
logs to its log file (and stderr), reads its inputs, calls the library and
writes its result through :mod:`daedyn.store` with provenance. Steps live in
separate modules so that editing one reruns only that step's jobs.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from daedyn import provenance

log = logging.getLogger("daedyn")


@dataclass
class JobInfo:
    """Who runs a job: rule name, wildcards, log file (all optional outside Snakemake), and the
    package modules whose edits rerun it (set by :func:`daedyn.kinds.run_step` from the step's
    sources; a checkpoint written by other code of these is not resumed)."""

    rule: str = ""
    wildcards: Mapping[str, Any] = field(default_factory=dict)
    log: str | None = None
    sources: tuple[str, ...] = ()


class Terminated(BaseException):
    """The job received SIGTERM (Snakemake stopping, a cluster's time limit): unwinds like an error,
    so that temporary files are removed, and is logged as such."""


_LOGGING = threading.local()  # inside logged(): a nested logged() (a bundle's run) adds nothing


@contextlib.contextmanager
def logged(job: JobInfo) -> Iterator[None]:
    """Send the package's log records to the job's log file and stderr; log failures.

    A job first checks that it runs the workflow's own package (:func:`daedyn.provenance.check_source`).
    SIGTERM stops the job with a last log line that says so (exit status 143), after the ``with``
    blocks inside have cleaned up; a checkpoint stays for the rerun.
    """
    if getattr(_LOGGING, "active", False):  # a run inside a bundle's job: the bundle logs already
        yield
        return
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if job.log:
        Path(job.log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(job.log, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    logging.getLogger("daedyn").setLevel(logging.INFO)  # our INFO; other libraries stay at WARNING
    start = time.perf_counter()
    log.info("rule %s %s started (pid %d)", job.rule or "-", dict(job.wildcards), os.getpid())

    def terminate(signum, frame):
        raise Terminated

    # only the main thread may set handlers (a job run from a thread keeps the default)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main else None
    _LOGGING.active = True
    try:
        provenance.check_source()
        yield
    except Terminated:
        log.error("rule %s stopped by SIGTERM after %.1f s; its output was not written (a checkpoint, if any, "
                  "stays for the rerun)", job.rule or "-", time.perf_counter() - start)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception:
        log.exception("rule %s failed", job.rule or "-")
        raise
    else:
        log.info("rule %s finished in %.1f s", job.rule or "-", time.perf_counter() - start)
    finally:
        _LOGGING.active = False
        if main:
            signal.signal(signal.SIGTERM, previous)
        for h in handlers:
            root.removeHandler(h)
            h.close()


@contextlib.contextmanager
def checkpoints(output: str, every: int, job: JobInfo) -> Iterator[Callable[[str], Any]]:
    """The checkpoints of the runs a job trains into ``output``: ``checkpoint(name)`` gives
    ``<output>.<name>.ckpt`` (``<output>.ckpt`` for name ""), or None when ``every`` is 0, fingerprinted
    with the job's ``sources``.

    Leave the block only after the result file is written: then the checkpoints are removed (with any
    set aside as unreadable). After an error they stay, so the rerun resumes, also a run that had
    finished and was not yet written.
    """
    from daedyn.training import Checkpoint

    made = []

    def checkpoint(name: str = ""):
        if not every:
            return None
        made.append(Checkpoint(f"{output}.{name}.ckpt" if name else f"{output}.ckpt", every, job.sources))
        return made[-1]

    yield checkpoint
    for one in made:
        one.remove()


#: per-run provenance kept as coordinates along (run, seed) when runs are combined, with its long_name
RUN_PROVENANCE = {
    "config_sha256": "config SHA-256: of the run's job configuration (provenance)",
    "git_commit": "git commit: of the code that trained the run",
    "git_dirty": "git dirty flag: 1 if the code had uncommitted changes, 0 if not, -1 if unknown",
    "git_diff_sha256": "git diff SHA-256: of the uncommitted changes (empty when the tree was clean)",
    "device": "device the run trained on",
    "hostname": "host the run trained on",
    "slurm_job_id": "SLURM job id: of the run (empty outside SLURM)",
    "resume_history": "resume history: epochs the run resumed from checkpoints (JSON list)",
    "time_finished": "finish time: UTC, ISO 8601",
}


def load_runs(paths: Sequence[str], needed_by: str) -> list:
    """Run files without their final weights, each with its provenance as (run, seed) coordinates."""
    import numpy as np

    from daedyn import store

    runs = []
    for path in paths:
        ds = store.open_dataset(path, needed_by=needed_by)
        prov = {key: (("run", "seed"), np.array([[ds.attrs.get(key, "")]]), {"long_name": long_name})
                for key, long_name in RUN_PROVENANCE.items()}
        runs.append(ds.drop_vars(["w1", "w2"], errors="ignore").assign_coords(prov))
    return runs


def open_spectrum(path: str, n_samples: int | None, needed_by: str):
    """A spectrum file (rule spectrum), checked to be of the ``n_samples`` the run trains on."""
    from daedyn import store

    spec = store.open_dataset(path, needed_by=needed_by)
    if n_samples is not None and int(spec.attrs["n_samples"]) != n_samples:
        raise ValueError(f"spectrum {path} is of N={spec.attrs['n_samples']} samples, "
                         f"the run uses n_samples={n_samples}")
    return spec


_SHARED = threading.local()


@contextlib.contextmanager
def shared_inputs() -> Iterator[None]:
    """Inside the block :func:`open_problem` reads each spectrum and data set once: the runs of a
    bundle share them (engines never write to a problem's arrays)."""
    _SHARED.problems = {}
    try:
        yield
    finally:
        _SHARED.problems = None


def open_problem(spectrum_path: str, n_samples: int | None, needed_by: str, dataset_path: str | None = None,
                 dtype: str = "float64"):
    """What a run trains on (:class:`daedyn.training.Problem`): the spectrum of ``spectrum_path`` (checked
    by :func:`open_spectrum`) and, with ``dataset_path``, the data's first ``n_samples`` rows (as
    ``dtype``), centred as the spectrum's were. Read once per :func:`shared_inputs` block."""
    shared = getattr(_SHARED, "problems", None)
    key = (spectrum_path, n_samples, dataset_path, dtype)
    if shared is not None and key in shared:
        return shared[key]
    problem = _read_problem(spectrum_path, n_samples, needed_by, dataset_path, dtype)
    if shared is not None:
        shared[key] = problem
    return problem


def _read_problem(spectrum_path, n_samples, needed_by, dataset_path, dtype):
    from daedyn import data, store
    from daedyn.training import Problem

    spec = open_spectrum(spectrum_path, n_samples, needed_by)
    X = None
    if dataset_path is not None:
        X = data.matrix(store.open_dataset(dataset_path, needed_by=needed_by), n_samples,
                        center=bool(spec.attrs["center"]), dtype=dtype)
    return Problem(spec["eigenvalue"].values, spec["eigenvector"].values, X)


def write_claims(rows: Sequence[Mapping[str, str]], path: str, heading: str = "claims") -> None:
    """A claims table (:func:`daedyn.claims.write_claims_csv`), also shown in the job's log."""
    from daedyn.claims import format_claims, write_claims_csv

    write_claims_csv(rows, path)
    log.info("%s:\n%s", heading, format_claims(rows))


def write_csv(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """A table of dict rows, written atomically."""
    from daedyn import store

    with store.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def save_figure(fig, outputs: Sequence[str]) -> None:
    """Write a figure to each output path (png, pdf, ...) atomically, then close it."""
    from daedyn import store
    from daedyn.figures.style import save

    for i, out in enumerate(outputs):
        with store.atomic_path(out) as tmp:
            save(fig, [tmp], close=i == len(outputs) - 1)
        log.info("wrote %s", out)
