"""Claims tables: one row per claim, graded, written as CSV and printed.

Every experiment checks its claims into rows with the columns :data:`COLUMNS`: ``claim`` (an
id), ``statement``, ``measured`` (the numbers found), ``expected`` (the value and tolerance
claimed), ``verdict`` (one of :data:`VERDICTS`, from :func:`grade`), ``note``, and the two
columns that say what the verdict judged: ``tolerance`` (the bound the measured number had to
meet) and ``judged_on`` (which number that was: "worst case over …", or a stated quantile with
its worst cases; never a median alone). A row that leaves these two empty is flagged on the
findings page (:func:`daedyn.findings.audit`). The paper's theory claims are
:mod:`daedyn.paper_claims`, a sweep's :mod:`daedyn.sweep_claims`; the experiments beyond the
paper grade theirs in their analysis modules.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

__all__ = ["COLUMNS", "REQUIRED_COLUMNS", "SUMMARY_COLUMNS", "VERDICTS", "WORST", "claim_row", "fmt",
           "format_claims", "grade", "write_claims_csv"]

COLUMNS = ("claim", "statement", "measured", "expected", "verdict", "note", "tolerance", "judged_on")
#: the columns a claims file written before ``tolerance`` and ``judged_on`` existed has (read as empty)
REQUIRED_COLUMNS = COLUMNS[:6]
VERDICTS = ("confirmed", "qualified", "refuted")
#: the columns of results/claims/summary.csv (daedyn.jobs.claims.claims_summary_job): every claim with its
#: experiment, kind, the columns of its claims table, the figure that shows it and the table it comes from
SUMMARY_COLUMNS = ("group", "experiment", "kind", "claim", "verdict", "statement", "measured", "expected",
                   "tolerance", "judged_on", "note", "figure", "table")
#: words that name a worst case (or every case) in a claim's text
WORST = re.compile(r"\b(max|maximum|worst|largest|all|every)\b|\b(\d+) of \2\b", re.I)


def claim_row(claim, statement, measured, expected, verdict, note="", *, tolerance="", judged_on=""):
    """One row of a claims table (the columns of :data:`COLUMNS`); ``verdict`` from :func:`grade`.

    ``tolerance``: the bound the judged number had to meet ("<= 0.05", "3/sqrt(D) = 0.134");
    ``judged_on``: the number the verdict judged, naming its worst case ("worst over 25 run-mode
    pairs: 0.00638 (run eps1, mode 31)"). Both are text, as ``measured`` and ``expected``.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"claim {claim!r}: verdict {verdict!r}, expected one of {list(VERDICTS)}")
    if judged_on and re.search(r"\bmedian\b", judged_on) and not WORST.search(judged_on):
        raise ValueError(f"claim {claim!r}: judged_on {judged_on!r} is a median alone; "
                         "judge the worst case, or a quantile that names its worst cases")
    return dict(claim=str(claim), statement=statement, measured=measured, expected=expected,
                verdict=verdict, note=note, tolerance=tolerance, judged_on=judged_on)


def grade(ok, almost=False):
    """confirmed if ``ok``; qualified if only ``almost``; refuted otherwise."""
    return "confirmed" if ok else ("qualified" if almost else "refuted")


def fmt(x, digits=3) -> str:
    """``x`` to ``digits`` significant digits, for the ``measured`` and ``expected`` texts."""
    return f"{float(x):.{digits}g}"


def write_claims_csv(rows, path):
    """Write the claim rows to ``path`` as CSV with the header :data:`COLUMNS`, atomically."""
    from daedyn import store

    with store.atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})
    return Path(path)


def format_claims(rows):
    """A printable summary: one block per claim and a verdict count at the end."""
    out = []
    for r in rows:
        out.append(f"[{r['verdict'].upper():9s}] claim {r['claim']}: {r['statement']}")
        out.append(f"    measured: {r['measured']}")
        out.append(f"    expected: {r['expected']}")
        for key in ("tolerance", "judged_on"):
            if r.get(key):
                out.append(f"    {key + ':':10s}{r[key]}")
        if r["note"]:
            out.append(f"    note:     {r['note']}")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    out.append("summary: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(out)
