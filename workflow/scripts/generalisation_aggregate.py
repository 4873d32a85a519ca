"""Thin adapter: rule generalisation_aggregate -> daedyn.jobs.generalisation.aggregate_job."""
from daedyn.jobs import JobInfo
from daedyn.jobs.generalisation import aggregate_job

spec = dict(snakemake.params.spec)
aggregate_job(
    spec,
    list(snakemake.input.runs),
    dict(zip(spec["n_samples"], snakemake.input.spectra)),
    dict(zip(spec["n_samples"], snakemake.input.moments)),
    {k: snakemake.output[k] for k in ("combined", "metrics", "optimal_noise", "claims")},
    JobInfo(snakemake.rule, dict(snakemake.wildcards), snakemake.log[0]),
)
