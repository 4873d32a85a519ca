"""The gathered claims tables: every new experiment's ``claims.csv`` in one file (``beyond.csv``), and
every claim the pipeline checks with its verdict (``summary.csv``, the report's verdict table)."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Mapping, Sequence

from daedyn import store
from daedyn.claims import SUMMARY_COLUMNS
from daedyn.jobs import JobInfo, logged, write_claims

log = logging.getLogger("daedyn")


def read_claims(path: str) -> list[dict]:
    """Rows of one experiment's claims file, checked for the shared columns and verdicts; a file of
    the columns before ``tolerance`` and ``judged_on`` reads them as empty."""
    from daedyn.claims import COLUMNS, REQUIRED_COLUMNS, VERDICTS

    if not Path(path).exists():
        raise store.ResultFileError(f"claims file {path} does not exist; rerun the experiment that makes it")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) not in (COLUMNS, REQUIRED_COLUMNS):
            raise store.ResultFileError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}; "
                                        "rerun the experiment that makes it")
        rows = [{key: row.get(key) or "" for key in COLUMNS} for row in reader]
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




def claims_summary_job(sources: Sequence[Mapping[str, str]], output: str, page: str | None = None,
                       job: JobInfo = JobInfo()) -> None:
    """Every claim the pipeline checks in one table (``output``, CSV): one row per claim with its
    verdict and numbers (the columns of its claims table), the experiment and the figure that show it
    and the claims table it comes from.

    ``sources``: dicts with ``group`` ("paper", "sweep", "beyond the paper"), ``experiment``,
    ``kind`` (the experiment's kind; empty for the paper's theory claims), ``table`` (a claims CSV) and ``figure`` (a PNG; empty for the paper's theory claims, whose table
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
                rows.append({"group": source["group"], "experiment": source["experiment"],
                             "kind": source.get("kind", ""), **row, "figure": figure, "table": source["table"]})
        if not rows:
            raise ValueError("no claims to summarise: the inputs hold no rows")
        write_csv([{key: row[key] for key in SUMMARY_COLUMNS} for row in rows], output)
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


def findings_job(summary: str, page: str, rst: str | None = None, kinds: Sequence[str] = (),
                 job: JobInfo = JobInfo()) -> None:
    """The findings page (:func:`daedyn.findings.write_page`) from ``summary`` and the tables of the kinds
    that write a paragraph of their own; ``kinds``: the config's extra kind modules."""
    from daedyn import findings
    from daedyn.kinds import load

    with logged(job):
        rows = findings.write_page(summary, page, rst, load(kinds))
        flagged = sum(bool(findings.audit(r)) for r in rows)
        log.info("%d claims on %s; %d rows do not say what their verdict judged", len(rows), page, flagged)
