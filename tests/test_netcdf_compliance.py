"""Result files pass the IOOS compliance checker for CF-1.11, carry real ACDD attributes, and every
stored variable is documented in docs/python.md."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO
from daedyn import store

pytestmark = pytest.mark.workflow

#: one file of each kind the tiny workflow writes
FILES = {
    "dataset": "results/data/mnist.nc",
    "synthetic dataset": "results/data/synthetic.nc",
    "spectrum": "results/spectra/mnist_n1000.nc",
    "scalar figure data": "results/scalar/fig4.nc",
    "linear run": "results/fig5_synthetic/runs/dae/seed0.nc",
    "linear combined": "results/fig5_synthetic/combined.nc",
    "nonlinear run": "results/fig6_mnist/runs/dae/seed0.nc",
    "nonlinear combined": "results/fig6_mnist/combined.nc",
}


def cf_findings(path, tmp_path) -> dict[str, list[str]]:
    """The checker's messages for `path` by priority ("high", "medium", "low")."""
    # imported here, so that collecting the suite (e.g. `-k cuda` on a GPU machine) needs no checker
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / "cf.json"
    ComplianceChecker.run_checker(str(path), ["cf:1.11"], 0, "normal", output_filename=str(report),
                                  output_format="json")
    result = json.loads(report.read_text())["cf:1.11"]
    return {level: [m for check in result[f"{level}_priorities"] for m in check["msgs"]]
            for level in ("high", "medium", "low")}


@pytest.mark.parametrize("kind", FILES)
def test_cf_checker_reports_no_high_priority_finding(tiny_workflow, tmp_path, kind):
    findings = cf_findings(tiny_workflow / FILES[kind], tmp_path)
    assert findings["high"] == [], f"{FILES[kind]}: {findings['high']}"


def test_the_checker_catches_what_the_test_relies_on(tmp_path):
    """A file with an invalid unit and a coordinate without long_name does get high-priority findings."""
    import numpy as np
    import xarray as xr

    bad = tmp_path / "bad.nc"
    xr.Dataset({"loss": ("seed", np.zeros(2), {"long_name": "loss", "units": "(data units)^2"})},
               coords={"seed": [0, 1]}).to_netcdf(bad)
    high = " ".join(cf_findings(bad, tmp_path)["high"])
    assert "(data units)^2" in high and "seed" in high


@pytest.mark.parametrize("kind", FILES)
def test_acdd_attributes_and_long_names(tiny_workflow, kind):
    ds = store.open_dataset(tiny_workflow / FILES[kind])
    assert ds.attrs["Conventions"] == "CF-1.11 ACDD-1.3"
    assert "MIT" in ds.attrs["license"]
    assert ds.attrs["creator_name"] == "daedyn contributors"
    assert ds.attrs["institution"] == "daedyn project (open-source software)"
    missing = [name for name, var in ds.variables.items() if not var.attrs.get("long_name")]
    assert missing == [], f"{FILES[kind]}: variables without long_name: {missing}"


def documented_variables() -> set[str]:
    """Names in the first column of the tables of docs/python.md."""
    text = (REPO / "docs" / "python.md").read_text()
    return {name for cell in re.findall(r"^\|([^|\n]*)\|", text, re.M) for name in re.findall(r"`([^`]+)`", cell)}


@pytest.mark.parametrize("kind", ["linear run", "linear combined", "nonlinear run", "nonlinear combined"])
def test_every_stored_variable_is_documented(tiny_workflow, kind):
    ds = store.open_dataset(tiny_workflow / FILES[kind])
    undocumented = sorted(set(ds.variables) - documented_variables())
    assert undocumented == [], f"{FILES[kind]}: add these to the tables of docs/python.md: {undocumented}"
