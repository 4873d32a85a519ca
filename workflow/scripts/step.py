"""Thin adapter: any rule of the experiment-kind registry -> the kind's step (daedyn.kinds.run_step)."""
from daedyn.jobs import JobInfo
from daedyn.kinds import run_step

run_step(
    snakemake.config,
    snakemake.rule,
    snakemake.params.spec,
    dict(snakemake.input.items()),
    dict(snakemake.output.items()),
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
)
