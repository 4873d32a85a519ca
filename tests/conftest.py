"""Shared fixtures: paths, a Snakemake runner for temporary working directories, data fixtures."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# the package of this checkout, also where the environment's editable install points at another
# (a git worktree): for the tests and for the Snakemake jobs they start
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
SHARED_MNIST = Path(os.environ.get("DAEDYN_TEST_MNIST", REPO.parent / "shared" / "datasets" / "mnist"))


def run_snakemake(workdir: Path, config: dict | None, *args: str, check: bool = True,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` with `config` (merged over config.yaml)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", "none"]
    if config is not None:
        cfg = workdir / "test-config.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(cfg)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=workdir,
                          env={**os.environ, **(env or {})}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@contextlib.contextmanager
def killed_after_checkpoint(monkeypatch, epoch: int, exception: type[BaseException] = KeyboardInterrupt):
    """Training inside the block dies with ``exception`` right after saving the checkpoint of
    ``epoch`` (as a process killed there would leave it); the real save is back after the block."""
    from daedyn import training

    real_save = training.Checkpoint.save

    def save_then_die(self, state):
        real_save(self, state)
        if state["epoch"] == epoch:
            raise exception

    monkeypatch.setattr(training.Checkpoint, "save", save_then_die)
    try:
        with pytest.raises(exception):
            yield
    finally:
        monkeypatch.setattr(training.Checkpoint, "save", real_save)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny problems: one intra-op thread avoids OpenMP spin-waits on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mnist_dir() -> Path:
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST raw files not found in {SHARED_MNIST} (set DAEDYN_TEST_MNIST)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    """The working directory of one run of the tiny configuration (.test/config.yaml), shared by the
    tests that check its results (the run takes minutes, so it is made once per session)."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST raw files not found in {SHARED_MNIST} (set DAEDYN_TEST_MNIST)")
    workdir = tmp_path_factory.mktemp("tiny_workflow")
    run_snakemake(workdir, load_yaml(REPO / ".test" / "config.yaml"), "-c2",
                  env={"DAEDYN_DATA_MIRROR": str(SHARED_MNIST.parent)})
    return workdir


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dry_run_jobs(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """Jobs listed by `snakemake -n`: (rule, wildcards) -> {"reason": ..., "resources": ...}."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        fields = dict(re.findall(r"^\s+(reason|wildcards|resources): (.*)$", block, re.M))
        jobs[(head[1], fields.pop("wildcards", ""))] = fields
    return jobs


def planned_outputs(output: str) -> dict[str, list[str]]:
    """Rule -> the output files of its jobs listed by `snakemake -n` (a bundle's rule: its run files; the
    jobs of a group job are listed indented)."""
    planned: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", output):
        head = re.match(r"\s*(?:local)?rule (\w+):", block)
        out = re.search(r"^\s+output: (.*)$", block, re.M)
        if head and out:
            planned.setdefault(head[1], []).extend(out[1].split(", "))
    return planned

