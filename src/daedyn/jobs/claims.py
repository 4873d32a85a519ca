"""The gathered claims tables: every new experiment's ``claims.csv`` in one file (``beyond.csv``), and
every claim the pipeline checks with its verdict (``summary.csv``, the report's verdict table)."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Mapping, Sequence

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


#: the columns of results/claims/summary.csv, the verdict table of the report's landing page
SUMMARY_COLUMNS = ("group", "experiment", "claim", "verdict", "statement", "figure", "table")


def claims_summary_job(sources: Sequence[Mapping[str, str]], output: str, page: str | None = None,
                       job: JobInfo = JobInfo()) -> None:
    """Every claim the pipeline checks in one table (``output``, CSV): one row per claim with its
    verdict, the experiment and the figure that show it and the claims table that holds its numbers.

    ``sources``: dicts with ``group`` ("paper", "sweep", "beyond the paper"), ``experiment``,
    ``table`` (a claims CSV) and ``figure`` (a PNG; empty for the paper's theory claims, whose table
    covers Figs. 1-4: each row gets the figure its statement names, "Fig. k"). ``page``: the same
    table as reStructuredText for the report's landing page (workflow/report/workflow.rst), every
    text escaped and each figure a link to the report's entry of that file.
    """
    from daedyn.jobs import write_csv

    with logged(job):
        rows = []
        for source in sources:
            for row in read_claims(source["table"]):
                figure = source["figure"]
                if not figure:
                    named = re.search(r"Fig\. ([1-4])\b", row["statement"])
                    figure = f"results/figures/fig{named[1]}.png" if named else ""
                rows.append({"group": source["group"], "experiment": source["experiment"], "claim": row["claim"],
                             "verdict": row["verdict"], "statement": row["statement"], "figure": figure,
                             "table": source["table"]})
        if not rows:
            raise ValueError("no claims to summarise: the inputs hold no rows")
        write_csv(rows, output)
        if page:
            with store.atomic_path(page) as tmp:
                Path(tmp).write_text(summary_rst(rows), encoding="utf-8")
        counts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in ("confirmed", "qualified", "refuted"))
        log.info("%d claims in %d tables: %s", len(rows), len(sources), counts)


def rst_text(text: str) -> str:
    """Plain text as reStructuredText that renders it verbatim (``|x|``, ``u*``, ``a_b`` stay text)."""
    text = re.sub(r"([\\`*_|\[\]<>])", r"\\\1", " ".join(str(text).split()))
    return "\\" + text if text[:1] in "-+#(" or text[:1].isdigit() else text


def summary_rst(rows: Sequence[Mapping[str, str]]) -> str:
    """The verdict table as an rst list-table; figures link to the report's entries (their file names)."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 14 12 10 50 14", "",
             "   * - experiment", "     - claim", "     - verdict", "     - statement", "     - figure"]
    for row in rows:
        verdict = rst_text(row["verdict"])
        figure = f"`{Path(row['figure']).name}`_" if row["figure"] else rst_text("-")
        lines += [f"   * - {rst_text(row['experiment'])}", f"     - {rst_text(row['claim'])}",
                  f"     - {'**' + verdict + '**' if row['verdict'] == 'refuted' else verdict}",
                  f"     - {rst_text(row['statement'])}", f"     - {figure}"]
    return "\n".join(lines) + "\n"
