"""Thin adapter: rule sampled_figure -> daedyn.jobs.sampled.sampled_figure_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.sampled import sampled_figure_job

sampled_figure_job(
    dict(snakemake.params.spec),
    snakemake.input.summary,
    [snakemake.output.png, snakemake.output.pdf],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
