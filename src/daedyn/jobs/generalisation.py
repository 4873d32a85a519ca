"""Jobs of the generalisation experiments: the aggregation of an experiment's runs with theory,
metrics and claims, and its figure (the held-out moments: :mod:`daedyn.jobs.heldout`)."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from daedyn import generalisation_analysis, provenance, store
from daedyn.jobs import JobInfo, logged, save_figure, write_claims, write_csv

log = logging.getLogger("daedyn")


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], spectrum_paths: Mapping[int, str],
                  moment_paths: Mapping[int, str], outputs: Mapping[str, str], job: JobInfo = JobInfo()) -> None:
    """Combine one seed's runs over (N, ε) with their theory; write ``outputs`` ``combined``
    (netCDF), ``metrics`` and ``optimal_noise`` (CSV) and ``claims`` (claims.csv).

    ``spectrum_paths[N]`` / ``moment_paths[N]``: the training spectrum and its held-out moment
    for each N of the runs (:func:`daedyn.generalisation_analysis.add_theory`); ``params["eps"]``:
    the run grid (default: every run's ε), the other runs being the fine grid of the ε* search.
    """
    with logged(job):
        started = provenance.now()
        who = job.rule or "generalisation_aggregate"
        runs = [store.open_dataset(p, needed_by=who) for p in run_paths]
        combined, w1, w2 = generalisation_analysis.combine_runs(runs, params.get("eps"))
        spectra = {int(n): store.open_dataset(p, needed_by=who) for n, p in spectrum_paths.items()}
        moments = {int(n): store.open_dataset(p, needed_by=who) for n, p in moment_paths.items()}
        missing = sorted({int(n) for n in combined["n_samples"].values} - (set(spectra) & set(moments)))
        if missing:
            raise ValueError(f"no spectrum or held-out moment given for N = {missing}")
        combined = generalisation_analysis.add_theory(combined, spectra, moments, w1, w2)
        rows = generalisation_analysis.metrics(combined)
        write_csv(rows, outputs["metrics"])
        write_csv(generalisation_analysis.optimal_noise_rows(combined), outputs["optimal_noise"])
        claim_rows = generalisation_analysis.claims(combined, params.get("experiment", ""))
        write_claims(claim_rows, outputs["claims"], f"{params.get('experiment', '')} claims")
        inputs = list(run_paths) + list(spectrum_paths.values()) + list(moment_paths.values())
        store.write_dataset(
            combined, outputs["combined"],
            title=f"daedyn generalisation experiment {params.get('experiment', '')}: runs and per-mode theory",
            summary="Train and held-out errors of linear autoencoders trained on N samples with input noise eps, "
                    "measured and from the per-mode theory, and the optimal training noise per test-noise variance.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=inputs, started=started),
        )


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str],
               job: JobInfo = JobInfo()) -> None:
    """Draw the generalisation figure of one experiment from its combined file."""
    from daedyn.figures.generalisation import plot_generalisation

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "generalisation_figure")
        save_figure(plot_generalisation(combined, title=params.get("experiment", "")), outputs)
