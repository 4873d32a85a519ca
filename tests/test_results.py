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
from conftest import REPO
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


def test_open_experiment_names_the_missing_file_and_what_exists(tmp_path):
    results = tmp_path / "results"
    (results / "fig5_mnist").mkdir(parents=True)
    (results / "fig5_mnist" / "combined.nc").write_bytes(b"")
    with pytest.raises(store.ResultFileError) as err:
        daedyn.open_experiment("fig6_mnist", results=results)
    message = str(err.value)
    assert str(results / "fig6_mnist" / "combined.nc") in message
    assert "./run.sh pipeline results/fig6_mnist/combined.nc" in message
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
