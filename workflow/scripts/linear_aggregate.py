"""Thin adapter: rule linear_aggregate -> daedyn.jobs.linear.aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.linear import aggregate_job

aggregate_job(
    dict(snakemake.params.spec),
    list(snakemake.input.runs),
    snakemake.input.spectrum,
    snakemake.output.combined,
    snakemake.output.metrics,
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
    run_spectra=list(snakemake.input.run_spectra),
)
