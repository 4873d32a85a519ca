"""Every label the repository cites (equations E…, departures D…, claim numbers) is defined in
docs/science.md, and nothing cites documents that are not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

SCIENCE = REPO / "docs" / "science.md"
THIS = Path(__file__).resolve()  # it spells out the patterns it looks for
SOURCES = ["Snakefile", "README.md", "config.yaml", "run.sh", "pyproject.toml", "environment.yml", ".test/config.yaml"]
FOLDERS = ["src", "workflow", "profiles", "docs", "tests", "benchmarks"]
SUFFIXES = {".py", ".md", ".smk", ".yaml", ".rst", ".sh", ".toml"}


def cited_texts() -> dict[str, str]:
    files = [REPO / name for name in SOURCES]
    files += [p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*"))
              if p.suffix in SUFFIXES and "__pycache__" not in p.parts and p not in (SCIENCE, THIS)]
    # flake8 codes in `noqa` comments look like labels (E402, E731)
    return {str(p.relative_to(REPO)): re.sub(r"noqa: [A-Z]\d+(, [A-Z]\d+)*", "", p.read_text()) for p in files}


def defined_labels() -> set[str]:
    text = SCIENCE.read_text()
    labels = set()
    for head in re.findall(r"\*\*((?:[ED]\d+[a-c]?(?:, )?)+) —", text):
        labels |= set(head.split(", "))
    return labels


def test_science_md_defines_the_labels_and_claims():
    labels = defined_labels()
    assert {f"E{i}" for i in range(1, 25) if i not in (7, 10)} <= labels
    assert {"E7a", "E7b", "E10a", "E10b", "E10c"} <= labels and {f"D{i}" for i in range(1, 11)} <= labels
    claims = re.findall(r"^(\d+)\. ", SCIENCE.read_text().split("## Claims checked")[1], re.M)
    assert claims == [str(i) for i in range(1, 20)]


def test_every_cited_label_is_defined_in_science_md():
    labels = defined_labels()
    undefined = {f"{name}: {label}" for name, text in cited_texts().items()
                 for label in re.findall(r"\b([ED]\d+[a-c]?)\b", text) if label not in labels}
    assert not undefined, sorted(undefined)


#: citations of documents that are not in the repository (their file names and their labels)
EXTERNAL = re.compile(r"paper\.md|beyond\.md|pipeline\.md|shared/docs|\bK\d+\b|\bB\d+[a-z]\b|\bB(?!2\b)\d+\b")


def test_nothing_cites_documents_outside_the_repository():
    found = {f"{name}: {m.group()}" for name, text in cited_texts().items() for m in EXTERNAL.finditer(text)}
    assert not found, sorted(found)
    claims = {f"{name}: claim {n}" for name, text in cited_texts().items()
              for n in re.findall(r"\b[Cc]laims? (\d+)", text) if not 1 <= int(n) <= 19}
    assert not claims, sorted(claims)


def test_readme_stage_table_agrees_with_the_registry():
    """Each kind's three generated rules are in the README's stage table, with the files they write."""
    from daedyn.kinds import load

    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `")]
    for kind in load().values():
        train = [r for r in rows if r.startswith(f"| `{kind.rule('train')}`")]
        assert len(train) == 1 and f"`{kind.run_file}`" in train[0], kind.name
        aggregate = [r for r in rows if f"`{kind.rule('aggregate')}`" in r.split("|")[1]]
        assert len(aggregate) == 1, kind.name
        for file in kind.aggregate.outputs.values():
            assert f"`{file}`" in aggregate[0] or f"/{file}`" in aggregate[0], (kind.name, file)
        assert any(f"`{kind.rule('figure')}`" in r.split("|")[1] for r in rows), kind.name


def test_architecture_table_of_kinds_agrees_with_the_registry():
    from daedyn.kinds import load

    rows = {line.split("|")[1].strip(): line for line in (REPO / "docs/architecture.md").read_text().splitlines()
            if line.startswith("| `")}
    for kind in load().values():
        row = rows[f"`{kind.name}`"]
        assert f"`{kind.section}`" in row and kind.config_class.rpartition(".")[2] in row, kind.name
        assert f"`{kind.run_file.removeprefix('results/{experiment}/')}`" in row, kind.name
        assert all(f"`{file}`" in row for file in kind.aggregate.outputs.values()), kind.name
