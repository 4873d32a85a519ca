"""The beyond-the-paper claims table: every new experiment's ``claims.csv`` in one file."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Sequence

from daedyn import store
from daedyn.jobs import JobInfo, logged, write_claims

log = logging.getLogger("daedyn")


def read_claims(path: str) -> list[dict]:
    """Rows of one experiment's claims file, checked for the shared columns and verdicts."""
    from daedyn.claims import COLUMNS, VERDICTS

    if not Path(path).exists():
        raise store.ResultFileError(f"claims file {path} does not exist; rerun the experiment that makes it")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise store.ResultFileError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
        rows = list(reader)
    for row in rows:
        if row["verdict"] not in VERDICTS:
            raise store.ResultFileError(f"{path}: claim {row['claim']!r} has verdict {row['verdict']!r}, "
                                        f"expected one of {list(VERDICTS)}")
    return rows


def beyond_claims_job(inputs: Sequence[str], output: str, job: JobInfo = JobInfo()) -> None:
    """Concatenate the experiments' claims files (in the given order) into ``output``."""
    with logged(job):
        rows = [row for path in inputs for row in read_claims(path)]
        write_claims(rows, output, "claims beyond the paper")
