# What must be Snakemake: the plan of daedyn.plan (config validation, runs, params, inputs, resources
# and targets, all tested Python) made available to the rules, wildcard constraints, the environment
# of the jobs, and the CUDA and memory checks before jobs start. No rules here.
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from daedyn.configcheck import ConfigError
from daedyn.plan import Plan, machine_mb

# The package's own sources are declared as inputs, so that editing a module reruns exactly the rules
# that import it (imports are invisible to Snakemake otherwise). Relative to the working directory, so
# that moving a checkout together with its results does not make every job look changed.
REPO = Path(os.path.relpath(workflow.basedir))
LOCK = str(REPO / "requirements.lock")

try:
    PLAN = Plan(config, package=str(REPO / "src" / "daedyn"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None


def report_category(kind):
    """The report's category of a kind's figures and tables: the paper's, or beyond it."""
    return "Beyond the paper" if kind.beyond else "The paper"


def package_sources(*modules):
    """Source files of daedyn modules a rule uses, plus the core every job imports."""
    from daedyn.kinds import CORE_SOURCES

    return [PLAN.source(m) for m in dict.fromkeys(CORE_SOURCES + modules)]


wildcard_constraints:
    dataset="[a-z][a-z0-9_]*",
    n=r"\d+",
    figure="fig[1-4]",
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
# shared environment); not a param, since where the checkout lies changes no result. Kinds named in
# the config's `kinds` are imported by the jobs too: their folders travel on PYTHONPATH.
os.environ.update(
    DAEDYN_WORKFLOW_SOURCE=str((Path(workflow.basedir) / "src").resolve())
)


def check_cuda_here():
    """`device: cuda` without CUDA fails here, before any job, when the jobs run on this machine.

    Called when the jobs are about to start (not in dry runs): only then is it known whether they
    run here or are submitted by a cluster executor, whose GPU nodes the login node cannot judge.
    """
    keys = PLAN.cuda_keys(
        job.rule.name
        for job in workflow.dag.needrun_jobs()
        if workflow.local_exec or job.is_local
    )
    if not keys:
        return
    import torch

    if not torch.cuda.is_available():
        raise WorkflowError(
            f"Invalid config: {', '.join(keys)}: cuda, but CUDA is not available on this machine, "
            "where the jobs would run. Use device: auto (CUDA when available, else the CPU) or cpu, "
            "or submit the jobs to GPU nodes with a cluster profile (--profile profiles/slurm)."
        )


def check_memory_here():
    """A training job that cannot fit stops here, before any job starts: its estimate against the
    memory it requests and, when it runs on this machine, against this machine's memory.
    """
    try:
        PLAN.check_memory(
            (
                (
                    job.rule.name,
                    job.resources.get("mem_mb"),
                    workflow.local_exec or job.is_local,
                )
                for job in workflow.dag.needrun_jobs()
            ),
            machine_mb(),
        )
    except ConfigError as err:
        raise WorkflowError(str(err)) from None


onstart:
    check_cuda_here()
    check_memory_here()


# `snakemake` builds ALL_TARGETS (quick on a small CPU); `snakemake paper` the paper-scale
# experiments (`paper: true`), which are GPU work.
ALL_TARGETS = PLAN.targets(paper=False)
PAPER_TARGETS = PLAN.targets(paper=True)
