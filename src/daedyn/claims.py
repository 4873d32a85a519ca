"""Claims tables: one row per claim, graded, written as CSV and printed.

Every experiment checks its claims into rows with the columns :data:`COLUMNS`: ``claim`` (an
id), ``statement``, ``measured`` (the numbers found), ``expected`` (the value and tolerance
claimed), ``verdict`` (one of :data:`VERDICTS`, from :func:`grade`) and ``note``. The paper's
theory claims are :mod:`daedyn.paper_claims`, a sweep's :mod:`daedyn.sweep_claims`; the
experiments beyond the paper grade theirs in their analysis modules.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["COLUMNS", "VERDICTS", "claim_row", "fmt", "format_claims", "grade", "write_claims_csv"]

COLUMNS = ("claim", "statement", "measured", "expected", "verdict", "note")
VERDICTS = ("confirmed", "qualified", "refuted")


def claim_row(claim, statement, measured, expected, verdict, note=""):
    """One row of a claims table (the columns of :data:`COLUMNS`); ``verdict`` from :func:`grade`."""
    assert verdict in VERDICTS
    return dict(claim=str(claim), statement=statement, measured=measured, expected=expected,
                verdict=verdict, note=note)


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
            w.writerow({k: r[k] for k in COLUMNS})
    return Path(path)


def format_claims(rows):
    """A printable summary: one block per claim and a verdict count at the end."""
    out = []
    for r in rows:
        out.append(f"[{r['verdict'].upper():9s}] claim {r['claim']}: {r['statement']}")
        out.append(f"    measured: {r['measured']}")
        out.append(f"    expected: {r['expected']}")
        if r["note"]:
            out.append(f"    note:     {r['note']}")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    out.append("summary: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(out)
