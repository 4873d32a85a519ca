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
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["linear_experiments"][snakemake.wildcards.experiment]["checkpoint_every"],
)
