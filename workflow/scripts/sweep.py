"""Thin adapter: rule sweep -> daedyn.jobs.sweep.sweep_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.sweep import sweep_job

sweep_job(
    dict(snakemake.params.spec),
    snakemake.input.combined,
    [snakemake.output.png, snakemake.output.pdf],
    snakemake.output.table,
    snakemake.output.claims,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
