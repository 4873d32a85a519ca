"""Thin adapter: rule claims_summary -> daedyn.jobs.claims.claims_summary_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.claims import claims_summary_job

claims_summary_job(
    list(snakemake.params.sources),
    snakemake.output.table,
    snakemake.output.page,
    JobInfo(snakemake.rule, {}, snakemake.log[0]),
)
