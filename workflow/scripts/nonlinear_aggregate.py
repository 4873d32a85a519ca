"""Thin adapter: rule nonlinear_aggregate -> daedyn.jobs.nonlinear.aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.nonlinear import aggregate_job

aggregate_job(
    dict(snakemake.params.spec),
    list(snakemake.input.runs),
    snakemake.input.spectrum,
    snakemake.output.combined,
    snakemake.output.halftimes,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
