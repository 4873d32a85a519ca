"""Sweeps: grid expansion (daedyn.sweep), planning through Snakemake, seed statistics, summary figures."""

from __future__ import annotations

import copy
import csv
import json
import re

import numpy as np
import pytest
import yaml

from conftest import dry_run_jobs, planned_outputs, run_snakemake
from test_docs import EXTERNAL
from daedyn import store, sweep
from daedyn.bundles import split
from daedyn.sweep import SweepError

RUN_WILDCARD = re.compile(r"[a-z][a-z0-9_]*")


# --- daedyn.sweep ------------------------------------------------------------------------------

def test_run_names_are_readable_and_fit_the_run_wildcard():
    assert sweep.run_name({"gamma": 0, "eps": 0.5}) == "eps0p5_gamma0"
    assert sweep.run_name({"lr": 1e-4, "hidden": 64}) == "hidden64_lr0p0001"
    assert sweep.run_name({"init_std": 1e-7}) == "init_std0p0000001"
    assert sweep.run_name({"engine": "exact", "batch_size": None}) == "batch_sizenone_engineexact"
    assert sweep.run_name({"eps": 1.0}) == sweep.run_name({"eps": 1}) == "eps1"
    points = sweep.grid({"eps": [0.0, 0.25, 1e-3, 3.5], "lr": [0.1, 2e-5]}, "linear")
    names = [sweep.run_name(p) for p in points]
    assert len(set(names)) == len(points) == 8
    assert all(RUN_WILDCARD.fullmatch(n) for n in names), names


def test_names_do_not_depend_on_order_or_on_other_grid_points():
    a = sweep.expand({"sweep": {"eps": [0.0, 0.5], "gamma": [0.0, 0.1]}}, "linear")
    b = sweep.expand({"sweep": {"gamma": [0.1, 0.0], "eps": [0.5, 0.0, 1.0]}}, "linear")
    assert set(a["runs"]) < set(b["runs"])
    assert set(b["runs"]) - set(a["runs"]) == {"eps1_gamma0", "eps1_gamma0p1"}
    assert all(b["runs"][name] == values for name, values in a["runs"].items())


def test_expansion_keeps_explicit_runs_and_takes_seed_counts():
    exp = {"seeds": 3, "runs": {"ae": {"eps": 0.0}}, "sweep": {"eps": [0.5, 1.0]}}
    out = sweep.expand(exp, "linear")
    assert out["seeds"] == [0, 1, 2]
    assert out["runs"] == {"ae": {"eps": 0.0}, "eps0p5": {"eps": 0.5}, "eps1": {"eps": 1.0}}
    assert exp["seeds"] == 3 and "eps1" not in exp["runs"]  # the config itself is not changed
    assert sweep.expand({"seeds": [4, 2], "runs": {"a": {}}}, "nonlinear")["seeds"] == [4, 2]
    union = sweep.expand({"sweep": [{"noise_std": [1.0, 2.0]}, {"weight_decay": [0.01]}]}, "nonlinear")
    assert union["runs"] == {"noise_std1": {"noise_std": 1.0}, "noise_std2": {"noise_std": 2.0},
                             "weight_decay0p01": {"weight_decay": 0.01}}
    assert sweep.swept_values(union, "nonlinear") == {k: v for k, v in union["runs"].items()}


@pytest.mark.parametrize("exp, family, key, text", [
    ({"sweep": {"sigma": [1.0]}}, "linear", "x.sweep.sigma", "cannot be swept"),
    ({"sweep": {"noise_std": [1.0]}}, "linear", "x.sweep.noise_std", "cannot be swept"),
    ({"sweep": {"eps": []}}, "linear", "x.sweep.eps", "empty"),
    ({"sweep": {"eps": 0.5}}, "linear", "x.sweep.eps", "list of values"),
    ({"sweep": {"eps": [0.5, 0, 0.0]}}, "linear", "x.sweep.eps", "listed twice"),
    ({"sweep": [{"eps": [0.5]}, {"eps": [0.5, 1.0]}]}, "linear", "x.sweep[1]", "earlier grid"),
    ({"sweep": {}}, "linear", "x.sweep", "non-empty mapping"),
    ({"runs": {"eps0p5": {}}, "sweep": {"eps": [0.5]}}, "linear", "x.runs.eps0p5", "explicit run"),
    ({"seeds": 0, "runs": {"a": {}}}, "linear", "x.seeds", "at least 1"),
    ({"seeds": [1, 1], "runs": {"a": {}}}, "linear", "x.seeds", "listed twice"),
    ({"sweep": {"eps": list(range(30)), "gamma": list(range(20))}}, "linear", "x.sweep", "above the limit of 500"),
])
def test_bad_grids_are_errors_naming_the_key(exp, family, key, text):
    with pytest.raises(SweepError, match=text) as err:
        sweep.expand(exp, family, where="x")
    assert err.value.key == key and str(err.value).startswith(f"{key}: ")


def test_the_limit_counts_seeds_and_large_sweep_lifts_it():
    big = {"seeds": 2, "sweep": {"eps": list(range(10)), "gamma": list(range(30))}}  # 300 runs x 2 seeds
    with pytest.raises(SweepError, match="300 runs x 2 seeds = 600"):
        sweep.expand(big, "linear")
    assert len(sweep.expand({**big, "large_sweep": True}, "linear")["runs"]) == 300
    assert len(sweep.expand(big, "linear", max_runs=600)["runs"]) == 300


# --- planning through Snakemake ---------------------------------------------------------------

BASE = {
    "data": {"download": False},
    "datasets": {"synthetic": {"source": "synthetic", "synthetic": {
        "n_samples": 256, "dim": 12, "spectrum": "exponential", "scale": 3.0, "decay": 0.6, "seed": 1}}},
    "spectra": [],
}
# the issue's example, verbatim
PROBE = yaml.safe_load("""
linear_experiments:
  sweep_probe:
    dataset: synthetic
    n_samples: 256
    hidden: 8
    lr: 0.05
    epochs: 60
    log_every: 10
    seeds: [0, 1, 2]
    modes: [0, 1]
    sweep: {eps: [0.0, 0.5, 1.0], gamma: [0.0, 0.1]}
""")
NONLINEAR = {"nonlinear_experiments": {"nl_probe": {
    "dataset": "synthetic", "n_samples": 256, "hidden": 8, "lr": 0.5, "epochs": 30, "log_every": 5, "k_modes": 2,
    "device": "cpu", "seeds": 2, "sweep": {"noise_std": [0.0, 0.5]}}}}
TARGETS = ["results/figures/sweep_probe_sweep.png", "results/figures/sweep_probe.png",
           "results/figures/nl_probe_sweep.png", "results/figures/nl_probe.png"]


def config(*parts) -> dict:
    out = copy.deepcopy(BASE)
    for part in parts:
        out.update(copy.deepcopy(part))
    return out


def test_the_issue_example_plans_18_training_runs(tmp_path):
    out = run_snakemake(tmp_path, config(PROBE), "-n", "results/figures/sweep_probe_sweep.png").stdout
    jobs = dry_run_jobs(out)
    train = [f for rule, files in planned_outputs(out).items() if rule.startswith("linear_train_") for f in files]
    assert len(train) == len(set(train)) == 18
    names = {re.search(r"runs/(\w+)/seed\d\.nc", f)[1] for f in train}
    assert names == {f"eps{e}_gamma{g}" for e in ("0", "0p5", "1") for g in ("0", "0p1")}
    assert {rule for rule, _ in jobs} == {"dataset", "spectrum", "linear_train_sweep_probe_b", "linear_aggregate",
                                         "sweep"}  # 18 runs: one bundle


def planned_inputs(output: str) -> dict[str, list[str]]:
    """Output file -> input files of each job of a dry run."""
    planned = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        out = re.search(r"^\s+output: (.*)$", block, re.M)
        inp = re.search(r"^\s+input: (.*)$", block, re.M)
        if out:
            planned[out[1].split(", ")[0]] = inp[1].split(", ") if inp else []
    return planned


def test_per_run_values_choose_inputs_and_resources(tmp_path):
    # long enough that the wide data pass asks for more than the runtime floor (a dry run: nothing trains)
    exp = {"dataset": "mnist", "n_samples": 1000, "hidden": 8, "lr": 0.05, "epochs": 20000, "modes": [0],
           "sweep": {"n_samples": [1000, 2000], "engine": ["exact", "datapass"], "hidden": [4, 64]}}
    cfg = config({"linear_experiments": {"grid": exp}, "bundle": 1})  # a job per run, each with its own request
    out = run_snakemake(tmp_path, cfg, "-n", "results/grid/combined.nc").stdout
    inputs = planned_inputs(out)
    outputs = planned_outputs(out)
    resources = {re.search(r"runs/(\w+)/", outputs[rule][0])[1]:
                 dict(kv.split("=", 1) for kv in f["resources"].split(", "))
                 for (rule, w), f in dry_run_jobs(out).items() if rule.startswith("linear_train_")}
    assert len(resources) == 8
    for n in (1000, 2000):
        for engine in ("exact", "datapass"):
            ins = inputs[f"results/grid/runs/engine{engine}_hidden64_n_samples{n}/seed0.nc"]
            assert f"results/spectra/mnist_n{n}.nc" in ins  # the run's own N
            assert ("results/data/mnist.nc" in ins) == (engine == "datapass")  # data only for a data pass
    small, big = (resources[f"enginedatapass_hidden{h}_n_samples2000"] for h in (4, 64))
    assert int(big["runtime"]) > int(small["runtime"])
    exact = resources["engineexact_hidden64_n_samples2000"]
    assert int(big["mem_mb"]) > int(exact["mem_mb"])  # the data pass holds the data


@pytest.mark.parametrize("change, text", [
    ({"sweep": {"eps": [0.5, 0.5]}}, "linear_experiments.sweep_probe.sweep.eps: the value 0.5 is listed twice"),
    ({"sweep": {"epsilon": [0.5]}}, "linear_experiments.sweep_probe.sweep.epsilon: cannot be swept"),
    ({"sweep": {"eps": []}}, "linear_experiments.sweep_probe.sweep.eps: the list of values is empty"),
    ({"runs": {"eps0p5_gamma0": {}}}, "linear_experiments.sweep_probe.runs.eps0p5_gamma0: an explicit run"),
    ({"seeds": 100}, "linear_experiments.sweep_probe.sweep: 6 runs x 100 seeds = 600 training runs"),
    ({"sweep": {"eps": [-1.0]}}, "linear_experiments.sweep_probe.runs.epsm1.eps"),
    ({"facet_by": "colour"}, "linear_experiments.sweep_probe.facet_by"),
    ({"sweep": {"hidden": [1, 8]}}, "linear_experiments.sweep_probe.modes: mode 1 cannot be learned with hidden=1"),
    ({"sweep": {"batch_size": [8]}}, "linear_experiments.sweep_probe.runs.batch_size8.batch_size: only used by"),
])
def test_bad_sweeps_stop_the_workflow_naming_the_key(tmp_path, change, text):
    cfg = config(PROBE)
    cfg["linear_experiments"]["sweep_probe"].update(change)
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and text in output, output[-3000:]


def test_large_sweep_and_a_seed_count_are_accepted(tmp_path):
    cfg = config(PROBE)
    cfg["linear_experiments"]["sweep_probe"].update(seeds=100, large_sweep=True)
    out = run_snakemake(tmp_path, cfg, "-n", "results/sweep_probe/combined.nc").stdout
    bundles = {rule: files for rule, files in planned_outputs(out).items() if rule.startswith("linear_train_")}
    assert sum(map(len, bundles.values())) == 600 and max(map(len, bundles.values())) <= 64 and len(bundles) >= 10


# --- built end to end -------------------------------------------------------------------------

def _table(timing_errors, trajectory=0.01, resolution=1):
    """A synthetic sweep table (the columns of daedyn.analysis.sweep_table): one run-mode pair per
    relative timing error, plateaus on the theory, the given largest trajectory error."""
    out = []
    for i, e in enumerate(timing_errors):
        pred = 100.0 + 10 * i
        out.append({"run": f"r{i}", "mode": i % 3, "final": 0.5, "theory_final": 0.5, "fixed_point": 0.5,
                    "t50_measured": pred * (1 + e), "t50_predicted": pred, "t90_measured": 2 * pred * (1 + e),
                    "t90_predicted": 2 * pred, "t_resolution": resolution, "max_abs_err": 0.01,
                    "max_abs_err_epoch": 40.0})
    out[-1]["max_abs_err"] = trajectory
    return out


def test_sweep_claims_judge_the_worst_case_not_the_median():
    """A table whose median timing error passes and whose worst fails is not "confirmed"; the
    worst pair is named; the tolerance is stated; a nonlinear sweep is never "refuted"."""
    from daedyn.sweep_claims import sweep_claims

    by = lambda rows: {r["claim"]: r for r in rows}  # noqa: E731
    # 19 pairs 2 % late, one 69 % late (the median is 2 %): the 90 % quantile passes, the worst does not
    rows = by(sweep_claims(_table([0.02] * 19 + [0.69]), "linear"))
    timing = rows["sweep-timing"]
    assert timing["verdict"] == "qualified"
    assert "run r19, mode 1" in timing["measured"] and "69%" in timing["measured"]
    assert "10%" in timing["expected"] and "38 of 40 timings" in timing["measured"]
    # many pairs off: refuted for a linear sweep, qualified against the linear reference of a nonlinear one
    many = _table([0.02] * 10 + [0.5] * 10)
    assert by(sweep_claims(many, "linear"))["sweep-timing"]["verdict"] == "refuted"
    assert by(sweep_claims(many, "nonlinear"))["sweep-timing"]["verdict"] == "qualified"
    assert by(sweep_claims(_table([0.02] * 20), "linear"))["sweep-timing"]["verdict"] == "confirmed"
    # a nonlinear timing at the recording interval: 9 epochs late on a 100-epoch timing is within it
    coarse = _table([0.09] * 20, resolution=10)
    for r in coarse:
        r["t50_measured"] = r["t50_predicted"] + 9
        r["t90_measured"] = r["t90_predicted"] + 9
    assert by(sweep_claims(coarse, "nonlinear"))["sweep-timing"]["verdict"] == "confirmed"
    # mid-run: plateaus agree, the trajectory does not
    assert rows["sweep-plateau"]["verdict"] == "confirmed" and rows["sweep-trajectory"]["verdict"] == "confirmed"
    mid = by(sweep_claims(_table([0.02] * 20, trajectory=0.09), "linear"))
    assert mid["sweep-plateau"]["verdict"] == "confirmed" and mid["sweep-trajectory"]["verdict"] == "qualified"
    assert "0.09 (run r19, mode 1, largest near epoch 40)" in mid["sweep-trajectory"]["measured"]
    assert by(sweep_claims(_table([0.02] * 20, trajectory=0.2), "linear"))["sweep-trajectory"]["verdict"] == "refuted"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("sweep")
    cfg = config(PROBE, NONLINEAR)
    cfg["bundle"] = 4  # 18 runs in several bundles: adding a grid value retrains only some of them
    run_snakemake(work, cfg, "-c2", *TARGETS)
    return work, cfg


def test_adding_a_grid_value_reruns_only_the_bundles_of_the_new_runs(built):
    work, cfg = built
    cfg = copy.deepcopy(cfg)
    cfg["linear_experiments"]["sweep_probe"]["sweep"]["eps"].append(2.0)
    out = run_snakemake(work, cfg, "-n", *TARGETS).stdout
    jobs = dry_run_jobs(out)
    old_keys = [f"eps{e}_gamma{g}/{s}" for e in ("0", "0p5", "1") for g in ("0", "0p1") for s in range(3)]
    new_keys = [f"eps2_gamma{g}/{s}" for g in ("0", "0p1") for s in range(3)]
    before, after = split(old_keys, cfg["bundle"]), split(old_keys + new_keys, cfg["bundle"])
    changed = {b for b in after if after[b] != before.get(b)}  # the trie's leaves on the new runs' paths
    assert set(jobs) == {(f"linear_train_sweep_probe_{b}", "") for b in changed} | {
        ("linear_aggregate", "experiment=sweep_probe"), ("linear_figure", "experiment=sweep_probe"),
        ("sweep", "experiment=sweep_probe")}
    assert len(changed) < len(after)  # not the whole sweep
    planned = {f for rule, files in planned_outputs(out).items() if rule.startswith("linear_train_") for f in files}
    assert {f"results/sweep_probe/runs/{k.split('/')[0]}/seed{k.split('/')[1]}.nc" for k in new_keys} <= planned
    # the config in the working directory is the original again
    run_snakemake(work, built[1], "-n", *TARGETS)


def rows(path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_seed_statistics_equal_numpy_on_the_run_files(built):
    work, _ = built
    combined = store.open_dataset(work / "results/sweep_probe/combined.nc")
    metrics = rows(work / "results/sweep_probe/metrics.csv")
    for run in ("eps0_gamma0", "eps0p5_gamma0p1", "eps1_gamma0"):
        u = np.stack([store.open_dataset(work / f"results/sweep_probe/runs/{run}/seed{s}.nc")["u"]
                      .squeeze(("run", "seed")).transpose("mode", "epoch").values for s in range(3)])
        np.testing.assert_allclose(combined["u_mean"].sel(run=run).transpose("mode", "epoch"), u.mean(0), rtol=1e-12)
        np.testing.assert_allclose(combined["u_sd"].sel(run=run).transpose("mode", "epoch"), u.std(0, ddof=1),
                                   rtol=1e-9, atol=1e-15)
        assert int(combined["n_seeds"].sel(run=run)) == 3
        for mode in (0, 1):
            per_seed = [r for r in metrics if r["run"] == run and r["mode"] == str(mode) and r["seed"] != "all"]
            (summary,) = [r for r in metrics if r["run"] == run and r["mode"] == str(mode) and r["seed"] == "all"]
            assert [int(r["seed"]) for r in per_seed] == [0, 1, 2] and summary["n_seeds"] == "3"
            finals = u[:, mode, -1]
            np.testing.assert_allclose([float(r["u_final"]) for r in per_seed], finals, rtol=1e-12)
            assert float(summary["u_final"]) == pytest.approx(finals.mean(), rel=1e-12)
            assert float(summary["u_final_sd"]) == pytest.approx(finals.std(ddof=1), rel=1e-9)
            errors = np.array([float(r["max_abs_err_theory"]) for r in per_seed])
            assert float(summary["max_abs_err_theory"]) == pytest.approx(errors.mean(), rel=1e-12)
            assert float(summary["max_abs_err_theory_sd"]) == pytest.approx(errors.std(ddof=1), rel=1e-9)
    nl = store.open_dataset(work / "results/nl_probe/combined.nc")
    mapping = np.stack([store.open_dataset(work / f"results/nl_probe/runs/noise_std0p5/seed{s}.nc")["mapping"]
                        .squeeze(("run", "seed")).transpose("mode", "epoch").values for s in range(2)])
    np.testing.assert_allclose(nl["mapping_mean"].sel(run="noise_std0p5").transpose("mode", "epoch"),
                               mapping.mean(0), rtol=1e-12)
    np.testing.assert_allclose(nl["mapping_sd"].sel(run="noise_std0p5").transpose("mode", "epoch"),
                               mapping.std(0, ddof=1), rtol=1e-9, atol=1e-15)


def test_the_sweep_rule_builds_the_summary(built):
    work, _ = built
    for name, runs, modes in (("sweep_probe", 6, 2), ("nl_probe", 2, 2)):
        png = (work / f"results/figures/{name}_sweep.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000
        assert (work / f"results/figures/{name}_sweep.pdf").read_bytes().startswith(b"%PDF")
        table = rows(work / f"results/{name}/sweep.csv")
        assert len(table) == runs * modes
        claims = rows(work / f"results/{name}/claims.csv")
        assert list(claims[0]) == ["claim", "statement", "measured", "expected", "verdict", "note", "tolerance",
                                  "judged_on"]
        assert {c["verdict"] for c in claims} <= {"confirmed", "qualified", "refuted"}
    combined = store.open_dataset(work / "results/sweep_probe/combined.nc")
    for row in rows(work / "results/sweep_probe/sweep.csv"):
        one = combined.sel(run=row["run"], mode=int(row["mode"]))
        assert float(row["eps"]) == float(one["eps"]) and float(row["gamma"]) == float(one["gamma"])
        assert float(row["final"]) == pytest.approx(float(one["u_mean"].isel(epoch=-1)), rel=1e-12)
        assert float(row["theory_final"]) == pytest.approx(float(one["u_theory"].isel(epoch=-1).mean()), rel=1e-12)


def test_figures_facet_many_runs(built):
    from daedyn.figures.linear import plot_fig5
    from daedyn.figures.nonlinear import plot_fig6

    work, _ = built
    combined = store.open_dataset(work / "results/sweep_probe/combined.nc")
    paper = plot_fig5(combined, [0, 1], title="t")  # 5 regularised runs fit in 6 panels: the paper's layout
    assert len(paper.axes) == 2 * 5 and "AE vs" in paper.axes[0].get_title()
    by_gamma = plot_fig5(combined, [0, 1], title="t", facet_by="gamma")
    assert [ax.get_title() for ax in by_gamma.axes[:2]] == ["γ = 0; modes 0, 1", "γ = 0.1; modes 0, 1"]
    capped = plot_fig5(combined, [0, 1], title="t", max_panels=1)  # by mode, one panel left
    assert len(capped.axes) == 2 and "1 more panel(s) left out" in " ".join(t.get_text() for t in capped.texts)
    assert "mean of 3 seeds (band: ±1 sd)" in capped.get_suptitle()
    nl = store.open_dataset(work / "results/nl_probe/combined.nc")
    assert len(plot_fig6(nl, title="t", facet_by="mode").axes) == 2


def test_the_report_holds_the_sweep_figures_with_captions_in_words(built):
    work, cfg = built
    run_snakemake(work, cfg, "--report", "report.html", *TARGETS)
    report = (work / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", report, re.S)[1])
    captions = {item["filename"] + " " + str(item["labels"]): item["caption"] for item in results.values()}
    names = {item["filename"] for item in results.values()}
    assert {"sweep_probe_sweep.png", "nl_probe_sweep.png", "sweep.csv", "claims.csv", "sweep_probe.png",
            "nl_probe.png", "metrics.csv", "halftimes.csv"} <= names
    for name, caption in captions.items():
        assert len(caption) > 200, name
        for raw in ("{'", "{&#x27;", "(K", "(E"):  # config values in words, not as a raw dict
            assert raw not in caption, (name, raw)
        assert not EXTERNAL.search(caption), name  # nothing outside the repository
    sweep_caption = next(c for n, c in captions.items() if n.startswith("sweep_probe_sweep.png"))
    assert "noise variance 0.0, 0.5, 1.0 crossed with weight decay 0.0, 0.1" in sweep_caption
    assert "3 seed(s) (0, 1, 2)" in sweep_caption
