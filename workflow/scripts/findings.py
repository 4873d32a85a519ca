"""Thin adapter: rule findings -> daedyn.jobs.claims.findings_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.claims import findings_job

findings_job(
    snakemake.input.summary,
    snakemake.output.page,
    snakemake.output.rst,
    snakemake.config.get("kinds", []),
    JobInfo(snakemake.rule, {}, snakemake.log[0]),
)
