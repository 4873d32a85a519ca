"""Thin adapter: rule linear_train -> daedyn.jobs.linear.train_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.linear import train_job

train_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    snakemake.input.get("dataset"),
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
)
