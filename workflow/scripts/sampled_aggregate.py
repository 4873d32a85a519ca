"""Thin adapter: rule sampled_aggregate -> daedyn.jobs.sampled.sampled_aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.sampled import sampled_aggregate_job

sampled_aggregate_job(
    dict(snakemake.params.spec),
    list(snakemake.input.trajectories),
    snakemake.input.variance,
    snakemake.input.fixed,
    snakemake.input.spectrum,
    snakemake.input.dataset,
    snakemake.output.summary,
    snakemake.output.metrics,
    snakemake.output.claims,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
