"""Thin adapter: rule heldout_moment -> daedyn.jobs.heldout.heldout_moment_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.heldout import heldout_moment_job

heldout_moment_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    snakemake.input.dataset,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
