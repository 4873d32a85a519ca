"""Incremental reruns: Snakemake plans exactly the jobs a config or code change affects."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, dry_run_jobs
from daedyn.bundles import split

pytestmark = pytest.mark.workflow

CONFIG = {
    "data": {"download": False},
    "datasets": {"synthetic": {"source": "synthetic",
                               "synthetic": {"n_samples": 128, "dim": 8, "spectrum": "exponential",
                                             "scale": 3.0, "decay": 0.6}}},
    "spectra": [],
    "bundle": 1,  # one run per training job: an edited run reruns its own bundle, not its neighbour's
    "linear_experiments": {"tiny": {"dataset": "synthetic", "n_samples": 128, "hidden": 16, "lr": 0.05,
                                    "epochs": 60, "log_every": 10, "modes": [0, 1], "device": "cpu",
                                    "runs": {"a": {"eps": 0.0}, "b": {"eps": 0.5}}}},
    "nonlinear_experiments": {"tiny_nl": {"dataset": "synthetic", "n_samples": 128, "hidden": 16, "lr": 0.5,
                                          "epochs": 20, "log_every": 5, "k_modes": 2, "device": "cpu",
                                          "runs": {"dae": {"noise_std": 0.5}}}},
}
TARGETS = ["results/figures/tiny.png", "results/figures/tiny_nl.png", "results/spectra/synthetic_n128.nc"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the workflow and package sources (so edits don't touch the repository) and a finished run."""
    root = tmp_path_factory.mktemp("reruns")
    repo = root / "repo"
    repo.mkdir()
    for name in ("Snakefile", "config.yaml", "requirements.lock"):
        shutil.copy(REPO / name, repo / name)
    for name in ("workflow", "src"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    work = root / "work"
    work.mkdir()
    write_config(work, CONFIG)
    snakemake(repo, work, "-c2", *TARGETS)
    return repo, work


def write_config(work, config):
    (work / "c.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(repo, work, *args):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(work),
                           "--workflow-profile", "none", "--configfile", str(work / "c.yaml"), *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(repo / "src")})  # the copy's package runs
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def planned(repo, work) -> dict[tuple[str, str], str]:
    """(rule, wildcards) -> reason of every job a dry run would execute."""
    return {job: fields.get("reason", "") for job, fields in dry_run_jobs(snakemake(repo, work, "-n", *TARGETS)).items()}


def edit(path):
    path.write_text(path.read_text() + "\n# an edit\n")


def test_nothing_to_do_after_a_complete_run(project):
    repo, work = project
    assert planned(repo, work) == {}
    assert "Nothing to be done" in snakemake(repo, work, "-n", *TARGETS)


def test_changing_one_runs_hyperparameter_reruns_that_run_and_its_dependents(project):
    repo, work = project
    changed = yaml.safe_load(yaml.safe_dump(CONFIG))
    changed["linear_experiments"]["tiny"]["runs"]["b"]["eps"] = 0.25
    write_config(work, changed)
    try:
        jobs = planned(repo, work)
    finally:
        write_config(work, CONFIG)
    bundle = {key: b for b, keys in split(["a/0", "b/0"], 1).items() for key in keys}
    train = (f"linear_train_tiny_{bundle['b/0']}", "")
    assert set(jobs) == {train, ("linear_aggregate", "experiment=tiny"), ("linear_figure", "experiment=tiny")}
    assert "Params have changed" in jobs[train]


def test_changing_settings_that_do_not_change_results_reruns_nothing(project):
    repo, work = project
    changed = yaml.safe_load(yaml.safe_dump(CONFIG))
    changed["linear_experiments"]["tiny"]["checkpoint_every"] = 7
    changed["nonlinear_experiments"]["tiny_nl"]["checkpoint_every"] = 3
    write_config(work, changed)
    try:
        jobs = planned(repo, work)
        output = snakemake(repo, work, "-n", "--cores", "1", *TARGETS)   # threads: a runtime setting too
    finally:
        write_config(work, CONFIG)
    assert jobs == {} and "Nothing to be done" in output


@pytest.mark.parametrize("module, rules", [
    ("figures/linear.py", {"linear_figure"}),
    ("theory.py", {"linear_aggregate", "linear_figure", "nonlinear_aggregate", "nonlinear_figure"}),
    ("linear.py", {"linear_train", "linear_aggregate", "linear_figure",
                   "nonlinear_train", "nonlinear_aggregate", "nonlinear_figure"}),
    ("training.py", {"linear_train", "linear_aggregate", "linear_figure",
                     "nonlinear_train", "nonlinear_aggregate", "nonlinear_figure"}),
    ("nonlinear.py", {"nonlinear_train", "nonlinear_aggregate", "nonlinear_figure"}),
    ("spectrum.py", {"spectrum", "linear_train", "linear_aggregate", "linear_figure",
                     "nonlinear_train", "nonlinear_aggregate", "nonlinear_figure"}),
])
def test_editing_a_module_reruns_exactly_the_rules_that_use_it(project, module, rules):
    repo, work = project
    path = repo / "src" / "daedyn" / module
    original = path.read_text()
    edit(path)
    try:
        jobs = planned(repo, work)
    finally:
        path.write_text(original)
        # restore the old mtime ordering: the outputs must be newer than the restored file again
        snakemake(repo, work, "--touch", "-c1", *TARGETS)
    assert {re.sub(r"_train_.*", "_train", rule) for rule, _ in jobs} == rules  # a bundle's rule: its kind's
    direct = {rule for (rule, _), reason in jobs.items() if "Updated input files" in reason and module in reason}
    assert direct, jobs
