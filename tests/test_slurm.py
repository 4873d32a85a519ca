"""Cluster submission through SLURM (profiles/slurm, docs/cluster.md).

* The dry run of the paper-scale config with the SLURM profile needs no SLURM.
* The real run needs a reachable cluster with an idle node (CI starts one with .ci/slurm-up.sh).
  Without one the test is skipped on a developer machine, but FAILS in CI (CI=true) or when
  DAEDYN_REQUIRE_SLURM=1, so that a broken cluster can never pass silently.
  DAEDYN_SLURM_PARTITION overrides the profile's partition (for a run on a real site).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from conftest import REPO, planned_outputs, run_snakemake
from daedyn import store, sweep
from daedyn.bundles import split
from daedyn.provenance import VOLATILE_ATTRS

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

PROFILE = REPO / "profiles" / "slurm"
SLURM_TIMEOUT_S = 360  # the whole SLURM run; normally about a minute
FIG6_MEASURED_MIN = 34  # one paper-scale fig6_mnist run on 2 CPU cores (benchmarks/README.md)

# A tiny sweep: synthetic data -> spectrum (one grouped SLURM job) -> 12 training runs (bundles of at most
# `bundle` runs, one SLURM job each) -> aggregate (local rule)
SWEEP = {"eps": [0.0, 0.25, 0.5, 1.0], "gamma": [0.0, 0.1, 0.2]}
TINY = {
    "data": {"download": False},
    "datasets": {"synthetic": {"source": "synthetic", "synthetic": {
        "n_samples": 256, "dim": 12, "spectrum": "exponential", "scale": 3.0, "decay": 0.6, "seed": 1}}},
    "spectra": [{"dataset": "synthetic", "n_samples": 256}],
    "linear_experiments": {"tiny": {
        "dataset": "synthetic", "n_samples": 256, "hidden": 8, "lr": 0.05, "epochs": 200, "log_every": 20,
        "engine": "datapass", "dtype": "float64", "seeds": [0], "modes": [0, 1], "sweep": SWEEP}},
    "bundle": 8,
}
NAMES = [sweep.run_name({"eps": e, "gamma": g}) for e in SWEEP["eps"] for g in SWEEP["gamma"]]
RUNS = [f"results/tiny/runs/{name}/seed0.nc" for name in NAMES]
BUNDLES = split([f"{name}/0" for name in NAMES], TINY["bundle"])  # bundle -> its runs' keys
CLUSTER_OUTPUTS = {"results/data/synthetic.nc": "dataset", "results/spectra/synthetic_n256.nc": "spectrum",
                   **{f"results/tiny/runs/{key.split('/')[0]}/seed0.nc": f"linear_train_tiny_{b}"
                      for b, keys in BUNDLES.items() for key in keys}}
COMBINED = "results/tiny/combined.nc"  # linear_aggregate: localrule, runs on the submitting machine


def required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("DAEDYN_REQUIRE_SLURM") == "1"


def cluster_problem() -> str | None:
    """Why no SLURM cluster can be used here, or None when one is reachable with an idle node."""
    missing = [c for c in ("sinfo", "sbatch", "squeue", "scontrol") if shutil.which(c) is None]
    if missing:
        return f"SLURM commands not found: {missing} (CI starts a cluster with .ci/slurm-up.sh)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T %G"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo timed out after 30 s"
    if proc.returncode != 0:
        return f"sinfo failed ({proc.returncode}): {proc.stderr.strip()}"
    if not any(line.split()[1].startswith(("idle", "mixed")) for line in proc.stdout.splitlines() if line.strip()):
        return f"no idle SLURM node: {proc.stdout.strip() or 'no nodes'}"
    return None


@pytest.fixture
def slurm_cluster() -> dict:
    problem = cluster_problem()
    if problem:
        if required():
            pytest.fail(f"a SLURM cluster is required here (CI=true or DAEDYN_REQUIRE_SLURM=1): {problem}")
        pytest.skip(problem)
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True, timeout=30).stdout
    return {"gpus": "gpu" in nodes, "partition": os.environ.get("DAEDYN_SLURM_PARTITION")}


def job_attrs(job_id: str) -> dict[str, str]:
    """`scontrol show job -d` as a dict (finished jobs stay visible for the cluster's MinJobAge)."""
    proc = subprocess.run(["scontrol", "show", "job", "-d", "-o", job_id], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"scontrol show job {job_id}: {proc.stderr}"
    return dict(field.split("=", 1) for field in proc.stdout.split() if "=" in field)


def comparable(ds: xr.Dataset) -> xr.Dataset:
    """A result without what legitimately differs between two runs (time, host, job id, ...)."""
    ds = ds.drop_vars([v for v in ds.variables if v in VOLATILE_ATTRS])
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in VOLATILE_ATTRS}
    return ds


def planned_jobs(output: str) -> dict[str, tuple[str, dict[str, str]]]:
    """First output file -> (rule, `resources:`) of each job in a dry run's job list (the members of
    a group job are listed indented)."""
    planned = {}
    for block in re.split(r"\n(?=\s*\[[^\]]+\]\n)", output):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M)
        out = re.search(r"^\s+output: ([^,\n]+)", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and out and res:
            planned[out[1]] = (rule[1], dict(kv.split("=", 1) for kv in res[1].split(", ")))
    return planned


def minutes(time_limit: str) -> int:
    """SLURM's [D-]HH:MM:SS as minutes."""
    days, _, hms = time_limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def test_slurm_profile_dry_run_plans_sbatch_resources(tmp_path):
    """Paper-scale config with the SLURM profile: every cluster job gets a partition and the memory,
    time and GPUs its rule asks for (the profile's defaults must not replace them)."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert "tasks" not in profile["default-resources"]  # would add --ntasks-per-gpu to GPU jobs
    partition = profile["default-resources"]["slurm_partition"]
    # device: cuda makes the linear training bundles request a GPU (auto does not)
    cuda = {"linear_experiments": {"fig5_mnist": {"device": "cuda"}}}
    proc = run_snakemake(tmp_path / "slurm", cuda, "--profile", str(PROFILE), "-n")
    assert f"Using profile {PROFILE}" in proc.stdout + proc.stderr
    slurm = planned_jobs(proc.stdout)
    local = planned_jobs(run_snakemake(tmp_path / "local", cuda, "-n").stdout)
    assert slurm.keys() == local.keys()
    rules = [rule for rule, _ in slurm.values()]
    assert {"dataset", "spectrum"} <= set(rules) and any(rule.startswith("linear_train_") for rule in rules)
    fig5 = yaml.safe_load((REPO / "config.yaml").read_text())["linear_experiments"]["fig5_mnist"]
    fig5_runs = [out for out, (rule, _) in slurm.items() if rule.startswith("linear_train_fig5_mnist_")]  # bundles
    files = planned_outputs(proc.stdout)
    assert sum(len(files[slurm[out][0]]) for out in fig5_runs) == len(fig5["runs"]) * len(fig5.get("seeds", [0]))
    for output, (rule, res) in slurm.items():
        assert res["slurm_partition"] == partition, (output, res)
        assert "tasks" not in res and "slurm_account" not in res, (output, res)
        assert int(res["runtime"]) > 0 and int(res["mem_mb"]) > 0, (output, res)
        for key, value in local[output][1].items():  # the rule's own values, not the profile's defaults
            if key in ("mem_mb", "runtime", "gpu") and value.isdigit():
                assert res[key] == value, (output, key, res, local[output][1])
    assert all(slurm[out][1]["gpu"] == "1" for out in fig5_runs)
    # requests calibrated on the measured throughput (benchmarks/README.md) times the profile's safety factor
    safety = float(dict(kv.split("=") for kv in profile["config"])["resource_safety"])
    out = run_snakemake(tmp_path / "paper", cuda, "--profile", str(PROFILE), "-n", "paper").stdout
    paper, files = planned_jobs(out), planned_outputs(out)
    # a bundle of n fig6_mnist runs (paper target) asks for n runs' time, one after another
    fig6 = [(int(res["runtime"]), len(files[rule])) for o, (rule, res) in paper.items()
            if rule.startswith("nonlinear_train_fig6_mnist_")]
    assert fig6 and all(n * FIG6_MEASURED_MIN < t <= 1.5 * safety * n * FIG6_MEASURED_MIN for t, n in fig6), fig6
    assert all(int(slurm[out][1]["runtime"]) <= 10 for out in fig5_runs)  # measured: 27 s each, 3 runs
    # without device: cuda no GPU is requested
    proc = run_snakemake(tmp_path / "auto", None, "--profile", str(PROFILE), "-n")
    assert {res["gpu"] for rule, res in planned_jobs(proc.stdout).values() if rule.startswith("linear_train_")} == {"0"}


def test_sweep_through_slurm_lands_in_few_jobs_and_matches_local_run(tmp_path, slurm_cluster):
    """A 12-run sweep reaches SLURM as one job for dataset and spectrum and one per bundle (of at most
    `bundle` = 8 runs); a bundle's job asks for its runs' summed runtime and largest memory with the
    training rule's 2 CPUs, and every result equals that of a local run."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["cores"] == 2 and 2 <= len(BUNDLES) < len(RUNS)
    cluster_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    cluster_dir.mkdir()
    (cluster_dir / "test-config.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    # the jobs run `<this python> -m snakemake`: the environment's bin must be on PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    extra = []
    if slurm_cluster["partition"]:
        extra += ["--default-resources", f"slurm_partition={slurm_cluster['partition']}"]
    if required():
        assert slurm_cluster["gpus"], "the CI cluster declares (fake) GPUs; see .ci/slurm-up.sh"
    if slurm_cluster["gpus"]:
        extra += ["--set-resources", *(f"linear_train_tiny_{b}:gpu=1" for b in BUNDLES)]  # --gpus=1, no GPU compute
    # the plugin ignores SIGTERM: `timeout -k` makes sure a hung run ends
    cmd = ["timeout", "-k", "15", str(SLURM_TIMEOUT_S), sys.executable, "-m", "snakemake",
           "-s", str(REPO / "Snakefile"), "--directory", str(cluster_dir), "--workflow-profile", "none",
           "--profile", str(PROFILE), "--configfile", str(cluster_dir / "test-config.yaml"),
           "--jobs", "4", COMBINED, *extra]  # options taking lists (--set-resources) go last
    dry = subprocess.run(cmd + ["-n"], capture_output=True, text=True, cwd=cluster_dir, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr[-4000:]
    planned = planned_jobs(dry.stdout)
    files = planned_outputs(dry.stdout)
    assert {path: rule for rule, paths in files.items() for path in paths if path in CLUSTER_OUTPUTS} == CLUSTER_OUTPUTS
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cluster_dir, env=env,
                          timeout=SLURM_TIMEOUT_S + 60)
    output = proc.stdout + proc.stderr
    submitted = dict(re.findall(r"Job ([\w-]+) has been submitted with SLURM jobid (\d+)", output))
    try:
        assert proc.returncode == 0, f"snakemake --executor slurm failed ({proc.returncode}):\n{output[-8000:]}"
    finally:  # never leave our jobs queued on a failure
        if proc.returncode != 0 and submitted:
            subprocess.run(["scancel", *submitted.values()], capture_output=True, timeout=30)
    assert f"Using profile {PROFILE}" in output

    # one SLURM job for dataset and spectrum and one per bundle; which job wrote a result is in its
    # slurm_job_id attribute
    job_ids = set(submitted.values())
    assert len(job_ids) == 1 + len(BUNDLES), output[-4000:]
    members: dict[str, list[str]] = {}
    for path, rule in CLUSTER_OUTPUTS.items():
        attrs = store.open_dataset(cluster_dir / path).attrs
        assert attrs["slurm_job_id"] in job_ids, (path, attrs["slurm_job_id"], submitted)  # seen by the job itself
        assert attrs["snakemake_rule"] == rule
        members.setdefault(attrs["slurm_job_id"], []).append(path)
    by_job = {job_id: {CLUSTER_OUTPUTS[p] for p in paths} for job_id, paths in members.items()}
    assert sorted(map(sorted, by_job.values())) == sorted([["dataset", "spectrum"]] + [
        [f"linear_train_tiny_{b}"] for b in BUNDLES])  # a bundle's runs: all in its one job
    for job_id, rules in by_job.items():
        paths = members[job_id]
        bundle = rules != {"dataset", "spectrum"}
        (rule,) = rules if bundle else ("prepare",)
        where = f"rule_{rule}" if bundle else "group_prepare*"  # a bundle's rule has no wildcards
        logs = glob.glob(str(cluster_dir / f".snakemake/slurm_logs/{where}/{job_id}.log"))
        assert len(logs) == 1, (job_id, logs)
        slurm_log = Path(logs[0]).read_text()
        # each job's script ran exactly once inside the allocation (tasks would run it once per task)
        for one in (rules if not bundle else [rule]):
            assert len(re.findall(rf"rule {one} .* started", slurm_log)) == 1, slurm_log[-3000:]
        if bundle:
            assert len(paths) == len(BUNDLES[rule.rpartition("_")[2]])
            assert f"bundle {rule.rpartition('_')[2]} of tiny: {len(paths)} runs" in slurm_log
        job = job_attrs(job_id)
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert job["Partition"] == (slurm_cluster["partition"] or "debug")
        # the request: a bundle's from its runs (2 threads), the prepare group's its two jobs one after another
        assert job["NumCPUs"] == ("2" if bundle else "1"), job
        res = [planned[files[rule][0]][1]] if bundle else [planned[p][1] for p in paths]
        assert minutes(job["TimeLimit"]) == sum(int(r["runtime"]) for r in res), (job["TimeLimit"], res)
        assert job["MinMemoryNode"] == f"{max(int(r['mem_mb']) for r in res)}M", (job["MinMemoryNode"], res)
        if bundle and slurm_cluster["gpus"]:
            assert job["JOB_GRES"] == "gpu:1", job  # a GPU was allocated (--gpus=1)
        elif not bundle:
            assert job.get("JOB_GRES", "(null)") == "(null)", job
    assert store.open_dataset(cluster_dir / COMBINED).attrs["slurm_job_id"] == ""  # localrule: not submitted

    # the same config locally: identical results apart from volatile provenance
    local_env = {"SLURM_JOB_ID": ""}
    run_snakemake(local_dir, TINY, "-c2", COMBINED, env=local_env)
    for path in [*CLUSTER_OUTPUTS, COMBINED]:
        remote, local = store.open_dataset(cluster_dir / path), store.open_dataset(local_dir / path)
        assert local.attrs["slurm_job_id"] == ""
        xr.testing.assert_allclose(comparable(remote), comparable(local))
        assert comparable(remote).attrs == comparable(local).attrs, path
    # the training actually trained: the loss went down
    run = store.open_dataset(cluster_dir / RUNS[0])
    assert float(run["loss"].isel(epoch=-1).max()) < float(run["loss"].isel(epoch=0).min())
