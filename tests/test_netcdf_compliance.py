"""Result files pass the IOOS compliance checker for CF-1.11 and ACDD-1.3 (a run file and the aggregate of
every kind of experiment, the datasets and spectra), carry short long_names with their definitions in
`comment`, and every stored variable is documented in docs/python.md."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO
from daedyn import store
from daedyn.kinds import load

pytestmark = pytest.mark.workflow

#: one file of each kind the tiny workflow writes (.test/config.yaml): a run file and the aggregate
#: of every experiment kind, the datasets, spectra and the paper's scalar figure data
FILES = {
    "dataset": "results/data/mnist.nc",
    "synthetic dataset": "results/data/synthetic.nc",
    "spectrum": "results/spectra/mnist_n1000.nc",
    "held-out moment": "results/spectra/synthetic_n128_test_synthetic_test.nc",
    "scalar figure data": "results/scalar/fig4.nc",
    "linear run": "results/fig5_synthetic/runs/dae/seed0.nc",
    "linear combined": "results/fig5_synthetic/combined.nc",
    "nonlinear run": "results/fig6_mnist/runs/dae/seed0.nc",
    "nonlinear combined": "results/fig6_mnist/combined.nc",
    "depth run": "results/depth_synthetic/runs/wdae_l3/seed0.nc",
    "depth combined": "results/depth_synthetic/combined.nc",
    "masking run": "results/masking_synthetic/runs/q50/seed0.nc",
    "masking gaussian run": "results/masking_synthetic/runs/q50_gauss/seed0.nc",
    "masking combined": "results/masking_synthetic/combined.nc",
    "generalisation run": "results/generalisation_synthetic/runs/n128/seed0.nc",
    "generalisation combined": "results/generalisation_synthetic/combined.nc",
    "lr_normalised run": "results/lr_normalised_synthetic/runs/wdae_k1_f0.5/seed0.nc",
    "lr_normalised combined": "results/lr_normalised_synthetic/combined.nc",
    "lr_normalised comparison": "results/lr_normalised_synthetic/comparison.nc",
    "sampled run": "results/sampled_vs_marginalised_synthetic/runs/traj_b64.nc",
    "sampled summary": "results/sampled_vs_marginalised_synthetic/summary.nc",
    "nonlinear_theory run": "results/nonlinear_ode_synthetic/runs/relu.nc",
    "nonlinear_theory data run": "results/nonlinear_ode_synthetic/runs/data.nc",
    "nonlinear_theory combined": "results/nonlinear_ode_synthetic/combined.nc",
}
#: the most words a long_name may have (the definition goes to `comment`)
LONG_NAME_WORDS = 6


def test_every_experiment_kind_has_a_run_file_and_an_aggregate_here():
    assert {name.split()[0] for name in FILES} >= set(load())


def findings(path, tmp_path, checker: str = "cf:1.11") -> dict[str, list[str]]:
    """The checker's messages for `path` by priority ("high", "medium", "low")."""
    # imported here, so that collecting the suite (e.g. `-k cuda` on a GPU machine) needs no checker
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / f"{checker.replace(':', '_')}.json"
    ComplianceChecker.run_checker(str(path), [checker], 0, "normal", output_filename=str(report),
                                  output_format="json")
    result = json.loads(report.read_text())[checker]
    return {level: [m for check in result[f"{level}_priorities"] for m in check["msgs"]]
            for level in ("high", "medium", "low")}


def cf_findings(path, tmp_path) -> dict[str, list[str]]:
    return findings(path, tmp_path, "cf:1.11")


@pytest.mark.parametrize("kind", FILES)
def test_cf_checker_reports_no_high_priority_finding(tiny_workflow, tmp_path, kind):
    high = cf_findings(tiny_workflow / FILES[kind], tmp_path)["high"]
    assert high == [], f"{FILES[kind]}: {high}"


@pytest.mark.parametrize("kind", FILES)
def test_acdd_checker_reports_no_high_priority_finding(tiny_workflow, tmp_path, kind):
    """ACDD's one highly recommended attribute that CF forbids here, standard_name (CF allows only the
    names of its table, which has none for these quantities; docs/python.md, "Standards"), is the only
    finding accepted, and only on variables that indeed have none."""
    high = findings(tiny_workflow / FILES[kind], tmp_path, "acdd:1.3")["high"]
    assert [m for m in high if m != "standard_name"] == [], f"{FILES[kind]}: {high}"
    ds = store.open_dataset(tiny_workflow / FILES[kind])
    assert not any("standard_name" in v.attrs for v in ds.variables.values())


def test_the_checkers_catch_what_the_tests_rely_on(tmp_path):
    """A file with an invalid unit and a coordinate without long_name does get high-priority CF
    findings; one without Conventions, id or coverage_content_type high-priority ACDD findings."""
    import numpy as np
    import xarray as xr

    bad = tmp_path / "bad.nc"
    xr.Dataset({"loss": ("seed", np.zeros(2), {"long_name": "loss", "units": "(data units)^2"})},
               coords={"seed": [0, 1]}).to_netcdf(bad)
    high = " ".join(cf_findings(bad, tmp_path)["high"])
    assert "(data units)^2" in high and "seed" in high
    acdd = findings(bad, tmp_path, "acdd:1.3")["high"]
    assert {"coverage_content_type", "title not present", "summary not present", "keywords not present",
            "Conventions does not contain 'ACDD-1.3'"} <= set(acdd), acdd


@pytest.mark.parametrize("kind", FILES)
def test_acdd_attributes_and_short_long_names(tiny_workflow, kind):
    ds = store.open_dataset(tiny_workflow / FILES[kind])
    assert ds.attrs["Conventions"] == "CF-1.11, ACDD-1.3" == store.CONVENTIONS
    assert "MIT" in ds.attrs["license"]
    assert ds.attrs["creator_name"] == "daedyn contributors"
    assert ds.attrs["institution"] == "daedyn project (open-source software)"
    assert ds.attrs["naming_authority"] == "daedyn" and ds.attrs["project"] and ds.attrs["processing_level"]
    assert ds.attrs["id"].split(":")[0] == FILES[kind] and " " not in ds.attrs["id"]
    for name, var in ds.variables.items():
        long_name = var.attrs.get("long_name", "")
        assert long_name, f"{FILES[kind]}: {name} has no long_name"
        assert len(long_name.split()) <= LONG_NAME_WORDS, f"{FILES[kind]}: {name}: {long_name!r} is not short"
        # nothing left to split into long_name and comment, and no parenthesis left open by a split
        assert store.split_long_name(var.attrs) == {} and long_name.count("(") == long_name.count(")"), long_name
        assert var.attrs.get("coverage_content_type") in store.COVERAGE_CONTENT_TYPES, name


def documented_variables() -> set[str]:
    """Names in the first column of the tables of docs/python.md."""
    text = (REPO / "docs" / "python.md").read_text()
    return {name for cell in re.findall(r"^\|([^|\n]*)\|", text, re.M) for name in re.findall(r"`([^`]+)`", cell)}


@pytest.mark.parametrize("kind", [k for k in FILES if k.split()[0] in load()])
def test_every_stored_variable_is_documented(tiny_workflow, kind):
    ds = store.open_dataset(tiny_workflow / FILES[kind])
    undocumented = sorted(set(ds.variables) - documented_variables())
    assert undocumented == [], f"{FILES[kind]}: add these to the tables of docs/python.md: {undocumented}"
