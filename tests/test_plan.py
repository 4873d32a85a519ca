"""The experiment-kind registry and the workflow's plan (daedyn.kinds, daedyn.plan), without Snakemake,
and a kind defined inside a test built through Snakemake without touching any workflow file."""

from __future__ import annotations

import copy
import math
import importlib
import re
import textwrap

import numpy as np
import pytest

from conftest import REPO, dry_run_jobs, load_yaml, run_snakemake
from daedyn import kinds as registry
from daedyn.bundles import split
from daedyn.configcheck import ConfigError
from daedyn.plan import RUNTIME_FLOOR_MIN, Plan
from daedyn.runconfig import schema

KINDS = registry.load()


def default_config() -> dict:
    return load_yaml(REPO / "config.yaml")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan(default_config())


def test_every_builtin_kind_is_declared_completely():
    assert list(KINDS) == list(registry.BUILTIN)
    for kind in KINDS.values():
        assert kind.section in schema()["properties"] and kind.schema_def in schema()["$defs"], kind.name
        module, _, cls = kind.config_class.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), cls), type), kind.config_class
        for step in ("train", "aggregate", "figure"):
            for source in kind.sources(step):
                assert (REPO / "src/daedyn" / f"{source}.py").is_file(), (kind.name, step, source)
            for caption, _ in getattr(kind, step).report.values():
                assert (REPO / "workflow/report" / caption).is_file(), caption
        assert kind.train.function.__module__ == f"daedyn.kinds.{kind.name}"


def test_run_files_follow_one_tree_per_experiment(plan):
    for name, kind in plan.kind_of.items():
        for path in plan.run_files(name):
            assert path.startswith(f"results/{name}/runs/"), path
            assert re.fullmatch(kind.run_pattern, path.split("/")[3].removesuffix(".nc")), path
    assert plan.run_files("sampled_vs_marginalised_mnist")[-1] == "results/sampled_vs_marginalised_mnist/runs/fixed_copy.nc"
    assert "results/generalisation_mnist/runs/n500/seed0.nc" in plan.run_files("generalisation_mnist")


def test_every_kind_asks_for_a_gpu_and_the_cuda_check_when_an_experiment_says_cuda():
    """One experiment of every kind with device: cuda: each training job requests a GPU, and the CUDA
    pre-check names each (the generalisation kind once missed both)."""
    config = default_config()
    chosen = {}
    for kind in KINDS.values():
        name = next(iter(config[kind.section]))
        config[kind.section][name]["device"] = "cuda"
        chosen[kind.name] = name
    plan = Plan(config)
    bundles = [plan.bundle_rule(name, b) for name in chosen.values() for b in plan.bundles(name)]
    assert plan.cuda_keys(bundles) == sorted(f"{KINDS[k].section}.{name}.device" for k, name in chosen.items())
    for name in chosen.values():
        assert plan.gpus(name) == 1
    others = [name for name in plan.kind_of if name not in chosen.values()]
    assert all(plan.gpus(name) == 0 for name in others)
    assert plan.cuda_keys([plan.bundle_rule(n, b) for n in others for b in plan.bundles(n)]) == []
    assert plan.cuda_keys([KINDS[k].rule("aggregate") for k in chosen]) == []


def test_requests_grow_with_the_attempt_and_the_safety_factor(plan):
    name = "fig5_mnist"
    assert plan.bundle_mem_mb(name, "b", 2) == 2 * plan.bundle_mem_mb(name, "b", 1)
    assert plan.bundle_runtime(name, "b", 2) == 2 * plan.bundle_runtime(name, "b", 1)
    # a long job: its calibrated request scales with the safety factor (up to whole minutes)
    config = default_config()
    config["resource_safety"] = 6
    long = next((n, b) for n in plan.kind_of for b in plan.bundles(n)
                if plan.bundle_runtime(n, b, 1) > 2 * RUNTIME_FLOOR_MIN)
    assert Plan(config).bundle_runtime(*long, 1) >= 2 * plan.bundle_runtime(*long, 1) - 1


def test_runtime_requests_never_fall_below_the_floor(plan):
    """A bundle of three 27-second fig5_mnist runs asks for the floor, not for 3 minutes that a slow node
    overruns; the floor grows with the attempt like the calibrated request."""
    assert plan.bundle_runtime("fig5_mnist", "b", 1) == RUNTIME_FLOOR_MIN
    assert plan.bundle_runtime("fig5_mnist", "b", 2) == 2 * RUNTIME_FLOOR_MIN
    assert plan.requested_minutes(0, 1) == RUNTIME_FLOOR_MIN
    # above the floor: safety x (start-up + work), rounded up to whole minutes
    seconds = 3600
    assert plan.requested_minutes(seconds, 1) == math.ceil(plan.config["resource_safety"] * (30 + seconds) / 60)
    assert all(plan.dataset_runtime(d, 1) >= RUNTIME_FLOOR_MIN for d in ("mnist", "digits"))
    # the exact engine holds no data; a data pass holds the N x d images
    exact = min(plan.bundle_mem_mb("sweep_mnist", b, 1) for b in plan.bundles("sweep_mnist"))
    assert exact < plan.requested_mb(3 * 60000 * 784 * 8, 1)


def test_targets_hold_every_enabled_experiment_once(plan):
    default, paper = plan.targets(paper=False), plan.targets(paper=True)
    assert len(default) == len(set(default)) and len(paper) == len(set(paper))
    for name, kind in plan.kind_of.items():
        exp = plan.experiment(name)
        figure = f"results/figures/{name}.png"
        assert (figure in default) == (exp["enabled"] and not exp["paper"]), name
        assert (figure in paper) == (exp["enabled"] and exp["paper"]), name
    assert "results/claims/beyond.csv" in default and "results/claims/theory.csv" in default
    assert set(plan.beyond_claims()) <= set(default)
    # every claims table of the default target feeds the verdict table, with the figure that shows it
    assert "results/claims/summary.csv" in default and "results/claims/summary.csv" not in paper
    sources = plan.claims_summary()
    assert {s["table"] for s in sources} == {"results/claims/theory.csv", *plan.beyond_claims()}
    assert all(s["figure"] in default for s in sources if s["figure"])


@pytest.mark.parametrize("change, message", [
    (lambda c: c["generalisation_experiments"].update(fig5_mnist=c["generalisation_experiments"]["generalisation_mnist"]),
     "linear_experiments.fig5_mnist: the name is also used in generalisation_experiments"),
    (lambda c: c["depth_experiments"]["depth_mnist"].update(dataset="nope"), "depth_experiments.depth_mnist.dataset"),
    (lambda c: c["sampled_experiments"]["sampled_vs_marginalised_mnist"].update(batches=[100, 100]),
     "sampled_experiments.sampled_vs_marginalised_mnist.batches: repeated values"),
    (lambda c: c["lr_normalised_experiments"]["lr_normalised_mnist"].update(modes=[0, 500]),
     "lr_normalised_experiments.lr_normalised_mnist.modes: mode 500 cannot be learned"),
    (lambda c: c.update(kinds=["no_such_module"]), "kinds: 'no_such_module' is not an importable module"),
    (lambda c: c.update(linear_experiments=[]), "[] is not of type 'object'"),
    # a repeated mode once counted one seed twice and crashed the figures after training
    *[(lambda c, s=section, n=name: c[s][n].update(modes=[3, 3]), f"{section}.{name}.modes: [3, 3] has non-unique")
      for section, name in [("linear_experiments", "fig5_mnist"), ("depth_experiments", "depth_mnist"),
                            ("masking_experiments", "masking_mnist"),
                            ("lr_normalised_experiments", "lr_normalised_mnist")]],
    (lambda c: c["masking_experiments"]["masking_mnist"]["runs"]["q90"].update(q=1.0),
     "masking_experiments.masking_mnist.runs.q90.q: q=1 keeps every input"),
    (lambda c: c["lr_normalised_experiments"]["lr_normalised_mnist"].update(fractions=[0.5, 0.50000001]),
     "lr_normalised_experiments.lr_normalised_mnist.fractions: [0.5, 0.50000001] name runs by 6 significant"),
    (lambda c: c["lr_normalised_experiments"]["lr_normalised_mnist"].update(matched_modes=[], gammas=[]),
     "lr_normalised_experiments.lr_normalised_mnist.matched_modes: the experiment compares WDAEs"),
    (lambda c: c["linear_experiments"]["fig5_mnist"].pop("runs"),
     "linear_experiments.fig5_mnist: give one of: 'runs' is a required property; or 'sweep' is a required"),
    (lambda c: c["linear_experiments"].update(fig1=c["linear_experiments"]["fig5_mnist"]),
     "linear_experiments.fig1: 'fig1' names a folder or figure of the pipeline's own stages"),
    (lambda c: c["depth_experiments"].update(data=c["depth_experiments"]["depth_mnist"]),
     "depth_experiments.data: 'data' names a folder"),
])
def test_bad_configs_name_the_key(change, message):
    config = default_config()
    change(config)
    with pytest.raises(ConfigError) as err:
        Plan(config)
    assert message in str(err.value)


def test_a_run_that_cannot_fit_stops_before_it_starts_naming_the_key_estimate_and_limit():
    """hidden: 1000000 needs H x H work matrices; epochs: 10**12 once died in log_epochs allocating 745 GiB."""
    config = default_config()
    base = config["linear_experiments"]["fig5_mnist"]
    config["linear_experiments"].update(
        wide={**base, "runs": {"dae": {"eps": 0.5, "hidden": 1_000_000}}, "paper_plateaus": {}},
        long={**base, "epochs": 10**12, "log_every": 10})
    plan = Plan(config)
    (wide,), (long,) = ([plan.bundle_rule(n, b) for b in plan.bundles(n)] for n in ("wide", "long"))
    with pytest.raises(ConfigError, match=r"linear_experiments\.wide\.runs\.dae\.hidden: 1000000 makes run dae need "
                       r"about 14\.6 TiB of memory \(.*hidden 14\.6 TiB.*; bundle b\), more than the memory of this "
                       r"machine, where the job would run, 16\.0 GiB"):
        plan.check_memory([(wide, None, True)], 16 * 1024)
    with pytest.raises(ConfigError, match=r"linear_experiments\.long\.epochs: 1000000000000 makes run \w+ need about "
                       r"\d+\.\d TiB"):
        plan.check_memory([(long, None, True)], 16 * 1024)
    fits = (plan.bundle_rule("fig5_mnist", "b"), plan.bundle_mem_mb("fig5_mnist", "b", 1), True)
    plan.check_memory([fits, ("dataset", 10**9, True)], 16 * 1024)  # other rules: not its business
    with pytest.raises(ConfigError, match=r"more than the memory its job requests \(mem_mb\), 500 MiB"):
        plan.check_memory([(fits[0], 500, False)], 16 * 1024)


def test_a_run_outside_the_config_is_named(plan):
    with pytest.raises(ConfigError, match="linear_experiments.fig5_mnist: has no run 'nope'"):
        plan.inputs("train", "fig5_mnist", "nope")


def test_params_are_sorted_and_hold_the_run_entry(plan):
    params = plan.train_params("fig5_mnist", "wdae", 0)
    assert list(params) == sorted(params) and params["gamma"] == plan.experiment("fig5_mnist")["runs"]["wdae"]["gamma"]
    assert params["run"] == "wdae" and params["seed"] == 0
    # the checkpoint cadence changes no result: it is never a param
    assert all("checkpoint_every" not in plan.train_params(n, next(iter(plan.runs(n))), 0) for n in plan.kind_of)


# ---- a kind defined here, built through Snakemake --------------------------------------------------
TOY_KIND = '''
"""A toy kind: one scalar mode u trained by gradient descent on (1 - u)^2 lam / 2 (a one-mode engine)."""
import numpy as np
import xarray as xr

from daedyn import provenance, store
from daedyn.jobs import logged
from daedyn.kinds import Kind, Step, figure_step


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    with logged(job):
        u = np.empty(spec["steps"] + 1)
        u[0] = spec["u0"]
        for t in range(spec["steps"]):
            u[t + 1] = u[t] + spec["lr"] * spec["lam"] * (1 - u[t])
        ds = xr.Dataset({"u": ("epoch", u, {"long_name": "mode strength", "units": "1"})},
                        coords={"epoch": ("epoch", np.arange(spec["steps"] + 1), {"units": "1"})})
        store.write_dataset(ds, outputs["run"], title="toy run", summary="one scalar mode trained by GD",
                            provenance_attrs=provenance.collect(spec, rule=job.rule, wildcards=job.wildcards,
                                                               inputs=[], seed=spec["seed"]))


def aggregate(spec, inputs, outputs, job):
    with logged(job):
        runs = [store.open_dataset(p)["u"] for p in inputs["runs"]]
        ds = xr.Dataset({"u": xr.concat(runs, "run").assign_coords(run=spec["runs"])})
        store.write_dataset(ds, outputs["combined"], title="toy runs", summary="every toy run",
                            provenance_attrs=provenance.collect(spec, rule=job.rule, wildcards=job.wildcards,
                                                               inputs=inputs["runs"]))


def figure_job(spec, combined, outputs, job):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from daedyn.jobs import save_figure
    with logged(job):
        ds = store.open_dataset(combined)
        fig, ax = plt.subplots()
        for run in ds["run"].values:
            ax.plot(ds["epoch"], ds["u"].sel(run=run), label=str(run))
        ax.legend()
        save_figure(fig, outputs)


KIND = Kind(
    name="toy", title="Toy", config_class="builtins.dict", engines=("a loop in train()",), beyond=False,
    schema={"type": "object", "additionalProperties": False, "required": ["runs"],
            "properties": {"enabled": {"type": "boolean", "default": True},
                           "paper": {"type": "boolean", "default": False},
                           "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.1},
                           "steps": {"type": "integer", "minimum": 1, "default": 50},
                           "seeds": {"type": "array", "items": {"type": "integer"}, "default": [0]},
                           "runs": {"type": "object", "additionalProperties": {
                               "type": "object", "properties": {"lam": {"type": "number"},
                                                                "u0": {"type": "number", "default": 0.0}}}}}},
    train=Step(train, (), lambda plan, name, exp, run, seed: {"seed": seed, "lr": exp["lr"], "steps": exp["steps"],
                                                              **exp["runs"][run]}),
    aggregate=Step(aggregate, (), lambda plan, name, exp, run, seed: {"runs": list(exp["runs"])},
                   lambda plan, name, exp, run: {"runs": plan.run_files(name)}, {"combined": "combined.nc"}),
    figure=figure_step("toy_kind:figure_job", "combined.nc", (), lambda plan, name, exp, run, seed: {}),
)
'''


def toy_config() -> dict:
    """Only the toy experiment: every configured experiment of config.yaml is switched off."""
    config = {section: {name: {"enabled": False} for name in experiments}
              for section, experiments in default_config().items() if section.endswith("_experiments")}
    config.update(kinds=["toy_kind"], scalar_figures={}, spectra=[], bundle=1,
                  toy_experiments={"toy1": {"lr": 0.2, "steps": 30, "runs": {"slow": {"lam": 0.5},
                                                                             "fast": {"lam": 2.0}}}})
    return config


def test_a_kind_defined_in_a_test_builds_its_figure_through_snakemake(tmp_path):
    modules = tmp_path / "kinds"
    modules.mkdir()
    (modules / "toy_kind.py").write_text(textwrap.dedent(TOY_KIND))
    env = {"PYTHONPATH": f"{modules}:{REPO / 'src'}"}
    work = tmp_path / "work"
    run_snakemake(work, toy_config(), "-c1", "results/figures/toy1.png", env=env)
    assert (work / "results/figures/toy1.png").read_bytes().startswith(b"\x89PNG")
    from daedyn import store
    run = store.open_dataset(work / "results/toy1/runs/fast/seed0.nc")
    u = run["u"].values  # the toy's own GD against its closed form u_t = 1 - (1 - lr lam)^t
    np.testing.assert_allclose(u, 1 - (1 - 0.2 * 2.0) ** np.arange(31), rtol=1e-12)
    bundle = {key: b for b, keys in split(["slow/0", "fast/0"], 1).items() for key in keys}  # one run each
    assert run.attrs["snakemake_rule"] == f"toy_train_toy1_{bundle['fast/0']}" and run.attrs["seed"] == 0
    # a second run plans nothing; a changed run value retrains that run's bundle alone
    assert "Nothing to be done" in run_snakemake(work, toy_config(), "-n", "results/figures/toy1.png",
                                                 env=env).stdout
    changed = toy_config()
    changed["toy_experiments"]["toy1"]["runs"]["slow"]["lam"] = 0.7
    jobs = dry_run_jobs(run_snakemake(work, changed, "-n", "results/figures/toy1.png", env=env).stdout)
    assert sorted(jobs) == [("toy_aggregate", "experiment=toy1"), ("toy_figure", "experiment=toy1"),
                            (f"toy_train_toy1_{bundle['slow/0']}", "")]


def test_no_workflow_file_names_a_kind():
    """The rules of every kind are generated: no rule file or script is specific to one."""
    names = [k for k in KINDS if k != "linear"]  # "linear" also names the linear stage table in captions
    for path in [*(REPO / "workflow/rules").glob("*.smk"), *(REPO / "workflow/scripts").glob("*.py")]:
        text = path.read_text()
        for name in names:
            assert f"{name}_experiments" not in text and f"rule {name}" not in text, (path, name)
    assert len((REPO / "workflow/rules/common.smk").read_text().splitlines()) <= 300
