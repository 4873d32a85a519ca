"""Jobs of the scalar-network figures (paper Figs. 1–4) and the theory claims table."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from daedyn import provenance, store
from daedyn.jobs import JobInfo, logged, save_figure

log = logging.getLogger("daedyn")

TITLES = {
    "fig1": "Fig. 1: learning dynamics, loss surface and GD paths of the scalar linear DAE",
    "fig2": "Fig. 2: predicted dynamics, noise vs weight decay",
    "fig3": "Fig. 3: dynamics at 'optimal' discrete-time learning rates",
    "fig4": "Fig. 4: noise vs weight decay and the norm of the weights",
}


def figure_data_job(figure: str, params: Mapping[str, Any], output: str, job: JobInfo = JobInfo()) -> None:
    """Theory curves and simulations behind one of Figs. 1–4 → ``results/scalar/{figure}.nc``."""
    from daedyn import scalar

    with logged(job):
        started = provenance.now()
        ds = getattr(scalar, f"{figure}_data")(**params)
        log.info("%s: %s", figure, dict(ds.sizes))
        store.write_dataset(
            ds, output, title=TITLES[figure],
            summary=f"Data of the paper's {figure} (scalar linear network): theory curves and gradient-descent runs.",
            provenance_attrs=provenance.collect({"figure": figure, **params}, rule=job.rule,
                                                wildcards=job.wildcards, seed=_seed_rule(params),
                                                started=started),
        )


def _seed_rule(params: Mapping[str, Any]) -> str:
    if "seed_stride" in params:
        return f"trial t draws its initial weights with numpy seed {params['seed_stride']}*t"
    return "none (deterministic theory)"


def figure_plot_job(figure: str, dataset_path: str, outputs: Sequence[str], job: JobInfo = JobInfo()) -> None:
    """Draw one of Figs. 1–4 from its netCDF file (png and pdf, written atomically)."""
    from daedyn.figures import scalar as scalar_figures

    with logged(job):
        ds = store.open_dataset(dataset_path, needed_by=job.rule or "plot")
        save_figure(getattr(scalar_figures, f"plot_{figure}")(ds), outputs)


def claims_job(dataset_paths: Mapping[str, str], output: str, job: JobInfo = JobInfo()) -> str:
    """Check the paper's theory claims on the Figs. 1–4 data → CSV table; returns the printed summary."""
    from daedyn import claims, paper_claims

    with logged(job):
        figs = {name: store.open_dataset(path, needed_by=job.rule or "claims") for name, path in dataset_paths.items()}
        rows = paper_claims.theory_claims(figs["fig1"], figs["fig2"], figs["fig3"], figs["fig4"])
        claims.write_claims_csv(rows, output)
        summary = claims.format_claims(rows)
        log.info("theory claims:\n%s", summary)
        return summary
