"""Thin adapter: rule sampled_part -> daedyn.jobs.sampled.sampled_part_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.sampled import sampled_part_job

sampled_part_job(
    dict(snakemake.params.spec),
    snakemake.input.spectrum,
    snakemake.input.dataset,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    threads=snakemake.threads,
    # not a param: the checkpoint cadence does not change the result, so changing it reruns nothing
    checkpoint_every=snakemake.config["sampled_experiments"][snakemake.wildcards.sm_experiment][
        "checkpoint_every"
    ],
)
