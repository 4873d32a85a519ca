"""Thin adapter: rule lr_normalised_aggregate -> daedyn.jobs.lr_normalised.lr_normalised_aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.lr_normalised import lr_normalised_aggregate_job

lr_normalised_aggregate_job(
    dict(snakemake.params.spec),
    list(snakemake.input.runs),
    snakemake.input.spectrum,
    snakemake.output.combined,
    snakemake.output.comparison,
    snakemake.output.metrics,
    snakemake.output.claims,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
