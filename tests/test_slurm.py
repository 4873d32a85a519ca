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

from conftest import REPO, run_snakemake
from daedyn import store
from daedyn.provenance import VOLATILE_ATTRS

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

PROFILE = REPO / "profiles" / "slurm"
SLURM_TIMEOUT_S = 360  # the whole SLURM run; normally about a minute

# A tiny experiment: synthetic data -> spectrum -> two training runs (SLURM jobs) -> aggregate (local rule)
TINY = {
    "data": {"download": False},
    "datasets": {"synthetic": {"source": "synthetic", "synthetic": {
        "n_samples": 256, "dim": 12, "spectrum": "exponential", "scale": 3.0, "decay": 0.6, "seed": 1}}},
    "spectra": [{"dataset": "synthetic", "n_samples": 256}],
    "linear_experiments": {"tiny": {
        "dataset": "synthetic", "n_samples": 256, "hidden": 8, "lr": 0.05, "epochs": 200, "log_every": 20,
        "engine": "datapass", "dtype": "float64", "seeds": [0], "modes": [0, 1],
        "runs": {"ae": {}, "dae": {"eps": 0.5}}}},
}
RUNS = ["results/runs/tiny/ae/seed0.nc", "results/runs/tiny/dae/seed0.nc"]
CLUSTER_OUTPUTS = {"results/data/synthetic.nc": "dataset", "results/spectra/synthetic_n256.nc": "spectrum",
                   **{run: "linear_train" for run in RUNS}}
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
    """First output file -> (rule, `resources:`) of each job in a dry run's job list."""
    planned = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n)", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
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
    # device: cuda makes linear_train request a GPU (auto does not)
    cuda = {"linear_experiments": {"fig5_mnist": {"device": "cuda"}}}
    proc = run_snakemake(tmp_path / "slurm", cuda, "--profile", str(PROFILE), "-n")
    assert f"Using profile {PROFILE}" in proc.stdout + proc.stderr
    slurm = planned_jobs(proc.stdout)
    local = planned_jobs(run_snakemake(tmp_path / "local", cuda, "-n").stdout)
    assert slurm.keys() == local.keys()
    rules = [rule for rule, _ in slurm.values()]
    assert {"dataset", "spectrum", "linear_train"} <= set(rules)
    fig5 = yaml.safe_load((REPO / "config.yaml").read_text())["linear_experiments"]["fig5_mnist"]
    fig5_runs = [out for out, (rule, _) in slurm.items() if rule == "linear_train" and "/fig5_mnist/" in out]
    assert len(fig5_runs) == len(fig5["runs"]) * len(fig5.get("seeds", [0]))
    for output, (rule, res) in slurm.items():
        assert res["slurm_partition"] == partition, (output, res)
        assert "tasks" not in res and "slurm_account" not in res, (output, res)
        assert int(res["runtime"]) > 0 and int(res["mem_mb"]) > 0, (output, res)
        for key, value in local[output][1].items():  # the rule's own values, not the profile's defaults
            if key in ("mem_mb", "runtime", "gpu") and value.isdigit():
                assert res[key] == value, (output, key, res, local[output][1])
    assert all(slurm[out][1]["gpu"] == "1" for out in fig5_runs)
    # without device: cuda no GPU is requested
    proc = run_snakemake(tmp_path / "auto", None, "--profile", str(PROFILE), "-n")
    assert {res["gpu"] for rule, res in planned_jobs(proc.stdout).values() if rule == "linear_train"} == {"0"}


def test_linear_training_through_slurm_matches_local_run(tmp_path, slurm_cluster):
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
        extra += ["--set-resources", "linear_train:gpu=1"]  # exercises --gpus=1 (no GPU compute here)
    # the plugin ignores SIGTERM: `timeout -k` makes sure a hung run ends
    cmd = ["timeout", "-k", "15", str(SLURM_TIMEOUT_S), sys.executable, "-m", "snakemake",
           "-s", str(REPO / "Snakefile"), "--directory", str(cluster_dir), "--workflow-profile", "none",
           "--profile", str(PROFILE), "--configfile", str(cluster_dir / "test-config.yaml"),
           "--jobs", "4", COMBINED, *extra]  # options taking lists (--set-resources) go last
    dry = subprocess.run(cmd + ["-n"], capture_output=True, text=True, cwd=cluster_dir, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr[-4000:]
    planned = planned_jobs(dry.stdout)
    assert {planned[path][0] for path in CLUSTER_OUTPUTS} == set(CLUSTER_OUTPUTS.values())
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cluster_dir, env=env,
                          timeout=SLURM_TIMEOUT_S + 60)
    output = proc.stdout + proc.stderr
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output))
    try:
        assert proc.returncode == 0, f"snakemake --executor slurm failed ({proc.returncode}):\n{output[-8000:]}"
    finally:  # never leave our jobs queued on a failure
        if proc.returncode != 0 and submitted:
            subprocess.run(["scancel", *submitted.values()], capture_output=True, timeout=30)
    assert f"Using profile {PROFILE}" in output

    # four SLURM jobs (dataset, spectrum, two training runs); the aggregation ran locally
    job_ids = set(submitted.values())
    assert len(submitted) == 4 and len(job_ids) == 4, output[-4000:]
    for path, rule in CLUSTER_OUTPUTS.items():
        attrs = store.open_dataset(cluster_dir / path).attrs
        job_id = attrs["slurm_job_id"]
        assert job_id in job_ids, (path, job_id, submitted)  # SLURM_JOB_ID seen by the job itself
        assert attrs["snakemake_rule"] == rule
        logs = glob.glob(str(cluster_dir / f".snakemake/slurm_logs/rule_{rule}/**/{job_id}.log"), recursive=True)
        assert len(logs) == 1, (rule, job_id, logs)
        slurm_log = Path(logs[0]).read_text()
        # the job's script ran exactly once inside the allocation (tasks would run it once per task)
        assert len(re.findall(rf"rule {rule} .* started", slurm_log)) == 1, slurm_log[-3000:]
        job = job_attrs(job_id)
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert job["Partition"] == (slurm_cluster["partition"] or "debug")
        # the rule's resources reached sbatch: runtime -> -t, mem_mb -> --mem, threads -> --cpus-per-task
        res = planned[path][1]
        assert minutes(job["TimeLimit"]) == int(res["runtime"]), (job["TimeLimit"], res)
        assert job["MinMemoryNode"] == f"{res['mem_mb']}M", (job["MinMemoryNode"], res)
        if rule == "linear_train":
            assert job["NumCPUs"] == "2", job  # threads: 2
            if slurm_cluster["gpus"]:
                assert res["gpu"] == "1" and job["JOB_GRES"] == "gpu:1", job  # a GPU was allocated (--gpus=1)
        else:
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
