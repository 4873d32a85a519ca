"""Faults: a damaged chunk found late, writes killed outright, a foreign package, CUDA that is not there.

Each case asserts the message (file, key, what to do) and lists the folder afterwards: nothing
half-written or orphaned stays behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, run_snakemake
from daedyn import data, store
from daedyn.jobs import JobInfo
from daedyn.jobs.spectrum import spectrum_job


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------ a damaged chunk, read lazily
@pytest.fixture
def dataset_file(tmp_path):
    """A dataset file as the dataset rule writes it: uint8 pixels in compressed chunks of rows."""
    images = np.random.default_rng(4).integers(0, 256, size=(3000, 8, 8), dtype=np.uint8)
    ds = data._image_dataset(images, np.zeros(3000, dtype=np.int64), 255, {})
    return store.write_dataset(ds, tmp_path / "results" / "data" / "d.nc", title="t", summary="s",
                               provenance_attrs={}, encoding={"x": dict(ds["x"].encoding)})


def test_damaged_chunk_found_by_the_spectrums_block_reads_names_file_and_rule(dataset_file, tmp_path):
    out = tmp_path / "results" / "spectra" / "d_n3000.nc"
    params = {"dataset": "d", "n_samples": 3000, "center": False, "block_size": 512}
    spectrum_job(params, str(dataset_file), str(out), JobInfo(rule="spectrum"))  # the intact file works
    out.unlink()

    content = bytearray(dataset_file.read_bytes())
    start = len(content) // 3  # inside the chunk data: the header still opens
    content[start:start + 16] = bytes(b ^ 0xFF for b in content[start:start + 16])
    dataset_file.write_bytes(bytes(content))
    store.open_dataset(dataset_file, load=False).close()  # opening alone does not see the damage
    with pytest.raises(store.ResultFileError) as err:
        spectrum_job(params, str(dataset_file), str(out), JobInfo(rule="spectrum"))
    message = str(err.value)
    assert f"cannot read {dataset_file} (needed by spectrum)" in message
    assert "HDF error" in message and "delete it and rerun" in message
    assert _files(tmp_path / "results") == ["data/d.nc"]


def test_training_jobs_refuse_a_spectrum_of_another_sample_count(dataset_file, tmp_path):
    from daedyn.jobs.lr_normalised import lr_normalised_train_job
    from daedyn.jobs.linear import train_job
    from daedyn.runconfig import LinearConfig, LrNormalisedConfig

    spectrum = tmp_path / "results" / "spectra" / "d_n2000.nc"
    spectrum_job({"n_samples": 2000, "center": False}, str(dataset_file), str(spectrum))
    linear = LinearConfig.make(experiment="e", run="r", dataset="d", n_samples=1000, hidden=4, lr=0.01, epochs=5)
    lrn = LrNormalisedConfig.make(experiment="e", run="dae_f0.5", dataset="d", n_samples=1000, hidden=4, eps=0.5,
                                  fractions=[0.5], modes=[0])
    for job, config in ((train_job, linear), (lr_normalised_train_job, lrn)):
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
        out = tmp_path / "results" / "runs" / f"{job.__name__}.nc"
        args = (params, str(spectrum), None, str(out)) if job is train_job else (params, str(spectrum), str(out))
        with pytest.raises(ValueError, match=f"spectrum {spectrum} is of N=2000 samples, the run uses n_samples=1000"):
            job(*args)
        assert not out.exists()


def test_errors_of_the_computation_are_not_blamed_on_the_file(dataset_file):
    with pytest.raises(ValueError, match="n_samples=5000 but the data have 3000 rows"):
        spectrum_job({"n_samples": 5000, "center": False}, str(dataset_file), str(dataset_file.with_name("s.nc")))


# ------------------------------------------------------------------ writes killed outright
KILLED_WRITE = """
import os, signal, sys
from daedyn import store
with store.atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"CDF half of a file")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_write_killed_by_sigkill_is_cleaned_by_the_next_write(tmp_path):
    target = tmp_path / "r.nc"
    neighbour = tmp_path / ".r.x.abcd1234.tmp.nc"  # a write of r.x.nc in progress: not ours to remove
    neighbour.write_bytes(b"other")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)], capture_output=True, timeout=120)
    assert proc.returncode == -9
    leftovers = [name for name in _files(tmp_path) if name.startswith(".r.") and name != neighbour.name]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp.nc")  # what SIGKILL leaves behind

    ds = data.synthetic(16, 2, np.array([2.0, 1.0]))
    store.write_dataset(ds, target, title="t", summary="s", provenance_attrs={})
    assert _files(tmp_path) == [neighbour.name, "r.nc"]
    assert store.open_dataset(target).sizes["sample"] == 16


# ------------------------------------------------------------------ a full disk, a damaged file's provenance
def test_a_full_disk_names_the_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import xarray as xr

    def full_disk(self, path, **kwargs):
        Path(path).write_bytes(b"CDF half of a file")
        raise RuntimeError("NetCDF: HDF error")  # what netCDF4 raises on a full disk: no path, no errno

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
    target = tmp_path / "runs" / "seed0.nc"
    with pytest.raises(store.ResultWriteError) as err:
        store.write_dataset(data.synthetic(16, 2, np.array([2.0, 1.0])), target, title="t", summary="s",
                            provenance_attrs={})
    message = str(err.value)
    assert f"cannot write {target}: no space left on device" in message and "NetCDF: HDF error" in message
    assert _files(tmp_path) == []


def test_provenance_of_a_file_with_a_damaged_chunk_is_still_shown(dataset_file, capsys):
    from daedyn.__main__ import main

    content = bytearray(dataset_file.read_bytes())
    start = len(content) // 3  # inside the chunk data
    content[start:start + 16] = bytes(b ^ 0xFF for b in content[start:start + 16])
    dataset_file.write_bytes(bytes(content))
    with pytest.raises(store.ResultFileError):
        store.open_dataset(dataset_file)  # the data cannot be read ...
    assert main(["provenance", str(dataset_file)]) == 0  # ... the provenance can
    out = capsys.readouterr().out
    assert f"== {dataset_file}" in out and "title: t" in out


# ------------------------------------------------------------------ a stopped job, a diverged run
def test_a_job_stopped_by_sigterm_ends_its_log_saying_so(tmp_path):
    import os
    import signal

    from daedyn.jobs import logged

    log, before = tmp_path / "job.log", signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        with logged(JobInfo(rule="linear_train", log=str(log))), store.atomic_path(tmp_path / "r.nc") as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert "rule linear_train stopped by SIGTERM" in log.read_text().splitlines()[-1]
    assert _files(tmp_path) == ["job.log"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the job's alone


def test_a_run_diverging_from_large_initial_weights_blames_them():
    from daedyn import linear, spectrum, training

    lam = data.spectrum_values("exponential", 8, scale=3.0, decay=0.6)
    lam, V = spectrum.eigh_descending(spectrum.second_moment(data.matrix(data.synthetic(64, 8, lam, seed=5)))[0])
    kw = dict(hidden=6, epochs=200, log_every=10, device="cpu", dtype="float64")
    with pytest.raises(training.DivergenceError) as err:
        linear.train_exact(lam, V, lr=0.05, init_std=100, **kw)  # lr is 0.15 of eta_max
    assert "initial weights are the likelier cause: init_std = 100" in str(err.value)
    assert "lower init_std rather than lr" in str(err.value)
    with pytest.raises(training.DivergenceError) as err:  # small weights, lr above the limit: lr it is
        linear.train_exact(lam, V, lr=3.0 / lam[0], init_std=0.1, allow_unstable=True, **kw)
    assert "eta_max=" in str(err.value) and "init_std" not in str(err.value)


# ------------------------------------------------------------------ through Snakemake
SYN_CONFIG = {
    "data": {"download": False},
    "datasets": {"syn": {"source": "synthetic", "synthetic": {"n_samples": 64, "dim": 8}}},
    "spectra": [],
}
CUDA_CONFIG = {**SYN_CONFIG, "linear_experiments": {"tiny": {
    "dataset": "syn", "n_samples": 64, "hidden": 4, "lr": 0.1, "epochs": 10, "modes": [0, 1], "device": "cuda",
    "runs": {"dae": {"eps": 0.5}}}}}
RUN = "results/tiny/runs/dae/seed0.nc"
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA")


@pytest.mark.workflow
def test_job_refuses_a_package_from_another_checkout(tmp_path):
    """The workflow's checkout (a copy) is not what the jobs import (this checkout, first on PYTHONPATH)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Snakefile", "config.yaml", "requirements.lock"):
        shutil.copy(REPO / name, checkout)
    shutil.copytree(REPO / "workflow", checkout / "workflow")
    shutil.copytree(REPO / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "run"
    proc = run_snakemake(work, SYN_CONFIG, "-c1", "-s", str(checkout / "Snakefile"), "results/data/syn.nc",
                         check=False)
    assert proc.returncode != 0
    log = (work / "logs" / "data" / "syn.log").read_text()
    assert f"imports daedyn from {REPO / 'src' / 'daedyn'}" in log
    assert f"the workflow's own package is {checkout / 'src' / 'daedyn'}" in log
    assert f"pip install -e {checkout}" in log
    assert not (work / "results" / "data").exists() or _files(work / "results" / "data") == []


@pytest.mark.workflow
@needs_no_cuda
def test_device_cuda_without_cuda_stops_before_any_job(tmp_path):
    proc = run_snakemake(tmp_path, CUDA_CONFIG, "-c1", RUN, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Invalid config: linear_experiments.tiny.device: cuda, but CUDA is not available on this machine" in output
    assert "device: auto" in output
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()  # no job started
    # a dry run does not judge the machine; and jobs that need no CUDA still run
    assert run_snakemake(tmp_path, CUDA_CONFIG, "-n", RUN, check=False).returncode == 0
    run_snakemake(tmp_path, CUDA_CONFIG, "-c1", "results/data/syn.nc")
    assert _files(tmp_path / "results") == ["data/syn.nc"]


@pytest.mark.workflow
def test_a_run_too_big_for_this_machine_stops_before_any_job(tmp_path):
    config = {**SYN_CONFIG, "linear_experiments": {"tiny": {
        **CUDA_CONFIG["linear_experiments"]["tiny"], "device": "cpu", "runs": {"dae": {"eps": 0.5, "hidden": 10**6}}}}}
    proc = run_snakemake(tmp_path, config, "-c1", RUN, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Invalid config: linear_experiments.tiny.runs.dae.hidden: 1000000 makes run dae need about" in output
    assert "more than the memory of this machine" in output
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()  # no job started


@pytest.mark.workflow
@needs_no_cuda
def test_device_cuda_is_not_checked_where_a_cluster_executor_submits_the_jobs(tmp_path):
    if shutil.which("sbatch"):
        pytest.skip("a SLURM cluster is reachable: this test must not submit jobs to it")
    proc = run_snakemake(tmp_path, CUDA_CONFIG, "-j1", RUN, "--executor", "slurm",
                         "--slurm-init-seconds-before-status-checks", "1",
                         "--default-resources", "slurm_account='none'", check=False)
    output = proc.stdout + proc.stderr
    assert "CUDA is not available" not in output
    # it went on to submit the first job (which fails here, where SLURM is missing)
    assert "Error in rule dataset" in output and "Job submission failed" in output
    assert not (tmp_path / "results").exists()
