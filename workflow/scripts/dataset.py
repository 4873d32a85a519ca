"""Thin adapter: rule dataset -> daedyn.jobs.dataset_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.dataset import dataset_job

dataset_job(
    dict(snakemake.params.spec),
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
