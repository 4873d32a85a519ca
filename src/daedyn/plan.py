"""The workflow's plan, in plain Python: config validation, runs, params, inputs, resources and targets.

:class:`Plan` is built once from the merged config (``workflow/rules/common.smk`` does it): it
validates the config against the schema (filling defaults in place), expands sweep grids into runs,
runs every check of the registry's kinds, and then answers the questions a Snakemake rule asks (its
params, inputs and resources for given wildcards) and which files the default and ``paper`` targets
are. Every answer is a plain value, so the whole plan is tested without Snakemake
(tests/test_plan.py). Bad configs raise :class:`daedyn.configcheck.ConfigError` naming the key.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from daedyn import configcheck, kinds as registry
from daedyn.bundles import member_key, split
from daedyn.configcheck import ConfigError
from daedyn.kinds import Kind
from daedyn.runconfig import schema as base_schema
from daedyn.sweep import SweepError, expand

__all__ = ["Plan", "RUNTIME_FLOOR_MIN", "canonical", "config_error", "validate"]

# Cluster requests (docs/cluster.md). Memory: the arrays a job holds, times `resource_safety`, on top
# of the interpreter with torch and xarray loaded (a tiny training job peaked at 600 MB resident).
# Runtime: the job's arithmetic at the throughput measured in benchmarks/README.md (2 threads of a
# 2-core AMD EPYC, float32 training GEMMs at 100-160 GFLOP/s: the slowest is used), plus start-up,
# times `resource_safety`, and never less than RUNTIME_FLOOR_MIN: a queue wait is cheaper than a job
# killed at its time limit because a node was slower than the calibration or its file system stalled.
# Both grow with the attempt, so a retry asks for more.
BASE_MB = 800
START_S = 30  # interpreter, imports, reading the inputs, writing the result
GFLOPS = 100.0
RUNTIME_FLOOR_MIN = 10


#: names an experiment cannot have: results/<name>/ or results/figures/<name>.png belong to another stage
RESERVED = {"data", "spectra", "scalar", "claims", "figures", "fig1", "fig2", "fig3", "fig4"}


def gemm_seconds(flops: float) -> float:
    return flops / (GFLOPS * 1e9)


def network_bytes(d: int, hidden: int) -> float:
    """A two-layer network's arrays in float64: the weights, their gradients and copies (initial, final,
    in the eigenbasis, in the run file), about 12 H x d, and two H x H work matrices."""
    return (12 * hidden * d + 2 * hidden * hidden) * 8


def records_bytes(epochs: float, log_every: int, width: float) -> float:
    """The records of a run: ``epochs / log_every`` rows of ``width`` numbers in float64, held by the
    tracker and again by the run file's dataset, and the recorded epochs (``training.log_epochs``)."""
    return (epochs // log_every + 2) * (2 * width + 3) * 8


def machine_mb() -> float:
    """MB of memory of this machine, or of the container (cgroup v2) it runs in when that is less."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit) / 2**20) if limit.isdigit() else total


def canonical(params: Mapping) -> dict:
    """Params with sorted keys: reordering keys in a config file must not rerun jobs."""
    return json.loads(json.dumps(params, sort_keys=True))


def config_error(key: str, message: str):
    raise ConfigError(f"Invalid config: {key}: {message}")


def _schema(kinds: Mapping[str, Kind]) -> dict:
    """The config schema with the sections of kinds defined outside the package."""
    schema = copy.deepcopy(base_schema())
    for kind in kinds.values():
        if kind.section not in schema["properties"]:
            if kind.schema is None:
                raise ConfigError(f"Invalid config: kinds: kind {kind.name!r} declares no schema")
            schema["properties"][kind.section] = {
                "description": f"Experiments of kind {kind.name} ({kind.title}).", "type": "object",
                "default": {}, "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
                "additionalProperties": dict(kind.schema)}
    return schema


def _check_schema(config: dict, schema: dict) -> None:
    """Validate against the schema (draft 2020-12), setting defaults in place as Snakemake's validate does."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import best_match

    properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, subschema):
        if isinstance(instance, dict):
            for name, prop in props.items():
                if "default" in prop:
                    instance.setdefault(name, copy.deepcopy(prop["default"]))
        yield from properties(validator, props, instance, subschema)

    validator = validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        message = error.message
        if error.context:  # anyOf/oneOf: what each alternative asks for, not the whole instance
            message = "give one of: " + "; or ".join(dict.fromkeys(e.message for e in error.context
                                                                    if not e.relative_path))
        message = message if len(message) <= 300 else message[:300] + " ..."
        raise ConfigError(f"Invalid config: {configcheck.key_path(error.absolute_path) or 'config'}: {message}")


def validate(config: dict, kinds: Mapping[str, Kind]) -> None:
    """Check the config, fill in the schema's defaults and expand sweep grids, all in place.

    After this every experiment of a sweepable kind holds its explicit and grid runs in ``runs``
    and a list of ``seeds``; the second schema check covers the grid runs' values.
    """
    schema = _schema(kinds)
    configcheck.reject_non_finite(config)
    _check_schema(config, schema)
    configcheck.reject_non_integers(config, schema)
    for kind in kinds.values():
        if kind.sweepable:
            for name, exp in config[kind.section].items():
                try:
                    config[kind.section][name] = expand(exp, kind.name, f"{kind.section}.{name}",
                                                        config["max_sweep_runs"])
                except SweepError as err:
                    raise ConfigError(f"Invalid config: {err}") from None
    _check_schema(config, schema)


class Plan:
    """Everything the workflow plans, from one validated config (see the module docstring)."""

    def __init__(self, config: dict, package: str = "src/daedyn"):
        self.package = package  # where the package's sources are, relative to the working directory
        self._bundles: dict[str, dict] = {}
        self._rules: dict[str, tuple[str, str]] | None = None
        if not isinstance(config, dict):
            config_error("config", f"the config must be a mapping of keys, got {type(config).__name__}")
        self.kinds = registry.load(config.get("kinds", []))
        validate(config, self.kinds)
        self.config = config
        self.datasets = config["datasets"]
        self._check_datasets()
        # experiment name -> its kind: names share results/{experiment}/, so they are unique across kinds
        self.kind_of: dict[str, Kind] = {}
        for kind in self.kinds.values():
            for name, exp in config[kind.section].items():
                if name in self.kind_of:
                    config_error(f"{kind.section}.{name}", f"the name is also used in "
                                 f"{self.kind_of[name].section}; experiment names must be unique")
                if name in RESERVED:
                    config_error(f"{kind.section}.{name}", f"{name!r} names a folder or figure of the pipeline's "
                                 f"own stages (reserved: {', '.join(sorted(RESERVED))}); choose another name")
                self.kind_of[name] = kind
                kind.check(self, f"{kind.section}.{name}", exp)
        for name in self.swept(paper=None):
            if f"{name}_sweep" in self.kind_of:
                config_error(name, f"its sweep figure results/figures/{name}_sweep.png would be that of "
                             f"experiment {name}_sweep; rename one of them")

    def source(self, module: str) -> str:
        """The source file of a package module ("linear", "jobs/linear"): a rule input, so that its edits rerun."""
        return f"{self.package}/{module}.py"

    # ---- the config ------------------------------------------------------------------------------
    def experiment(self, name: str) -> dict:
        return self.config[self.kind_of[name].section][name]

    def experiments(self, kind: Kind, paper: bool | None = False) -> dict[str, dict]:
        """The enabled experiments of a kind whose `paper` flag is `paper` (None: all enabled)."""
        return {name: exp for name, exp in self.config[kind.section].items()
                if exp["enabled"] and (paper is None or exp["paper"] == paper)}

    def names(self, kind: Kind) -> list[str]:
        return list(self.config[kind.section])

    def swept(self, paper: bool | None = False) -> list[str]:
        """The enabled experiments with a `sweep:` grid (each gets a sweep figure, table and claims)."""
        return [name for kind in self.kinds.values() if kind.sweepable
                for name, exp in self.experiments(kind, paper).items() if exp.get("sweep")]

    def dataset_shape(self, name: str) -> tuple[int, int]:
        """(number of training samples, input dimension) of a configured dataset, known without reading it."""
        entry = self.datasets[name]
        if entry["source"] == "synthetic":
            return entry["synthetic"]["n_samples"], entry["synthetic"]["dim"]
        return {"cifar10": (50000, 3072), "digits": (1797, 64)}.get(entry["source"], (60000, 784))

    def check_dataset(self, key: str, name: str) -> None:
        if name not in self.datasets:
            config_error(key, f"unknown dataset {name!r}; allowed: {sorted(self.datasets)}")

    def _check_datasets(self) -> None:
        for i, entry in enumerate(self.config["spectra"]):
            self.check_dataset(f"spectra[{i}].dataset", entry["dataset"])
        for name, ds in self.datasets.items():
            key, syn = f"datasets.{name}.synthetic", ds.get("synthetic")
            if ds["source"] != "synthetic":
                if syn:
                    config_error(key, f"only allowed with source: synthetic (source is {ds['source']!r})")
                continue
            if syn is None:
                config_error(key, "required with source: synthetic")
            if syn["spectrum"] == "list" and len(syn.get("values", [])) != syn["dim"]:
                config_error(f"{key}.values", f"spectrum: list needs exactly dim={syn['dim']} values")
            if syn["exact"] and syn["n_samples"] < syn["dim"]:
                config_error(f"{key}.n_samples", f"exact synthetic data need n_samples >= dim "
                             f"({syn['n_samples']} < {syn['dim']})")

    # ---- runs ------------------------------------------------------------------------------------
    def runs(self, name: str) -> dict[str, dict]:
        return self.kind_of[name].runs(self.experiment(name))

    def run_entry(self, name: str, run: str) -> dict:
        runs = self.runs(name)
        if run not in runs:
            config_error(f"{self.kind_of[name].section}.{name}", f"has no run {run!r}; runs: {sorted(runs)}")
        return runs[run]

    def run_files(self, name: str) -> list[str]:
        """The training outputs of an experiment, in the order of its runs and seeds."""
        return [self.run_file(name, run, seed) for run, seed in self.members(name)]

    def run_file(self, name: str, run: str, seed: int | None) -> str:
        return self.kind_of[name].run_file.format(experiment=name, run=run, seed=seed)

    # ---- bundles: the training jobs (daedyn.bundles) ----------------------------------------------
    def members(self, name: str) -> list[tuple[str, int | None]]:
        """The (run, seed) pairs an experiment trains, in the order of :meth:`run_files` (seed None: the
        run's one file holds every seed)."""
        kind, exp = self.kind_of[name], self.experiment(name)
        return [(run, seed) for run in kind.runs(exp) for seed in (kind.seeds(exp) if kind.file_per_seed else [None])]

    def bundles(self, name: str) -> dict[str, list[tuple[str, int | None]]]:
        """Bundle name -> its members (:func:`daedyn.bundles.split` of the members' keys), computed once."""
        if name not in self._bundles:
            members = {member_key(run, seed): (run, seed) for run, seed in self.members(name)}
            self._bundles[name] = {b: [members[k] for k in keys]
                                   for b, keys in split(members, self.config["bundle"]).items()}
        return self._bundles[name]

    def bundle_rule(self, name: str, bundle: str) -> str:
        """The training rule of one bundle: ``<kind>_train_<experiment>_<bundle>``."""
        return f"{self.kind_of[name].rule('train')}_{name}_{bundle}"

    def bundle_of_rule(self, rule: str) -> tuple[str, str] | None:
        """(experiment, bundle) of a bundle's training rule; None for any other rule."""
        if self._rules is None:
            self._rules = {self.bundle_rule(n, b): (n, b) for n in self.kind_of for b in self.bundles(n)}
        return self._rules.get(rule)

    def bundle_outputs(self, name: str, bundle: str) -> list[str]:
        return [self.run_file(name, run, seed) for run, seed in self.bundles(name)[bundle]]

    def bundle_inputs(self, name: str, bundle: str) -> dict[str, list[str]]:
        """Every member's named inputs, each name's paths once (the job opens each file once)."""
        out: dict[str, list[str]] = {}
        for run in dict.fromkeys(run for run, _ in self.bundles(name)[bundle]):
            for key, paths in self.inputs("train", name, run).items():
                out.setdefault(key, [])
                out[key] += [p for p in ([paths] if isinstance(paths, str) else paths) if p not in out[key]]
        return out

    def bundle_params(self, name: str, bundle: str) -> dict:
        """What the bundle's job needs: the config's ``batched`` policy and per member (by key) its params,
        named inputs and output. A member's params are all that change its result, so editing one run
        reruns only its bundle."""
        # the package's source files among the inputs stay out: where the checkout lies is no param
        files = lambda run: {k: v for k, v in self.inputs("train", name, run).items()
                             if not (isinstance(v, str) and v.startswith(self.package))}
        return {"experiment": name, "bundle": bundle, "batched": self.config["batched"], "members": {
            member_key(run, seed): {"params": self.train_params(name, run, seed), "inputs": files(run),
                                    "output": self.run_file(name, run, seed)}
            for run, seed in self.bundles(name)[bundle]}}

    def bundle_memory(self, name: str, bundle: str) -> tuple[dict[str, float], str]:
        """Bytes of arrays the bundle's job holds at most, by config key, and the run that needs most.

        Members trained one after another (the loop) need the largest member's memory; those of an
        engine with a batched trainer (:attr:`daedyn.kinds.Kind.batched`) that the ``batched`` policy
        may use on the run's device (``always``; ``auto`` unless the device is the CPU) are held together, so
        their estimates add up (an upper bound: they share the spectrum and data)."""
        kind, members = self.kind_of[name], self.bundles(name)[bundle]
        policy = self.config["batched"]
        terms = {run: self.memory(name, run) for run in dict.fromkeys(run for run, _ in members)}
        total = lambda run: sum(terms[run].values())
        largest = max(terms, key=total)
        def batches(params) -> bool:
            if params.get("engine", "") not in kind.batched or policy == "never":
                return False
            return policy == "always" or params.get("device") != "cpu"

        batched = [run for run, seed in members if batches(self.train_params(name, run, seed))]
        together = {key: sum(terms[run].get(key, 0.0) for run in batched) for key in terms[largest]}
        if sum(together.values()) > total(largest):
            return together, max(batched, key=total)
        return terms[largest], largest

    def bundle_mem_mb(self, name: str, bundle: str, attempt: int) -> int:
        return self.requested_mb(sum(self.bundle_memory(name, bundle)[0].values()), attempt)

    def bundle_runtime(self, name: str, bundle: str, attempt: int) -> int:
        """Minutes: the start-up once and every member's arithmetic, one after another."""
        kind, exp = self.kind_of[name], self.experiment(name)
        return self.requested_minutes(sum(kind.work(self, exp, run) for run, _ in self.bundles(name)[bundle]),
                                      attempt)

    # ---- what the generated rules ask -----------------------------------------------------------
    def train_params(self, name: str, run: str, seed: int | None) -> dict:
        kind = self.kind_of[name]
        return canonical(kind.train.params(self, name, self.experiment(name), run, seed))

    def step_params(self, step: str, name: str) -> dict:
        kind = self.kind_of[name]
        return canonical(getattr(kind, step).params(self, name, self.experiment(name), None, None))

    def inputs(self, step: str, name: str, run: str | None = None) -> dict:
        kind = self.kind_of[name]
        if run is not None:
            self.run_entry(name, run)
        return getattr(kind, step).inputs(self, name, self.experiment(name), run)

    def checkpoint_every(self, name: str) -> int:
        return self.experiment(name).get("checkpoint_every", 0)

    def gpus(self, name: str) -> int:
        """A GPU is requested only when an experiment asks for CUDA explicitly (auto takes what the node has)."""
        return int(self.experiment(name).get("device") == "cuda")

    def memory(self, name: str, run: str) -> dict[str, float]:
        """Bytes of arrays a run's training job holds, by the config key that drives each part."""
        terms = self.kind_of[name].memory(self, self.experiment(name), run)
        return dict(terms) if isinstance(terms, Mapping) else {"": float(terms)}

    def check_memory(self, jobs, here_mb: float) -> None:
        """Stop before a training job starts that cannot fit: ``jobs`` are (rule, the job's mem_mb request
        or None, whether it runs on this machine, of ``here_mb`` MB); rules other than a bundle's are skipped.

        The need is the interpreter (BASE_MB) and the bundle's estimate (:meth:`bundle_memory`), without
        the safety margin of the request; the error names the key of the largest part, the run, the
        estimate and the limit.
        """
        for rule, requested, here in jobs:
            bundle = self.bundle_of_rule(rule)
            if bundle is None:
                continue
            name = bundle[0]
            terms, run = self.bundle_memory(*bundle)
            need = BASE_MB + sum(terms.values()) / 2**20
            limits = ([(requested, "the memory its job requests (mem_mb)")] if requested else []) + (
                [(here_mb, "the memory of this machine, where the job would run")] if here else [])
            for limit, what in limits:
                if need > limit:
                    key = max(terms, key=terms.get)
                    kind, exp = self.kind_of[name], self.experiment(name)
                    own = run if run in exp.get("runs", {}) else None  # a part or grid point has no entry
                    where, value = f"{kind.section}.{name}", ""
                    if key:
                        where = run_key(where, exp, own, key) if own else f"{where}.{key}"
                        value = f"{run_setting(exp, own, key)} makes "
                    parts = ", ".join(f"{k or 'arrays'} {_size(v / 2**20)}" for k, v in
                                      sorted(terms.items(), key=lambda kv: -kv[1]) if v)
                    config_error(where, f"{value}run {run} need{'' if key else 's'} about {_size(need)} of memory "
                                 f"(the interpreter {_size(BASE_MB)}; {parts}; bundle {bundle[1]}), more than "
                                 f"{what}, {_size(limit)}. Make it smaller, or run the experiment where that much "
                                 "memory is.")

    def aggregate_mem_mb(self, name: str, attempt: int) -> int:
        kind = self.kind_of[name]
        return self.requested_mb(kind.aggregate_memory(self, self.experiment(name)), attempt)

    def requested_mb(self, array_bytes: float, attempt: int) -> int:
        return math.ceil(BASE_MB + self.config["resource_safety"] * array_bytes / 2**20) * attempt

    def requested_minutes(self, seconds: float, attempt: int) -> int:
        """Whole minutes for `seconds` of work at the measured rates plus start-up, with the margin
        `resource_safety`, at least :data:`RUNTIME_FLOOR_MIN`; times the attempt."""
        minutes = math.ceil(self.config["resource_safety"] * (START_S + seconds) / 60)
        return max(RUNTIME_FLOOR_MIN, minutes) * attempt

    def cuda_keys(self, rules) -> list[str]:
        """Config keys `device: cuda` of training jobs, given by their rule names (others are skipped)."""
        names = {bundle[0] for bundle in map(self.bundle_of_rule, rules) if bundle is not None}
        return sorted(f"{self.kind_of[name].section}.{name}.device" for name in names
                      if self.experiment(name).get("device") == "cuda")

    # ---- the shared stages -----------------------------------------------------------------------
    def dataset_params(self, dataset: str) -> dict:
        entry = self.datasets[dataset]
        spec = {"source": entry["source"], "split": entry["split"]}
        if entry["source"] == "synthetic":
            spec["synthetic"] = entry["synthetic"]
        return canonical({"dataset": spec})

    def spectrum_params(self, dataset: str, n: int) -> dict:
        return canonical({"dataset": dataset, "n_samples": int(n), "center": self.datasets[dataset]["center"]})

    def heldout_params(self, dataset: str, n: int, testset: str) -> dict:
        """The training spectrum (dataset, N) and the held-out dataset; both must be configured."""
        for name in (dataset, testset):
            self.check_dataset("datasets", name)
        return canonical({"dataset": dataset, "n_samples": int(n), "testset": testset})

    def dataset_mem_mb(self, dataset: str, attempt: int) -> int:
        """The float64 images twice over (decoded copy, encoded copy)."""
        n, d = self.dataset_shape(dataset)
        return self.requested_mb(2 * n * d * 8, attempt)

    def dataset_runtime(self, dataset: str, attempt: int) -> int:
        """Minutes: reading, checking and storing ran at about 1e7 values/s (MNIST: 4.3 s measured)."""
        n, d = self.dataset_shape(dataset)
        return self.requested_minutes(n * d / 1e7, attempt)

    def spectrum_mem_mb(self, dataset: str, attempt: int) -> int:
        """A few d x d float64 matrices (accumulator, eigenvectors, LAPACK work) plus one block; the
        held-out moment needs the same."""
        _, d = self.dataset_shape(dataset)
        return self.requested_mb((4 * d * d + 4096 * d) * 8, attempt)

    def spectrum_runtime(self, dataset: str, n: int, attempt: int) -> int:
        """Minutes: N d^2 flops for Sigma (float64, read in blocks) and 10 d^3 for eigh at 10 GFLOP/s
        (measured with the reading: MNIST 1.7 s, CIFAR-10 size 6.6 s)."""
        _, d = self.dataset_shape(dataset)
        return self.requested_minutes((int(n) * d * d + 10 * d**3) / 10e9, attempt)

    def heldout_runtime(self, testset: str, attempt: int) -> int:
        """Minutes: N_test d^2 flops for the held-out moment and 2 d^3 for the rotation at 10 GFLOP/s."""
        n, d = self.dataset_shape(testset)
        return self.requested_minutes((n * d * d + 2 * d**3) / 10e9, attempt)

    def scalar_figures(self) -> list[str]:
        return sorted(self.config["scalar_figures"])

    def scalar_figure_params(self, figure: str) -> dict:
        return canonical(self.config["scalar_figures"][figure])

    def sweep_params(self, name: str) -> dict:
        from daedyn.sweep import swept_values
        kind, exp = self.kind_of[name], self.experiment(name)
        return canonical({"experiment": name, "family": kind.name, "grid": swept_values(exp, kind.name),
                          "modes": exp["modes"] if kind.name == "linear" else None})

    # ---- targets ---------------------------------------------------------------------------------
    def spectra(self) -> list[str]:
        return sorted({spectrum_path(s["dataset"], s["n_samples"]) for s in self.config["spectra"]})

    def experiment_targets(self, kind: Kind, name: str) -> list[str]:
        """The training inputs it needs first (spectra), its tables and its figure."""
        spectra = {path for run in kind.runs(self.experiment(name))
                   for path in _flat(self.inputs("train", name, run)) if path.startswith("results/spectra/")}
        tables = [f"results/{name}/{out}" for out in kind.aggregate.outputs.values()]
        figures = [f"results/figures/{name}.{ext}" for ext in ("png", "pdf")]
        return sorted(spectra) + tables + figures

    def sweep_targets(self, name: str) -> list[str]:
        return ([f"results/figures/{name}_sweep.{ext}" for ext in ("png", "pdf")]
                + [f"results/{name}/sweep.csv", f"results/{name}/claims.csv"])

    def beyond_claims(self) -> list[str]:
        """The claims tables of the default target's experiments beyond the paper (results/claims/beyond.csv)."""
        return [f"results/{name}/claims.csv" for kind in self.kinds.values() if kind.beyond
                for name in self.experiments(kind)] + [f"results/{n}/claims.csv" for n in self.swept()]

    def claims_summary(self) -> list[dict[str, str]]:
        """The claims tables of the default target, for results/claims/summary.csv: the paper's theory
        claims (when Figs. 1-4 are built), each sweep's and each experiment's beyond the paper."""
        out = []
        if len(self.scalar_figures()) == 4:
            out.append({"group": "paper", "experiment": "theory (Figs. 1-4)", "kind": "",
                        "table": "results/claims/theory.csv", "figure": ""})
        out += [{"group": "sweep", "experiment": name, "kind": kind.name, "table": f"results/{name}/claims.csv",
                 "figure": f"results/figures/{name}_sweep.png"}
                for kind in self.kinds.values() if kind.sweepable for name in self.experiments(kind)
                if name in self.swept()]
        out += [{"group": "beyond the paper", "experiment": name, "kind": kind.name,
                 "table": f"results/{name}/claims.csv", "figure": f"results/figures/{name}.png"}
                for kind in self.kinds.values() if kind.beyond for name in self.experiments(kind)]
        return out

    def targets(self, paper: bool) -> list[str]:
        """What `snakemake` (paper=False) or `snakemake paper` (True) builds."""
        out = [path for kind in self.kinds.values() for name in self.experiments(kind, paper)
               for path in self.experiment_targets(kind, name)]
        out += [path for name in self.swept(paper) for path in self.sweep_targets(name)]
        if paper:
            return list(dict.fromkeys(out))
        scalar = self.scalar_figures()
        out = self.spectra() + out + [f"results/figures/{f}.{ext}" for f in scalar for ext in ("png", "pdf")]
        if len(scalar) == 4:
            out.append("results/claims/theory.csv")
        if self.beyond_claims():
            out.append("results/claims/beyond.csv")
        if self.claims_summary():
            out += ["results/claims/summary.csv", "results/findings.md"]
        return list(dict.fromkeys(out))


def _size(mb: float) -> str:
    for unit, scale in (("TiB", 2**20), ("GiB", 2**10)):
        if mb >= scale:
            return f"{mb / scale:.1f} {unit}"
    return f"{mb:.0f} MiB"


def _flat(inputs: Mapping[str, Any]) -> list[str]:
    return [p for v in inputs.values() for p in ([v] if isinstance(v, str) else v)]


# ---- paths and helpers the kinds share -----------------------------------------------------------
def spectrum_path(dataset: str, n_samples: int) -> str:
    return f"results/spectra/{dataset}_n{n_samples}.nc"


def heldout_moment_path(dataset: str, n_samples: int, testset: str) -> str:
    return f"results/spectra/{dataset}_n{n_samples}_test_{testset}.nc"


def dataset_path(dataset: str) -> str:
    return f"results/data/{dataset}.nc"


def run_setting(exp: Mapping, run: str | None, key: str) -> Any:
    """A run's own value of a per-run setting, else the experiment's (run None: the experiment's)."""
    return exp["runs"][run].get(key, exp.get(key)) if run is not None else exp.get(key)


def run_key(key: str, exp: Mapping, run: str, name: str) -> str:
    """Config key of a run's value: the run's own entry, or the experiment's default."""
    return f"{key}.runs.{run}.{name}" if name in exp["runs"][run] else f"{key}.{name}"


def check_distinct(key: str, exp: Mapping, *fields: str) -> None:
    for field in fields:
        if len(set(exp[field])) != len(exp[field]):
            config_error(f"{key}.{field}", f"repeated values in {exp[field]}")


def check_modes(plan: Plan, key: str, exp: Mapping, field: str = "modes", run: str | None = None) -> None:
    """A linear network learns at most min(hidden, d) modes, and the data have only d."""
    d = plan.dataset_shape(exp["dataset"])[1]
    hidden = run_setting(exp, run, "hidden")
    where = f"; run {run}" if run is not None else ""
    if exp[field] and max(exp[field]) >= min(hidden, d):
        config_error(f"{key}.{field}", f"mode {max(exp[field])} cannot be learned with hidden={hidden} units on "
                     f"{exp['dataset']!r} (d={d} inputs{where}); modes must be < min(hidden, d) = {min(hidden, d)}")


def check_heldout(plan: Plan, key: str, exp: Mapping) -> None:
    """A held-out set must be configured and have the training set's input dimension."""
    plan.check_dataset(f"{key}.heldout", exp["heldout"])
    d_train, d_test = (plan.dataset_shape(exp[k])[1] for k in ("dataset", "heldout"))
    if d_train != d_test:
        config_error(f"{key}.heldout", f"{exp['heldout']!r} has {d_test} inputs but {exp['dataset']!r} has "
                     f"{d_train}; pair a training set with the held-out split of the same source")


def check_facets(key: str, exp: Mapping, family: str) -> None:
    from daedyn.sweep import SWEEPABLE
    if exp["facet_by"] not in (None, "mode", *SWEEPABLE[family]):
        config_error(f"{key}.facet_by",
                     f"{exp['facet_by']!r} is not mode or a per-run key ({', '.join(SWEEPABLE[family])})")
