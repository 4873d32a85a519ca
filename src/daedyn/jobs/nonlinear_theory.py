"""Jobs of the nonlinear-theory experiments (:mod:`daedyn.nonlinear_theory`): train a run (every condition
and seed of one activation, or the data run and its Gaussian twin), aggregate against the theory, draw.

Training reads the run's settings (:meth:`daedyn.nonlinear_theory.NonlinearTheoryConfig.from_params`).
Aggregation reads: experiment, runs (name → the run's training params), ode_dt, tolerance. The figure
reads: experiment.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from daedyn import provenance, store
from daedyn.jobs import JobInfo, logged, open_problem, save_figure, write_claims, write_csv

log = logging.getLogger("daedyn")


def train_job(params: Mapping[str, Any], spectrum_path: str | None, dataset_path: str | None, output: str,
              job: JobInfo = JobInfo(), *, threads: int | None = None, checkpoint_every: int = 0) -> None:
    """Train one run → ``results/{experiment}/runs/{run}.nc``: every (σ², η) condition and seed of one
    activation on spiked Gaussian inputs, or (``source: data``) the network on the dataset made spiked
    (:func:`daedyn.nonlinear_online.spiked_data`, from the spectrum and the data) beside its Gaussian twin
    with the same spikes, along ``source``."""
    import xarray as xr

    from daedyn import nonlinear_online as online, nonlinear_theory as nt
    from daedyn.training import Checkpoint, resolve_device

    with logged(job):
        started = provenance.now()
        config = nt.NonlinearTheoryConfig.from_params(params)
        who = job.rule or "nonlinear_theory_train"

        def checkpoint(tag):
            return Checkpoint(f"{output}.{tag}.ckpt", checkpoint_every) if checkpoint_every else None

        inputs, facts, resumed = [], {}, []
        if config.source == "gaussian":
            run = online.train(config, checkpoint=checkpoint("gaussian"), threads=threads, progress=True)
            ds, resumed = run.dataset(), run.resumed_from
        else:
            problem = open_problem(spectrum_path, config.n_samples, who, dataset_path)
            Y, spikes, facts = online.spiked_data(problem.X, problem.lam, problem.V, config.dim, config.data_spikes,
                                              config.bulk)
            del problem
            log.info("%s: %s made spiked in D=%d: spikes %s over a whitened bulk (mean bulk variance %.4g, smallest "
                     "kept %.4g)", config.label, config.dataset, config.dim, np.round(spikes, 3),
                     facts["bulk_mean_variance"], facts["smallest_kept_variance"])
            parts = []
            for source in ("data", "gaussian"):
                run = online.train(config.with_spikes(spikes, source), X=Y if source == "data" else None,
                               checkpoint=checkpoint(source), threads=threads, progress=True)
                parts.append(run.dataset())
                resumed += run.resumed_from
            for name in ("err_denoise_data", "err_recon_data"):
                parts[1][name] = xr.full_like(parts[1]["err_denoise"], np.nan).assign_attrs(parts[0][name].attrs)
            ds = xr.concat(parts, "source", combine_attrs="drop_conflicts")
            ds["source"].attrs.update(long_name="inputs: data (made spiked) or gaussian (its spiked Gaussian twin)")
            ds.attrs.update({f"data_{k}": v for k, v in facts.items()})
            inputs = [spectrum_path, dataset_path]
        final = ds["err_denoise"].isel(t=-1).mean("seed")
        log.info("%s: %s, D=%d, K=%d, final denoising error (mean over seeds) per sigma^2 x lr:\n%s", config.label,
                 config.activation, config.dim, config.hidden, np.array2string(final.values, precision=4))
        store.write_dataset(
            ds, output, provenance_attrs=provenance.collect(
                dict(params), rule=job.rule, wildcards=job.wildcards, inputs=inputs, seed=config.init_seed,
                device=str(resolve_device(config.device)), started=started, resumed_from=resumed),
            title=f"daedyn experiment {config.experiment}: run {config.run}",
            summary=f"Online SGD of a D -> K -> D {config.activation} autoencoder, {config.seeds} seeds per (noise "
                    "variance, learning rate): exact order parameters of the weights and the errors they give.")


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], combined_out: str, metrics_out: str,
                  claims_out: str, job: JobInfo = JobInfo()) -> None:
    """The theory beside every run (combined.nc), deviations of SGD from it (metrics.csv) and the claims."""
    from daedyn import nonlinear_theory_analysis as nta

    with logged(job):
        started = provenance.now()
        who = job.rule or "nonlinear_theory_aggregate"
        names = [Path(path).stem for path in run_paths]           # runs/{run}.nc, in the runs' order
        if sorted(names) != sorted(params["runs"]):
            raise ValueError(f"run files {list(run_paths)} for the runs {sorted(params['runs'])}")
        runs = {name: nta.add_theory(store.open_dataset(path, needed_by=who), params["runs"][name], params["ode_dt"])
                for name, path in zip(names, run_paths)}
        combined = nta.combine(runs)
        rows = nta.metrics_rows(combined)
        write_csv(rows, metrics_out)
        write_claims(nta.claims_rows(combined, params["experiment"], params["tolerance"]), claims_out)
        store.write_dataset(
            combined, combined_out,
            title=f"daedyn experiment {params['experiment']}: nonlinear autoencoder, online SGD against its ODE theory",
            summary="Order parameters and errors of online SGD (every seed) beside the order-parameter ODEs "
                    "(theory_*), one run per activation on spiked Gaussian inputs and, optionally, a run on real "
                    "data made spiked with its Gaussian twin.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=list(run_paths), started=started))


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str], job: JobInfo = JobInfo()) -> None:
    """Errors and spike overlaps against time, theory beside SGD (:func:`daedyn.figures.nonlinear_theory.plot_nonlinear_theory`)."""
    from daedyn.figures.nonlinear_theory import plot_nonlinear_theory

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "nonlinear_theory_figure")
        save_figure(plot_nonlinear_theory(combined, title=params["experiment"]), outputs)
