"""Config validation: the default config is valid, bad configs stop the run before any job, naming the key."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake.utils import validate

from conftest import REPO, load_yaml, run_snakemake
from daedyn import configcheck

SCHEMA = str(REPO / "src" / "daedyn" / "config.schema.yaml")


def test_default_config_validates_and_gets_defaults():
    config = load_yaml(REPO / "config.yaml")
    validate(config, SCHEMA, set_default=True)
    assert config["datasets"]["mnist"]["split"] == "train"  # default filled in
    assert config["datasets"]["mnist"]["center"] is False
    assert config["data"]["download"] is True


def test_schema_has_no_keys_made_of_sentence_fragments():
    """An unquoted comma in a flow mapping's description ends the description and starts a key of its
    own (`{description: a, b}` has a key "b"): every key of the schema must look like a name."""
    def keys(node, where=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield (*where, key)
                yield from keys(value, (*where, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from keys(value, (*where, i))

    name = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_]*")
    bad = [path for path in keys(load_yaml(Path(SCHEMA))) if not name.fullmatch(str(path[-1]))]
    assert bad == []


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
    "wrong type n_samples": (("spectra", 0, "n_samples"), "many", "spectra[0].n_samples"),
    "zero n_samples": (("spectra", 0, "n_samples"), 0, "spectra[0].n_samples"),
    "download not boolean": (("data", "download"), "yes", "data.download"),
    "unknown split": (("datasets", "digits", "split"), "validation", "datasets.digits.split"),
    "negative eigenvalue scale": (("datasets", "syn", "synthetic", "scale"), -1.0,
                                  "datasets.syn.synthetic.scale"),
    "bad dataset name": (("datasets", "MNIST"), {"source": "mnist"}, "'MNIST' does not match"),
    "spectrum of undeclared dataset": (("spectra", 0, "dataset"), "cifar100", "spectra[0].dataset"),
    "synthetic without parameters": (("datasets", "syn", "synthetic"), _DELETE, "datasets.syn.synthetic"),
    "list spectrum of wrong length": (("datasets", "syn", "synthetic", "spectrum"), "list",
                                      "datasets.syn.synthetic.values"),
    "exact synthetic with N < d": (("datasets", "syn", "synthetic", "n_samples"), 4,
                                   "datasets.syn.synthetic.n_samples"),
    "negative noise variance": (("linear_experiments", "tiny", "runs", "dae", "eps"), -0.5,
                                "linear_experiments.tiny.runs.dae.eps"),
    "negative noise std": (("nonlinear_experiments", "tiny_nl", "runs", "dae", "noise_std"), -1.0,
                           "nonlinear_experiments.tiny_nl.runs.dae.noise_std"),
    "misspelled run key": (("linear_experiments", "tiny", "runs", "dae", "sigma"), 0.5, "'sigma' was unexpected"),
    "unknown engine": (("linear_experiments", "tiny", "engine"), "analytic", "'analytic' is not one of"),
    "zero learning rate": (("linear_experiments", "tiny", "lr"), 0, "linear_experiments.tiny.lr"),
    "mode beyond the hidden width": (("linear_experiments", "tiny", "modes"), [0, 7], "linear_experiments.tiny.modes"),
    "experiment on undeclared dataset": (("linear_experiments", "tiny", "dataset"), "imagenet",
                                         "linear_experiments.tiny.dataset"),
    "batch size without sampling": (("linear_experiments", "tiny", "batch_size"), 8,
                                    "linear_experiments.tiny.batch_size"),
    "unknown activation": (("nonlinear_experiments", "tiny_nl", "activation"), "gelu", "'gelu' is not one of"),
    "paper plateaus of the wrong length": (("linear_experiments", "tiny", "paper_plateaus"), {"dae": [0.5]},
                                           "linear_experiments.tiny.paper_plateaus.dae"),
    # integers given as floats pass JSON Schema (draft 2020-12 counts 100.0 as an integer)
    "epochs as a float": (("linear_experiments", "tiny", "epochs"), 100.0,
                          "linear_experiments.tiny.epochs: 100.0 is not an integer; write 100"),
    "hidden width as a float": (("nonlinear_experiments", "tiny_nl", "hidden"), 4.0,
                                "nonlinear_experiments.tiny_nl.hidden: 4.0 is not an integer"),
    "spectrum size as a float": (("spectra", 0, "n_samples"), 100.0, "spectra[0].n_samples: 100.0 is not an integer"),
    "seed as a float": (("linear_experiments", "tiny", "seeds"), [0, 1.0], "linear_experiments.tiny.seeds[1]: 1.0"),
    "mode as a float": (("linear_experiments", "tiny", "modes"), [0, 1.0], "linear_experiments.tiny.modes[1]: 1.0"),
    "synthetic dimension as a float": (("datasets", "syn", "synthetic", "dim"), 8.0,
                                       "datasets.syn.synthetic.dim: 8.0 is not an integer"),
    "nullable batch size as a float": (("nonlinear_experiments", "tiny_nl", "batch_size"), 16.0,
                                       "nonlinear_experiments.tiny_nl.batch_size: 16.0 is not an integer"),
    "fractional log interval": (("linear_experiments", "tiny", "log_every"), 2.5,  # the schema itself says so
                                "2.5 is not of type 'integer'"),
    "k_modes as a float": (("nonlinear_experiments", "tiny_nl", "k_modes"), 2.0,
                           "nonlinear_experiments.tiny_nl.k_modes: 2.0 is not an integer"),
    # NaN and infinity pass every bound of the schema
    "NaN learning rate": (("linear_experiments", "tiny", "lr"), float("nan"), "linear_experiments.tiny.lr: NaN"),
    "infinite weight decay": (("nonlinear_experiments", "tiny_nl", "runs", "dae", "weight_decay"), float("inf"),
                              "nonlinear_experiments.tiny_nl.runs.dae.weight_decay: infinity"),
    "NaN in a list": (("scalar_figures",), {"fig2": {"eps": [0.0, float("nan")]}}, "scalar_figures.fig2.eps[1]: NaN"),
    # modes exist only up to min(hidden, d): here hidden 16 > d = 8
    "mode beyond the input dimension": (("linear_experiments", "tiny"),
                                        {**BASE["linear_experiments"]["tiny"], "hidden": 16, "modes": [0, 8]},
                                        "linear_experiments.tiny.modes: mode 8 cannot be learned"),
    "measured modes beyond the hidden width": (("nonlinear_experiments", "tiny_nl", "k_modes"), 5,
                                               "nonlinear_experiments.tiny_nl.k_modes: 5 modes"),
    "measured modes beyond the input dimension": (("nonlinear_experiments", "tiny_nl"),
                                                  {**BASE["nonlinear_experiments"]["tiny_nl"], "hidden": 16,
                                                   "k_modes": 9}, "k_modes must be <= min(hidden, d) = 8"),
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


# ------------------------------------------------------------------ config files read strictly
TINY_YAML = """\
data: {download: false}
datasets:
  syn: {source: synthetic, synthetic: {n_samples: 64, dim: 8}}
spectra: [{dataset: syn, n_samples: 64}]
linear_experiments:
  tiny:
    dataset: syn
    n_samples: 64
    hidden: 4
    lr: 0.1
    epochs: 10
    modes: [0, 1]
    runs: {dae: {eps: 0.5}}
"""

DUPLICATES = {
    # id: (text, line of the second key, key path)
    "experiment twice": (TINY_YAML + "  tiny:\n    dataset: syn\n", 14, "linear_experiments.tiny"),
    "key twice in an experiment": (TINY_YAML.replace("    epochs: 10\n", "    epochs: 10\n    lr: 0.2\n"), 12,
                                   "linear_experiments.tiny.lr"),
    "key twice in a flow mapping": (TINY_YAML.replace("{dae: {eps: 0.5}}", "{dae: {eps: 0.5, eps: 0.1}}"), 13,
                                    "linear_experiments.tiny.runs.dae.eps"),
    "top-level key twice": (TINY_YAML + "data: {download: true}\n", 14, "data"),
}


@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_duplicate_key_in_a_configfile_names_key_file_and_line(tmp_path, case):
    text, line, key = DUPLICATES[case]
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(text)
    proc = run_snakemake(tmp_path, None, "-n", "--configfile", str(cfg), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert f"{cfg}, line {line}: duplicate key {key} " in output, output
    assert not (tmp_path / "results").exists()


def test_the_same_file_without_duplicates_passes(tmp_path):
    assert configcheck.load_strict(_write(tmp_path / "ok.yaml", TINY_YAML))["linear_experiments"]["tiny"]["lr"] == 0.1
    # YAML merge keys repeat keys on purpose; JSON (Snakemake reads it too) may indent with tabs
    merged = _write(tmp_path / "merge.yaml", "base: &b {lr: 0.1, epochs: 5}\nexp:\n  <<: *b\n  lr: 0.2\n")
    assert configcheck.load_strict(merged)["exp"] == {"lr": 0.2, "epochs": 5}
    assert configcheck.load_strict(_write(tmp_path / "c.json", '{\n\t"a": {"b": 1}\n}')) == {"a": {"b": 1}}


def test_duplicate_key_in_json_names_its_path(tmp_path):
    path = _write(tmp_path / "c.json", '{"linear_experiments": {"tiny": {"lr": 1, "lr": 2}}}')
    with pytest.raises(configcheck.ConfigError, match=re.escape(f"{path}: duplicate key linear_experiments.tiny.lr")):
        configcheck.load_strict(path)


def test_shipped_config_files_have_no_duplicate_keys():
    for path in (REPO / "config.yaml", REPO / ".test" / "config.yaml", REPO / "profiles/slurm/config.yaml",
                 REPO / "profiles/default/config.yaml"):
        assert configcheck.load_strict(path) == load_yaml(path)


SYNTAX_ERRORS = {
    # id: (text, line, text the message must contain)
    "tab indent": (TINY_YAML.replace("    hidden: 4", "\thidden: 4"), 9, "YAML cannot indent with tabs"),
    "unclosed bracket": (TINY_YAML.replace("modes: [0, 1]", "modes: [0, 1"), 13, "expected ',' or ']'"),
    "bad indentation": (TINY_YAML.replace("    lr: 0.1", "     lr: 0.1"), 10, "mapping values are not allowed"),
}


@pytest.mark.parametrize("case", sorted(SYNTAX_ERRORS))
def test_syntax_error_in_a_configfile_names_file_and_line(tmp_path, case):
    """Snakemake reads --configfile files before the workflow starts; ./run.sh checks them first with this script."""
    text, line, expected = SYNTAX_ERRORS[case]
    cfg = _write(tmp_path / "bad.yaml", text)
    proc = subprocess.run([sys.executable, str(REPO / "workflow" / "check_configfiles.py"), "--workflow-profile",
                           "profiles/default", "-n", "--configfile", str(cfg), "results/x.nc"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Invalid config file {cfg}, line {line}, column "), proc.stderr
    assert expected in proc.stderr


@pytest.mark.parametrize("text, what", [("", "is empty"), ("# nothing yet\n", "is empty"),
                                        ("- linear_experiments\n", "holds a list, not keys")])
def test_a_configfile_without_keys_is_named(tmp_path, text, what):
    """Snakemake says only "Config file must be given as JSON or YAML with keys at top level"."""
    cfg = _write(tmp_path / "cfg.yaml", text)
    proc = subprocess.run([sys.executable, str(REPO / "workflow" / "check_configfiles.py"), "-n", "--configfile",
                           str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Invalid config file {cfg}: the file {what}; a config file maps keys"), proc.stderr


def test_configfile_check_leaves_other_problems_to_snakemake(tmp_path):
    good = _write(tmp_path / "good.yaml", TINY_YAML)
    for args in (["-n", "--configfile", str(good)], ["--no-such-option"], ["--configfile", str(tmp_path / "none.yaml")]):
        proc = subprocess.run([sys.executable, str(REPO / "workflow" / "check_configfiles.py"), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), args


def test_run_sh_checks_configfiles_before_snakemake():
    script = (REPO / "run.sh").read_text()
    assert script.index("workflow/check_configfiles.py") < script.index("exec .venv/bin/snakemake")


def test_syntax_error_in_the_workflow_config_names_file_and_line(tmp_path):
    """The workflow's own config.yaml is read by the Snakefile, which checks it first (here a copy with a tab)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO / "Snakefile", checkout)
    shutil.copytree(REPO / "workflow", checkout / "workflow")
    (checkout / "src").symlink_to(REPO / "src")
    text = (REPO / "config.yaml").read_text().replace("  mirror: null", "\tmirror: null")
    _write(checkout / "config.yaml", text)
    line = text.splitlines().index("\tmirror: null") + 1
    proc = run_snakemake(tmp_path / "run", None, "-n", "-s", str(checkout / "Snakefile"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"Invalid config file {checkout / 'config.yaml'}, line {line}, column 1: invalid YAML" in output, output
    assert "YAML cannot indent with tabs" in output


def _write(path, text):
    path.write_text(text)
    return path


# ------------------------------------------------------------------ value checks, without Snakemake
def test_integer_check_follows_the_schema():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/count"}, "batch": {"type": ["integer", "null"]},
                       "x": {"type": "number"}, "runs": {"type": "object", "additionalProperties": {"$ref": "#/$defs/run"}}},
        "$defs": {"count": {"type": "integer", "minimum": 1},
                  "run": {"type": "object", "properties": {"k": {"type": "integer"}}}},
    }
    configcheck.reject_non_integers({"n": 3, "batch": None, "x": 2.0, "runs": {"a": {"k": 1}}}, schema)
    for config, message in (({"n": 3.0}, "n: 3.0 is not an integer; write 3"),
                            ({"batch": 8.0}, "batch: 8.0"),
                            ({"runs": {"a": {"k": 0.5}}}, "runs.a.k: 0.5 is not an integer; give a whole number")):
        with pytest.raises(configcheck.ConfigError, match=re.escape(message)):
            configcheck.reject_non_integers(config, schema)


def test_non_finite_values_are_named():
    configcheck.reject_non_finite({"a": [1.0, 2], "b": {"c": "nan"}})  # the string "nan" is not a number
    with pytest.raises(configcheck.ConfigError, match=re.escape("a[1]: NaN (nan) is not allowed")):
        configcheck.reject_non_finite({"a": [1.0, float("nan")]})
    with pytest.raises(configcheck.ConfigError, match=re.escape("b.c: infinity (-inf)")):
        configcheck.reject_non_finite({"b": {"c": -float("inf")}})
