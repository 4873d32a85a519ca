"""The two experiments beyond the paper through Snakemake: planned by the default config, built by the
tiny one (synthetic data), and their numbers checked against numpy on the files they were made from."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from conftest import REPO, load_yaml, planned_outputs, run_snakemake
from daedyn import store, theory
from daedyn.runconfig import schema_defaults
from test_netcdf_compliance import cf_findings, documented_variables
from test_workflow import planned_jobs

pytestmark = pytest.mark.workflow

LRN, SAMPLED = "lr_normalised_synthetic", "sampled_vs_marginalised_synthetic"
#: one file of each kind the two experiments write in the tiny workflow
FILES = {
    "lr-normalised run": f"results/{LRN}/runs/wdae_k1_f0.5/seed0.nc",
    "lr-normalised combined": f"results/{LRN}/combined.nc",
    "lr-normalised comparison": f"results/{LRN}/comparison.nc",
    "sampled trajectories": f"results/{SAMPLED}/runs/traj_b64.nc",
    "sampled variance": f"results/{SAMPLED}/runs/variance.nc",
    "sampled fixed copies": f"results/{SAMPLED}/runs/fixed_copy.nc",
    "sampled summary": f"results/{SAMPLED}/summary.nc",
}


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def grid_runs(exp: dict) -> int:
    exp = {**schema_defaults("lr_normalised_experiment"), **exp}
    return len(exp["fractions"]) * (1 + len(exp["matched_modes"]) + len(exp["gammas"]))


def test_default_config_plans_both_experiments(tmp_path):
    config = load_yaml(REPO / "config.yaml")
    default = {kind: {n: e for n, e in config[kind].items() if e.get("enabled", True) and not e.get("paper", False)}
               for kind in ("lr_normalised_experiments", "sampled_experiments")}
    assert set(default["lr_normalised_experiments"]) == {"lr_normalised_mnist"}
    assert set(default["sampled_experiments"]) == {"sampled_vs_marginalised_mnist"}
    out = run_snakemake(tmp_path, None, "-n").stdout
    jobs = planned_jobs(out)
    trained = planned_outputs(out)
    runs = lambda kind: [f for rule, files in trained.items() if rule.startswith(f"{kind}_train_") for f in files]
    assert len(runs("lr_normalised")) == grid_runs(config["lr_normalised_experiments"]["lr_normalised_mnist"]) == 15
    assert len(runs("sampled")) == len(config["sampled_experiments"]["sampled_vs_marginalised_mnist"]["batches"]) + 2
    assert jobs["lr_normalised_train_lr_normalised_mnist_b"] == 1  # one bundle each
    assert jobs["sampled_train_sampled_vs_marginalised_mnist_b"] == 1
    for rule in ("lr_normalised_aggregate", "lr_normalised_figure", "sampled_aggregate", "sampled_figure",
                 "beyond_claims"):
        assert jobs[rule] == 1, rule
    for path in ("results/lr_normalised_mnist/metrics.csv", "results/figures/lr_normalised_mnist.png",
                 "results/figures/lr_normalised_mnist.pdf", "results/lr_normalised_mnist/claims.csv",
                 "results/figures/sampled_vs_marginalised_mnist.png", "results/sampled_vs_marginalised_mnist/metrics.csv",
                 "results/sampled_vs_marginalised_mnist/claims.csv", "results/claims/beyond.csv",
                 "results/lr_normalised_mnist/runs/wdae_k15_f0.25/seed0.nc",
                 "results/sampled_vs_marginalised_mnist/runs/traj_b100.nc"):
        assert path in out, path
    # the paper-scale versions and the Fashion-MNIST ones (which need its data) wait for `snakemake paper`
    assert "_paper" not in out and "fashion_mnist" not in out
    paper = run_snakemake(tmp_path, None, "-n", "paper").stdout
    jobs = planned_jobs(paper)
    lrn_paper = ("lr_normalised_mnist_paper", "lr_normalised_fashion_mnist")
    lrn_runs = [f for rule, files in planned_outputs(paper).items() if rule.startswith("lr_normalised_train_")
                for f in files]
    assert len(lrn_runs) == sum(grid_runs(config["lr_normalised_experiments"][n]) for n in lrn_paper)
    for name in ("sampled_vs_marginalised_mnist_paper", "sampled_vs_marginalised_fashion_mnist", *lrn_paper):
        assert f"results/figures/{name}.png" in paper, name
    assert "beyond_claims" not in jobs


def test_config_errors_name_the_key(tmp_path):
    config = load_yaml(REPO / ".test" / "config.yaml")
    config["lr_normalised_experiments"][LRN]["modes"] = [0, 4]
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"lr_normalised_experiments.{LRN}.modes" in out and "hidden=4" in out
    config = load_yaml(REPO / ".test" / "config.yaml")
    config["sampled_experiments"]["fig5_synthetic"] = config["sampled_experiments"][SAMPLED]
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "sampled_experiments.fig5_synthetic" in out and "names must be unique" in out


def test_tiny_workflow_builds_figures_metrics_and_claims(tiny_workflow):
    for name in (LRN, SAMPLED):
        for ext in ("png", "pdf"):
            assert (tiny_workflow / f"results/figures/{name}.{ext}").stat().st_size > 1000
        own = read_csv(tiny_workflow / f"results/{name}/claims.csv")
        assert own and all(r["verdict"] in ("confirmed", "qualified", "refuted") for r in own)
        assert all(name in r["claim"] for r in own)
        # every row lands in the beyond-the-paper table
        beyond = read_csv(tiny_workflow / "results/claims/beyond.csv")
        assert [r for r in beyond if name in r["claim"]] == own


def test_lr_normalised_runs_and_step_counts_against_numpy(tiny_workflow):
    exp = load_yaml(REPO / ".test" / "config.yaml")["lr_normalised_experiments"][LRN]
    spec = store.open_dataset(tiny_workflow / f"results/spectra/synthetic_n{exp['n_samples']}.nc")
    lam, V = spec["eigenvalue"].values, spec["eigenvector"].values
    runs = {}
    for path in (tiny_workflow / f"results/{LRN}/runs").glob("*/seed0.nc"):
        ds = store.open_dataset(path).isel(run=0, seed=0)
        runs[path.parent.name] = ds
        # each model at the fraction of its own limit; the matched γ gives the DAE's plateau on mode k
        gamma = float(ds["gamma"])
        if int(ds["matched_mode"]) >= 0:
            k = int(ds["matched_mode"])
            assert gamma == pytest.approx(lam[k] * exp["eps"] / (lam[k] + exp["eps"]), rel=1e-12)
        assert float(ds["lr"]) == pytest.approx(
            float(ds["fraction"]) * theory.stability_limit(lam, float(ds["eps"]), gamma, exp["hidden"]), rel=1e-12)
        W = ds["w2_init"].values @ ds["w1_init"].values
        assert np.allclose(ds["u"].isel(epoch=0).values, np.diag(V.T @ W @ V), atol=1e-12)
    assert sorted(runs) == ["dae_f0.5", "wdae_g0.3_f0.5", "wdae_k1_f0.5"]
    rows = read_csv(tiny_workflow / f"results/{LRN}/metrics.csv")
    assert len(rows) == 2 * len(exp["modes"])
    for row in rows:
        if row["compared"] != "1":
            continue
        for model in ("dae", "wdae"):
            u = runs[row[f"{model}_run"]]["u"].sel(mode=int(row["mode"])).values  # every step recorded
            first = int(np.argmax(u >= 0.9 * u[-1]))
            assert float(row[f"t90_{model}_measured"]) == first  # the very step
        assert float(row["ratio90_measured"]) == pytest.approx(
            float(row["t90_wdae_measured"]) / float(row["t90_dae_measured"]), rel=1e-12)


def test_sampled_variance_slopes_and_fixed_copies_against_numpy(tiny_workflow):
    exp = load_yaml(REPO / ".test" / "config.yaml")["sampled_experiments"][SAMPLED]
    part = store.open_dataset(tiny_workflow / f"results/{SAMPLED}/runs/variance.nc")
    rows = read_csv(tiny_workflow / f"results/{SAMPLED}/metrics.csv")
    for mode in exp["modes"]:
        mine = []
        for eta in part["lr"].values:
            one = part.sel(lr=eta, mode=mode)
            u = one["u"].values[:, one["epoch"].values >= float(one["window_start"])]
            u = u[:, np.isfinite(u).all(axis=0)]
            mine.append(u.var(axis=0, ddof=1).mean())
        stored = [float(r["value"]) for r in rows if r["quantity"] == "variance_vs_lr" and int(r["mode"]) == mode]
        assert np.allclose(stored, mine, rtol=1e-10)
        slope = np.polyfit(np.log(part["lr"].values), np.log(mine), 1)[0]
        [row] = [r for r in rows if r["quantity"] == "slope_vs_lr" and int(r["mode"]) == mode]
        assert float(row["value"]) == pytest.approx(slope, rel=1e-10)
    fixed = store.open_dataset(tiny_workflow / f"results/{SAMPLED}/runs/fixed_copy.nc")
    assert np.allclose(fixed["trained"].values, fixed["plateau"].values[:1], atol=1e-4)
    summary = store.open_dataset(tiny_workflow / f"results/{SAMPLED}/summary.nc")
    assert np.allclose(summary["bias"].values, fixed["plateau"].values - fixed["u_star"].values, rtol=0, atol=1e-15)
    assert list(summary["batch"].values) == [exp["n_samples"], 64]


def test_adding_a_gamma_retrains_only_the_bundle_it_lands_in(tiny_workflow, tmp_path):
    shutil.copytree(tiny_workflow, tmp_path, dirs_exist_ok=True)  # same depth: same relative code paths
    config = load_yaml(REPO / ".test" / "config.yaml")
    config["lr_normalised_experiments"][LRN]["gammas"].append(0.6)
    out = run_snakemake(tmp_path, config, "-n").stdout
    jobs = planned_jobs(out)
    # three runs and the new one: one bundle (of at most `bundle` runs), no other experiment's
    assert jobs == {f"lr_normalised_train_{LRN}_b": 1, "lr_normalised_aggregate": 1, "lr_normalised_figure": 1,
                    "beyond_claims": 1, "claims_summary": 1, "findings": 1, "all": 1}
    runs = grid_runs(config["lr_normalised_experiments"][LRN])
    assert len(planned_outputs(out)[f"lr_normalised_train_{LRN}_b"]) == runs


@pytest.mark.parametrize("kind", FILES)
def test_files_are_cf_compliant_and_documented(tiny_workflow, tmp_path, kind):
    path = tiny_workflow / FILES[kind]
    assert cf_findings(path, tmp_path)["high"] == []
    ds = store.open_dataset(path)
    assert [n for n, v in ds.variables.items() if not v.attrs.get("long_name")] == []
    assert sorted(set(ds.variables) - documented_variables()) == []
