"""Thin adapter: rule depth_train -> daedyn.jobs.depth.train_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.depth import train_job

train_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["depth_experiments"][snakemake.wildcards.depth_experiment]["checkpoint_every"],
)
