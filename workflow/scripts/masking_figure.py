"""Thin adapter: rule masking_figure -> daedyn.jobs.masking.figure_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.masking import figure_job

figure_job(
    dict(snakemake.params.spec),
    snakemake.input.combined,
    [snakemake.output.png, snakemake.output.pdf],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
