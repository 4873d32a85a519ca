"""Job entry points: one module per workflow step (``daedyn.jobs.<step>``).

The workflow's scripts only unpack ``snakemake.input/output/params`` and call
these functions; they are just as usable from a shell or a notebook. Each job
logs to its log file (and stderr), reads its inputs, calls the library and
writes its result through :mod:`daedyn.store` with provenance. Steps live in
separate modules so that editing one reruns only that step's jobs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping


log = logging.getLogger("daedyn")


@dataclass
class JobInfo:
    """Who runs a job: rule name, wildcards, log file (all optional outside Snakemake)."""

    rule: str = ""
    wildcards: Mapping[str, Any] = field(default_factory=dict)
    log: str | None = None


@contextlib.contextmanager
def logged(job: JobInfo) -> Iterator[None]:
    """Send the package's log records to the job's log file and stderr; log failures."""
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
    try:
        yield
    except Exception:
        log.exception("rule %s failed", job.rule or "-")
        raise
    else:
        log.info("rule %s finished in %.1f s", job.rule or "-", time.perf_counter() - start)
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()
