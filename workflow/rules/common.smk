# Shared definitions: config validation, wildcard constraints, input and params functions.
# No rules here (rules live in the other .smk files).
import json
import math
import os
from pathlib import Path

from daedyn import configcheck
from daedyn.runconfig import LinearConfig, schema_defaults
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from daedyn.sweep import SWEEPABLE, SweepError, expand, swept_values

# NaN and infinity pass every schema bound, 100.0 passes as an integer: checked around validation.
SCHEMA = Path(workflow.basedir) / "src" / "daedyn" / "config.schema.yaml"


def validated(config):
    try:
        configcheck.reject_non_finite(config)
        validate(config, schema=str(SCHEMA), set_default=True)
        configcheck.reject_non_integers(config, configcheck.load_schema(SCHEMA))
    except configcheck.ConfigError as err:
        raise WorkflowError(str(err)) from None


validated(config)

# Sweeps: after this block every experiment's `runs` holds its explicit runs and its grid runs
# (daedyn.sweep names them from their values) and `seeds` is a list. The second validation checks
# the grid runs' values and fills in their defaults like those of explicit runs.
for _family in ("linear", "nonlinear"):
    _section = f"{_family}_experiments"
    for _name, _exp in config[_section].items():
        try:
            config[_section][_name] = expand(
                _exp, _family, f"{_section}.{_name}", config["max_sweep_runs"]
            )
        except SweepError as err:
            raise WorkflowError(f"Invalid config: {err}") from None
validated(config)

# The package's own sources are declared as inputs, so that editing a module reruns
# exactly the rules that import it (imports are invisible to Snakemake otherwise).
# Relative to the working directory, so that moving a checkout together with its results
# does not make every job look changed.
REPO = Path(os.path.relpath(workflow.basedir))
PKG = REPO / "src" / "daedyn"
LOCK = str(REPO / "requirements.lock")
CORE_MODULES = ["__init__", "provenance", "store", "jobs/__init__"]


def package_sources(*modules):
    """Source files of daedyn modules a rule uses, plus the core every job imports."""
    return [str(PKG / f"{m}.py") for m in CORE_MODULES + list(modules)]


def canonical(params):
    """Params with sorted keys: reordering keys in a config file must not rerun jobs."""
    return json.loads(json.dumps(params, sort_keys=True))


# Every beyond-the-paper experiment kind appends its enabled experiments' claims files here
# (results/{experiment}/claims.csv), in its section below; rule beyond_claims gathers them.
BEYOND_CLAIMS = []


def config_error(key, message):
    raise WorkflowError(f"Invalid config: {key}: {message}")


DATASETS = config["datasets"]


def dataset_shape(name):
    """(number of training samples, input dimension) of a configured dataset, known without reading it."""
    entry = DATASETS[name]
    if entry["source"] == "synthetic":
        return entry["synthetic"]["n_samples"], entry["synthetic"]["dim"]
    return {"cifar10": (50000, 3072), "digits": (1797, 64)}.get(
        entry["source"], (60000, 784)
    )


for _i, _entry in enumerate(config["spectra"]):
    if _entry["dataset"] not in DATASETS:
        config_error(
            f"spectra[{_i}].dataset",
            f"unknown dataset {_entry['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
for _name, _ds in DATASETS.items():
    if _ds["source"] != "synthetic" and _ds.get("synthetic"):
        config_error(
            f"datasets.{_name}.synthetic",
            f"only allowed with source: synthetic (source is {_ds['source']!r})",
        )
    _syn = _ds.get("synthetic")
    if _ds["source"] == "synthetic":
        if _syn is None:
            config_error(
                f"datasets.{_name}.synthetic", "required with source: synthetic"
            )
        if _syn["spectrum"] == "list" and len(_syn.get("values", [])) != _syn["dim"]:
            config_error(
                f"datasets.{_name}.synthetic.values",
                f"spectrum: list needs exactly dim={_syn['dim']} values",
            )
        if _syn["exact"] and _syn["n_samples"] < _syn["dim"]:
            config_error(
                f"datasets.{_name}.synthetic.n_samples",
                f"exact synthetic data need n_samples >= dim ({_syn['n_samples']} < {_syn['dim']})",
            )


def run_setting(exp, run, key):
    """A run's own value of a per-run hyper-parameter, else the experiment's."""
    return exp["runs"][run].get(key, exp.get(key))


def run_key(section, name, exp, run, key):
    """Config key of a run's value: the run's own entry, or the experiment's default."""
    where = f"{section}.{name}"
    return f"{where}.runs.{run}.{key}" if key in exp["runs"][run] else f"{where}.{key}"


def check_facets(section, name, exp, family):
    if exp["facet_by"] not in (None, "mode", *SWEEPABLE[family]):
        config_error(
            f"{section}.{name}.facet_by",
            f"{exp['facet_by']!r} is not mode or a per-run key ({', '.join(SWEEPABLE[family])})",
        )


# experiment names share results/{experiment}/ and results/runs/{experiment}/: unique across kinds
EXPERIMENT_SECTIONS = [
    key
    for key in configcheck.load_schema(SCHEMA)["properties"]
    if key.endswith("_experiments")
]
for _i, _section in enumerate(EXPERIMENT_SECTIONS):
    for _name in config[_section]:
        for _earlier in EXPERIMENT_SECTIONS[:_i]:
            if _name in config[_earlier]:
                config_error(
                    f"{_section}.{_name}",
                    f"the name is also used in {_earlier}; experiment names must be unique",
                )

for _name, _exp in config["linear_experiments"].items():
    _where = f"linear_experiments.{_name}"
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"{_where}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    # a linear network learns at most min(hidden, d) modes, and the data have only d
    _d = dataset_shape(_exp["dataset"])[1]
    for _run in _exp["runs"]:
        _hidden = run_setting(_exp, _run, "hidden")
        if max(_exp["modes"]) >= min(_hidden, _d):
            config_error(
                f"{_where}.modes",
                f"mode {max(_exp['modes'])} cannot be learned with hidden={_hidden} units "
                f"on {_exp['dataset']!r} (d={_d} inputs; run {_run}); modes must be < "
                f"min(hidden, d) = {min(_hidden, _d)}",
            )
        if (
            run_setting(_exp, _run, "engine") != "sampled"
            and run_setting(_exp, _run, "batch_size") is not None
        ):
            config_error(
                run_key("linear_experiments", _name, _exp, _run, "batch_size"),
                f"only used by engine: sampled (the other engines are full batch; run {_run})",
            )
    for _run, _values in _exp["paper_plateaus"].items():
        if _run not in _exp["runs"] or len(_values) != len(_exp["modes"]):
            config_error(
                f"{_where}.paper_plateaus.{_run}",
                f"needs a run name of `runs` ({sorted(_exp['runs'])}) and one value per mode "
                f"({len(_exp['modes'])})",
            )
    check_facets("linear_experiments", _name, _exp, "linear")

for _name, _exp in config["nonlinear_experiments"].items():
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"nonlinear_experiments.{_name}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    # measured along the top eigen-directions, each beside the linear theory of its mode
    _d = dataset_shape(_exp["dataset"])[1]
    for _run in _exp["runs"]:
        _hidden = run_setting(_exp, _run, "hidden")
        if _exp["k_modes"] > min(_hidden, _d):
            config_error(
                f"nonlinear_experiments.{_name}.k_modes",
                f"{_exp['k_modes']} modes cannot be measured against the linear theory with "
                f"hidden={_hidden} units on {_exp['dataset']!r} (d={_d} inputs; run {_run}); "
                f"k_modes must be <= min(hidden, d) = {min(_hidden, _d)}",
            )
    check_facets("nonlinear_experiments", _name, _exp, "nonlinear")


wildcard_constraints:
    dataset="[a-z][a-z0-9_]*",
    n=r"\d+",
    figure="fig[1-4]",
    experiment="|".join(config["linear_experiments"]) or "(?!)",
    nl_experiment="|".join(config["nonlinear_experiments"]) or "(?!)",
    swept="|".join(
        name
        for section in ("linear_experiments", "nonlinear_experiments")
        for name, exp in config[section].items()
        if exp.get("sweep")
    )
    or "(?!)",
    run="[a-z][a-z0-9_]*",
    seed=r"\d+",


# Where raw files are found is not an experiment fact (every file is verified by checksum), so it
# reaches the dataset jobs through the environment, not params: moving the mirror reruns nothing.
# A DAEDYN_DATA_MIRROR set by the user wins over data.mirror.
if config["data"]["mirror"]:
    os.environ.setdefault(
        "DAEDYN_DATA_MIRROR", str(Path(config["data"]["mirror"]).resolve())
    )
os.environ.setdefault(
    "DAEDYN_DATA_DOWNLOAD", "1" if config["data"]["download"] else "0"
)
# Jobs check that they import this workflow's own package (not another checkout installed in a
# shared environment); not a param, since where the checkout lies changes no result.
os.environ.update(
    DAEDYN_WORKFLOW_SOURCE=str((Path(workflow.basedir) / "src").resolve())
)


# training rules: the config section and the wildcard that names their experiment
TRAIN_RULES = {
    "linear_train": ("linear_experiments", "experiment"),
    "nonlinear_train": ("nonlinear_experiments", "nl_experiment"),
    "lr_normalised_train": ("lr_normalised_experiments", "lrn_experiment"),
    "sampled_part": ("sampled_experiments", "sm_experiment"),
}


def cuda_jobs_here():
    """Config keys `device: cuda` of the training jobs about to run on this machine."""
    keys = set()
    for job in workflow.dag.needrun_jobs():
        if job.rule.name in TRAIN_RULES and (workflow.local_exec or job.is_local):
            section, wildcard = TRAIN_RULES[job.rule.name]
            name = job.wildcards_dict[wildcard]
            if config[section][name]["device"] == "cuda":
                keys.add(f"{section}.{name}.device")
    return sorted(keys)


def check_cuda_here():
    """`device: cuda` without CUDA fails here, before any job, when the jobs run on this machine.

    Called when the jobs are about to start (not in dry runs): only then is it known whether they
    run here or are submitted by a cluster executor, whose GPU nodes the login node cannot judge.
    """
    keys = cuda_jobs_here()
    if not keys:
        return
    import torch

    if not torch.cuda.is_available():
        config_error(
            ", ".join(keys),
            "cuda, but CUDA is not available on this machine, where the jobs would run. Use "
            "device: auto (CUDA when available, else the CPU) or cpu, or submit the jobs to GPU "
            "nodes with a cluster profile (--profile profiles/slurm).",
        )


onstart:
    check_cuda_here()


def dataset_params(wildcards):
    entry = DATASETS[wildcards.dataset]
    spec = {"source": entry["source"], "split": entry["split"]}
    if entry["source"] == "synthetic":
        spec["synthetic"] = entry["synthetic"]
    return canonical({"dataset": spec})


def spectrum_params(wildcards):
    return canonical(
        {
            "dataset": wildcards.dataset,
            "n_samples": int(wildcards.n),
            "center": DATASETS[wildcards.dataset]["center"],
        }
    )


def spectrum_path(dataset, n_samples):
    return f"results/spectra/{dataset}_n{n_samples}.nc"


SPECTRA = sorted(
    {spectrum_path(s["dataset"], s["n_samples"]) for s in config["spectra"]}
)

SCALAR_FIGURES = sorted(config["scalar_figures"])


def scalar_figure_params(wildcards):
    return canonical(config["scalar_figures"][wildcards.figure])


SCALAR_TARGETS = [
    f"results/figures/{fig}.{ext}" for fig in SCALAR_FIGURES for ext in ("png", "pdf")
]
if len(SCALAR_FIGURES) == 4:
    SCALAR_TARGETS.append("results/claims/theory.csv")

LINEAR = {
    name: exp for name, exp in config["linear_experiments"].items() if exp["enabled"]
}
NONLINEAR = {
    name: exp for name, exp in config["nonlinear_experiments"].items() if exp["enabled"]
}
# experiments with a `sweep:` grid: each gets results/figures/{name}_sweep.png/.pdf
SWEEPS = {
    name: (family, exp)
    for family, experiments in (("linear", LINEAR), ("nonlinear", NONLINEAR))
    for name, exp in experiments.items()
    if exp.get("sweep")
}
for _name in SWEEPS:
    if f"{_name}_sweep" in {**LINEAR, **NONLINEAR}:
        config_error(
            _name,
            f"its sweep figure results/figures/{_name}_sweep.png would be that of experiment "
            f"{_name}_sweep; rename one of them",
        )


def linear_experiment(wildcards):
    return config["linear_experiments"][wildcards.experiment]


def linear_spectrum(wildcards):
    """The spectrum of the experiment's N (aggregation) or of the run's own N (training)."""
    exp = linear_experiment(wildcards)
    run = wildcards.get("run")
    n_samples = run_setting(exp, run, "n_samples") if run else exp["n_samples"]
    return spectrum_path(exp["dataset"], n_samples)


def linear_run_spectra(wildcards):
    """Spectra of the runs trained on another N than the experiment's (a sweep over n_samples)."""
    exp = linear_experiment(wildcards)
    own = spectrum_path(exp["dataset"], exp["n_samples"])
    return sorted(experiment_spectra({wildcards.experiment: exp}) - {own})


def linear_train_inputs(wildcards):
    """The spectrum always; the dataset too for the engines that pass over the data; the held-out
    moment (and the module that evaluates it) when the experiment names a held-out set.
    """
    exp = linear_experiment(wildcards)
    inputs = {"spectrum": linear_spectrum(wildcards)}
    if run_setting(exp, wildcards.run, "engine") != "exact":
        inputs["dataset"] = f"results/data/{exp['dataset']}.nc"
    if exp["heldout"] is not None:
        inputs["heldout"] = heldout_moment_path(
            exp["dataset"],
            run_setting(exp, wildcards.run, "n_samples"),
            exp["heldout"],
        )
        inputs["heldout_code"] = package_sources("heldout")[-1]
    return inputs


def linear_train_params(wildcards):
    exp = config["linear_experiments"][wildcards.experiment]
    keys = ("dataset", "n_samples", "hidden", "lr", "epochs", "log_every", "init_std")
    keys += ("engine", "batch_size", "shuffle", "dtype", "device", "allow_unstable")
    keys += ("heldout", "sigma2_test")
    return canonical(
        {
            "experiment": wildcards.experiment,
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            **{k: exp[k] for k in keys},
            **exp["runs"][wildcards.run],
        }
    )


def linear_gpus(wildcards):
    """A GPU is requested only when a run asks for CUDA explicitly (auto takes what the node has)."""
    return int(linear_experiment(wildcards)["device"] == "cuda")


def linear_runs(wildcards):
    exp = linear_experiment(wildcards)
    return [
        f"results/runs/{wildcards.experiment}/{run}/seed{seed}.nc"
        for run in exp["runs"]
        for seed in exp["seeds"]
    ]


def linear_aggregate_params(wildcards):
    exp = linear_experiment(wildcards)
    return canonical(
        {
            "experiment": wildcards.experiment,
            "runs": list(exp["runs"]),
            "seeds": exp["seeds"],
            "modes": exp["modes"],
            "paper_plateaus": exp["paper_plateaus"],
        }
    )


def figure_layout(exp):
    """How an experiment's figure lays out its runs (daedyn.figures.style.facets)."""
    return {"facet_by": exp["facet_by"], "max_panels": exp["max_panels"]}


def linear_figure_params(wildcards):
    exp = linear_experiment(wildcards)
    return canonical(
        {
            "experiment": wildcards.experiment,
            "modes": exp["modes"],
            **figure_layout(exp),
        }
    )


# Cluster requests (docs/cluster.md). Memory: the arrays a job holds, times `resource_safety`, on
# top of the interpreter with torch and xarray loaded. Runtime: the job's floating-point work at
# the throughput measured in benchmarks/README.md (2 threads of a 2-core AMD EPYC, float32: the
# training GEMMs of both trainers ran at 100-160 GFLOP/s), plus start-up, times `resource_safety`
# (default 3: the measurements varied by 2x with the load of a shared machine). Both grow with the
# attempt, so a retry asks for more. A tiny training job peaked at 600 MB resident (Python, torch,
# xarray, netCDF), hence BASE_MB.
BASE_MB = 800
START_S = 30  # interpreter, imports, reading the inputs, writing the result
GFLOPS = 100.0  # the slowest measured GEMM throughput


def requested_mb(array_bytes, attempt):
    return int((BASE_MB + config["resource_safety"] * array_bytes / 2**20) * attempt)


def requested_minutes(seconds, attempt):
    """Whole minutes for `seconds` of work at the measured rates plus start-up, with the margin."""
    return math.ceil(config["resource_safety"] * (START_S + seconds) * attempt / 60)


def gemm_seconds(flops):
    return flops / (GFLOPS * 1e9)


def dataset_runtime(wildcards, attempt):
    """Minutes: reading, checking and storing ran at about 1e7 values/s (MNIST: 4.3 s measured)."""
    n, d = dataset_shape(wildcards.dataset)
    return requested_minutes(n * d / 1e7, attempt)


def spectrum_runtime(wildcards, attempt):
    """Minutes: N d^2 flops for Sigma (float64, read in blocks) and 10 d^3 for eigh at
    10 GFLOP/s (measured with the reading: MNIST 1.7 s, CIFAR-10 size 6.6 s)."""
    _, d = dataset_shape(wildcards.dataset)
    return requested_minutes((int(wildcards.n) * d * d + 10 * d**3) / 10e9, attempt)


def dataset_mem_mb(wildcards, attempt):
    """The float64 images twice over (decoded copy, encoded copy)."""
    n, d = dataset_shape(wildcards.dataset)
    return requested_mb(2 * n * d * 8, attempt)


def spectrum_mem_mb(wildcards, attempt):
    """A few d x d float64 matrices (accumulator, eigenvectors, LAPACK work) plus one block."""
    _, d = dataset_shape(wildcards.dataset)
    return requested_mb((4 * d * d + 4096 * d) * 8, attempt)


def linear_mem_mb(wildcards, attempt):
    """Spectra (d x d) and weights, plus the data for the engines that pass over it."""
    exp = linear_experiment(wildcards)
    _, d = dataset_shape(exp["dataset"])
    n = run_setting(exp, wildcards.run, "n_samples")
    exact = run_setting(exp, wildcards.run, "engine") == "exact"
    data = 0 if exact else 3 * n * d * 8
    return requested_mb(data + 3 * d * d * 8, attempt)


def linear_runtime(wildcards, attempt):
    """Minutes: per epoch 8 d H^2 flops (exact engine) or 10 N d H (a pass over the data); per
    record two QR factorisations (4 d H^2) and an SVD, counted as 50 H^3 because it runs far
    below GEMM speed (measured: 10 ms per record at d = 784, H = 256)."""
    exp = linear_experiment(wildcards)
    _, d = dataset_shape(exp["dataset"])
    h = run_setting(exp, wildcards.run, "hidden")
    n = run_setting(exp, wildcards.run, "n_samples")
    exact = run_setting(exp, wildcards.run, "engine") == "exact"
    step = 8 * d * h * h if exact else 10 * n * d * h
    records = exp["epochs"] // exp["log_every"] + 1
    return requested_minutes(
        gemm_seconds(exp["epochs"] * step + records * (4 * d * h * h + 50 * h**3)),
        attempt,
    )


def experiment_spectra(experiments):
    """The spectra the experiments' runs train on (each run's own N)."""
    return {
        spectrum_path(exp["dataset"], run_setting(exp, run, "n_samples"))
        for exp in experiments.values()
        for run in exp["runs"]
    }


def nonlinear_experiment(wildcards):
    return config["nonlinear_experiments"][wildcards.nl_experiment]


def nonlinear_spectrum(wildcards):
    """The spectrum of the experiment's N (aggregation) or of the run's own N (training)."""
    exp = nonlinear_experiment(wildcards)
    run = wildcards.get("run")
    n_samples = run_setting(exp, run, "n_samples") if run else exp["n_samples"]
    return spectrum_path(exp["dataset"], n_samples)


def nonlinear_dataset(wildcards):
    return f"results/data/{nonlinear_experiment(wildcards)['dataset']}.nc"


def nonlinear_train_params(wildcards):
    exp = config["nonlinear_experiments"][wildcards.nl_experiment]
    keys = ("dataset", "n_samples", "hidden", "activation", "lr", "epochs", "log_every")
    keys += ("init_std", "batch_size", "shuffle", "dtype", "device", "k_modes")
    return canonical(
        {
            "experiment": wildcards.nl_experiment,
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            **{k: exp[k] for k in keys},
            **exp["runs"][wildcards.run],
        }
    )


def nonlinear_runs(wildcards):
    exp = nonlinear_experiment(wildcards)
    return [
        f"results/nonlinear/{wildcards.nl_experiment}/{run}/seed{seed}.nc"
        for run in exp["runs"]
        for seed in exp["seeds"]
    ]


def nonlinear_aggregate_params(wildcards):
    exp = nonlinear_experiment(wildcards)
    return canonical(
        {
            "experiment": wildcards.nl_experiment,
            "runs": list(exp["runs"]),
            "seeds": exp["seeds"],
        }
    )


def nonlinear_figure_params(wildcards):
    exp = nonlinear_experiment(wildcards)
    return canonical({"experiment": wildcards.nl_experiment, **figure_layout(exp)})


def nonlinear_gpus(wildcards):
    return int(nonlinear_experiment(wildcards)["device"] == "cuda")


def nonlinear_mem_mb(wildcards, attempt):
    """The data (float64 when read, float32 in training), the noisy copy, activations and
    outputs of one batch."""
    exp = nonlinear_experiment(wildcards)
    _, d = dataset_shape(exp["dataset"])
    n_all = run_setting(exp, wildcards.run, "n_samples")
    n = run_setting(exp, wildcards.run, "batch_size") or n_all
    h = run_setting(exp, wildcards.run, "hidden")
    return requested_mb(n_all * d * 8 + n * (4 * d + 2 * h) * 4, attempt)


def nonlinear_runtime(wildcards, attempt):
    """Minutes: per epoch 12 N d H flops (forward, backward, update), per record 4 N d H (a clean
    forward pass)."""
    exp = nonlinear_experiment(wildcards)
    _, d = dataset_shape(exp["dataset"])
    ndh = (
        run_setting(exp, wildcards.run, "n_samples")
        * d
        * run_setting(exp, wildcards.run, "hidden")
    )
    records = exp["epochs"] // exp["log_every"] + 1
    return requested_minutes(
        gemm_seconds(exp["epochs"] * 12 * ndh + records * 4 * ndh), attempt
    )


def sweep_params(wildcards):
    family, exp = SWEEPS[wildcards.swept]
    return canonical(
        {
            "experiment": wildcards.swept,
            "family": family,
            "grid": swept_values(exp, family),
            "modes": exp["modes"] if family == "linear" else None,
        }
    )


# ---- beyond the paper: noise against weight decay at matched stability (lr_normalised_experiments)
LR_NORMALISED = {
    name: exp
    for name, exp in config["lr_normalised_experiments"].items()
    if exp["enabled"]
}


def lr_normalised_grid(exp):
    """Run name -> the grid values of that run alone (names as daedyn.beyond.plan_lr_normalised
    gives them; the job checks), so adding a grid value trains only the new runs."""
    grid = {}
    for f in exp["fractions"]:
        grid[f"dae_f{f:g}"] = {"fractions": [f], "matched_modes": [], "gammas": []}
        for k in exp["matched_modes"]:
            grid[f"wdae_k{k}_f{f:g}"] = {
                "fractions": [f],
                "matched_modes": [k],
                "gammas": [],
            }
        for g in exp["gammas"]:
            grid[f"wdae_g{g:g}_f{f:g}"] = {
                "fractions": [f],
                "matched_modes": [],
                "gammas": [g],
            }
    return grid


def lr_normalised_spectrum(wildcards):
    exp = config["lr_normalised_experiments"][wildcards.lrn_experiment]
    return spectrum_path(exp["dataset"], exp["n_samples"])


def lr_normalised_train_params(wildcards):
    exp = config["lr_normalised_experiments"][wildcards.lrn_experiment]
    keys = ("dataset", "n_samples", "hidden", "eps", "modes", "epoch_budget")
    keys += ("init_std", "log_every", "dtype", "device")
    return canonical(
        {
            "experiment": wildcards.lrn_experiment,
            "run": wildcards.lrn_run,
            "seed": int(wildcards.seed),
            **{k: exp[k] for k in keys},
            **lr_normalised_grid(exp)[wildcards.lrn_run],
        }
    )


def lr_normalised_runs(wildcards):
    exp = config["lr_normalised_experiments"][wildcards.lrn_experiment]
    return [
        f"results/runs/{wildcards.lrn_experiment}/{run}/seed{exp['seeds'][0]}.nc"
        for run in lr_normalised_grid(exp)
    ]


def lr_normalised_gpus(wildcards):
    return int(
        config["lr_normalised_experiments"][wildcards.lrn_experiment]["device"]
        == "cuda"
    )


def lr_normalised_mem_mb(wildcards, attempt):
    """Spectrum (d x d), weights and the records of every mode."""
    exp = config["lr_normalised_experiments"][wildcards.lrn_experiment]
    _, d = dataset_shape(exp["dataset"])
    epochs = exp["epoch_budget"] / min(exp["fractions"])
    return requested_mb((3 * d * d + epochs / exp["log_every"] * d) * 8, attempt)


def lr_normalised_runtime(wildcards, attempt):
    """Minutes, from the flops of the longest possible run (8 d H^2 per epoch, as linear_runtime)."""
    exp = config["lr_normalised_experiments"][wildcards.lrn_experiment]
    _, d = dataset_shape(exp["dataset"])
    epochs = exp["epoch_budget"] / min(exp["fractions"])
    return requested_minutes(gemm_seconds(epochs * 8 * d * exp["hidden"] ** 2), attempt)


for _name, _exp in config["lr_normalised_experiments"].items():
    _key = f"lr_normalised_experiments.{_name}"
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"{_key}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    _d = dataset_shape(_exp["dataset"])[1]
    for _list in ("modes", "matched_modes"):
        if _exp[_list] and max(_exp[_list]) >= min(_exp["hidden"], _d):
            config_error(
                f"{_key}.{_list}",
                f"mode {max(_exp[_list])} cannot be learned with hidden={_exp['hidden']} units on "
                f"{_exp['dataset']!r} (d={_d}); modes must be < {min(_exp['hidden'], _d)}",
            )
    for _list in ("fractions", "matched_modes", "gammas"):
        if len(set(_exp[_list])) != len(_exp[_list]):
            config_error(f"{_key}.{_list}", f"repeated values in {_exp[_list]}")

LR_NORMALISED_OUTPUTS = ("combined.nc", "comparison.nc", "metrics.csv", "claims.csv")


def lr_normalised_targets(paper):
    names = [n for n, e in LR_NORMALISED.items() if e["paper"] == paper]
    return [f"results/{n}/{out}" for n in names for out in LR_NORMALISED_OUTPUTS] + [
        f"results/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")
    ]


BEYOND_CLAIMS += [
    f"results/{n}/claims.csv" for n, e in LR_NORMALISED.items() if not e["paper"]
]


# ---- beyond the paper: sampled against marginalised noise (sampled_experiments)
SAMPLED = {
    name: exp for name, exp in config["sampled_experiments"].items() if exp["enabled"]
}
# the keys every part of a sampled experiment uses, and each part's own (daedyn.runconfig.SampledConfig)
SAMPLED_COMMON = ("dataset", "n_samples", "dim", "hidden", "eps", "modes", "seeds")
SAMPLED_COMMON += ("init_std", "init_seed", "dtype", "device")
SAMPLED_PART_KEYS = {
    "traj": ("fraction", "steps", "records", "burn_in"),
    "variance": ("var_fractions", "var_batch", "burn_in", "window"),
    "fixed_copy": ("fraction", "steps", "copies", "trained_copies"),
}


def sampled_trajectory_part(batch_size):
    return "traj_full" if batch_size is None else f"traj_b{batch_size}"


def sampled_spectrum(wildcards):
    exp = config["sampled_experiments"][wildcards.sm_experiment]
    return spectrum_path(exp["dataset"], exp["n_samples"])


def sampled_dataset(wildcards):
    return f"results/data/{config['sampled_experiments'][wildcards.sm_experiment]['dataset']}.nc"


def sampled_part_params(wildcards):
    exp = config["sampled_experiments"][wildcards.sm_experiment]
    part = wildcards.sm_part
    own = {k: exp[k] for k in SAMPLED_PART_KEYS.get(part, SAMPLED_PART_KEYS["traj"])}
    if part.startswith("traj_"):
        batches = {sampled_trajectory_part(b): b for b in exp["batches"]}
        own["batches"] = [batches[part]]
    return canonical(
        {
            "experiment": wildcards.sm_experiment,
            "run": part,
            **{k: exp[k] for k in SAMPLED_COMMON},
            **own,
        }
    )


def sampled_aggregate_params(wildcards):
    exp = config["sampled_experiments"][wildcards.sm_experiment]
    keys = SAMPLED_COMMON + tuple({k for v in SAMPLED_PART_KEYS.values() for k in v})
    return canonical(
        {
            "experiment": wildcards.sm_experiment,
            "run": "summary",
            "batches": exp["batches"],
            **{k: exp[k] for k in keys},
        }
    )


def sampled_part_paths(wildcards):
    exp = config["sampled_experiments"][wildcards.sm_experiment]
    base = f"results/runs/{wildcards.sm_experiment}"
    return {
        "trajectories": [
            f"{base}/{sampled_trajectory_part(b)}.nc" for b in exp["batches"]
        ],
        "variance": f"{base}/variance.nc",
        "fixed": f"{base}/fixed_copy.nc",
    }


def sampled_gpus(wildcards):
    return int(
        config["sampled_experiments"][wildcards.sm_experiment]["device"] == "cuda"
    )


def sampled_mem_mb(wildcards, attempt):
    """The data (float64) and, per seed, a full batch of inputs, noise and errors (4 x N x d)."""
    exp = config["sampled_experiments"][wildcards.sm_experiment]
    n, d = dataset_shape(exp["dataset"])
    dim = exp["dim"] or d
    return requested_mb(
        (3 * n * d + 4 * exp["seeds"] * exp["n_samples"] * dim) * 8, attempt
    )


def sampled_runtime(wildcards, attempt):
    """Minutes, from the flops of the full-batch trajectories (12 N dim H per seed and step)."""
    exp = config["sampled_experiments"][wildcards.sm_experiment]
    dim = exp["dim"] or dataset_shape(exp["dataset"])[1]
    flops = 12 * exp["seeds"] * exp["n_samples"] * dim * exp["hidden"] * exp["steps"]
    return requested_minutes(gemm_seconds(flops), attempt)


for _name, _exp in config["sampled_experiments"].items():
    _key = f"sampled_experiments.{_name}"
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"{_key}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    _d = dataset_shape(_exp["dataset"])[1]
    _dim = _exp["dim"] or _d
    if _dim > _d:
        config_error(f"{_key}.dim", f"{_dim} exceeds the data's d = {_d}")
    if _exp["hidden"] > _dim or max(_exp["modes"]) >= _exp["hidden"]:
        config_error(
            f"{_key}.modes",
            f"need max(modes) < hidden <= dim (the variance sweep starts at the minimum of a "
            f"network that learns every tracked mode); got modes {_exp['modes']}, "
            f"hidden={_exp['hidden']}, dim={_dim}",
        )
    for _b in [*_exp["batches"], _exp["var_batch"]]:
        if _b is not None and _b > _exp["n_samples"]:
            config_error(
                f"{_key}.batches",
                f"batch size {_b} exceeds n_samples={_exp['n_samples']}",
            )
    for _list in ("batches", "var_fractions", "modes"):
        if len(set(_exp[_list])) != len(_exp[_list]):
            config_error(f"{_key}.{_list}", f"repeated values in {_exp[_list]}")
    if _exp["trained_copies"] > _exp["copies"]:
        config_error(f"{_key}.trained_copies", f"more than copies={_exp['copies']}")


def sampled_targets(paper):
    names = [n for n, e in SAMPLED.items() if e["paper"] == paper]
    return [
        f"results/{n}/{out}"
        for n in names
        for out in ("summary.nc", "metrics.csv", "claims.csv")
    ] + [f"results/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]


BEYOND_CLAIMS += [
    f"results/{n}/claims.csv" for n, e in SAMPLED.items() if not e["paper"]
]


def experiment_targets(paper):
    """Spectra, tables and figures (sweep summaries too) of the enabled experiments whose `paper`
    flag is `paper`."""
    linear = {name: e for name, e in LINEAR.items() if e["paper"] == paper}
    nonlinear = {name: e for name, e in NONLINEAR.items() if e["paper"] == paper}
    spectra = experiment_spectra(linear) | experiment_spectra(nonlinear)
    tables = [
        f"results/{name}/{out}"
        for name in linear
        for out in ("combined.nc", "metrics.csv")
    ] + [
        f"results/{name}/{out}"
        for name in nonlinear
        for out in ("combined.nc", "halftimes.csv")
    ]
    figures = [
        f"results/figures/{name}.{ext}"
        for name in [*linear, *nonlinear]
        for ext in ("png", "pdf")
    ]
    sweeps = [name for name in SWEEPS if name in linear or name in nonlinear]
    sweep_outputs = [
        f"results/figures/{name}_sweep.{ext}"
        for name in sweeps
        for ext in ("png", "pdf")
    ] + [f"results/{name}/sweep.csv" for name in sweeps]
    return (
        sorted(spectra)
        + tables
        + figures
        + sweep_outputs
        + generalisation_targets(paper)
        + lr_normalised_targets(paper)
        + sampled_targets(paper)
    )


# ---------------------------------------------------------------------------------------
# Generalisation (held-out errors of linear DAEs trained on N samples): the held-out moment of a
# spectrum, and the experiments of `generalisation_experiments`, whose runs are the grid N x eps.


def heldout_moment_path(dataset, n_samples, testset):
    return f"results/spectra/{dataset}_n{n_samples}_test_{testset}.nc"


def heldout_moment_params(wildcards):
    """The training spectrum (dataset, N) and the held-out dataset; both must be configured."""
    for name in (wildcards.dataset, wildcards.testset):
        if name not in DATASETS:
            config_error(
                "datasets", f"unknown dataset {name!r}; allowed: {sorted(DATASETS)}"
            )
    return canonical(
        {
            "dataset": wildcards.dataset,
            "n_samples": int(wildcards.n),
            "testset": wildcards.testset,
        }
    )


def heldout_moment_mem_mb(wildcards, attempt):
    """As the spectrum: a few d x d float64 matrices plus one block of the held-out inputs."""
    return spectrum_mem_mb(wildcards, attempt)


def heldout_moment_runtime(wildcards, attempt):
    """Minutes: N_test d^2 flops for the held-out moment and 2 d^3 for the rotation at 10 GFLOP/s."""
    n, d = dataset_shape(wildcards.testset)
    return requested_minutes((n * d * d + 2 * d**3) / 10e9, attempt)


def check_heldout(key, exp):
    """A held-out set must be configured and have the training set's input dimension."""
    if exp["heldout"] not in DATASETS:
        config_error(
            f"{key}.heldout",
            f"unknown dataset {exp['heldout']!r}; allowed: {sorted(DATASETS)}",
        )
    d_train, d_test = (dataset_shape(exp[k])[1] for k in ("dataset", "heldout"))
    if d_train != d_test:
        config_error(
            f"{key}.heldout",
            f"{exp['heldout']!r} has {d_test} inputs but {exp['dataset']!r} has {d_train}; "
            "pair a training set with the held-out split of the same source",
        )


for _name, _exp in config["linear_experiments"].items():
    if _exp["heldout"] is not None:
        check_heldout(f"linear_experiments.{_name}", _exp)
    elif _exp["sigma2_test"]:
        config_error(
            f"linear_experiments.{_name}.sigma2_test",
            "test-noise variances need a held-out set (`heldout`)",
        )

for _name, _exp in config["generalisation_experiments"].items():
    _key = f"generalisation_experiments.{_name}"
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"{_key}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    check_heldout(_key, _exp)
    for _field in ("n_samples", "eps", "sigma2_test"):
        if len(set(_exp[_field])) != len(_exp[_field]):
            config_error(f"{_key}.{_field}", f"repeated values in {_exp[_field]}")
    if max(_exp["n_samples"]) > dataset_shape(_exp["dataset"])[0]:
        config_error(
            f"{_key}.n_samples",
            f"{max(_exp['n_samples'])} exceeds the {dataset_shape(_exp['dataset'])[0]} samples "
            f"of {_exp['dataset']!r}",
        )

GENERALISATION = {
    name: exp
    for name, exp in config["generalisation_experiments"].items()
    if exp["enabled"]
}
# the runs of a generalisation experiment are trained as linear runs: the settings it does not
# choose take the linear schema's defaults, and the engine is the exact one
GENERALISATION_FIXED = {
    **{
        k: v
        for k, v in schema_defaults("linear_experiment").items()
        if k in LinearConfig.__dataclass_fields__
    },
    "engine": "exact",
    "gamma": 0.0,
}


def eps_tag(eps):
    """A run-name fragment for a noise variance: 0.25 -> 0p25, 1e-05 -> 1em05."""
    return repr(float(eps)).replace(".", "p").replace("-", "m").replace("+", "")


def generalisation_train_inputs(wildcards):
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    n = int(wildcards.n)
    if n not in exp["n_samples"]:
        config_error(
            f"generalisation_experiments.{wildcards.gen_experiment}.n_samples",
            f"no N = {n}; sizes: {exp['n_samples']}",
        )
    return {
        "spectrum": spectrum_path(exp["dataset"], n),
        "heldout": heldout_moment_path(exp["dataset"], n, exp["heldout"]),
    }


def generalisation_train_params(wildcards):
    """One job trains every eps of one N (short runs: job start-up would cost more than they do)."""
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    n = int(wildcards.n)
    keys = ("dataset", "heldout", "sigma2_test", "hidden", "lr", "epochs", "log_every")
    keys += ("init_std", "dtype", "device")
    settings = {
        **GENERALISATION_FIXED,
        **{k: exp[k] for k in keys},
        "experiment": wildcards.gen_experiment,
        "seed": int(wildcards.seed),
        "n_samples": n,
    }
    runs = {f"n{n}_eps{eps_tag(e)}": {"eps": e} for e in exp["eps"]}
    return canonical({"settings": settings, "runs": runs})


def generalisation_runtime(wildcards, attempt):
    """Minutes for every eps run of one N: each an exact-engine run as linear_runtime counts it,
    plus per record the held-out errors (2 H d^2 flops)."""
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    _, d = dataset_shape(exp["dataset"])
    h = exp["hidden"]
    records = exp["epochs"] // exp["log_every"] + 1
    run = exp["epochs"] * 8 * d * h * h
    run += records * (4 * d * h * h + 50 * h**3 + 2 * h * d * d)
    return requested_minutes(gemm_seconds(len(exp["eps"]) * run), attempt)


def generalisation_mem_mb(wildcards, attempt):
    """Spectrum, held-out moment and their copies (d x d float64), and every run's records."""
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    _, d = dataset_shape(exp["dataset"])
    records = exp["epochs"] // exp["log_every"] + 1
    return requested_mb((5 * d * d + 2 * len(exp["eps"]) * records * d) * 8, attempt)


def generalisation_aggregate_mem_mb(wildcards, attempt):
    """The measured and theory mode strengths over (N, eps, epoch, mode) and a few temporaries
    as large (the errors over sigma2_test)."""
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    _, d = dataset_shape(exp["dataset"])
    records = exp["epochs"] // exp["log_every"] + 1
    grid = len(exp["n_samples"]) * len(exp["eps"]) * records * d
    return requested_mb((4 + len(exp["sigma2_test"])) * grid * 8, attempt)


def generalisation_inputs(wildcards):
    """Per N (in the config's order): the runs, the spectrum and the held-out moment."""
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    return {
        "runs": [
            f"results/runs/{wildcards.gen_experiment}/n{n}/seed{exp['seed']}.nc"
            for n in exp["n_samples"]
        ],
        "spectra": [spectrum_path(exp["dataset"], n) for n in exp["n_samples"]],
        "moments": [
            heldout_moment_path(exp["dataset"], n, exp["heldout"])
            for n in exp["n_samples"]
        ],
    }


def generalisation_aggregate_params(wildcards):
    exp = config["generalisation_experiments"][wildcards.gen_experiment]
    return canonical(
        {
            "experiment": wildcards.gen_experiment,
            "n_samples": exp["n_samples"],
            "seed": exp["seed"],
        }
    )


def generalisation_targets(paper):
    """Tables, claims and figures of the enabled generalisation experiments flagged `paper`."""
    return [
        out
        for name, exp in GENERALISATION.items()
        if exp["paper"] == paper
        for out in [
            f"results/{name}/{table}"
            for table in (
                "combined.nc",
                "metrics.csv",
                "optimal_noise.csv",
                "claims.csv",
            )
        ]
        + [f"results/figures/{name}.{ext}" for ext in ("png", "pdf")]
    ]


BEYOND_CLAIMS += [
    f"results/{name}/claims.csv"
    for name, exp in GENERALISATION.items()
    if not exp["paper"]
]


# the sweep summaries' claims (fixed points, timing) are claims beyond the paper
BEYOND_CLAIMS += [
    f"results/{name}/claims.csv" for name, (_, e) in SWEEPS.items() if not e["paper"]
]
# ---- depth-L linear networks and masking noise (beyond the paper) ----------------------------
for _name, _exp in config["depth_experiments"].items():
    _key = f"depth_experiments.{_name}"
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"{_key}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    _d = dataset_shape(_exp["dataset"])[1]
    for _run, _entry in _exp["runs"].items():
        _depth = _entry.get("depth", _exp["depth"])
        if _exp["widths"] is not None and len(_exp["widths"]) != _depth - 1:
            config_error(
                f"{_key}.widths",
                f"run {_run} has depth {_depth}, so widths needs {_depth - 1} entries "
                f"(H_1 ... H_{_depth - 1}); got {_exp['widths']}",
            )
        if _entry["match_eps"] > 0 and (_entry["eps"] > 0 or _entry["gamma"] > 0):
            config_error(
                f"{_key}.runs.{_run}.match_eps",
                "a matched-decay WDAE sets its own gamma and has no noise: leave eps and gamma at 0",
            )
    # the network learns only the modes below its narrowest layer
    _rank = min(_d, *(_exp["widths"] or [_exp["hidden"]]))
    if max(_exp["modes"]) >= _rank:
        config_error(
            f"{_key}.modes",
            f"mode {max(_exp['modes'])} cannot be learned by hidden widths "
            f"{_exp['widths'] or _exp['hidden']} on {_exp['dataset']!r} (d={_d} inputs); modes must be "
            f"< {_rank}",
        )
    if _exp["match_mode"] >= _d:
        config_error(
            f"{_key}.match_mode",
            f"{_exp['match_mode']} is not a mode of the d={_d} inputs of {_exp['dataset']!r}",
        )

for _name, _exp in config["masking_experiments"].items():
    _key = f"masking_experiments.{_name}"
    if _exp["dataset"] not in DATASETS:
        config_error(
            f"{_key}.dataset",
            f"unknown dataset {_exp['dataset']!r}; allowed: {sorted(DATASETS)}",
        )
    _d = dataset_shape(_exp["dataset"])[1]
    _masked = {}
    for _run, _entry in _exp["runs"].items():
        _q = _entry.get("q", _exp.get("q"))
        if _q is None:
            config_error(
                f"{_key}.runs.{_run}.q",
                "the keep probability q is needed, in the run's entry or for the whole experiment",
            )
        if _exp["engine"] == "sampled" and _entry["noise"] != "masking":
            config_error(
                f"{_key}.runs.{_run}.noise",
                f"{_entry['noise']} needs engine: marginal (the sampled engine draws masks)",
            )
        if _entry["noise"] == "masking":
            if _q in _masked.values():
                config_error(
                    f"{_key}.runs.{_run}.q",
                    f"q={_q} is also the keep probability of masked run "
                    f"{[r for r, v in _masked.items() if v == _q][0]}; masked runs need distinct q",
                )
            _masked[_run] = _q
    if not _masked:
        config_error(f"{_key}.runs", "needs at least one run with noise: masking")
    if _exp["engine"] != "sampled" and _exp["batch_size"] is not None:
        config_error(
            f"{_key}.batch_size",
            "only used by engine: sampled (the marginal engine is full batch)",
        )
    if max(_exp["modes"]) >= min(_exp["hidden"], _d):
        config_error(
            f"{_key}.modes",
            f"mode {max(_exp['modes'])} cannot be learned with hidden={_exp['hidden']} units on "
            f"{_exp['dataset']!r} (d={_d} inputs); modes must be < {min(_exp['hidden'], _d)}",
        )


wildcard_constraints:
    depth_experiment="|".join(config["depth_experiments"]) or "(?!)",
    masking_experiment="|".join(config["masking_experiments"]) or "(?!)",


TRAIN_RULES.update(
    depth_train=("depth_experiments", "depth_experiment"),
    masking_train=("masking_experiments", "masking_experiment"),
)

DEPTH = {
    name: exp for name, exp in config["depth_experiments"].items() if exp["enabled"]
}


def depth_spectrum(wildcards):
    exp = config["depth_experiments"][wildcards.depth_experiment]
    return spectrum_path(exp["dataset"], exp["n_samples"])


def depth_train_params(wildcards):
    exp = config["depth_experiments"][wildcards.depth_experiment]
    keys = (
        "dataset",
        "n_samples",
        "depth",
        "hidden",
        "widths",
        "init",
        "w0",
        "init_std",
    )
    keys += (
        "lr",
        "epochs",
        "log_every",
        "match_mode",
        "dtype",
        "device",
        "allow_unstable",
        "batch_size",
        "shuffle",
    )
    return canonical(
        {
            "experiment": wildcards.depth_experiment,
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            **{k: exp[k] for k in keys},
            **exp["runs"][wildcards.run],
        }
    )


def depth_runs(wildcards):
    exp = config["depth_experiments"][wildcards.depth_experiment]
    return [
        f"results/depth/{wildcards.depth_experiment}/{run}/seed{seed}.nc"
        for run in exp["runs"]
        for seed in exp["seeds"]
    ]


def depth_aggregate_params(wildcards):
    exp = config["depth_experiments"][wildcards.depth_experiment]
    return canonical(
        {
            "experiment": wildcards.depth_experiment,
            "runs": list(exp["runs"]),
            "seeds": exp["seeds"],
        }
    )


def depth_figure_params(wildcards):
    exp = config["depth_experiments"][wildcards.depth_experiment]
    return canonical({"experiment": wildcards.depth_experiment, "modes": exp["modes"]})


def depth_gpus(wildcards):
    return int(
        config["depth_experiments"][wildcards.depth_experiment]["device"] == "cuda"
    )


def depth_mem_mb(wildcards, attempt):
    """Spectrum (d x d eigenvectors, in float64 and the run's dtype) and the layers."""
    _, d = dataset_shape(
        config["depth_experiments"][wildcards.depth_experiment]["dataset"]
    )
    return requested_mb(3 * d * d * 8, attempt)


def depth_runtime(wildcards, attempt):
    """Minutes, from the flops per epoch (about 4 (L - 1) products of d x H x H)."""
    exp = config["depth_experiments"][wildcards.depth_experiment]
    _, d = dataset_shape(exp["dataset"])
    depth = exp["runs"][wildcards.run].get("depth", exp["depth"])
    h = max(exp["widths"] or [exp["hidden"]])
    return requested_minutes(
        gemm_seconds(exp["epochs"] * 8 * (depth - 1) * d * h * h), attempt
    )


MASKING = {
    name: exp for name, exp in config["masking_experiments"].items() if exp["enabled"]
}


def masking_spectrum(wildcards):
    exp = config["masking_experiments"][wildcards.masking_experiment]
    return spectrum_path(exp["dataset"], exp["n_samples"])


def masking_train_inputs(wildcards):
    """The spectrum always; the dataset too for the sampled engine, which draws masks on the data."""
    exp = config["masking_experiments"][wildcards.masking_experiment]
    inputs = {"spectrum": masking_spectrum(wildcards)}
    if exp["engine"] == "sampled":
        inputs["dataset"] = f"results/data/{exp['dataset']}.nc"
    return inputs


def masking_train_params(wildcards):
    exp = config["masking_experiments"][wildcards.masking_experiment]
    keys = (
        "dataset",
        "n_samples",
        "engine",
        "hidden",
        "form",
        "lr",
        "epochs",
        "log_every",
    )
    keys += ("init_std", "batch_size", "shuffle", "dtype", "device", "allow_unstable")
    return canonical(
        {
            "experiment": wildcards.masking_experiment,
            "run": wildcards.run,
            "seed": int(wildcards.seed),
            **{k: exp[k] for k in keys + (("q",) if "q" in exp else ())},
            **exp["runs"][wildcards.run],
        }
    )


def masking_runs(wildcards):
    exp = config["masking_experiments"][wildcards.masking_experiment]
    return [
        f"results/masking/{wildcards.masking_experiment}/{run}/seed{seed}.nc"
        for run in exp["runs"]
        for seed in exp["seeds"]
    ]


def masking_aggregate_params(wildcards):
    exp = config["masking_experiments"][wildcards.masking_experiment]
    return canonical(
        {
            "experiment": wildcards.masking_experiment,
            "runs": list(exp["runs"]),
            "seeds": exp["seeds"],
            "modes": exp["modes"],
        }
    )


def masking_figure_params(wildcards):
    exp = config["masking_experiments"][wildcards.masking_experiment]
    return canonical(
        {"experiment": wildcards.masking_experiment, "modes": exp["modes"]}
    )


def masking_gpus(wildcards):
    return int(
        config["masking_experiments"][wildcards.masking_experiment]["device"] == "cuda"
    )


def masking_mem_mb(wildcards, attempt):
    """Spectrum and noise covariance (d x d), plus the data for the sampled engine."""
    exp = config["masking_experiments"][wildcards.masking_experiment]
    _, d = dataset_shape(exp["dataset"])
    data = 0 if exp["engine"] != "sampled" else 3 * exp["n_samples"] * d * 8
    return requested_mb(data + 5 * d * d * 8, attempt)


def masking_runtime(wildcards, attempt):
    """Minutes, from the flops per epoch (marginal: the d x d x H product dominates)."""
    exp = config["masking_experiments"][wildcards.masking_experiment]
    _, d = dataset_shape(exp["dataset"])
    h = exp["hidden"]
    flops = (
        6 * exp["n_samples"] * d * h
        if exp["engine"] == "sampled"
        else 2 * d * d * h + 8 * d * h * h
    )
    return requested_minutes(gemm_seconds(exp["epochs"] * flops), attempt)


def depth_masking_targets(paper):
    """Spectra, tables and figures of the enabled depth and masking experiments whose `paper` flag is `paper`."""
    exps = {
        name: e for name, e in [*DEPTH.items(), *MASKING.items()] if e["paper"] == paper
    }
    spectra = {spectrum_path(e["dataset"], e["n_samples"]) for e in exps.values()}
    tables = [
        f"results/{name}/{out}"
        for name in exps
        for out in ("combined.nc", "metrics.csv", "claims.csv")
    ]
    figures = [
        f"results/figures/{name}.{ext}" for name in exps for ext in ("png", "pdf")
    ]
    return sorted(spectra) + tables + figures


# the default target's beyond-the-paper table holds the claims of the experiments it builds
BEYOND_CLAIMS += [
    f"results/{name}/claims.csv"
    for name, exp in [*DEPTH.items(), *MASKING.items()]
    if not exp["paper"]
]

BEYOND_TARGETS = ["results/claims/beyond.csv"] if BEYOND_CLAIMS else []

# `snakemake` builds ALL_TARGETS (quick on a small CPU); `snakemake paper` the paper-scale
# experiments (`paper: true`), which are GPU work.
ALL_TARGETS = (
    sorted(
        set(
            SPECTRA
            + experiment_targets(paper=False)
            + depth_masking_targets(paper=False)
        )
    )
    + SCALAR_TARGETS
    + BEYOND_TARGETS
)
PAPER_TARGETS = experiment_targets(paper=True) + depth_masking_targets(paper=True)
