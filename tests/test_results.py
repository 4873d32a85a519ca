"""The notebook API: importing daedyn leaves matplotlib alone, open_experiment, and docs/python.md runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import daedyn
from conftest import REPO, load_yaml
from daedyn import store


def test_importing_the_package_and_its_figures_switches_no_backend():
    code = ("import matplotlib, daedyn, daedyn.figures.style, daedyn.figures.scalar, daedyn.figures.linear, "
            "daedyn.figures.nonlinear, daedyn.jobs, daedyn.jobs.scalar; print(matplotlib.get_backend())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "svg"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "svg"  # the user's choice (e.g. a notebook's inline backend) survives


def test_open_experiment_returns_the_combined_dataset(tmp_path):
    combined = xr.Dataset({"u": (("run", "epoch"), np.arange(6.0).reshape(2, 3), {"long_name": "u", "units": "1"})},
                          coords={"run": ["ae", "dae"], "epoch": [0, 10, 20]})
    store.write_dataset(combined, tmp_path / "results" / "exp" / "combined.nc", title="t", summary="s",
                        provenance_attrs={})
    ds = daedyn.open_experiment("exp", results=tmp_path / "results")
    np.testing.assert_array_equal(ds["u"].sel(run="dae").values, [3.0, 4.0, 5.0])
    assert ds.attrs["title"] == "t"


@pytest.mark.workflow
def test_open_experiment_opens_every_kind(tiny_workflow):
    """Each experiment of the tiny workflow opens by its name alone, whatever its kind."""
    from snakemake.utils import update_config

    from daedyn.plan import Plan

    config = load_yaml(REPO / "config.yaml")   # the overlay merged as --configfile merges it
    update_config(config, load_yaml(REPO / ".test" / "config.yaml"))
    plan = Plan(config)
    names = [n for kind in plan.kinds.values() for n in plan.experiments(kind)]
    assert {plan.kind_of[n].name for n in names} == set(plan.kinds)  # every kind: the tiny config has each
    for name in names:
        ds = daedyn.open_experiment(name, results=tiny_workflow / "results")
        assert ds.sizes, name


def test_the_hint_for_missing_results_names_a_real_target_of_every_kind(tmp_path):
    """The command the error suggests builds an output of the experiment's aggregation, for every kind
    of the default config; an experiment config.yaml does not define needs its --configfile."""
    from daedyn.plan import Plan

    plan = Plan(load_yaml(REPO / "config.yaml"))
    (tmp_path / "results").mkdir()
    for kind in plan.kinds.values():
        name = next(iter(plan.experiments(kind, paper=None)))
        with pytest.raises(store.ResultFileError) as err:
            daedyn.open_experiment(name, results=tmp_path / "results")
        target = re.search(r"`\./run\.sh pipeline (\S+)`", str(err.value))[1]
        assert target in plan.experiment_targets(kind, name), (kind.name, target)
    with pytest.raises(store.ResultFileError, match=r"--configfile <the file that defines mine> results/mine/"):
        daedyn.open_experiment("mine", results=tmp_path / "results")


def test_open_experiment_names_the_missing_file_and_what_exists(tmp_path):
    results = tmp_path / "results"
    (results / "fig5_mnist").mkdir(parents=True)
    (results / "fig5_mnist" / "combined.nc").write_bytes(b"")
    with pytest.raises(store.ResultFileError) as err:
        daedyn.open_experiment("fig6_mnist", results=results)
    message = str(err.value)
    assert str(results / "fig6_mnist") in message and "combined.nc" in message
    assert "./run.sh pipeline results/fig6_mnist/combined.nc" in message
    with pytest.raises(store.ResultFileError) as err:  # a kind whose aggregation writes summary.nc
        daedyn.open_experiment("sampled_vs_marginalised_mnist", results=results)
    assert "./run.sh pipeline results/sampled_vs_marginalised_mnist/summary.nc" in str(err.value)
    assert "fig5_mnist" in message  # the experiments that do have results
    with pytest.raises(store.ResultFileError, match="holds no experiment results"):
        daedyn.open_experiment("fig6_mnist", results=tmp_path / "elsewhere")


@pytest.mark.workflow
def test_the_examples_of_docs_python_md_run(tiny_workflow, monkeypatch):
    """Every python block of docs/python.md, in order, on the tiny workflow's results. The tiny
    configuration builds the reduced Fig. 6 under the name fig6_mnist, so that name is used."""
    import matplotlib

    matplotlib.use("Agg")
    text = (REPO / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tiny_workflow)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block.replace("fig6_mnist_small", "fig6_mnist"), "docs/python.md", "exec"), namespace)


def test_move_results_puts_old_run_files_into_each_experiments_tree(tmp_path):
    from daedyn.__main__ import main

    results = tmp_path / "results"
    old = ["runs/fig5_mnist/dae/seed0.nc", "runs/fig5_mnist/dae/seed0.nc.ckpt", "nonlinear/fig6_mnist/ae/seed0.nc",
           "depth/depth_mnist/ae_l2/seed0.nc", "masking/masking_mnist/q90/seed1.nc", "runs/sampled_x/variance.nc"]
    for rel in old:
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_text(rel)
    (results / "fig5_mnist").mkdir()
    (results / "fig5_mnist" / "combined.nc").write_text("aggregate")
    assert main(["move-results", str(results), "--dry-run"]) == 0 and (results / old[0]).exists()
    assert main(["move-results", str(results)]) == 0
    for rel in old:
        experiment, rest = rel.split("/", 2)[1:]
        assert (results / experiment / "runs" / rest).read_text() == rel
    assert not any((results / root).exists() for root in ("runs", "nonlinear", "depth", "masking"))
    assert (results / "fig5_mnist" / "combined.nc").read_text() == "aggregate"
    # a file already at its new place: nothing moves
    (results / "runs/fig5_mnist/ae").mkdir(parents=True)
    (results / "runs/fig5_mnist/ae/seed0.nc").write_text("old")
    (results / "fig5_mnist/runs/ae").mkdir(parents=True)
    (results / "fig5_mnist/runs/ae/seed0.nc").write_text("new")
    assert main(["move-results", str(results)]) == 1
    assert (results / "runs/fig5_mnist/ae/seed0.nc").read_text() == "old"
