"""The findings page: every claim the pipeline checks, with its numbers, made from the result tables.

Tables in, text out. :func:`page` turns the rows of ``results/claims/summary.csv`` (every claim with
its measured and expected numbers, tolerance, verdict and the number it judged) into the findings
page, ``results/findings.md``, and the same page as reStructuredText for the report's landing page.
The page is generic over the rows: a new claim or experiment kind appears without editing this
module. A kind may add a paragraph of findings computed from its own tables
(:attr:`daedyn.kinds.Kind.findings`); without one, the paragraph counts its verdicts.

:func:`readme_block` is the short version that README.md carries between :data:`BEGIN` and
:data:`END` (``python -m daedyn findings --readme``); a test renders it from the snapshot of the
default pipeline's tables in ``tests/fixtures/findings/`` (``python -m daedyn findings --refresh``
takes a new one after a default build), so a README number that differs from the results fails.

:func:`audit` flags a row that states no tolerance, or no worst case, or that may judge a median
alone; the page lists them, so that the module that grades the claim can say what it judged
(``tolerance`` and ``judged_on`` of :func:`daedyn.claims.claim_row`).
"""

from __future__ import annotations

import csv
import importlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from daedyn.claims import SUMMARY_COLUMNS, VERDICTS, WORST

__all__ = ["BEGIN", "END", "SNAPSHOT", "SUMMARY", "audit", "current_block", "page", "read_summary", "readme_block",
           "refresh", "render", "replace_block", "snapshot_block", "sources", "table_paths", "tolerance", "worst_case",
           "write_page"]

#: the table every claim comes from, relative to the working directory of the pipeline
SUMMARY = "results/claims/summary.csv"
#: the snapshot of the default pipeline's tables that README.md's block is rendered from (in the repository)
SNAPSHOT = "tests/fixtures/findings"
#: the markers of the generated block in README.md
BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"
#: a bound stated in an ``expected`` text
BOUND = re.compile(r"≤|<=|<|±|\+/-|\bat most\b|\bwithin\b|\btolerance\b", re.I)
GROUPS = {"paper": "The paper's theory claims", "sweep": "Sweep", "beyond the paper": "Beyond the paper"}


# -- reading -----------------------------------------------------------------------------------------------------

def read_summary(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``summary.csv``, checked for the columns the page needs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build it first (snakemake {SUMMARY})")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in SUMMARY_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}: it was made by an older daedyn; "
                             f"rebuild it (snakemake {SUMMARY})")
        rows = list(reader)
    for row in rows:
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"{path}: claim {row['claim']!r} has verdict {row['verdict']!r}, "
                             f"expected one of {list(VERDICTS)}")
    if not rows:
        raise ValueError(f"{path} holds no claims; rebuild it (snakemake {SUMMARY})")
    return rows


def table_paths(kind, experiment: str) -> list[str]:
    """The tables a kind's findings paragraph reads: the CSV files of the experiment's aggregation
    (none for a kind without :attr:`~daedyn.kinds.Kind.findings`)."""
    if kind is None or not kind.findings:
        return []
    return [f"results/{experiment}/{name}" for name in kind.aggregate.outputs.values()
            if name.endswith(".csv") and name != "claims.csv"]


def sources(kinds: Mapping) -> list[str]:
    """The package modules (paths under ``src/daedyn``, no ``.py``) of the kinds' findings functions:
    editing one rewrites the page."""
    modules = [kind.findings.partition(":")[0] for kind in kinds.values() if kind.findings]
    return [m.removeprefix("daedyn.").replace(".", "/") for m in modules if m.startswith("daedyn.")]


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build the experiment's aggregation first")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _by_experiment(rows: Sequence[Mapping[str, str]]) -> dict[str, list[Mapping[str, str]]]:
    out: dict[str, list[Mapping[str, str]]] = {}
    for row in rows:
        out.setdefault(row["experiment"], []).append(row)
    return out


# -- judging a row -----------------------------------------------------------------------------------------------

def _segments(text: str, pattern: re.Pattern) -> str:
    return "; ".join(s.strip() for s in text.split(";") if pattern.search(s))


def tolerance(row: Mapping[str, str]) -> str:
    """The row's tolerance: its ``tolerance`` column, else the parts of ``expected`` that state a bound
    ("" when neither does)."""
    return row.get("tolerance") or _segments(row["expected"], BOUND)


def worst_case(row: Mapping[str, str]) -> str:
    """What the verdict judged, naming the worst case: the row's ``judged_on``, else the parts of
    ``measured`` that name a maximum, the worst or every case ("" when none does)."""
    return row.get("judged_on") or _segments(row["measured"], WORST)


def audit(row: Mapping[str, str]) -> list[str]:
    """What the row fails to state: its tolerance, its worst case, or that it is not judged on a median alone."""
    problems = []
    if not tolerance(row):
        problems.append("no tolerance stated")
    if not worst_case(row):
        problems.append("no worst case stated")
    if not row.get("judged_on") and re.search(r"\bmedian\b", row["measured"], re.I):
        problems.append("measured quotes a median and judged_on does not say what the verdict judged")
    return problems


# -- a tiny document model, rendered as Markdown and as reStructuredText -----------------------------------------
# A block is ("h1" | "h2" | "p", spans) or ("ul", [(spans, [spans, ...]), ...]); spans are (style, text) with
# style "" (plain), "b" (bold) or "code".

def _escaped(text, chars: str) -> str:
    # whitespace collapsed but kept at the edges, where spans meet
    return re.sub(f"([{re.escape(chars)}])", r"\\\1", re.sub(r"\s+", " ", str(text)))


def _md(spans) -> str:
    def one(style, text):
        if style == "code":
            return f"`{text}`"
        text = _escaped(text, "\\`*_[]<>|")
        return f"**{text}**" if style == "b" else text
    return "".join(one(*s) for s in spans)


def _rst(spans) -> str:
    def one(style, text):
        if style == "code":
            return f"``{text}``"
        text = _escaped(text, "\\`*_|[]<>")
        return f"**{text}**" if style == "b" else text
    line = "".join(one(*s) for s in spans)
    # a line that starts like a list marker, a section adornment or an enumerator stays text
    return "\\" + line if re.match(r"[-+#(]|\*(?!\*)|\d", line) else line


def render(blocks, markup: str = "md") -> str:
    """The blocks as Markdown (``md``) or reStructuredText (``rst``)."""
    text = _md if markup == "md" else _rst
    out = []
    for kind, body in blocks:
        if kind in ("h1", "h2"):
            line = text(body)
            if markup == "md":
                out.append(("# " if kind == "h1" else "## ") + line)
            else:
                # "-" and "~": the page sits under a section of the report's landing page
                out.append(f"{line}\n{('-' if kind == 'h1' else '~') * len(line)}")
        elif kind == "p":
            out.append(text(body))
        else:
            items = []
            for head, subs in body:
                item = ("- " if markup == "md" else "* ") + text(head)
                if subs:
                    joiner = "\n" if markup == "md" else "\n\n"
                    item += joiner + "\n".join(("  - " if markup == "md" else "  * ") + text(s) for s in subs)
                    if markup == "rst":
                        item += "\n"
                items.append(item)
            out.append("\n".join(items))
    return "\n\n".join(out) + "\n"


# -- the page ----------------------------------------------------------------------------------------------------

def _counts(rows) -> str:
    counts = {v: [r["claim"] for r in rows if r["verdict"] == v] for v in VERDICTS}
    return ", ".join(f"{len(ids)} {v}" for v, ids in counts.items() if ids)


def _paragraph(experiment: str, rows, kinds: Mapping, tables: Mapping[str, Mapping[str, list]]) -> list:
    """The experiment's paragraph: its kind's findings, or its verdicts counted."""
    kind = kinds.get(rows[0]["kind"])
    if kind is not None and kind.findings:
        module, _, function = kind.findings.partition(":")
        text = getattr(importlib.import_module(module), function)(experiment, tables.get(experiment, {}), list(rows))
        return [("", text)]
    spans = [("", f"{len(rows)} claim{'s' if len(rows) > 1 else ''}: {_counts(rows)}")]
    for verdict in ("qualified", "refuted"):
        ids = [r["claim"] for r in rows if r["verdict"] == verdict]
        if ids:
            spans.append(("", f"; {verdict}: "))
            for i, claim in enumerate(ids):
                spans += [("", ", ")] * (i > 0) + [("code", claim)]
    return spans + [("", ".")]


def _title(rows, kinds) -> str:
    kind = kinds.get(rows[0]["kind"])
    group = GROUPS.get(rows[0]["group"], rows[0]["group"])
    return f"{group}: {kind.title}" if kind is not None and rows[0]["group"] != "sweep" else group


def _verdict_item(row: Mapping[str, str]):
    tol, worst = tolerance(row), worst_case(row)
    head = [("b", row["verdict"]), ("", " "), ("code", row["claim"]), ("", ": " + row["statement"])]
    subs = [[("", "measured: " + row["measured"])], [("", "expected: " + row["expected"])],
            [("", "tolerance: ")] + ([("", tol)] if tol else [("b", "not stated")]),
            [("", "worst case: ")] + ([("", worst)] if worst else [("b", "not stated")])]
    if row["note"]:
        subs.append([("", "note: " + row["note"])])
    where = [("", "table "), ("code", row["table"])]
    if row["figure"]:
        where += [("", ", figure "), ("code", row["figure"])]
    return head, subs + [where]


def page(rows: Sequence[Mapping[str, str]], kinds: Mapping, tables: Mapping[str, Mapping[str, list]] | None = None,
         provenance: Mapping[str, object] | None = None) -> list:
    """The findings page as blocks (:func:`render`): per experiment its paragraph and one item per claim
    with measured, expected, tolerance and worst case; the audit; the provenance.

    ``rows``: the rows of summary.csv; ``kinds``: the registry (:func:`daedyn.kinds.load`); ``tables``:
    experiment -> {file name: rows} for the kinds that declare findings; ``provenance``: from
    :func:`provenance_of`.
    """
    tables = tables or {}
    blocks = [("h1", [("", "Findings")]),
              ("p", [("", "Every claim the pipeline checks, with the numbers it measured, what was expected, the "
                          "tolerance and the worst case the verdict judged. Generated from "), ("code", SUMMARY),
                     ("", " by the rule "), ("code", "findings"), ("", "; do not edit. How to read each experiment's "
                     "verdicts: docs/findings.md.")]),
              ("p", [("", f"{len(rows)} claims: {_counts(rows)}.")])]
    for experiment, group in _by_experiment(rows).items():
        blocks += [("h2", [("", f"{_title(group, kinds)} — "), ("code", experiment)]),
                   ("p", _paragraph(experiment, group, kinds, tables)),
                   ("ul", [_verdict_item(r) for r in group])]
    flagged = [(r, audit(r)) for r in rows if audit(r)]
    blocks.append(("h2", [("", "Audit of the claims tables")]))
    if flagged:
        blocks += [("p", [("", f"{len(flagged)} of {len(rows)} rows do not say what their verdict judged; the "
                               "module that grades each should pass tolerance and judged_on to claim_row.")]),
                   ("ul", [([("code", r["claim"]), ("", f" ({r['experiment']}): " + "; ".join(p) + " — table "),
                             ("code", r["table"])], []) for r, p in flagged])]
    else:
        blocks.append(("p", [("", "Every row states its tolerance and the worst case its verdict judged.")]))
    if provenance:
        blocks += [("h2", [("", "Provenance")]),
                   ("ul", [([("", f"{key}: "), ("code", str(value))], []) for key, value in provenance.items()])]
    return blocks


def readme_block(rows: Sequence[Mapping[str, str]], kinds: Mapping,
                 tables: Mapping[str, Mapping[str, list]] | None = None) -> str:
    """The short findings of README.md, markers included: the verdicts counted and each experiment's paragraph."""
    tables = tables or {}
    items = [([("code", experiment), ("", f" ({_title(group, kinds)}): ")]
              + _paragraph(experiment, group, kinds, tables), [])
             for experiment, group in _by_experiment(rows).items()]
    body = render([("p", [("", f"{len(rows)} claims checked by the default pipeline: {_counts(rows)}.")]),
                   ("ul", items),
                   ("p", [("", "Each claim with its measured and expected numbers, tolerance and worst case: "),
                          ("code", "results/findings.md"), ("", " (made by the pipeline; in the report, category "
                                                                  "Claims). Generated by "),
                          ("code", "python -m daedyn findings --readme"), ("", "; do not edit.")])])
    return f"{BEGIN}\n{body}{END}"


def replace_block(text: str, block: str, where: str = "README.md") -> str:
    """``text`` with its block between :data:`BEGIN` and :data:`END` replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{where} has no {BEGIN} ... {END} block; put the two markers where the findings go")
    return text[:start] + block + text[end + len(END):]


def current_block(text: str, where: str = "README.md") -> str:
    """The block of ``text`` between the markers, markers included."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{where} has no {BEGIN} ... {END} block")
    return text[start:end + len(END)]


# -- files -------------------------------------------------------------------------------------------------------

def inputs_of(rows: Sequence[Mapping[str, str]], kinds: Mapping) -> list[str]:
    """The tables (paths relative to the working directory) the page reads besides SUMMARY."""
    return [path for experiment, group in _by_experiment(rows).items()
            for path in table_paths(kinds.get(group[0]["kind"]), experiment)]


def load_tables(rows, kinds, root: str | Path = ".") -> dict[str, dict[str, list]]:
    """experiment -> {file name: rows} of the tables the kinds' findings paragraphs read."""
    out: dict[str, dict[str, list]] = {}
    for path in inputs_of(rows, kinds):
        experiment, name = Path(path).parts[-2:]
        out.setdefault(experiment, {})[name] = _read_csv(Path(root) / path)
    return out


def provenance_of(files: Sequence[str], root: str | Path = ".") -> dict[str, str]:
    """Which result files the page was made from (with their SHA-256) and which code made it."""
    from daedyn import __version__, provenance

    git = provenance.git_state()
    code = f"daedyn {__version__}, git {git['git_describe']} (commit {git['git_commit']}" + (
        f", uncommitted code {git['git_diff_sha256'][:12]})" if git["git_dirty"] == 1 else ")")
    return {"code": code, "made": provenance.now(),
            **{f"from {f}": "sha256 " + provenance.sha256_file(Path(root) / f)[:16] for f in files}}


def write_page(summary: str, markdown: str, rst: str | None = None, kinds: Mapping | None = None,
               root: str | Path = ".") -> list[dict[str, str]]:
    """Write the findings page from ``summary`` (and the kinds' tables under ``root``): ``markdown``, and
    ``rst`` for the report's landing page. Returns the rows."""
    from daedyn import store
    from daedyn.kinds import load

    kinds = load() if kinds is None else kinds
    rows = read_summary(Path(root) / summary)
    tables = load_tables(rows, kinds, root)
    blocks = page(rows, kinds, tables, provenance_of([summary, *inputs_of(rows, kinds)], root))
    for path, markup in ((markdown, "md"), (rst, "rst")):
        if path:
            with store.atomic_path(path) as tmp:
                Path(tmp).write_text(render(blocks, markup), encoding="utf-8")
    return rows


def snapshot_block(snapshot: str | Path, kinds: Mapping | None = None) -> str:
    """The README block rendered from a snapshot folder (a copy of the tables, paths as under the pipeline)."""
    from daedyn.kinds import load

    kinds = load() if kinds is None else kinds
    rows = read_summary(Path(snapshot) / SUMMARY)
    return readme_block(rows, kinds, load_tables(rows, kinds, snapshot))


def refresh(results_root: str | Path, snapshot: str | Path, readme: str | Path | None = None,
            kinds: Mapping | None = None) -> list[str]:
    """Copy the tables the findings read from a pipeline's working directory ``results_root`` into the
    snapshot folder (replacing it), and rewrite the block of ``readme`` from it. Returns the copied paths."""
    from daedyn.kinds import load

    kinds = load() if kinds is None else kinds
    rows = read_summary(Path(results_root) / SUMMARY)
    files = [SUMMARY, *inputs_of(rows, kinds)]
    for f in files[1:]:
        if not (Path(results_root) / f).exists():
            raise FileNotFoundError(f"{Path(results_root) / f} does not exist: build the default pipeline first")
    # copied whole into a new folder first, so a failed copy leaves the old snapshot as it was
    Path(snapshot).mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".results-", dir=snapshot))
    try:
        for f in files:
            Path(fresh, f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(results_root) / f, Path(fresh, f))
        if Path(snapshot, "results").exists():
            shutil.rmtree(Path(snapshot, "results"))
        Path(fresh, "results").rename(Path(snapshot, "results"))
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    if readme:
        rewrite_readme(readme, snapshot, kinds)
    return files


def rewrite_readme(readme: str | Path, snapshot: str | Path, kinds: Mapping | None = None) -> None:
    """Replace the findings block of ``readme`` by the one rendered from ``snapshot``, atomically."""
    from daedyn import store

    text = replace_block(Path(readme).read_text(encoding="utf-8"), snapshot_block(snapshot, kinds), str(readme))
    with store.atomic_path(readme) as tmp:
        tmp.write_text(text, encoding="utf-8")
