"""Thin adapter: rule masking_aggregate -> daedyn.jobs.masking.aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.masking import aggregate_job

aggregate_job(
    dict(snakemake.params.spec),
    list(snakemake.input.runs),
    snakemake.output.combined,
    snakemake.output.metrics,
    snakemake.output.claims,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
