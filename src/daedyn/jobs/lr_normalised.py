"""Jobs of the noise-against-weight-decay comparison at matched stability (:mod:`daedyn.lr_normalised`)."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from daedyn import provenance, store
from daedyn.jobs import (JobInfo, checkpoints, load_runs, logged, open_problem, open_spectrum, save_figure,
                         write_claims, write_csv)

log = logging.getLogger("daedyn")



def lr_normalised_train_job(params: Mapping[str, Any], spectrum_path: str, output: str, job: JobInfo = JobInfo(), *,
                            threads: int | None = None, checkpoint_every: int = 0) -> None:
    """Train one planned run → ``results/runs/{experiment}/{run}/seed{seed}.nc``.

    ``params`` (:meth:`daedyn.runconfig.LrNormalisedConfig.from_params`) hold the grid values of this
    run only; its learning rate, γ and length follow from the spectrum. ``threads`` and
    ``checkpoint_every`` (0: no checkpoints) do not change the result.
    """
    from daedyn import lr_normalised
    from daedyn.runconfig import LrNormalisedConfig
    from daedyn.training import resolve_device

    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        config = LrNormalisedConfig.from_params(params)
        problem = open_problem(spectrum_path, config.n_samples, job.rule or "lr_normalised_train")
        out, resumed_from = lr_normalised.train_lr_normalised(config, problem, checkpoint=checkpoint(), threads=threads,
                                                              progress=True)
        store.write_dataset(out, output, provenance_attrs=provenance.collect(
            dict(params), rule=job.rule, wildcards=job.wildcards, inputs=[spectrum_path], seed=config.seed,
            device=str(resolve_device(config.device)), started=started, resumed_from=resumed_from))


def lr_normalised_aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], spectrum_path: str,
                                combined_out: str, comparison_out: str, metrics_out: str, claims_out: str,
                                job: JobInfo = JobInfo()) -> None:
    """The runs with the exact per-mode theory (combined.nc), the WDAE/DAE step counts per mode
    (comparison.nc, metrics.csv) and the experiment's claims (claims.csv)."""
    from daedyn import lr_normalised

    with logged(job):
        started = provenance.now()
        who = job.rule or "lr_normalised_aggregate"
        V = open_spectrum(spectrum_path, None, who)["eigenvector"].values
        combined = lr_normalised.add_lr_theory(
            lr_normalised.combine_lr_normalised(load_runs(run_paths, who), V, params["modes"]))
        comp = lr_normalised.lr_normalised_comparison(combined)
        rows = lr_normalised.lr_normalised_rows(comp)
        for row in rows:
            if row["compared"]:
                log.info("%(wdae_run)s mode %(mode)d: steps to 90 %% DAE %(t90_dae_measured).0f, WDAE "
                         "%(t90_wdae_measured).0f, ratio %(ratio90_measured).3f (predicted %(ratio90_predicted).3f)",
                         row)
        write_csv(rows, metrics_out)
        write_claims(lr_normalised.lr_normalised_claims(comp, params["experiment"]), claims_out)
        prov = provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                  inputs=list(run_paths) + [spectrum_path], started=started)
        store.write_dataset(
            combined, combined_out, provenance_attrs=prov,
            title=f"daedyn experiment {params['experiment']}: DAE and WDAE at matched stability, with theory",
            summary="Mode strengths u of DAE and WDAE runs, each at a fraction of its own network stability "
                    "limit, with the exact per-mode discrete theory from each mode's initial weights (u_theory).")
        store.write_dataset(
            comp, comparison_out, provenance_attrs=prov,
            title=f"daedyn experiment {params['experiment']}: steps to each model's own plateau, WDAE against DAE",
            summary="Per WDAE run and mode: steps of the WDAE and of its DAE baseline (same fraction of each "
                    "model's stability limit) to 50 % and 90 % of their own plateaus, measured and predicted, "
                    "and their ratio.")


def lr_normalised_figure_job(params: Mapping[str, Any], comparison_path: str, outputs: Sequence[str],
                             job: JobInfo = JobInfo()) -> None:
    """The step ratio WDAE/DAE against λᵢ, measured and predicted, with the early-growth curve."""
    from daedyn.figures.lr_normalised import plot_lr_normalised

    with logged(job):
        comp = store.open_dataset(comparison_path, needed_by=job.rule or "lr_normalised_figure")
        save_figure(plot_lr_normalised(comp, title=params["experiment"]), outputs)
