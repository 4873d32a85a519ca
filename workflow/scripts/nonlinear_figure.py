"""Thin adapter: rule nonlinear_figure -> daedyn.jobs.nonlinear.figure_job."""
import matplotlib

matplotlib.use("Agg")  # files only, no display; the library itself never picks a backend

from daedyn.jobs import JobInfo
from daedyn.jobs.nonlinear import figure_job

figure_job(
    dict(snakemake.params.spec),
    snakemake.input.combined,
    [snakemake.output.png, snakemake.output.pdf],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
