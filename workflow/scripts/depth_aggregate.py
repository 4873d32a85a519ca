"""Thin adapter: rule depth_aggregate -> daedyn.jobs.depth.aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.depth import aggregate_job

aggregate_job(
    dict(snakemake.params.spec),
    list(snakemake.input.runs),
    snakemake.output.combined,
    snakemake.output.metrics,
    snakemake.output.claims,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
