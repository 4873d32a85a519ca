"""Thin adapter: rule linear_figure -> daedyn.jobs.linear.figure_job."""
import matplotlib

matplotlib.use("Agg")  # files only, no display; the library itself never picks a backend

from daedyn.jobs import JobInfo
from daedyn.jobs.linear import figure_job

figure_job(
    dict(snakemake.params.spec),
    snakemake.input.combined,
    [snakemake.output.png, snakemake.output.pdf],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
