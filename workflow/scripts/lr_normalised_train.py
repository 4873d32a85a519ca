"""Thin adapter: rule lr_normalised_train -> daedyn.jobs.lr_normalised.lr_normalised_train_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.lr_normalised import lr_normalised_train_job

lr_normalised_train_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["lr_normalised_experiments"][snakemake.wildcards.lrn_experiment][
        "checkpoint_every"
    ],
)
