"""Fault tolerance: checkpoints, resuming after a kill, corrupted inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import xarray as xr

from conftest import REPO, dry_run_jobs, killed_after_checkpoint, run_snakemake
from daedyn import data, linear, provenance, spectrum, store, training
from daedyn.bundles import split


class Killed(Exception):
    pass


@pytest.fixture
def problem():
    lam = data.spectrum_values("exponential", 8, scale=3.0, decay=0.6)
    ds = data.synthetic(64, 8, lam, seed=5)
    return data.matrix(ds), lam


def _nonlinear(x, lam, V, eps, gamma, **kw):
    from daedyn import nonlinear

    runtime = {k: kw.pop(k) for k in ("checkpoint", "threads", "progress", "W1", "W2") if k in kw}
    config = nonlinear.NonlinearConfig.make(noise_std=eps ** 0.5, weight_decay=gamma, activation="relu", k_modes=3,
                                            batch_size=16, **kw)
    return nonlinear.train(config, training.Problem(lam, V, x), **runtime)


ENGINES = {
    "nonlinear": _nonlinear,
    "exact": lambda x, lam, V, **kw: linear.train_exact(lam, V, **kw),
    "datapass": lambda x, lam, V, **kw: linear.train_datapass(x, lam=lam, V=V, **kw),
    "sampled": lambda x, lam, V, **kw: linear.train_sampled(x, lam=lam, V=V, batch_size=16, **kw),
}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_resumed_run_equals_uninterrupted_run(engine, problem, tmp_path, monkeypatch):
    x, _ = problem
    lam, V = spectrum.eigh_descending(spectrum.second_moment(x)[0])
    kw = dict(hidden=6, lr=0.05, epochs=120, eps=0.3, gamma=0.05, seed=3, log_every=7, device="cpu",
              dtype="float32", threads=1)
    reference = ENGINES[engine](x, lam, V, **kw)

    path = tmp_path / "run.ckpt"
    with killed_after_checkpoint(monkeypatch, 60, Killed):  # the process dies right after epoch 60's checkpoint
        ENGINES[engine](x, lam, V, checkpoint=training.Checkpoint(path, 20), **kw)
    assert path.exists()
    resumed = ENGINES[engine](x, lam, V, checkpoint=training.Checkpoint(path, 20), **kw)
    xr.testing.assert_identical(resumed.trajectory, reference.trajectory)
    np.testing.assert_array_equal(resumed.W1, reference.W1)
    np.testing.assert_array_equal(resumed.W2, reference.W2)
    assert resumed.resumed_from == [60] and reference.resumed_from == []
    assert torch.load(path, weights_only=True)["epoch"] == 120  # the final state: the job removes it once written


def test_checkpoint_of_another_run_is_ignored(problem, tmp_path, caplog):
    x, _ = problem
    lam, V = spectrum.eigh_descending(spectrum.second_moment(x)[0])
    kw = dict(hidden=6, lr=0.05, epochs=40, device="cpu", dtype="float64", log_every=10)
    other = training.Checkpoint(tmp_path / "run.ckpt", 10)
    other.fingerprint = "something else"
    other.save({"epoch": 20, "row": 2, "first_loss": 1.0, "resumed_from": [], "tensors": {}, "tracker": {},
                "generators": {}})
    run = linear.train_exact(lam, V, checkpoint=training.Checkpoint(tmp_path / "run.ckpt", 10), **kw)
    assert "belongs to another run" in caplog.text and run.resumed_from == []
    xr.testing.assert_identical(run.trajectory, linear.train_exact(lam, V, **kw).trajectory)


def test_corrupt_checkpoint_is_set_aside_and_the_run_starts_afresh(problem, tmp_path, caplog):
    x, _ = problem
    lam, V = spectrum.eigh_descending(spectrum.second_moment(x)[0])
    kw = dict(hidden=6, lr=0.05, epochs=40, device="cpu", dtype="float64", log_every=10)
    path = tmp_path / "run.ckpt"
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    run = linear.train_exact(lam, V, checkpoint=training.Checkpoint(path, 10), **kw)
    assert f"checkpoint {path} is unreadable" in caplog.text and "starting afresh" in caplog.text
    assert (tmp_path / "run.ckpt.corrupt").read_bytes().startswith(b"PK")
    assert torch.load(path, weights_only=True)["epoch"] == 40  # the run's own final state
    xr.testing.assert_identical(run.trajectory, linear.train_exact(lam, V, **kw).trajectory)


def test_diverged_run_leaves_no_checkpoint(problem, tmp_path):
    x, _ = problem
    lam, V = spectrum.eigh_descending(spectrum.second_moment(x)[0])
    path = tmp_path / "run.ckpt"
    with pytest.raises(training.DivergenceError):
        linear.train_exact(lam, V, hidden=6, lr=3.0 / lam[0], epochs=400, log_every=50, init_std=0.1,
                           device="cpu", dtype="float64", allow_unstable=True,
                           checkpoint=training.Checkpoint(path, 20))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_minibatch_checkpoints_every_k_epochs(tmp_path, monkeypatch):
    """The loop variable of the minibatch loop must not hide the epoch the checkpoint cadence uses."""
    X = np.random.default_rng(1).random((2000, 16))
    saved = []
    real_save = training.Checkpoint.save
    monkeypatch.setattr(training.Checkpoint, "save", lambda self, state: (saved.append(state["epoch"]),
                                                                           real_save(self, state)))
    linear.train_sampled(X, hidden=4, lr=0.01, epochs=35, eps=0.3, batch_size=100, log_every=5, device="cpu",
                         checkpoint=training.Checkpoint(tmp_path / "run.ckpt", 10))
    assert saved == [10, 20, 30, 35]  # every 10 epochs, and the final state


CHILD = """
import sys, time
import numpy as np
from daedyn import linear, training
X = np.random.default_rng(1).random((2000, 16))
step = linear.SampledEngine.step
def slow_step(self, epoch):
    step(self, epoch)
    if epoch + 1 >= 25:            # past the checkpoint of epoch 20: announce, then wait for the kill
        open(sys.argv[2], "w").close()
        time.sleep(600)
linear.SampledEngine.step = slow_step
linear.train_sampled(X, hidden=4, lr=0.01, epochs=40, eps=0.3, batch_size=100, log_every=5, device="cpu",
                     threads=1, checkpoint=training.Checkpoint(sys.argv[1], 10))
"""


def test_sigkilled_minibatch_run_resumes_from_epoch_20(tmp_path):
    X = np.random.default_rng(1).random((2000, 16))
    kw = dict(hidden=4, lr=0.01, epochs=40, eps=0.3, batch_size=100, log_every=5, device="cpu", threads=1)
    reference = linear.train_sampled(X, **kw)
    path, marker = tmp_path / "run.ckpt", tmp_path / "epoch25"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker)])
    deadline = time.time() + 120
    while not marker.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached epoch 25"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert torch.load(path, weights_only=True)["epoch"] == 20
    resumed = linear.train_sampled(X, checkpoint=training.Checkpoint(path, 10), **kw)
    assert resumed.resumed_from == [20]
    xr.testing.assert_identical(resumed.trajectory, reference.trajectory)
    np.testing.assert_array_equal(resumed.W1, reference.W1)
    np.testing.assert_array_equal(resumed.W2, reference.W2)


CONFIG = {
    "data": {"download": False},
    "datasets": {"synthetic": {"source": "synthetic",
                               "synthetic": {"n_samples": 64, "dim": 24, "spectrum": "exponential",
                                             "scale": 3.0, "decay": 0.8}}},
    "spectra": [],
    "linear_experiments": {"slow": {"dataset": "synthetic", "n_samples": 64, "hidden": 12, "lr": 0.05,
                                    "epochs": 60000, "log_every": 2000, "checkpoint_every": 2000,
                                    "modes": [0, 1], "device": "cpu", "dtype": "float64",
                                    "runs": {"dae": {"eps": 0.5}}}},
}
TARGET = "results/slow/runs/dae/seed0.nc"


def snakemake_cmd(workdir):
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--workflow-profile", "none", "--configfile", str(workdir / "test-config.yaml"), "-c1",
            "--rerun-incomplete", TARGET]


@pytest.mark.workflow
def test_sigkilled_training_job_resumes_and_matches(tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    run_snakemake(reference_dir, CONFIG, "-c1", TARGET)

    (killed_dir).mkdir()
    run_snakemake(killed_dir, CONFIG, "-c1", "results/spectra/synthetic_n64.nc")  # inputs first
    proc = subprocess.Popen(snakemake_cmd(killed_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = killed_dir / f"{TARGET}.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ckpt.exists(), "no checkpoint was written before the job ended"
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the job, mid-training
    proc.wait()
    assert not (killed_dir / TARGET).exists()  # nothing that looks complete

    # a SIGKILLed Snakemake leaves its lock behind; --unlock is the documented first step
    run_snakemake(killed_dir, CONFIG, "--unlock", TARGET)
    run_snakemake(killed_dir, CONFIG, "-c1", "--rerun-incomplete", TARGET)
    assert "resuming from" in (killed_dir / "logs/slow/bundles/b.log").read_text()
    a = store.open_dataset(reference_dir / TARGET)
    b = store.open_dataset(killed_dir / TARGET)
    assert a.attrs["resume_history"] == "[]" and b.attrs["resume_history"] != "[]"  # the provenance says so
    a.attrs, b.attrs = ({k: v for k, v in ds.attrs.items() if k not in provenance.VOLATILE_ATTRS} for ds in (a, b))
    xr.testing.assert_identical(a, b)
    assert not ckpt.exists()


@pytest.mark.workflow
def test_corrupt_input_is_reported_with_file_and_rule(tmp_path):
    config = {**CONFIG, "linear_experiments": {"slow": {**CONFIG["linear_experiments"]["slow"], "epochs": 10}}}
    run_snakemake(tmp_path, config, "-c1", "results/spectra/synthetic_n64.nc")
    spectrum_file = tmp_path / "results/spectra/synthetic_n64.nc"
    spectrum_file.write_bytes(spectrum_file.read_bytes()[:300])  # truncated
    proc = run_snakemake(tmp_path, config, "-c1", TARGET, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs/slow/bundles/b.log").read_text()
    assert "results/spectra/synthetic_n64.nc (needed by linear_train_slow_b)" in log
    assert "delete it and rerun" in log
    assert not (tmp_path / TARGET).exists()


@pytest.mark.workflow
def test_after_a_failed_job_only_what_failed_or_is_missing_runs(tmp_path):
    config = {**CONFIG, "bundle": 1, "linear_experiments": {"two": {  # one run per bundle: two jobs
        **CONFIG["linear_experiments"]["slow"], "epochs": 300, "log_every": 10,
        "runs": {"good": {"gamma": 0.1}, "bad": {"gamma": 50.0}}}}}  # 1 - lr*gamma < -1: unstable
    bundle = {key: b for b, keys in split(["good/0", "bad/0"], 1).items() for key in keys}
    target = "results/figures/two.png"
    proc = run_snakemake(tmp_path, config, "-c1", "--keep-going", target, check=False)
    assert proc.returncode != 0
    log = (tmp_path / f"logs/two/bundles/{bundle['bad/0']}.log").read_text()
    assert "linear run two/bad: learning rate lr = 0.05" in log and "stability limit eta_max" in log
    assert "allow_unstable: true" in log and "1 of 1 runs are above their stability limit" in log
    assert list((tmp_path / "results/two/runs/bad").glob("*")) == []  # no orphans
    assert (tmp_path / "results/two/runs/good/seed0.nc").exists()
    assert not (tmp_path / "results/two/runs/bad/seed0.nc").exists()

    config["linear_experiments"]["two"]["runs"]["bad"]["gamma"] = 0.2  # the fix
    jobs = dry_run_jobs(run_snakemake(tmp_path, config, "-n", target).stdout)
    assert set(jobs) == {(f"linear_train_two_{bundle['bad/0']}", ""),
                         ("linear_aggregate", "experiment=two"), ("linear_figure", "experiment=two")}


# ------------------------------------------------------------------ the jobs' checkpoints
@pytest.fixture
def files(tmp_path):
    """A synthetic dataset (N = 64, d = 8) and its spectrum, as the workflow's rules write them."""
    from daedyn.jobs.spectrum import spectrum_job

    dataset = tmp_path / "data.nc"
    lam = data.spectrum_values("exponential", 8, scale=3.0, decay=0.6)
    store.write_dataset(data.synthetic(64, 8, lam, seed=5), dataset, title="t", summary="s", provenance_attrs={})
    spectrum_job({"n_samples": 64, "center": False}, str(dataset), str(tmp_path / "spectrum.nc"))
    return dataset, tmp_path / "spectrum.nc"


LINEAR_RUN = dict(hidden=4, lr=0.05, epochs=40, log_every=10, eps=0.3, device="cpu", dtype="float64")
LINEAR_SPEC = {k: list(v) if isinstance(v, tuple) else v for k, v in linear.LinearConfig.make(
    experiment="e", run="r", dataset="syn", n_samples=64, **LINEAR_RUN).to_dict().items()}


def _linear_step(spectrum_file, out, every=10):
    """The linear kind's training step as the workflow runs it (daedyn.kinds.run_step)."""
    from daedyn import kinds
    from daedyn.jobs import JobInfo

    kinds.run_step({"linear_experiments": {"e": {"checkpoint_every": every}}}, "linear_train", LINEAR_SPEC,
                   {"spectrum": str(spectrum_file)}, {"run": str(out)},
                   JobInfo("linear_train", {"experiment": "e", "run": "r", "seed": 0}))


def _counting_steps(monkeypatch, engine=linear.ExactEngine):
    steps = []
    real_step = engine.step
    monkeypatch.setattr(engine, "step", lambda self, t: (steps.append(t), real_step(self, t)))
    return steps


def test_resume_after_an_edit_of_a_train_source_restarts_from_zero(files, tmp_path, monkeypatch, caplog):
    """The checkpoint covers the modules whose edits rerun the step (Kind.sources), not only the engine's."""
    import shutil

    package = tmp_path / "package"  # a copy of the package whose data.py (a source of linear_train) is edited
    shutil.copytree(REPO / "src" / "daedyn", package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(training, "PACKAGE", package, raising=False)
    out = tmp_path / "run.nc"
    with killed_after_checkpoint(monkeypatch, 20, Killed):
        _linear_step(files[1], out)
    (package / "data.py").write_text((package / "data.py").read_text() + "\n# an edit\n")
    steps = _counting_steps(monkeypatch)
    _linear_step(files[1], out)
    assert "was written by other code (changed since: data); restarting from epoch 0" in caplog.text
    assert len(steps) == 40 and store.open_dataset(out).attrs["resume_history"] == "[]"


def test_a_job_killed_before_its_file_was_written_resumes_at_the_final_epoch(files, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run.nc"
    real_write = store.write_dataset

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_dataset", full_disk)
    with pytest.raises(OSError):
        _linear_step(files[1], out)
    monkeypatch.setattr(store, "write_dataset", real_write)
    steps = _counting_steps(monkeypatch)
    _linear_step(files[1], out)
    assert steps == [] and "at epoch 40" in caplog.text  # trained no further
    assert store.open_dataset(out).attrs["resume_history"] == "[40]"
    spec = store.open_dataset(files[1])
    reference = linear.train_exact(spec["eigenvalue"].values, spec["eigenvector"].values, **LINEAR_RUN)
    np.testing.assert_array_equal(store.open_dataset(out)["u"].values[0, 0], reference.trajectory["u"].values)
    assert sorted(p.name for p in tmp_path.glob("run.nc*")) == ["run.nc"]  # the checkpoint went after the write


def test_a_checkpoint_set_aside_as_corrupt_is_removed_after_the_run_is_written(files, tmp_path):
    out = tmp_path / "run.nc"
    (tmp_path / "run.nc.ckpt").write_bytes(b"PK\x03\x04 not really a zip file")
    _linear_step(files[1], out)
    assert sorted(p.name for p in tmp_path.glob("run.nc*")) == ["run.nc"]


def test_a_resumed_sampled_part_records_its_resume_history(files, tmp_path, monkeypatch):
    from daedyn.jobs import JobInfo
    from daedyn.jobs.sampled import sampled_part_job

    params = {"experiment": "e", "run": "fixed_copy", "dataset": "syn", "n_samples": 64, "hidden": 3, "eps": 0.3,
              "dim": None, "modes": [0, 1], "seeds": 2, "fraction": 0.5, "steps": 30, "copies": 2, "trained_copies": 1,
              "init_std": 0.05, "init_seed": 0, "dtype": "float64", "device": "cpu"}
    out = tmp_path / "fixed_copy.nc"
    args = (params, str(files[1]), str(files[0]), str(out), JobInfo("sampled_train"))
    with killed_after_checkpoint(monkeypatch, 20, Killed):
        sampled_part_job(*args, checkpoint_every=10)
    sampled_part_job(*args, checkpoint_every=10)
    assert store.open_dataset(out).attrs["resume_history"] == "[20]"
    assert sorted(p.name for p in tmp_path.glob("fixed_copy.nc*")) == ["fixed_copy.nc"]
