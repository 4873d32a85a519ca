"""The nonlinear-theory experiments through Snakemake: planned by the default and paper targets, and a tiny
experiment (spiked Gaussian runs and a data run on a synthetic dataset) built end to end, its metrics
recomputed with numpy from the combined file."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from conftest import REPO, load_yaml, run_snakemake
from daedyn import claims, findings, open_experiment, store
from test_netcdf_compliance import documented_variables
from test_workflow import planned_jobs

pytestmark = pytest.mark.workflow


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("target,name", [("all", "nonlinear_ode"), ("paper", "nonlinear_ode_paper")])
def test_default_and_paper_targets_plan_the_experiment(tmp_path, target, name):
    out = run_snakemake(tmp_path, None, "-n", target).stdout
    jobs = planned_jobs(out)
    exp = load_yaml(REPO / "config.yaml")["nonlinear_theory_experiments"][name]
    # one part per activation, and data: fewer than `bundle` parts, so one bundle trains them all
    assert len(exp["activations"]) + 1 <= load_yaml(REPO / "src/daedyn/config.schema.yaml")["properties"]["bundle"]["default"]
    assert {k: v for k, v in jobs.items() if k.startswith("nonlinear_theory_train")} == {
        f"nonlinear_theory_train_{name}_b": 1}
    assert jobs["nonlinear_theory_aggregate"] == jobs["nonlinear_theory_figure"] == 1
    for path in ("runs/erf.nc", "runs/relu.nc", "runs/data.nc", "combined.nc", "metrics.csv", "claims.csv"):
        assert f"results/{name}/{path}" in out, path
    assert f"results/figures/{name}.png" in out and f"results/figures/{name}.pdf" in out
    if target == "all":
        assert f"results/{name}/claims.csv" in out.split("rule beyond_claims:")[1].split("output:")[0]
        assert "results/spectra/mnist_n50000.nc" in out or "rule spectrum" not in out


TINY_EXP = {"activations": ["erf", "relu"], "dim": 60, "hidden": 2, "spikes": [3.0, 1.5], "noise_var": [0.0, 1.0],
            "lr": [0.5], "time": 0.6, "record_every": 0.2, "seeds": 3, "dataset": "tiny", "n_samples": 256,
            "data_dim": 10, "data_spikes": 2, "data_lr": [0.2], "data_time": 0.6, "eval_samples": 100}


def tiny_config() -> dict:
    config = {"data": {"download": False}, "scalar_figures": {}, "spectra": [],
              "datasets": {"tiny": {"source": "synthetic",
                                    "synthetic": {"n_samples": 256, "dim": 12, "spectrum": "exponential",
                                                  "scale": 3.0, "decay": 0.6, "seed": 1}}}}
    # the default config's experiments off: their claims would join results/claims/beyond.csv
    for kind, experiments in load_yaml(REPO / "config.yaml").items():
        if kind.endswith("_experiments"):
            config[kind] = {name: {"enabled": False} for name in experiments}
    config["nonlinear_theory_experiments"]["ode_tiny"] = TINY_EXP
    return config


def test_tiny_experiment_end_to_end(tmp_path):
    outputs = [f"results/ode_tiny/{f}" for f in ("combined.nc", "metrics.csv", "claims.csv")]
    outputs += ["results/figures/ode_tiny.png", "results/figures/ode_tiny.pdf"]
    run_snakemake(tmp_path, tiny_config(), "-c2", *outputs, "results/claims/beyond.csv")
    assert (tmp_path / "results/figures/ode_tiny.png").read_bytes().startswith(b"\x89PNG")
    combined = open_experiment("ode_tiny", results=tmp_path / "results")
    assert list(combined["run"].values) == ["erf", "relu", "data"]
    assert combined.sizes["seed"] == 3 and combined.sizes["t"] == 4
    # the theory starts from the networks' shared initial order parameters
    start = combined.isel(t=0)
    for name in ("Q", "M", "T", "S", "R", "err_denoise"):
        np.testing.assert_allclose(start[name].max("seed"), start[f"theory_{name}"], rtol=0, atol=1e-12)
    # the data run: its spikes come from the data, its twin shares them; measured errors only on data
    data = combined.sel(run="data")
    run = store.open_dataset(tmp_path / "results/ode_tiny/runs/data.nc")
    np.testing.assert_array_equal(data["spike_variance"].values, run["spike_var"].values)
    assert int(data["dim"]) == 10 and np.isfinite(run["err_denoise_data"].sel(source="data")).all()
    assert np.isnan(run["err_denoise_data"].sel(source="gaussian")).all()
    # metrics.csv against numpy on the combined file
    rows = _rows(tmp_path / "results/ode_tiny/metrics.csv")
    for row in rows[:: max(1, len(rows) // 10)]:
        one = combined.sel(run=row["run"], source=row["source"], noise_var=float(row["noise_var"]),
                           lr=float(row["lr"])).dropna("t", how="all", subset=["err_denoise"])
        q = row["quantity"]
        sim = one[q].transpose("seed", "t", ...)
        th = one[f"theory_{q.removesuffix('_data')}"].transpose(*sim.dims[1:]).values
        dev = sim.values - th[None]
        rms = np.sqrt(np.mean(dev ** 2, axis=0)).max() * math.sqrt(int(row["dim"]))
        assert float(row["rms_dev_sqrtD"]) == pytest.approx(rms, abs=1e-4), row
        assert float(row["worst_dev_sqrtD"]) == pytest.approx(np.abs(dev).max() * math.sqrt(int(row["dim"])), abs=1e-4)
    rows = _rows(tmp_path / "results/ode_tiny/claims.csv")
    assert [r["claim"] for r in rows] == ["ode_tiny/theory_vs_sgd_erf_lr0.5", "ode_tiny/theory_vs_sgd_relu_lr0.5",
                                          "ode_tiny/gaussian_equivalence"]
    assert all(r["verdict"] in claims.VERDICTS for r in rows)
    # each row says what its verdict judged: the worst RMS over seeds of metrics.csv, or the worst ratio
    assert all(r["tolerance"] and not findings.audit(r) for r in rows)
    metrics = _rows(tmp_path / "results/ode_tiny/metrics.csv")
    for row in rows[:2]:
        run = row["claim"].split("_")[-2]
        top = max(float(m["rms_dev_sqrtD"]) for m in metrics if m["run"] == run and m["source"] == "gaussian")
        assert float(row["judged_on"].split(": ")[1].split(" ")[0]) == pytest.approx(top, rel=5e-3, abs=1e-4)
        tolerance = TINY_EXP.get("tolerance", 3.0)
        assert row["verdict"] == claims.grade(top <= tolerance, top <= 2 * tolerance)
    beyond = _rows(tmp_path / "results/claims/beyond.csv")
    assert [r for r in beyond if r["claim"].startswith("ode_tiny/")] == rows
    # CF/ACDD long names, and every variable documented in docs/python.md
    for path in ("results/ode_tiny/runs/relu.nc", "results/ode_tiny/runs/data.nc", "results/ode_tiny/combined.nc"):
        ds = store.open_dataset(tmp_path / path)
        assert [n for n, v in ds.variables.items() if not v.attrs.get("long_name")] == [], path
        assert sorted(set(ds.variables) - documented_variables()) == [], path
