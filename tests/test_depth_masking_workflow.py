"""The depth and masking experiments through Snakemake: planning, config checks, a tiny end-to-end run."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest

from conftest import REPO, load_yaml, planned_outputs, run_snakemake
from daedyn import claims, depth, masking, open_experiment, store
from test_netcdf_compliance import documented_variables
from test_workflow import planned_jobs

pytestmark = pytest.mark.workflow

DEPTH_TARGETS = ("combined.nc", "metrics.csv", "claims.csv")


def _built(config, kind, paper):
    return {name: exp for name, exp in config.get(kind, {}).items()
            if exp.get("enabled", True) and exp.get("paper", False) == paper}


@pytest.mark.parametrize("target,paper", [("all", False), ("paper", True)])
def test_dry_run_plans_the_depth_and_masking_jobs(tmp_path, target, paper):
    proc = run_snakemake(tmp_path, None, "-n", target)
    jobs = planned_jobs(proc.stdout)
    config = load_yaml(REPO / "config.yaml")
    for kind, rule in (("depth_experiments", "depth"), ("masking_experiments", "masking")):
        built = _built(config, kind, paper)
        assert built, kind
        runs = [f for r, files in planned_outputs(proc.stdout).items() if r.startswith(f"{rule}_train_") for f in files]
        assert len(runs) == len(set(runs)) == sum(len(e["runs"]) * len(e.get("seeds", [0])) for e in built.values())
        assert jobs[f"{rule}_aggregate"] == jobs[f"{rule}_figure"] == len(built)
        for name in built:
            for out in DEPTH_TARGETS:
                assert f"results/{name}/{out}" in proc.stdout
            assert f"results/figures/{name}.png" in proc.stdout
        for name in set(config[kind]) - set(built):          # the other target's experiments
            assert f"results/{name}/" not in proc.stdout
    if not paper:                                              # the default target's claims table
        assert jobs["beyond_claims"] == 1
        assert "results/depth_mnist/claims.csv" in proc.stdout.split("rule beyond_claims:")[1].split("output:")[0]


# A tiny config of both kinds on a synthetic dataset (12 inputs, 256 samples).
TINY = {
    "data": {"download": False},
    "datasets": {"tiny": {"source": "synthetic",
                          "synthetic": {"n_samples": 256, "dim": 12, "spectrum": "exponential", "scale": 3.0,
                                        "decay": 0.6, "seed": 1}}},
    # the default config's other beyond-the-paper experiments also feed beyond.csv: left out here
    "linear_experiments": {"sweep_mnist": {"enabled": False}},
    "generalisation_experiments": {"generalisation_mnist": {"enabled": False}},
    "lr_normalised_experiments": {"lr_normalised_mnist": {"enabled": False}},
    "sampled_experiments": {"sampled_vs_marginalised_mnist": {"enabled": False}},
    "nonlinear_theory_experiments": {"nonlinear_ode": {"enabled": False}},
    "depth_experiments": {
        "depth_mnist": {"enabled": False},
        "depth_tiny": {"dataset": "tiny", "n_samples": 256, "hidden": 6, "init": "aligned", "w0": 0.3, "lr": 0.1,
                       "epochs": 600, "log_every": 5, "modes": [0, 1, 2],
                       "runs": {"dae_l2": {"depth": 2, "eps": 0.5}, "wdae_l2": {"depth": 2, "match_eps": 0.5},
                                "dae_l3": {"depth": 3, "eps": 0.5}, "wdae_l3": {"depth": 3, "match_eps": 0.5}}},
    },
    "masking_experiments": {
        "masking_mnist": {"enabled": False},
        "masking_tiny": {"dataset": "tiny", "n_samples": 256, "hidden": 6, "lr": 0.1, "epochs": 300,
                         "log_every": 5, "init_std": 1.0e-3, "modes": [0, 1, 2],
                         "runs": {"q50": {"q": 0.5}, "q50_gauss": {"q": 0.5, "noise": "gaussian"},
                                  "q50_mode": {"q": 0.5, "noise": "per_mode"}, "q90": {"q": 0.9},
                                  "q90_gauss": {"q": 0.9, "noise": "gaussian"}}},
        "masking_tiny_sampled": {"dataset": "tiny", "n_samples": 256, "hidden": 6, "lr": 0.1, "epochs": 60,
                                 "log_every": 5, "init_std": 1.0e-3, "engine": "sampled", "batch_size": 64,
                                 "modes": [0, 1], "q": 0.7, "runs": {"q70": {}}},
    },
}
OUTPUTS = [f"results/{name}/{out}" for name in ("depth_tiny", "masking_tiny", "masking_tiny_sampled")
           for out in DEPTH_TARGETS]
OUTPUTS += [f"results/figures/{name}.{ext}" for name in ("depth_tiny", "masking_tiny", "masking_tiny_sampled")
            for ext in ("png", "pdf")]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_tiny_depth_and_masking_experiments_end_to_end(tmp_path):
    run_snakemake(tmp_path, TINY, "-c2", *OUTPUTS, "results/claims/beyond.csv")
    for out in OUTPUTS:
        data = (tmp_path / out).read_bytes()
        assert len(data) > 200, out
    assert (tmp_path / "results/figures/depth_tiny.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "results/figures/masking_tiny.pdf").read_bytes().startswith(b"%PDF")

    # depth: the matched decay is computed from the spectrum and stored as the run's gamma
    spec = store.open_dataset(tmp_path / "results/spectra/tiny_n256.nc")
    lam0 = float(spec["eigenvalue"][0])
    run = store.open_dataset(tmp_path / "results/depth_tiny/runs/wdae_l3/seed0.nc")
    assert float(run["gamma"].item()) == pytest.approx(float(depth.matched_decay(lam0, 0.5, 3)), rel=1e-12)
    assert int(run["depth"].item()) == 3 and run["layer_widths"].item() == "6,6"
    combined = open_experiment("depth_tiny", results=tmp_path / "results")  # the notebook entry point
    assert set(combined["run"].values) == {"dae_l2", "wdae_l2", "dae_l3", "wdae_l3"}
    assert combined.sizes["mode"] == 6                   # the modes a hidden width of 6 can learn
    # the aligned start makes the per-mode map exact (float32 training)
    assert float(np.abs(combined["u_theory"] - combined["u"]).max()) < 1e-4
    metrics = _rows(tmp_path / "results/depth_tiny/metrics.csv")
    assert len(metrics) == 4 * 6 and {"t50_measured", "t50_quadrature", "stayed_at_zero", "model"} <= set(metrics[0])
    wdae3 = [r for r in metrics if r["run"] == "wdae_l3"]
    assert all(r["model"] == "WDAE" for r in wdae3)
    # from w0 = 0.3 the depth-3 WDAE learns the modes whose threshold lies below u0 and drops the others
    assert [r["stayed_at_zero"] for r in wdae3][2:] == ["1"] * 4 and wdae3[0]["learned"] == "1"
    rows = _rows(tmp_path / "results/depth_tiny/claims.csv")
    assert tuple(rows[0]) == claims.COLUMNS
    assert {r["claim"]: r["verdict"] for r in rows}["depth: deep WDAE"] == "confirmed"

    # masking: the masked runs along q, each beside its Gaussian comparisons of the same q
    masked = open_experiment("masking_tiny", results=tmp_path / "results")
    assert list(masked["q"].values) == [0.9, 0.5] and list(masked["run"].values) == ["q90", "q50"]
    assert "u_gauss" in masked and "u_approx" in masked
    gauss = store.open_dataset(tmp_path / "results/masking_tiny/runs/q50_gauss/seed0.nc")
    np.testing.assert_array_equal(masked["u_gauss"].sel(q=0.5).values, gauss["u"].isel(run=0, mode=slice(0, 6)).values)
    # q90 has no per-mode comparison: that comparison is left out, and the log says why
    assert "u_per_mode" not in masked
    assert "u_per_mode comparison left out" in (tmp_path / "logs/masking_tiny/aggregate.log").read_text()
    metrics = _rows(tmp_path / "results/masking_tiny/metrics.csv")
    assert {"run", "q", "mode", "eps_eff", "eps_matched", "max_err_approx", "max_err_gauss", "u_star",
            "fixed_err_exact", "fixed_err_approx", "drift"} <= set(metrics[0])
    # the exact fixed point from the experiment's spectrum (every eigenvector, not only the recorded modes)
    exact = masking.mode_fixed_point(spec["eigenvalue"].values, spec["eigenvector"].values, 0.5,
                                     "inverted", int(masked["hidden_units"].sel(q=0.5).item()))
    np.testing.assert_allclose(masked["u_star"].sel(q=0.5).isel(seed=0).values, exact[:6], rtol=0, atol=1e-12)
    assert {(r["run"], float(r["q"])) for r in metrics} == {("q90", 0.9), ("q50", 0.5)} and len(metrics) == 2 * 6
    rows = _rows(tmp_path / "results/masking_tiny/claims.csv")
    assert [r["claim"] for r in rows] == ["masking: exact fixed point", "masking: per-mode theory",
                                          "masking: vs Gaussian noise"]
    assert all(r["verdict"] in claims.VERDICTS for r in rows)
    sampled = store.open_dataset(tmp_path / "results/masking_tiny_sampled/runs/q70/seed0.nc")
    assert int(sampled["batch_size"].item()) == 64 and int(sampled["n_steps"].item()) == 60 * 4

    # CF/ACDD: every variable of every kind of result file has a long_name
    for path in ("results/depth_tiny/runs/wdae_l3/seed0.nc", "results/depth_tiny/combined.nc",
                 "results/masking_tiny/runs/q50_gauss/seed0.nc", "results/masking_tiny/combined.nc",
                 "results/masking_tiny_sampled/runs/q70/seed0.nc"):
        ds = store.open_dataset(tmp_path / path)
        assert ds.attrs["Conventions"] == store.CONVENTIONS
        assert [n for n, v in ds.variables.items() if not v.attrs.get("long_name")] == [], path
        assert sorted(set(ds.variables) - documented_variables()) == [], f"{path}: document in docs/python.md"

    beyond = _rows(tmp_path / "results/claims/beyond.csv")
    assert {r["claim"] for r in beyond} >= {"depth: deep WDAE", "depth: learning times", "masking: per-mode theory"}


BAD = {
    # id: (experiment kind, default experiment copied as "bad", key path inside it, new value (None:
    # delete the key), text the error must contain)
    "widths of the wrong length": ("depth_experiments", "depth_mnist", ("widths",), [64, 64],
                                   "depth_experiments.bad.widths: run ae_l2 has depth 2"),
    "matched decay beside noise": ("depth_experiments", "depth_mnist", ("runs", "wdae_l3", "eps"), 0.5,
                                   "depth_experiments.bad.runs.wdae_l3.match_eps"),
    "depth below two": ("depth_experiments", "depth_mnist", ("runs", "ae_l2", "depth"), 1,
                        "depth_experiments.bad.runs.ae_l2.depth"),
    "mode beyond the hidden width": ("depth_experiments", "depth_mnist", ("modes",), [0, 64],
                                     "depth_experiments.bad.modes: mode 64 cannot be learned"),
    "masking run without q": ("masking_experiments", "masking_mnist", ("runs", "q90", "q"), None,
                              "masking_experiments.bad.runs.q90.q"),
    "two masked runs with one q": ("masking_experiments", "masking_mnist", ("runs", "q70", "q"), 0.9,
                                   "masking_experiments.bad.runs.q70.q: q=0.9"),
    "Gaussian comparison with sampled masks": ("masking_experiments", "masking_mnist", ("engine",), "sampled",
                                               "masking_experiments.bad.runs.q90_gauss.noise"),
    "keep probability above one": ("masking_experiments", "masking_mnist", ("runs", "q90", "q"), 1.5,
                                   "masking_experiments.bad.runs.q90.q"),
    "name of another kind": ("masking_experiments", "masking_mnist", (), None,
                             "masking_experiments.fig5_mnist: the name is also used in linear_experiments"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_depth_and_masking_config_is_rejected_naming_the_key(tmp_path, case):
    kind, name, path, value, expected = BAD[case]
    exp = copy.deepcopy(load_yaml(REPO / "config.yaml")[kind][name])
    node = exp
    for key in path[:-1]:
        node = node[key]
    if path and value is None:
        del node[path[-1]]
    elif path:
        node[path[-1]] = value
    new_name = "fig5_mnist" if not path else "bad"
    proc = run_snakemake(tmp_path, {kind: {new_name: exp}}, "-n", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert expected in output, output
    assert not (tmp_path / "results").exists()
