"""Command-line overrides: `./run.sh pipeline --set KEY=VALUE` becomes one more config file, typed and
validated like config.yaml, and reruns exactly the jobs the changed value reaches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, load_yaml, planned_outputs, run_snakemake
from daedyn.configcheck import ConfigError, overrides_config, parse_overrides
from test_workflow import planned_jobs

SCRIPT = REPO / "workflow" / "check_configfiles.py"


def test_values_are_typed_like_yaml_in_a_config_file():
    parsed = dict(parse_overrides(["a.lr=0.02", "a.epochs=300", "a.flag=true", "a.modes=[0, 3]",
                                   "a.runs={dae: {eps: 0.5}}", "a.small=1e-3", "a.batch_size=null",
                                   "a.dataset=mnist", "a.name='0.5'"]))
    assert parsed == {("a", "lr"): 0.02, ("a", "epochs"): 300, ("a", "flag"): True, ("a", "modes"): [0, 3],
                      ("a", "runs"): {"dae": {"eps": 0.5}}, ("a", "small"): 1e-3, ("a", "batch_size"): None,
                      ("a", "dataset"): "mnist", ("a", "name"): "0.5"}
    assert type(parsed["a", "epochs"]) is int and type(parsed["a", "small"]) is float


@pytest.mark.parametrize("item,expected", [("lr", "give KEY=VALUE"), ("a..b=1", "give KEY=VALUE"),
                                           ("a.modes=[0, 3", "not valid YAML")])
def test_malformed_overrides_are_named(item, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        parse_overrides([item])
    assert str(err.value).startswith(f"Invalid config: --set {item}")


def test_an_override_never_adds_an_experiment_by_accident():
    config = load_yaml(REPO / "config.yaml")
    content = overrides_config(config, parse_overrides(["linear_experiments.fig5_mnist.lr=0.02",
                                                        "linear_experiments.fig5_mnist.runs.dae.eps=0.25"]))
    assert content == {"linear_experiments": {"fig5_mnist": {"lr": 0.02, "runs": {"dae": {"eps": 0.25}}}}}
    with pytest.raises(ConfigError, match="linear_experiments has no key 'fig5_mnistt'; did you mean fig5_mnist"):
        overrides_config(config, parse_overrides(["linear_experiments.fig5_mnistt.lr=0.02"]))
    with pytest.raises(ConfigError, match="linear_experiments.fig5_mnist.lr is not a mapping"):
        overrides_config(config, parse_overrides(["linear_experiments.fig5_mnist.lr.x=1"]))


def rewrite(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--rewrite-args", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_the_overrides_become_the_last_config_file(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("linear_experiments:\n  fig5_mnist: {epochs: 100}\n")
    proc = rewrite(tmp_path, "-n", "results/figures/fig5_mnist.png", "--configfile", str(mine),
                   "--set", "linear_experiments.fig5_mnist.lr=0.02", "--set=linear_experiments.fig5_mnist.modes=[0,3]")
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.split("\0")[:-1]
    assert args[:5] == ["-n", "results/figures/fig5_mnist.png", "--configfile", str(mine), "--configfile"]
    assert args[5] == str(mine) and len(args) == 7  # snakemake keeps the last --configfile: it repeats the others
    written = Path(args[6])
    assert written.parent == tmp_path / ".snakemake" / "overrides"
    assert yaml.safe_load(written.read_text()) == {"linear_experiments": {"fig5_mnist": {"lr": 0.02, "modes": [0, 3]}}}
    # without --set the command line is unchanged
    assert rewrite(tmp_path, "-n", "all").stdout == "-n\0all\0"
    bad = rewrite(tmp_path, "-n", "--set", "linear_experiments.fig5_mnistt.lr=0.02")
    assert bad.returncode == 1 and bad.stdout == ""
    assert "--set linear_experiments.fig5_mnistt.lr: linear_experiments has no key 'fig5_mnistt'" in bad.stderr


def test_run_sh_passes_the_rewritten_command_line_to_snakemake(tmp_path):
    """run.sh in a copy whose .venv runs this interpreter and a stand-in snakemake that prints its arguments."""
    for name in ("run.sh", "pyproject.toml", "requirements.lock", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "workflow").mkdir()
    shutil.copy(SCRIPT, tmp_path / "workflow" / SCRIPT.name)
    (tmp_path / "src").symlink_to(REPO / "src")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "snakemake").write_text('#!/bin/sh\nfor a in "$@"; do echo "arg: $a"; done\n')
    for exe in ("python", "snakemake"):
        (bin_dir / exe).chmod(0o755)
    (tmp_path / ".venv" / ".daedyn-installed").touch()  # newer than pyproject.toml: run.sh installs nothing
    proc = subprocess.run(["bash", str(tmp_path / "run.sh"), "pipeline", "-n", "--set",
                           "linear_experiments.fig5_mnist.lr=0.02"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DAEDYN_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    args = [line.removeprefix("arg: ") for line in proc.stdout.splitlines()]
    assert args[:2] == ["-n", "--configfile"] and "--set" not in args and len(args) == 3
    assert yaml.safe_load(Path(args[2]).read_text()) == {"linear_experiments": {"fig5_mnist": {"lr": 0.02}}}
    bad = subprocess.run(["bash", str(tmp_path / "run.sh"), "pipeline", "-n", "--set", "nope.lr=1"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "DAEDYN_PYTHON": sys.executable})
    assert bad.returncode == 1 and "arg:" not in bad.stdout and "the config has no key 'nope'" in bad.stderr


@pytest.mark.workflow
def test_an_override_reruns_exactly_the_affected_jobs(tiny_workflow, tmp_path):
    """After the tiny build, --set on one experiment's learning rate plans its training runs, its
    aggregation and its figure, nothing else; a misspelt key and a mistyped value are named."""
    shutil.copytree(tiny_workflow, tmp_path, dirs_exist_ok=True)  # same depth: same relative code paths
    config = tmp_path / "test-config.yaml"

    def dry_run(*sets: str) -> subprocess.CompletedProcess:
        proc = rewrite(tmp_path, "--configfile", str(config), *(a for s in sets for a in ("--set", s)))
        assert proc.returncode == 0, proc.stderr
        return run_snakemake(tmp_path, None, "-n", *proc.stdout.split("\0")[:-1], check=False)

    proc = dry_run("linear_experiments.fig5_synthetic.lr=0.04")
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = load_yaml(REPO / ".test" / "config.yaml")["linear_experiments"]["fig5_synthetic"]
    runs = len(exp["runs"]) * len(exp["seeds"])
    assert planned_jobs(proc.stdout) == {"linear_train_fig5_synthetic_b": 1, "linear_aggregate": 1, "linear_figure": 1,
                                         "all": 1}  # its runs: one bundle
    assert len(planned_outputs(proc.stdout)["linear_train_fig5_synthetic_b"]) == runs
    assert "experiment=fig5_mnist" not in proc.stdout
    # the same value as the config's reruns nothing
    same = dry_run(f"linear_experiments.fig5_synthetic.lr={exp['lr']}")
    assert "Nothing to be done" in same.stdout + same.stderr
    # validated like the config file: an unknown key and a value of the wrong type are named
    unknown = dry_run("linear_experiments.fig5_synthetic.lrr=0.04")
    output = unknown.stdout + unknown.stderr
    assert unknown.returncode != 0 and "Invalid config: linear_experiments.fig5_synthetic" in output, output[-2000:]
    assert "'lrr' was unexpected" in output
    typed = dry_run("linear_experiments.fig5_synthetic.epochs=fast")
    output = typed.stdout + typed.stderr
    assert typed.returncode != 0, output[-2000:]
    assert "linear_experiments.fig5_synthetic.epochs: 'fast' is not of type 'integer'" in output, output[-2000:]
