"""The job of a bundle: one process trains many runs of one experiment and writes each run's file.

A bundle (:mod:`daedyn.bundles`, :meth:`daedyn.plan.Plan.bundle_params`) pays the job's start-up
once. Its runs' files, contents and provenance are those each run would get from a job of its own:
every file is written as its run finishes, with its own params, seed and wildcards in the provenance.

For a kind with a :class:`daedyn.kinds.Trainer` the job opens the inputs once, checks every run's
learning rate against its stability limit before any training (an unstable run fails the bundle,
naming each such run, unless ``allow_unstable``), and trains the runs in groups that share inputs,
engine and shapes (:func:`train_group`): as one batched tensor where the engine has a batched
trainer (:attr:`daedyn.kinds.Kind.batched`) and the config's ``batched`` policy says so for the
group's device (``auto``: on a GPU; on a CPU batching measured no faster, and one run after another
keeps every file bit-identical to a run trained alone), else one run after another. Every run has its own checkpoint (``<run file>.ckpt``; a
batched group's: ``<first run file>.batch.ckpt``), all kept until the bundle's last file is
written, so a killed bundle resumes where it stopped, also runs that had finished but whose files
Snakemake removed as outputs of an incomplete job.

Any other kind's runs go through its train step one after another in this process; each step checks
its run's stability and keeps its checkpoints until its own file is written (a killed bundle then
retrains the runs it had finished, exactly as before).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
from typing import Any, Callable, Iterator, Mapping, Sequence

from daedyn import provenance
from daedyn.jobs import JobInfo, checkpoints, logged, shared_inputs

log = logging.getLogger("daedyn")


def load(name: str) -> Any:
    """The object a ``"module:name"`` (or dotted ``"module.name"``) string names."""
    module, _, attr = name.partition(":") if ":" in name else name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def batched_trainer(name: str | None, policy: str, device: str) -> Callable | None:
    """The batched trainer ``name`` ("module:function", None: the engine has none) if the config's
    ``batched`` policy says to use it on ``device``: ``always``; ``auto`` on a GPU only (module docstring)."""
    from daedyn.training import resolve_device

    if name is None or policy == "never":
        return None
    return load(name) if policy == "always" or resolve_device(device).type == "cuda" else None


def train_group(train: Callable, configs: Sequence, problem, *, checkpoint: Callable[[int | None], Any],
                batched: Callable | None = None, threads: int | None = None, progress: bool = False,
                tell: Callable[[int], None] = lambda i: None) -> Iterator[tuple[int, Any]]:
    """Train runs that share their problem, engine and shapes; yields (index, Run) as runs finish.

    With ``batched`` (the engine's batched trainer) one call trains them all, with the group's
    checkpoint ``checkpoint(None)``; without, ``train`` (the family's one-run trainer) trains them one
    after another, each with its own ``checkpoint(i)``. ``tell(i)`` is called as run i starts. A run
    that diverges fails the group with an error naming it.
    """
    from daedyn.training import DivergenceError

    if batched is not None:
        for i in range(len(configs)):
            tell(i)
        runs = batched(list(configs), problem, checkpoint=checkpoint(None), threads=threads, progress=progress)
        if len(runs) != len(configs):
            raise RuntimeError(f"batched trainer {batched.__qualname__} returned {len(runs)} runs for "
                               f"{len(configs)} configurations")
        yield from enumerate(runs)
        return
    for i, config in enumerate(configs):
        tell(i)
        try:
            run = train(config, problem, checkpoint=checkpoint(i), threads=threads, progress=progress)
        except DivergenceError as err:
            raise DivergenceError(f"{config.label} seed {config.seed}: {err}") from None
        yield i, run


def member_job(job: JobInfo, experiment: str, key: str) -> JobInfo:
    """The JobInfo of one member (key ``run/seed`` or ``run``): the bundle's rule, log and sources, and
    the run's own wildcards, so that its file's provenance names its run and seed."""
    run, _, seed = key.partition("/")
    wildcards = {"experiment": experiment, "run": run, **({"seed": seed} if seed else {})}  # strings, as Snakemake's
    return JobInfo(job.rule, wildcards, None, job.sources)


def bundle_job(kind, spec: Mapping[str, Any], job: JobInfo = JobInfo(), *, threads: int | None = None,
               checkpoint_every: int = 0) -> None:
    """Train every member of a bundle and write each member's run file (module docstring).

    ``spec``: ``experiment``, ``bundle`` and ``members`` (key -> ``params``, named ``inputs``,
    ``output``); ``kind`` the experiment's :class:`daedyn.kinds.Kind`.
    """
    name, bundle, members = spec["experiment"], spec["bundle"], spec["members"]
    with logged(job), shared_inputs():
        log.info("bundle %s of %s: %d runs: %s", bundle, name, len(members), ", ".join(members))
        if kind.trainer is None:
            for i, (key, member) in enumerate(members.items(), 1):
                log.info("bundle %s: run %d/%d %s", bundle, i, len(members), key)
                try:
                    kind.train.function(dict(member["params"]), dict(member["inputs"]), {"run": member["output"]},
                                        member_job(job, name, key), threads=threads,
                                        checkpoint_every=checkpoint_every)
                except Exception as err:
                    err.add_note(f"bundle {bundle} of {name}: run {key}")
                    raise
            return
        with contextlib.ExitStack() as stack:
            named = {key: stack.enter_context(checkpoints(m["output"], checkpoint_every, job))
                     for key, m in members.items()}
            _train_groups(kind, name, bundle, members, named, job, threads, spec["batched"])


def _train_groups(kind, name: str, bundle: str, members: Mapping, named: Mapping, job: JobInfo,
                  threads: int | None, policy: str) -> None:
    """The groups of a kind with a Trainer: stability first, then each group, writing as runs finish."""
    from daedyn.training import GuardChecked, UnstableLearningRateError, guard_only

    trainer = kind.trainer
    steps = importlib.import_module(trainer.jobs)
    train = load(trainer.train)
    config_class = load(kind.config_class)
    who = job.rule or kind.rule("train")
    configs = {key: config_class.from_params(m["params"]) for key, m in members.items()}
    groups: dict[str, list[str]] = {}
    for key, config in configs.items():
        shared = [members[key]["inputs"], [getattr(config, f) for f in trainer.together]]
        groups.setdefault(json.dumps(shared, sort_keys=True, default=str), []).append(key)
    problems = {g: steps.problem(configs[keys[0]], members[keys[0]]["inputs"], who) for g, keys in groups.items()}

    unstable = []
    with guard_only(), _quiet():
        for g, keys in groups.items():
            for key in keys:
                try:
                    train(configs[key], problems[g])
                except GuardChecked:
                    pass
                except UnstableLearningRateError as err:
                    unstable.append(f"run {key}: {err}")
    if unstable:
        raise UnstableLearningRateError(
            f"bundle {bundle} of {name}: {len(unstable)} of {len(members)} runs are above their stability "
            "limit, so none was trained:\n" + "\n".join(unstable))

    done, total, started = 0, len(members), {}
    for g, keys in groups.items():
        engine = getattr(configs[keys[0]], "engine", "")
        batched = batched_trainer(kind.batched.get(engine), policy, configs[keys[0]].device)

        def tell(i, keys=keys, offset=done):
            started[keys[i]] = provenance.now()
            log.info("bundle %s: run %d/%d %s%s", bundle, offset + i + 1, total, keys[i],
                     f" (batched with {len(keys) - 1} more)" if batched and i == 0 and len(keys) > 1 else "")

        runs = train_group(train, [configs[k] for k in keys], problems[g], batched=batched, threads=threads,
                           progress=True, tell=tell,
                           checkpoint=lambda i, keys=keys: named[keys[0]]("batch") if i is None else named[keys[i]]())
        for i, run in runs:
            key = keys[i]
            m = members[key]
            steps.write(run, m["params"], m["inputs"], m["output"], member_job(job, name, key), started[key])
        done += len(keys)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The package's INFO lines off (the stability check repeats what the training logs)."""
    logger = logging.getLogger("daedyn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
