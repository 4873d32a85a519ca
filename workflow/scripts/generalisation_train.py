"""Thin adapter: rule generalisation_train -> daedyn.jobs.linear.train_job (a linear run with held-out errors)."""
from daedyn.jobs import JobInfo
from daedyn.jobs.linear import train_job

train_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    None,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["generalisation_experiments"][snakemake.wildcards.gen_experiment][
        "checkpoint_every"],
    heldout_path=snakemake.input.heldout,
)
