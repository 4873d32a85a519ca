"""Every label the repository cites (equations E…, departures D…, claim numbers) is defined in
docs/science.md, nothing cites documents that are not in the repository, every link of the README
and docs/ resolves, and the README stays a short front page."""

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


def test_stage_table_agrees_with_the_registry():
    """Each kind's three generated rules are in the stage table of docs/stages.md, with the files they write."""
    from daedyn.kinds import load

    rows = [line for line in (REPO / "docs" / "stages.md").read_text().splitlines() if line.startswith("| `")]
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


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    anchors, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6} (.*)", line)
        if fenced or not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading[1]).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_every_link_of_the_readme_and_docs_resolves():
    """Relative links point at files of the repository, and anchors at headings of their file."""
    broken = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists() or REPO not in path.parents:
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such file in the repository)")
            elif anchor and (path.suffix != ".md" or anchor not in heading_anchors(path)):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_broken_links(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Top: the `x` part\n\n## Second, again\n")
    assert heading_anchors(doc) == {"top-the-x-part", "second-again"}
    assert LINK.findall("see [b](b.md#x) and ![img](img/a.png), not `[c](c)` in code") == ["b.md#x", "img/a.png", "c"]


def test_the_readme_is_a_short_front_page():
    """About 150 lines: what daedyn is, one figure, the quick start, where results are, an example,
    and links; the long content lives in docs/."""
    text = (REPO / "README.md").read_text()
    assert 100 <= len(text.splitlines()) <= 170
    assert len(re.findall(r"!\[[^\]]*\]\((docs/img/[^)]+\.png)\)", text)) == 1
    assert "./run.sh pipeline" in text and "./run.sh test" in text
    for page in ("stages", "configuration", "findings", "python", "science", "operations", "cluster", "architecture"):
        assert f"(docs/{page}.md)" in text, page


def test_the_readme_example_is_a_valid_sweep_of_18_runs():
    """The README's "add an experiment or a sweep" example, merged over config.yaml, plans what it says."""
    import yaml
    from snakemake.utils import update_config

    from conftest import load_yaml
    from daedyn.plan import Plan

    text = (REPO / "README.md").read_text()
    block = re.search(r"## Add an experiment or a sweep.*?```yaml\n(.*?)```", text, re.S)[1]
    assert len(block.splitlines()) <= 12
    config = load_yaml(REPO / "config.yaml")
    update_config(config, yaml.safe_load(block))
    plan = Plan(config)
    assert len(plan.run_files("sweep_probe")) == 18
    assert "results/figures/sweep_probe_sweep.png" in plan.targets(paper=False)
