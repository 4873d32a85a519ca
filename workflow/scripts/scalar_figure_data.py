"""Thin adapter: rule scalar_figure_data -> daedyn.jobs.scalar.figure_data_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.scalar import figure_data_job

figure_data_job(
    snakemake.params.figure,
    dict(snakemake.params.spec),
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
