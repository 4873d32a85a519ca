"""Thin adapter: rule lr_normalised_figure -> daedyn.jobs.lr_normalised.lr_normalised_figure_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.lr_normalised import lr_normalised_figure_job

lr_normalised_figure_job(
    dict(snakemake.params.spec),
    snakemake.input.comparison,
    [snakemake.output.png, snakemake.output.pdf],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
