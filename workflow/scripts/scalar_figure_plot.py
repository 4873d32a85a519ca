"""Thin adapter: rule scalar_figure_plot -> daedyn.jobs.scalar.figure_plot_job."""
import matplotlib

matplotlib.use("Agg")  # files only, no display; the library itself never picks a backend

from daedyn.jobs import JobInfo
from daedyn.jobs.scalar import figure_plot_job

figure_plot_job(
    snakemake.params.figure,
    snakemake.input.data,
    [snakemake.output.png, snakemake.output.pdf],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
