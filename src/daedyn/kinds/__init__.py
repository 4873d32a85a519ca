"""The registry of experiment kinds: every kind is declared once, here, and the workflow is generated from it.

A :class:`Kind` says everything the workflow needs to know about one family of experiments:

* its config section (``<name>_experiments``) and the schema entry each experiment validates against;
* its run configuration class and engines (for the reader; the jobs build them);
* how an experiment expands into runs (:attr:`Kind.runs`, :attr:`Kind.seeds`) and where a run's
  file lies (:attr:`Kind.run_file`);
* its three steps, train, aggregate and figure (:class:`Step`): the job function, its inputs,
  params, outputs, report entries and the package modules whose edits change its outputs;
* its resource estimates (:attr:`Kind.memory`, :attr:`Kind.work`), and its config checks.

``workflow/rules/kinds.smk`` loops over the registry and creates the rules
``<kind>_train_<experiment>_<bundle>`` (one per bundle of runs, :mod:`daedyn.bundles`),
``<kind>_aggregate`` and ``<kind>_figure``; ``workflow/scripts/step.py`` runs any of them through
:func:`run_step`; a bundle's job is :func:`daedyn.jobs.bundle.bundle_job`. A kind defined outside the
package registers itself by being named in the config's ``kinds`` list (a module that defines ``KIND``). Nothing here imports torch or Snakemake:
the workflow plans with it, and a notebook can read it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["BUILTIN", "Kind", "Step", "Trainer", "figure_step", "kind_of_rule", "load", "run_step"]

#: the kinds shipped with daedyn: every module of this package (a new one registers by existing)
BUILTIN = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))

#: modules every job imports (logging, provenance, the netCDF writer): a source of every step
CORE_SOURCES = ("__init__", "provenance", "store", "jobs/__init__")


@dataclass(frozen=True)
class Step:
    """One workflow step of a kind.

    ``function(spec, inputs, outputs, job, **runtime)`` runs the step in its job: the step's params
    (``spec``), its named input and output paths, a :class:`daedyn.jobs.JobInfo`, and for training
    ``threads`` and ``checkpoint_every`` (they change no result, so they are not params). It adapts
    those to a job function of :mod:`daedyn.jobs` and imports it only when called. A train step's
    function trains one run (``outputs["run"]``); a bundle's job calls it for each of its runs, unless
    the kind has a :class:`Trainer`.
    ``inputs(plan, name, exp, run)`` gives the named inputs (``run`` is None for the aggregate and
    figure steps); ``params(plan, name, exp, run, seed)`` the params, that is every value that changes
    the step's result and nothing else. ``outputs`` maps output names to file
    names (aggregate: under ``results/{experiment}/``; figure: ``png``/``pdf`` in
    ``results/figures/``). ``report`` maps output names to (caption file in ``workflow/report/``,
    label). ``sources`` are the package modules (paths under ``src/daedyn`` without ``.py``) whose
    edits rerun the step. The kind's own module is none of them: it plans and adapts, and a change of
    what it passes on shows up as changed params or inputs, which rerun the step by themselves.
    """

    function: Callable[..., None]
    sources: tuple[str, ...]
    params: Callable[..., dict]
    inputs: Callable[..., dict] = lambda plan, name, exp, run: {}
    outputs: Mapping[str, str] = field(default_factory=dict)
    report: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def figure_step(job: str, table: str, sources: tuple[str, ...], params: Callable[..., dict],
                caption: str | None = None) -> Step:
    """The figure step of a kind: ``job`` (``"module:function"``, imported when the step runs) is called as
    ``function(spec, table_path, [png, pdf], job_info)`` and draws one file of the experiment's
    aggregation, ``table`` (e.g. ``"combined.nc"``), which is the step's input of that stem."""
    key = table.split(".")[0]

    def draw(spec, inputs, outputs, info):
        module, _, function = job.partition(":")
        getattr(importlib.import_module(module), function)(spec, inputs[key], [outputs["png"], outputs["pdf"]], info)

    return Step(draw, sources, params, lambda plan, name, exp, run: {key: f"results/{name}/{table}"},
                report={"png": (caption, "figure")} if caption else {})


@dataclass(frozen=True)
class Trainer:
    """How a bundle's job trains a kind's runs in groups (:func:`daedyn.jobs.bundle.bundle_job`); a kind
    without one has each run trained by its train step's function, one after another in the job.

    ``train`` (``"module:function"``) trains one run: ``train(config, problem, *, checkpoint, threads,
    progress) -> Run``. ``jobs`` names the kind's job module, which gives ``problem(config, inputs,
    who)`` (the :class:`daedyn.training.Problem` of a run's named inputs) and ``write(run, params,
    inputs, output, job, started)`` (the run file with its provenance). Runs with the same inputs and
    the same values of the config fields ``together`` (engine, shapes, dtype, device, epochs, ...) form
    a group, trained by one call of the kind's batched trainer (:attr:`Kind.batched`) where its engine
    has one, else one run after another.
    """

    train: str
    jobs: str
    together: tuple[str, ...]


@dataclass(frozen=True)
class Kind:
    """One experiment kind (see the module docstring)."""

    name: str
    title: str                      # the report's subcategory and the kind's name in words
    config_class: str               # "daedyn.runconfig.LinearConfig": what a run's params become
    engines: tuple[str, ...]        # the engine classes that train it
    train: Step
    aggregate: Step
    figure: Step
    #: experiment -> {run name: the run's own values}; the default is the experiment's ``runs``
    runs: Callable[[Mapping], dict[str, dict]] = lambda exp: dict(exp["runs"])
    #: experiment -> its seeds (each run's seeds have a file each, unless ``file_per_seed`` is False:
    #: then a run's one file holds every seed and its path has no ``{seed}``)
    seeds: Callable[[Mapping], list[int]] = lambda exp: list(exp["seeds"])
    file_per_seed: bool = True
    run_pattern: str = "[a-z][a-z0-9_]*"
    #: (plan, exp, run) -> bytes of arrays a training job holds, by the config key that drives each part
    #: ({"hidden": ..., "epochs": ...}: a run too big names the key of its largest part; a number: no key),
    #: and seconds of arithmetic it does
    memory: Callable[..., Mapping[str, float] | float] = lambda plan, exp, run: 0.0
    work: Callable[..., float] = lambda plan, exp, run: 0.0
    threads: int = 1
    #: (plan, exp) -> bytes the aggregation holds; None: a light aggregation, run where Snakemake runs
    aggregate_memory: Callable[..., float] | None = None
    #: (plan, key, exp) -> None; raises daedyn.configcheck.ConfigError naming the key
    check: Callable[..., None] = lambda plan, key, exp: None
    #: how a bundle trains its runs in groups (None: one after another through the train step)
    trainer: Trainer | None = None
    #: engine (the run config's ``engine``, "" for a kind without that key) -> its batched trainer,
    #: ``"module:function"`` called as ``train_batch(configs, problem, *, checkpoint, threads, progress)``
    #: and returning one Run per config, in order; an engine not named trains its group's runs one by one
    batched: Mapping[str, str] = field(default_factory=dict)
    sweepable: bool = False         # a `sweep:` grid expands into runs (daedyn.sweep)
    beyond: bool = True             # its claims.csv joins results/claims/beyond.csv
    #: "module:function" that writes the kind's paragraph on the findings page (results/findings.md):
    #: ``function(experiment, tables, claims) -> str``, ``tables`` the rows of each CSV table of the
    #: experiment's aggregation by file name ({"metrics.csv": [...]}), ``claims`` its rows of
    #: results/claims/summary.csv. None: a paragraph counted from the claims (daedyn.findings)
    findings: str | None = None
    schema_def: str | None = None   # its experiments' entry under $defs of config.schema.yaml ...
    schema: Mapping[str, Any] | None = None  # ... or the schema itself (a kind outside the package)

    @property
    def section(self) -> str:
        return f"{self.name}_experiments"

    @property
    def run_file(self) -> str:
        return ("results/{experiment}/runs/{run}/seed{seed}.nc" if self.file_per_seed
                else "results/{experiment}/runs/{run}.nc")

    def rule(self, step: str) -> str:
        return f"{self.name}_{step}"

    def sources(self, step: str) -> list[str]:
        return list(dict.fromkeys(CORE_SOURCES + getattr(self, step).sources))


def load(extra: list[str] | tuple[str, ...] = ()) -> dict[str, Kind]:
    """The registry: the built-in kinds and those of the modules named in ``extra`` (each defines ``KIND``)."""
    kinds = {}
    for module in [f"daedyn.kinds.{name}" for name in BUILTIN] + list(extra):
        try:
            kind = importlib.import_module(module).KIND
        except (ImportError, AttributeError) as err:
            from daedyn.configcheck import ConfigError
            raise ConfigError(f"Invalid config: kinds: {module!r} is not an importable module that defines "
                              f"KIND ({err}); put it on PYTHONPATH or remove it from `kinds`") from None
        if kind.name in kinds:
            from daedyn.configcheck import ConfigError
            raise ConfigError(f"Invalid config: kinds: {module!r} declares kind {kind.name!r}, which exists "
                              "already; give it another name")
        kinds[kind.name] = kind
    return kinds


def kind_of_rule(kinds: Mapping[str, Kind], rule: str) -> tuple[Kind, str]:
    """The kind and step ("train", "aggregate", "figure") of a generated rule's name: ``<kind>_<step>``,
    or a bundle's ``<kind>_train_<experiment>_<bundle>``."""
    name, _, step = rule.rpartition("_")
    if name in kinds and step in ("train", "aggregate", "figure"):
        return kinds[name], step
    for name in sorted(kinds, key=len, reverse=True):
        if rule.startswith(f"{name}_train_"):
            return kinds[name], "train"
    raise KeyError(f"{rule!r} is not a rule of the experiment-kind registry")


def run_step(config: Mapping, rule: str, spec: Mapping, inputs: Mapping, outputs: Mapping, job, *,
             threads: int | None = None) -> None:
    """Run the step of a generated rule (what ``workflow/scripts/step.py`` calls).

    ``inputs``/``outputs``: the rule's named files (a list where the rule gives several). A training
    step also gets ``threads`` and the experiment's ``checkpoint_every``, read from the config here
    rather than passed as params: neither changes a result, so changing them reruns nothing. A
    bundle's rule (``spec`` names its members, :meth:`daedyn.plan.Plan.bundle_params`) runs
    :func:`daedyn.jobs.bundle.bundle_job`; ``<kind>_train`` itself trains one run. The job
    learns the modules whose edits rerun it (``job.sources``: the step's sources and any package
    module among its inputs), the same list that makes Snakemake rerun it, so that a checkpoint of
    other code is not resumed.
    """
    kinds = load(config.get("kinds", []))
    kind, step = kind_of_rule(kinds, rule)
    files = lambda named: {k: v if isinstance(v, str) else list(v) for k, v in named.items()}
    runtime = {}
    bundle = step == "train" and rule != kind.rule("train")
    if step == "train":
        experiment = config[kind.section][spec["experiment"] if bundle else job.wildcards["experiment"]]
        runtime = {"threads": threads, "checkpoint_every": experiment.get("checkpoint_every", 0)}
    package = Path(__file__).resolve().parents[1]
    named = [Path(p).resolve() for v in inputs.values() for p in ([v] if isinstance(v, str) else v)]
    modules = [str(p.relative_to(package).with_suffix("")) for p in named
               if p.suffix == ".py" and p.is_relative_to(package)]
    job = dataclasses.replace(job, sources=tuple(dict.fromkeys([*kind.sources(step), *modules])))
    if bundle:
        from daedyn.jobs.bundle import bundle_job
        bundle_job(kind, spec, job, **runtime)
        return
    getattr(kind, step).function(dict(spec), files(inputs), files(outputs), job, **runtime)
