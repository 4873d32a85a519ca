"""The report is the results browser: it builds on the tiny workflow, every caption renders without a
docutils "System Message", and its landing page holds the verdict of every claim and links to the figures."""

from __future__ import annotations

import csv
import re

import pytest

from conftest import REPO, SHARED_MNIST, load_yaml, run_snakemake
from daedyn.kinds import load

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def report(tiny_workflow) -> str:
    run_snakemake(tiny_workflow, load_yaml(REPO / ".test" / "config.yaml"), "--report", "report.html",
                  env={"DAEDYN_DATA_MIRROR": str(SHARED_MNIST.parent)})
    return (tiny_workflow / "report.html").read_text()


def test_every_caption_and_the_landing_page_render_clean(report):
    messages = re.findall(r"System Message: [A-Z]+/\d[^<\"]{0,200}", report)
    assert messages == [] and "system-message" not in report, messages[:5]


def test_the_report_holds_every_figure_and_table_with_its_caption(report, tiny_workflow):
    for name in ("fig1.png", "fig4.png", "fig5_mnist.png", "fig5_synthetic.png", "theory.csv", "metrics.csv",
                 "sweep_mnist_sweep.png", "sweep.csv", "summary.csv", "beyond.csv", "depth_synthetic.png",
                 "masking_synthetic.png", "generalisation_synthetic.png", "lr_normalised_synthetic.png",
                 "sampled_vs_marginalised_synthetic.png", "fig6_mnist.png"):
        assert name in report, name
    assert "Set-up: a two-layer linear autoencoder with 16 hidden units" in report  # the config in words
    # categories: the paper's, beyond it, sweeps, claims; one subcategory per kind (no colon in any name)
    for category in ("The paper", "Beyond the paper", "Sweeps", "Claims"):
        assert category in report, category
    for kind in load().values():
        assert ":" not in kind.title and kind.title in report, kind.title


def test_the_landing_page_has_every_verdict_and_links_to_the_figures(report, tiny_workflow):
    with open(tiny_workflow / "results/claims/summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    groups = {r["group"] for r in rows}
    assert groups == {"paper", "sweep", "beyond the paper"}
    experiments = {r["experiment"] for r in rows}
    assert {"theory (Figs. 1-4)", "sweep_mnist", "depth_synthetic", "masking_synthetic", "generalisation_synthetic",
            "lr_normalised_synthetic", "sampled_vs_marginalised_synthetic"} <= experiments
    landing = report.split("Verdicts", 1)[1]
    for row in rows:
        assert row["verdict"] in ("confirmed", "qualified", "refuted")
        if row["figure"]:
            name = row["figure"].rpartition("/")[2]
            # a link to the report's entry of the figure
            assert re.search(rf"showResultInfo\([^)]*{re.escape(name)}", landing), name
    assert landing.count("<tr>") >= len(rows) + 1
