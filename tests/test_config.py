"""Config validation: the default config is valid, bad configs stop the run before any job, naming the key."""

from __future__ import annotations

import copy
import re

import pytest
from snakemake.utils import validate

from conftest import REPO, load_yaml, run_snakemake

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def test_default_config_validates_and_gets_defaults():
    config = load_yaml(REPO / "config.yaml")
    validate(config, SCHEMA, set_default=True)
    assert config["datasets"]["mnist"]["split"] == "train"  # default filled in
    assert config["datasets"]["mnist"]["center"] is False
    assert config["data"]["download"] is True


# A complete, small config; each case below breaks one thing.
BASE = {
    "data": {"mirror": None, "download": False},
    "datasets": {
        "digits": {"source": "digits"},
        "syn": {"source": "synthetic", "synthetic": {"n_samples": 64, "dim": 8}},
    },
    "spectra": [{"dataset": "digits", "n_samples": 100}],
    "linear_experiments": {"tiny": {"dataset": "syn", "n_samples": 64, "hidden": 4, "lr": 0.1, "epochs": 10,
                                    "modes": [0, 1], "runs": {"dae": {"eps": 0.5}}}},
    "nonlinear_experiments": {"tiny_nl": {"dataset": "syn", "n_samples": 64, "hidden": 4, "lr": 0.1,
                                          "epochs": 10, "runs": {"dae": {"noise_std": 1.0}}}},
}


def _set(cfg, path, value):
    *parents, last = path
    node = cfg
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return cfg


_DELETE = object()

BAD_CONFIGS = {
    # id: (path to change, new value, text the error must contain)
    "misspelled top-level key": (("spectrum",), [], "'spectrum' was unexpected"),
    "misspelled dataset key": (("datasets", "digits", "centre"), True, "'centre' was unexpected"),
    "unknown source": (("datasets", "digits", "source"), "mnst", "'mnst' is not one of"),
    "wrong type n_samples": (("spectra", 0, "n_samples"), "many", "['spectra'][0]['n_samples']"),
    "zero n_samples": (("spectra", 0, "n_samples"), 0, "['spectra'][0]['n_samples']"),
    "download not boolean": (("data", "download"), "yes", "['data']['download']"),
    "unknown split": (("datasets", "digits", "split"), "validation", "['datasets']['digits']['split']"),
    "negative eigenvalue scale": (("datasets", "syn", "synthetic", "scale"), -1.0,
                                  "['datasets']['syn']['synthetic']['scale']"),
    "bad dataset name": (("datasets", "MNIST"), {"source": "mnist"}, "'MNIST' does not match"),
    "spectrum of undeclared dataset": (("spectra", 0, "dataset"), "cifar100", "spectra[0].dataset"),
    "synthetic without parameters": (("datasets", "syn", "synthetic"), _DELETE, "datasets.syn.synthetic"),
    "list spectrum of wrong length": (("datasets", "syn", "synthetic", "spectrum"), "list",
                                      "datasets.syn.synthetic.values"),
    "exact synthetic with N < d": (("datasets", "syn", "synthetic", "n_samples"), 4,
                                   "datasets.syn.synthetic.n_samples"),
    "negative noise variance": (("linear_experiments", "tiny", "runs", "dae", "eps"), -0.5,
                                "['linear_experiments']['tiny']['runs']['dae']['eps']"),
    "negative noise std": (("nonlinear_experiments", "tiny_nl", "runs", "dae", "noise_std"), -1.0,
                           "['nonlinear_experiments']['tiny_nl']['runs']['dae']['noise_std']"),
    "misspelled run key": (("linear_experiments", "tiny", "runs", "dae", "sigma"), 0.5, "'sigma' was unexpected"),
    "unknown engine": (("linear_experiments", "tiny", "engine"), "analytic", "'analytic' is not one of"),
    "zero learning rate": (("linear_experiments", "tiny", "lr"), 0, "['linear_experiments']['tiny']['lr']"),
    "mode beyond the hidden width": (("linear_experiments", "tiny", "modes"), [0, 7], "linear_experiments.tiny.modes"),
    "experiment on undeclared dataset": (("linear_experiments", "tiny", "dataset"), "imagenet",
                                         "linear_experiments.tiny.dataset"),
    "batch size without sampling": (("linear_experiments", "tiny", "batch_size"), 8,
                                    "linear_experiments.tiny.batch_size"),
    "unknown activation": (("nonlinear_experiments", "tiny_nl", "activation"), "gelu", "'gelu' is not one of"),
    "paper plateaus of the wrong length": (("linear_experiments", "tiny", "paper_plateaus"), {"dae": [0.5]},
                                           "linear_experiments.tiny.paper_plateaus.dae"),
}


def test_base_config_is_valid(tmp_path):
    proc = run_snakemake(tmp_path, BASE, "-n", "--quiet")
    assert proc.returncode == 0


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_rejected_naming_the_key(tmp_path, case):
    path, value, expected = BAD_CONFIGS[case]
    config = _set(copy.deepcopy(BASE), path, value)
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert expected in output, output
    # stopped at parse time: no job was planned or run
    assert not re.search(r"^rule (dataset|spectrum):", output, re.M)
    assert not (tmp_path / "results").exists()
