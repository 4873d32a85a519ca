"""Thin adapter: rule theory_claims -> daedyn.jobs.scalar.claims_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.scalar import claims_job

claims_job(
    {fig: snakemake.input[fig] for fig in snakemake.params.figures},
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
