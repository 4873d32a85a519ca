"""The findings page and README.md's findings block are generated from the claims tables: the README
block equals the one rendered from the snapshot of the default pipeline's tables, every claim shows its
numbers, rows that do not say what their verdict judged are flagged, a kind's own paragraph is computed
from its tables, and the rule writes the page on the tiny workflow."""

from __future__ import annotations

import csv
import hashlib
import re
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO
from daedyn import claims, findings
from daedyn.__main__ import main
from daedyn.claims import SUMMARY_COLUMNS
from daedyn.kinds import load

SNAPSHOT = REPO / findings.SNAPSHOT


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def md(text: str) -> str:
    """A plain text as the Markdown page writes it."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", " ".join(text.split()))


def summary_row(claim, verdict="confirmed", measured="max |x| = 0.01 over 3 runs", expected="≤ 0.05",
                kind="depth", experiment="depth_a", **extra):
    row = dict.fromkeys(SUMMARY_COLUMNS, "")
    row.update(group="beyond the paper", experiment=experiment, kind=kind, claim=claim, verdict=verdict,
               statement=f"statement of {claim}", measured=measured, expected=expected,
               table=f"results/{experiment}/claims.csv", **extra)
    return row


def write_summary(root: Path, rows) -> None:
    path = root / findings.SUMMARY
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_readme_block_equals_the_one_rendered_from_the_snapshot():
    """A number in README.md's findings block that differs from the default pipeline's tables fails here:
    refresh with `python -m daedyn findings --refresh` after a default build (docs/operations.md)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert findings.current_block(readme) == findings.snapshot_block(SNAPSHOT)
    # the counts it quotes, counted here from the snapshot's table
    rows = read_rows(SNAPSHOT / findings.SUMMARY)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in claims.VERDICTS}
    head = f"{len(rows)} claims checked by the default pipeline: " + ", ".join(
        f"{n} {v}" for v, n in counts.items() if n)
    assert head in readme
    for experiment in {r["experiment"] for r in rows}:
        assert f"`{experiment}`" in findings.current_block(readme)


def test_docs_quote_no_hand_copied_numbers():
    """docs/findings.md explains in words and points at results/findings.md; README.md quotes only its block."""
    text = (REPO / "docs/findings.md").read_text(encoding="utf-8")
    assert "results/findings.md" in text
    # a decimal number or a percentage is a measured number; the docs leave those to the page
    assert re.findall(r"\d+\.\d+|\d+ ?%", text) == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    outside = readme.replace(findings.current_block(readme), "")
    section = outside.split("## What we found", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"\d", section) == []


def test_the_page_shows_every_claim_with_its_numbers_and_flags_what_is_missing():
    rows = [summary_row("a: worst", tolerance="0.05", judged_on="worst over 3 runs: 0.01 (run x)"),
            summary_row("b: from text", measured="12 of 12 modes within 0.02; mean 0.003", expected="≤ 0.02"),
            summary_row("c: median", verdict="qualified", measured="median error 0.04 (max 0.7)",
                        expected="≤ 0.1"),
            summary_row("d: bare", verdict="refuted", measured="u = 0.5", expected="u > 0",
                        kind="some_new_kind", experiment="novel_x")]
    blocks = findings.page(rows, load())
    text = findings.render(blocks)
    items = [text.split(f"- **{r['verdict']}** `{r['claim']}`: {md(r['statement'])}\n", 1)[1].split("\n- ", 1)[0]
             for r in rows]
    for row, item in zip(rows, items):
        assert f"measured: {md(row['measured'])}" in item and f"expected: {md(row['expected'])}" in item
        assert "tolerance: " in item and "worst case: " in item
    a, b, c, d = items
    assert "tolerance: 0.05" in a and "worst case: worst over 3 runs: 0.01 (run x)" in a
    assert "tolerance: ≤ 0.02" in b and "worst case: 12 of 12 modes within 0.02" in b and "mean" not in \
        b.split("worst case: ")[1].split("\n")[0]
    assert "tolerance: **not stated**" in d and "worst case: **not stated**" in d
    # the audit names exactly the rows that do not say what they judged, with their tables
    audit = text.split("## Audit of the claims tables", 1)[1]
    assert "`a: worst`" not in audit and "`b: from text`" not in audit
    assert re.search(r"`c: median` .*median", audit) and re.search(r"`d: bare` .*no tolerance.*no worst case", audit)
    assert findings.audit(rows[0]) == [] and len(findings.audit(rows[3])) == 2
    # an experiment of a kind unknown to the registry still gets its section and its verdicts counted
    assert "## Beyond the paper — `novel_x`" in text and "1 claim: 1 refuted; refuted: `d: bare`." in text
    assert "4 claims: 2 confirmed, 1 qualified, 1 refuted." in text


def test_claim_row_states_tolerance_and_judged_on_and_rejects_a_median_alone(tmp_path):
    row = claims.claim_row("x", "s", "m", "e", "confirmed", tolerance="≤ 0.1", judged_on="95th percentile; worst: 0.2")
    assert tuple(row) == claims.COLUMNS and row["tolerance"] == "≤ 0.1"
    with pytest.raises(ValueError, match="judged_on 'median over 19 pairs' is a median alone"):
        claims.claim_row("x", "s", "m", "e", "confirmed", tolerance="≤ 0.1", judged_on="median over 19 pairs")
    with pytest.raises(ValueError, match="verdict 'fine'"):
        claims.claim_row("x", "s", "m", "e", "fine")
    # a claims file of the columns before tolerance and judged_on reads them as empty
    from daedyn.jobs.claims import read_claims

    old = tmp_path / "old.csv"
    old.write_text("claim,statement,measured,expected,verdict,note\nx,s,m,e,confirmed,\n", encoding="utf-8")
    assert read_claims(str(old)) == [{**dict.fromkeys(claims.COLUMNS, ""), "claim": "x", "statement": "s",
                                      "measured": "m", "expected": "e", "verdict": "confirmed"}]


def mean_of_gap(experiment, tables, claims_rows):
    """A kind's findings paragraph for the test below: computed from its metrics table."""
    gaps = [float(r["gap"]) for r in tables["metrics.csv"]]
    return f"{experiment}: mean gap {statistics.fmean(gaps):.4f} over {len(gaps)} runs ({len(claims_rows)} claims)"


def test_a_kind_adds_a_paragraph_computed_from_its_tables(tmp_path):
    kinds = load()
    kinds["depth"] = replace(kinds["depth"], findings="test_findings:mean_of_gap")
    assert findings.table_paths(kinds["depth"], "depth_a") == ["results/depth_a/metrics.csv"]
    assert findings.table_paths(kinds["masking"], "masking_a") == []
    assert findings.sources(kinds) == []  # a module outside the package is no package source
    gaps = [0.25, 0.5, 2.0]
    (tmp_path / "results/depth_a").mkdir(parents=True)
    (tmp_path / "results/depth_a/metrics.csv").write_text(
        "run,gap\n" + "".join(f"r{i},{g}\n" for i, g in enumerate(gaps)), encoding="utf-8")
    write_summary(tmp_path, [summary_row("a"), summary_row("b")])
    findings.write_page(findings.SUMMARY, str(tmp_path / "page.md"), str(tmp_path / "page.rst"), kinds, tmp_path)
    page = (tmp_path / "page.md").read_text(encoding="utf-8")
    assert f"depth\\_a: mean gap {sum(gaps) / 3:.4f} over 3 runs (2 claims)" in page
    # provenance: each file read, with its SHA-256, and the code version
    for name in (findings.SUMMARY, "results/depth_a/metrics.csv"):
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()[:16]
        assert f"- from {md(name)}: `sha256 {digest}`" in page
    assert re.search(r"- code: `daedyn \S+, git ", page)
    block = findings.snapshot_block(tmp_path, kinds)
    assert "mean gap 0.9167 over 3 runs" in block


def test_the_report_page_renders_without_docutils_messages():
    from docutils.core import publish_parts

    rows = read_rows(SNAPSHOT / findings.SUMMARY) + [summary_row("1. starts like a list", measured="-3 * x_1 |y|")]
    rst = findings.render(findings.page(rows, load(), provenance={"code": "v"}), "rst")
    html = publish_parts("Title\n=====\n\nVerdicts\n--------\n\n" + rst, writer="html",
                         settings_overrides={"report_level": 1})["body"]
    assert "system-message" not in html
    assert "1. starts like a list" in html and "-3 * x_1 |y|" in html


def test_the_command_writes_the_page_and_rewrites_the_readme_block(tmp_path, capsys):
    rows = [summary_row("a"), summary_row("b", verdict="refuted")]
    write_summary(tmp_path / "run", rows)
    assert main(["findings", "--root", str(tmp_path / "run")]) == 0
    assert "`b`: statement of b" in (tmp_path / "run/results/findings.md").read_text(encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n\n## What we found\n\nno markers\n", encoding="utf-8")
    assert main(["findings", "--refresh", "--root", str(tmp_path / "run"), "--snapshot", str(tmp_path / "snap"),
                 "--readme", str(readme)]) == 1
    assert "has no <!-- findings:begin -->" in capsys.readouterr().err
    readme.write_text(f"intro\n\n{findings.BEGIN}\nold\n{findings.END}\n\nrest\n", encoding="utf-8")
    assert main(["findings", "--refresh", "--root", str(tmp_path / "run"), "--snapshot", str(tmp_path / "snap"),
                 "--readme", str(readme)]) == 0
    assert read_rows(tmp_path / "snap" / findings.SUMMARY) == rows
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n\n" + findings.BEGIN) and text.endswith(findings.END + "\n\nrest\n")
    assert "2 claims checked by the default pipeline: 1 confirmed, 1 refuted." in text and "old" not in text


@pytest.mark.workflow
def test_the_rule_writes_every_claim_of_the_summary_with_its_numbers(tiny_workflow):
    rows = read_rows(tiny_workflow / findings.SUMMARY)
    page = (tiny_workflow / "results/findings.md").read_text(encoding="utf-8")
    for row in rows:
        item = page.split(f"- **{row['verdict']}** `{row['claim']}`: {md(row['statement'])}\n", 1)[1].split("\n- ", 1)[0]
        assert f"measured: {md(row['measured'])}" in item and f"expected: {md(row['expected'])}" in item
        assert re.search(r"tolerance: \S", item) and re.search(r"worst case: \S", item)
    assert sum(f"**{v}**" in line for line in page.splitlines() for v in claims.VERDICTS) == len(rows)
    digest = hashlib.sha256((tiny_workflow / findings.SUMMARY).read_bytes()).hexdigest()[:16]
    assert f"`sha256 {digest}`" in page
    rst = (tiny_workflow / "results/findings.rst").read_text(encoding="utf-8")
    assert all(row["claim"] in rst for row in rows)
