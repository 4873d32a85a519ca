"""Jobs of the masking-noise experiments: train a run, aggregate with the per-mode approximation, draw.

Training reads the run's settings (:meth:`daedyn.runconfig.MaskingConfig.from_params`).
Aggregation reads: experiment, runs (names), seeds, modes (those the claims judge: metrics.csv has
every mode below H), and Σ's spectrum for the exact fixed point. The figure reads: experiment, modes.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from daedyn import provenance, store
from daedyn.jobs import (JobInfo, checkpoints, load_runs, logged, open_problem, open_spectrum, save_figure, write_claims,
                         write_csv)

log = logging.getLogger("daedyn")

#: the comparison runs of a masked run, by their `noise`, and the variable they become
COMPARISONS = {"per_mode": "u_per_mode", "gaussian": "u_gauss"}


def train_job(params: Mapping[str, Any], spectrum_path: str, dataset_path: str | None, output: str,
              job: JobInfo = JobInfo(), *, threads: int | None = None, checkpoint_every: int = 0) -> None:
    """Train one run (one condition, one seed) → ``results/{experiment}/runs/{run}/seed{seed}.nc``.

    The marginal engine needs only Σ's spectrum (diag Σ follows from it), the sampled engine also
    the data (``dataset_path``); ``threads`` and ``checkpoint_every`` do not change the result. A
    bundle trains its runs with :func:`problem` and :func:`write` the same way.
    """
    from daedyn import masking
    from daedyn.runconfig import MaskingConfig

    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        config = MaskingConfig.from_params(params)
        inputs = {"spectrum": spectrum_path, "dataset": dataset_path}
        result = masking.train(config, problem(config, inputs, job.rule or "masking_train"),
                               checkpoint=checkpoint(), threads=threads, progress=True)
        write(result, params, inputs, output, job, started)


def problem(config, inputs: Mapping[str, str | None], who: str):
    """A run's training problem: Σ's spectrum, and the data for the sampled engine."""
    return open_problem(inputs["spectrum"], config.n_samples, who,
                        inputs.get("dataset") if config.engine == "sampled" else None)


def write(result, params: Mapping[str, Any], inputs: Mapping[str, str | None], output: str, job: JobInfo,
          started: str) -> None:
    """A trained run's file, with its provenance (its params, seed, inputs and device)."""
    from daedyn.training import resolve_device

    config, traj = result.config, result.trajectory
    log.info("%s seed %d: %s engine, noise %s, q=%g (%s), H=%d, gamma=%g, lr=%g (eta_max %.4g), matched "
             "Gaussian eps=%.4g, %d epochs", config.label, config.seed, config.engine, config.noise, config.q,
             config.form, config.hidden, config.gamma, config.lr, float(traj["eta_max"]),
             float(traj["eps_matched"]), config.epochs)
    log.info("final u of modes 0..4: %s", np.array2string(traj["u"].values[-1, :5], precision=4))
    paths = [inputs["spectrum"]] + ([inputs["dataset"]] if config.engine == "sampled" else [])
    store.write_dataset(result.dataset(), output, provenance_attrs=provenance.collect(
        dict(params), rule=job.rule, wildcards=job.wildcards, inputs=paths, seed=config.seed,
        device=str(resolve_device(config.device)), started=started, resumed_from=result.resumed_from))


def by_keep_probability(combined: xr.Dataset) -> xr.Dataset:
    """The masked runs along a dimension "q", each with its comparisons beside it.

    ``combined`` holds runs along "run" (with the coordinates ``noise``, ``q``, ``form`` and
    ``gamma``). The result keeps the runs with masking noise, one per q, and adds ``u_per_mode``
    and ``u_gauss``: the ``u`` of the run with that noise and the same q, form and decay, when
    every masked run has one.
    """
    def key(run):
        return tuple(combined[k].sel(run=run).item() for k in ("q", "form", "gamma"))

    noise = combined["noise"].values
    masked = [str(r) for r in combined["run"].values[noise == "masking"]]
    if not masked:
        raise ValueError("a masking experiment needs at least one run with noise: masking")
    qs = [key(r)[0] for r in masked]
    if len(set(qs)) != len(qs):
        raise ValueError(f"the masked runs {masked} must have distinct keep probabilities q, got {qs}")
    out = combined.sel(run=masked)
    for kind, var in COMPARISONS.items():
        candidates = {key(r): str(r) for r in combined["run"].values[noise == kind]}
        partners = [candidates.get(key(r)) for r in masked]
        if None in partners:
            if any(partners):
                log.warning("%s comparison left out: no %s run with the same q, form and gamma as %s", var, kind,
                            [r for r, p in zip(masked, partners) if p is None])
            continue
        u = combined["u"].sel(run=partners).transpose(*out["u"].dims).values
        noise = "per-mode" if kind == "per_mode" else "isotropic"
        out[var] = (out["u"].dims, u, {"long_name": f"mode strength, {noise} Gaussian noise: u of the same network "
                                                    f"trained with {noise} Gaussian noise (runs {', '.join(partners)})",
                                       "units": "1"})
    return out.swap_dims(run="q").sortby("q", ascending=False)


def metrics_rows(m: xr.Dataset, runs) -> list[dict]:
    """One row per q, seed and mode of :func:`daedyn.masking_analysis.metrics`, with the masked
    run's name (``runs`` along "q")."""
    table = m.to_dataframe().reset_index()
    table.insert(0, "run", table["q"].map(dict(zip(m["q"].values, runs))))
    return table.to_dict("records")


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], spectrum_path: str, combined_out: str,
                  metrics_out: str, claims_out: str, job: JobInfo = JobInfo()) -> None:
    """Combine an experiment's runs by q, add the exact fixed point (from the spectrum at
    ``spectrum_path``) and the per-mode approximation; write combined.nc, metrics.csv and claims.csv."""
    from daedyn import analysis, masking_analysis
    with logged(job):
        started = provenance.now()
        who = job.rule or "masking_aggregate"
        combined = analysis.combine_runs(load_runs(run_paths, who), list(params["runs"]), list(params["seeds"]))
        # the initial weights stay in the run files; modes beyond H cannot be learned
        learnable = min(combined.sizes["mode"], int(combined["hidden_units"].min()))
        combined = combined.drop_vars(["w1_init", "w2_init"]).isel(mode=slice(0, learnable))
        spec = open_spectrum(spectrum_path, None, who)
        combined = masking_analysis.add_theory(by_keep_probability(combined),
                                               (spec["eigenvalue"].values, spec["eigenvector"].values))
        m = masking_analysis.metrics(combined)
        claims = masking_analysis.claims(m.sel(mode=list(params["modes"])))
        write_csv(metrics_rows(m, combined["run"].values), metrics_out)
        write_claims(claims, claims_out)
        store.write_dataset(
            combined, combined_out,
            title=f"daedyn masking experiment {params['experiment']}: runs by keep probability and theory",
            summary="Mode strengths of linear DAEs trained with masking noise (u) along the keep probability q, "
                    "the same networks trained with per-mode (u_per_mode) and one matched (u_gauss) Gaussian "
                    "noise, the exact coupled fixed point (u_star) and the per-mode approximation (u_approx) "
                    "with its fixed points (u_star_approx).",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=[*run_paths, spectrum_path], started=started),
        )


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str],
               job: JobInfo = JobInfo()) -> None:
    """Draw the masking figure of one experiment from its combined file."""
    from daedyn.figures.masking import plot_masking

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "masking_figure")
        save_figure(plot_masking(combined, params["modes"], title=params["experiment"]), outputs)
