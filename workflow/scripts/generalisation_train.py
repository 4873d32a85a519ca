"""Thin adapter: rule generalisation_train -> daedyn.jobs.linear.train_runs_job (every eps of one N)."""
from daedyn.jobs import JobInfo
from daedyn.jobs.linear import train_runs_job

train_runs_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    heldout_path=snakemake.input.heldout,
    threads=snakemake.threads,
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["generalisation_experiments"][snakemake.wildcards.gen_experiment][
        "checkpoint_every"],
)
