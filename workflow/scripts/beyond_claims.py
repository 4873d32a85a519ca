"""Thin adapter: rule beyond_claims -> daedyn.jobs.claims.beyond_claims_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.claims import beyond_claims_job

beyond_claims_job(
    list(snakemake.input.claims),
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
