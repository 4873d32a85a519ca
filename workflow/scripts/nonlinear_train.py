"""Thin adapter: rule nonlinear_train -> daedyn.jobs.nonlinear.train_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.nonlinear import train_job

train_job(
    dict(snakemake.params.spec),
    snakemake.input.dataset,
    snakemake.input.spectrum,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["nonlinear_experiments"][snakemake.wildcards.nl_experiment]["checkpoint_every"],
)
