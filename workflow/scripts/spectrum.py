"""Thin adapter: rule spectrum -> daedyn.jobs.spectrum_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.spectrum import spectrum_job

spectrum_job(
    dict(snakemake.params.spec),
    snakemake.input.dataset,
    snakemake.output[0],
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
