"""Bundles: stable membership (daedyn.bundles), their plan, and the bundle job (daedyn.jobs.bundle)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random

import numpy as np
import pytest
import torch
import xarray as xr

from test_sweep import BASE

from conftest import REPO, dry_run_jobs, load_yaml, planned_outputs, run_snakemake
from daedyn import data, linear, linear_batched, provenance, store, training
from daedyn.bundles import member_key, split
from daedyn.jobs import JobInfo
from daedyn.kinds import load as load_kinds
from daedyn.plan import Plan

KINDS = load_kinds()


def bits(key: str) -> str:
    return "".join(f"{b:08b}" for b in hashlib.sha256(key.encode()).digest())


def keys(n: int, seeds: int = 1) -> list[str]:
    return [member_key(f"r{i}", s) for i in range(n) for s in range(seeds)]


@pytest.mark.parametrize("n, size", [(1, 1), (5, 64), (300, 16), (257, 7)])
def test_bundles_are_the_leaves_of_the_hash_trie(n, size):
    members = keys(n, 2)
    bundles = split(members, size)
    assert sorted(k for b in bundles.values() for k in b) == sorted(members)  # each member once
    below = lambda prefix: [k for k in members if bits(k).startswith(prefix)]  # brute force over all keys
    for name, inside in bundles.items():
        prefix = name.removeprefix("b")
        assert name.startswith("b") and set(prefix) <= {"0", "1"}
        assert sorted(inside) == sorted(below(prefix)) and 1 <= len(inside) <= size  # the whole node, small
        if prefix:
            assert len(below(prefix[:-1])) > size  # its parent is too big to be a bundle
        assert inside == [k for k in members if k in inside]  # the plan's order kept


def test_adding_a_member_changes_only_the_bundle_on_its_path():
    rng = random.Random(3)
    members = keys(200, 3)
    before = split(members, 16)
    for new in [member_key(f"r{rng.randrange(10**6)}", 0) for _ in range(20)] + ["r3/7"]:
        after = split(members + [new], 16)
        changed = {b for b in set(before) | set(after) if before.get(b) != after.get(b)}
        assert changed and all(bits(new).startswith(b[1:]) for b in changed), (new, changed)
        assert sum(new in after[b] for b in after) == 1
        assert len({b for b in changed if b in before}) == 1  # one old bundle grew or split


def test_bundle_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        split(["a"], 0)


# ---- the plan ---------------------------------------------------------------------------------
SWEEP = {"dataset": "synthetic", "n_samples": 256, "hidden": 8, "lr": 0.05, "epochs": 30, "log_every": 10,
         "seeds": [0, 1], "modes": [0, 1], "sweep": {"eps": [0.0, 0.25, 0.5, 1.0, 2.0], "gamma": [0.0, 0.1, 0.2]}}


def plan_of(exp: dict, bundle: int = 4, **extra) -> Plan:
    config = load_yaml(REPO / "config.yaml")
    config["datasets"].update(load_yaml(REPO / ".test" / "config.yaml")["datasets"])
    config["linear_experiments"] = {"grid": copy.deepcopy(exp)}
    config.update(bundle=bundle, **extra)
    return Plan(config)


def test_editing_one_run_changes_only_the_params_of_its_bundles():
    exp = {**SWEEP, "runs": {"extra": {"lr": 0.04}}}
    plan = plan_of(exp)
    other = plan_of({**exp, "runs": {"extra": {"lr": 0.03}}})
    assert other.bundles("grid") == plan.bundles("grid")  # membership follows the names only
    edited = {b for b, members in plan.bundles("grid").items() if any(run == "extra" for run, _ in members)}
    assert 1 <= len(edited) <= 2 < len(plan.bundles("grid"))
    for b in plan.bundles("grid"):
        assert (plan.bundle_params("grid", b) != other.bundle_params("grid", b)) == (b in edited), b


def test_a_bundles_rule_params_inputs_and_request_cover_its_members():
    plan = plan_of({**SWEEP, "sweep": {"eps": [0.0, 0.5], "n_samples": [128, 256]}}, bundle=3)
    every = [m for b in plan.bundles("grid").values() for m in b]
    assert sorted(every) == sorted(plan.members("grid")) and all(len(b) <= 3 for b in plan.bundles("grid").values())
    for b, members in plan.bundles("grid").items():
        rule = plan.bundle_rule("grid", b)
        assert rule == f"linear_train_grid_{b}" and plan.bundle_of_rule(rule) == ("grid", b)
        params = plan.bundle_params("grid", b)
        assert list(params["members"]) == [member_key(r, s) for r, s in members]
        for (run, seed), member in zip(members, params["members"].values()):
            assert member["params"] == plan.train_params("grid", run, seed)
            assert member["output"] == f"results/grid/runs/{run}/seed{seed}.nc"
            assert member["inputs"]["spectrum"] in plan.bundle_inputs("grid", b)["spectrum"]
        assert plan.bundle_outputs("grid", b) == [m["output"] for m in params["members"].values()]
        # the loop holds one run at a time; the runtime is every member's work and one start-up
        largest = max(sum(plan.memory("grid", r).values()) for r, _ in members)
        assert plan.bundle_mem_mb("grid", b, 1) == plan.requested_mb(largest, 1)
        work = sum(KINDS["linear"].work(plan, plan.experiment("grid"), r) for r, _ in members)
        assert plan.bundle_runtime("grid", b, 1) == plan.requested_minutes(work, 1)
    assert plan.bundle_of_rule("linear_aggregate") is None


@pytest.mark.parametrize("device, policy, together", [("cpu", "auto", False), ("cuda", "auto", True),
                                                      ("auto", "auto", True), ("cpu", "always", True),
                                                      ("cuda", "never", False)])
def test_a_batched_engine_adds_its_members_memory(device, policy, together):
    """Runs the policy may batch on their device are held together; runs trained one after another need
    the largest member's memory."""
    exp = {**SWEEP, "n_samples": 256, "hidden": 12, "device": device, "sweep": {"eps": [0.0, 0.5, 1.0]}}
    plan = plan_of(exp, bundle=64, batched=policy)
    (b, members), = plan.bundles("grid").items()
    one = sum(plan.memory("grid", members[0][0]).values())
    expected = len(members) * one if together else one
    assert sum(plan.bundle_memory("grid", b)[0].values()) == pytest.approx(expected)
    plan.kinds["linear"] = dataclasses.replace(KINDS["linear"], batched={})     # no batched trainer
    plan.kind_of["grid"] = plan.kinds["linear"]
    assert plan.bundle_memory("grid", b)[0] == plan.memory("grid", members[0][0])


# ---- the bundle job ---------------------------------------------------------------------------
@pytest.fixture
def spectrum_file(tmp_path):
    from daedyn.jobs.spectrum import spectrum_job

    lam = data.spectrum_values("exponential", 8, scale=3.0, decay=0.6)
    store.write_dataset(data.synthetic(64, 8, lam, seed=5), tmp_path / "data.nc", title="t", summary="s",
                        provenance_attrs={})
    spectrum_job({"n_samples": 64, "center": False}, str(tmp_path / "data.nc"), str(tmp_path / "spectrum.nc"))
    return str(tmp_path / "spectrum.nc")


RUNS = {"ae/0": {}, "dae/0": {"eps": 0.3}, "dae/1": {"eps": 0.3}, "wide/0": {"hidden": 6, "eps": 0.1}}


def spec_of(spectrum: str, tmp_path, runs=RUNS, batched="auto", **shared) -> dict:
    base = dict(hidden=4, lr=0.05, epochs=40, log_every=10, device="cpu", dtype="float64", **shared)
    members = {}
    for key, own in runs.items():
        run, _, seed = key.partition("/")
        config = linear.LinearConfig.make(experiment="e", run=run, dataset="syn", n_samples=64, seed=int(seed),
                                          **{**base, **own})
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
        members[key] = {"params": params, "inputs": {"spectrum": spectrum},
                        "output": str(tmp_path / f"runs/{run}/seed{params['seed']}.nc")}
    return {"experiment": "e", "bundle": "b01", "batched": batched, "members": members}


def run_bundle(spec, kind=KINDS["linear"], every=0):
    from daedyn.jobs.bundle import bundle_job

    bundle_job(kind, spec, JobInfo("linear_train_e_b01", {}, None, kind.sources("train")), checkpoint_every=every)


def one_run_reference(spectrum: str, member: dict, tmp_path, name: str) -> xr.Dataset:
    """The member trained by a job of its own (daedyn.jobs.linear.train_job)."""
    from daedyn.jobs.linear import train_job

    out = tmp_path / "alone" / f"{name}.nc"
    train_job(member["params"], spectrum, None, str(out))
    return store.open_dataset(out)


def without_volatile(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in provenance.VOLATILE_ATTRS}
    return ds


def test_a_bundle_writes_each_runs_file_as_its_own_job_would(spectrum_file, tmp_path, caplog):
    spec = spec_of(spectrum_file, tmp_path)
    caplog.set_level("INFO")
    run_bundle(spec)
    for i, (key, member) in enumerate(spec["members"].items()):
        got = store.open_dataset(member["output"])
        alone = one_run_reference(spectrum_file, member, tmp_path, key.replace("/", "_"))
        for name in alone.variables:
            np.testing.assert_array_equal(got[name].values, alone[name].values, err_msg=f"{key}::{name}")
        assert json.loads(got.attrs["config_json"]) == member["params"]  # its own params and seed
        assert got.attrs["seed"] == member["params"]["seed"] and got.attrs["snakemake_rule"] == "linear_train_e_b01"
        assert f"bundle b01: run {i + 1}/4 {key}" in caplog.text
    assert not list(tmp_path.rglob("*.ckpt"))


def batched_calls(monkeypatch):
    """A stand-in batched trainer (the loop, one checkpoint for the group), recording its calls."""
    from daedyn.jobs import bundle

    calls = []

    def train_batch(configs, problem, *, checkpoint=None, threads=None, progress=False):
        calls.append(([c.label + f"/{c.seed}" for c in configs], checkpoint.path.name if checkpoint else None))
        return [linear.train(c, problem, threads=threads) for c in configs]

    monkeypatch.setattr(bundle, "_stand_in", train_batch, raising=False)
    return calls, dataclasses.replace(KINDS["linear"], batched={"exact": "daedyn.jobs.bundle:_stand_in"})


def test_a_batched_trainer_gets_each_group_of_runs_that_share_engine_and_shapes(spectrum_file, tmp_path,
                                                                                 monkeypatch):
    calls, kind = batched_calls(monkeypatch)
    spec = spec_of(spectrum_file, tmp_path, batched="always")
    run_bundle(spec, kind, every=10)
    # hidden 4 (three runs, in order) and hidden 6: two groups, each with its group checkpoint
    assert calls == [(["e/ae/0", "e/dae/0", "e/dae/1"], "seed0.nc.batch.ckpt"), (["e/wide/0"], "seed0.nc.batch.ckpt")]
    for key, member in spec["members"].items():
        alone = one_run_reference(spectrum_file, member, tmp_path, key.replace("/", "_"))
        np.testing.assert_array_equal(store.open_dataset(member["output"])["u"].values, alone["u"].values)


def test_the_batched_linear_engine_trains_each_group_as_one_batch(spectrum_file, tmp_path, caplog):
    """The linear kind's batched trainer (daedyn.linear_batched:train_batch) with `batched: always`: each group is one
    batch, its files equal the one-run files within the batched engine's float64 tolerance
    (tests/results_check.py: 1e-12 of each array's scale)."""
    from results_check import RTOL64, assert_same

    kind = KINDS["linear"]
    assert kind.batched == {"exact": "daedyn.linear_batched:train_batch"}
    spec = spec_of(spectrum_file, tmp_path, batched="always")
    caplog.set_level("INFO")
    run_bundle(spec, kind, every=10)
    assert "bundle b01: run 1/4 ae/0 (batched with 2 more)" in caplog.text  # hidden 4: one batch of three
    for key, member in spec["members"].items():
        got = store.open_dataset(member["output"])
        alone = one_run_reference(spectrum_file, member, tmp_path, key.replace("/", "_"))
        assert set(got.variables) == set(alone.variables)
        for name in alone.variables:
            assert_same(got[name].values, alone[name].values, rtol=RTOL64, floor=1.0, where=f"{key}::{name}")
        assert json.loads(got.attrs["config_json"]) == member["params"]
    assert not list(tmp_path.rglob("*.ckpt"))


def test_the_batched_policy_batches_on_a_gpu_unless_told_otherwise(monkeypatch):
    from daedyn.jobs import bundle

    name = "daedyn.linear_batched:train_batch"
    assert bundle.batched_trainer(name, "auto", "cpu") is None      # a CPU: one run after another
    assert bundle.batched_trainer(name, "always", "cpu") is linear_batched.train_batch
    assert bundle.batched_trainer(None, "always", "cpu") is None    # the engine has no batched trainer
    monkeypatch.setattr(training, "resolve_device", lambda device: torch.device("cuda"))
    assert bundle.batched_trainer(name, "auto", "auto") is linear_batched.train_batch
    assert bundle.batched_trainer(name, "never", "cuda") is None


def test_unstable_runs_fail_the_bundle_before_any_training_naming_each(spectrum_file, tmp_path, monkeypatch):
    runs = {"good/0": {}, "bad/0": {"gamma": 50.0}, "worse/0": {"gamma": 80.0}}  # 1 - lr*gamma < -1
    steps = []
    real_step = linear.ExactEngine.step
    monkeypatch.setattr(linear.ExactEngine, "step", lambda self, t: (steps.append(t), real_step(self, t)))
    spec = spec_of(spectrum_file, tmp_path, runs)
    with pytest.raises(training.UnstableLearningRateError) as err:
        run_bundle(spec)
    text = str(err.value)
    assert "2 of 3 runs" in text and "run bad/0" in text and "run worse/0" in text and "good" not in text
    assert "allow_unstable: true" in text
    assert steps == [] and not (tmp_path / "runs").exists()  # nothing trained, no run file


def test_a_diverging_run_fails_the_bundle_naming_it(spectrum_file, tmp_path):
    runs = {"good/0": {}, "bad/0": {"gamma": 50.0}}
    spec = spec_of(spectrum_file, tmp_path, runs, allow_unstable=True)
    with pytest.raises(training.DivergenceError, match=r"^e/bad seed 0: training diverged"):
        run_bundle(spec)
    assert (tmp_path / "runs/good/seed0.nc").exists() and not (tmp_path / "runs/bad").exists()


class Killed(Exception):
    pass


def test_a_killed_bundle_resumes_exactly(spectrum_file, tmp_path, monkeypatch):
    reference = spec_of(spectrum_file, tmp_path / "reference")
    run_bundle(reference, every=10)
    spec = spec_of(spectrum_file, tmp_path / "killed")
    real_save, saves = training.Checkpoint.save, []

    def save_then_die(self, state):  # the process dies right after dae/0's (the second run's) epoch-20 checkpoint
        real_save(self, state)
        saves.append(state["epoch"])
        if saves.count(20) == 2:
            raise Killed

    monkeypatch.setattr(training.Checkpoint, "save", save_then_die)
    with pytest.raises(Killed):
        run_bundle(spec, every=10)
    monkeypatch.setattr(training.Checkpoint, "save", real_save)
    assert (tmp_path / "killed/runs/ae/seed0.nc").exists()
    for path in tmp_path.glob("killed/runs/*/*.nc"):  # Snakemake removes the outputs of an incomplete job
        path.unlink()
    run_bundle(spec, every=10)
    for key, member in spec["members"].items():
        a = store.open_dataset(reference["members"][key]["output"])
        b = store.open_dataset(member["output"])
        for name in a.variables:
            np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=f"{key}::{name}")
        history = {"ae/0": "[40]", "dae/0": "[20]"}.get(key, "[]")  # finished: resumed at its end
        assert b.attrs["resume_history"] == history, key
        assert json.loads(b.attrs["config_json"]) == json.loads(a.attrs["config_json"])
    assert not list(tmp_path.rglob("*.ckpt"))


# ---- through Snakemake ------------------------------------------------------------------------
@pytest.mark.workflow
def test_adding_a_sweep_value_or_a_seed_plans_only_the_bundles_of_the_new_runs(tmp_path):
    base = {**BASE, "linear_experiments": {"grid": {**SWEEP, "epochs": 20, "sweep": {"eps": [0.0, 0.5, 1.0, 2.0]}}},
            "bundle": 2}
    target = "results/grid/combined.nc"
    run_snakemake(tmp_path, base, "-c1", target)
    before = plan_of(base["linear_experiments"]["grid"], bundle=2).bundles("grid")
    for change in ({"sweep": {"eps": [0.0, 0.5, 1.0, 2.0, 3.0]}}, {"seeds": [0, 1, 2]}):
        config = copy.deepcopy(base)
        config["linear_experiments"]["grid"].update(change)
        after = plan_of(config["linear_experiments"]["grid"], bundle=2).bundles("grid")
        changed = {b for b in after if after[b] != before.get(b)}
        out = run_snakemake(tmp_path, config, "-n", target).stdout
        planned = {rule for rule, _ in dry_run_jobs(out)}
        train = {rule for rule in planned if rule.startswith("linear_train_")}
        assert train == {f"linear_train_grid_{b}" for b in changed}
        assert len(train) < len(after) and planned - train <= {"linear_aggregate"}
        new = {f"results/grid/runs/{r}/seed{s}.nc" for r, s in after_members(after) - after_members(before)}
        outputs = {p for rule, files in planned_outputs(out).items() if rule in train for p in files}
        assert new <= outputs


def after_members(bundles) -> set:
    return {m for b in bundles.values() for m in b}


def test_a_bundles_rule_name_gives_its_kind():
    from daedyn.kinds import kind_of_rule

    for rule, kind in (("nonlinear_theory_train_nonlinear_ode_b01", "nonlinear_theory"),
                       ("nonlinear_train_fig6_mnist_b", "nonlinear"), ("linear_train_fig5_mnist_b0", "linear"),
                       ("linear_train", "linear"), ("lr_normalised_aggregate", "lr_normalised")):
        assert kind_of_rule(KINDS, rule)[0].name == kind, rule
    with pytest.raises(KeyError, match="not a rule of the experiment-kind registry"):
        kind_of_rule(KINDS, "spectrum")


@pytest.mark.parametrize("device, policy, together", [("cpu", "auto", False), ("auto", "auto", True),
                                                      ("cpu", "always", True), ("cuda", "never", False)])
def test_a_generalisation_file_asks_for_a_network_per_noise_where_they_may_train_batched(device, policy, together):
    """Every ε of one N trains as one group: as one tensor where the policy may batch, one network each."""
    from daedyn.kinds.generalisation import run_eps

    def plan(device, policy):
        config = load_yaml(REPO / "config.yaml")
        config["generalisation_experiments"][name]["device"] = device
        return Plan({**config, "batched": policy})

    name = "generalisation_mnist"

    p = plan(device, policy)
    expanded = p.experiment(name)
    run = next(iter(p.kind_of[name].runs(expanded)))
    alone = p.memory(name, run)
    one = plan("cpu", "never").memory(name, run)["hidden"]
    assert alone["hidden"] == one * (len(run_eps(expanded)) if together else 1)
