"""Jobs of the nonlinear-network experiments (paper Fig. 6): train a run, aggregate with the
linear theory and half-times, draw.

``params`` is a plain dict of the experiment's config values. Training reads: experiment, run,
seed, dataset, n_samples, hidden, activation, lr, epochs, log_every, init_std, batch_size, dtype,
device, k_modes, noise_std (a noise STANDARD DEVIATION), weight_decay (torch SGD's). Aggregation
reads: experiment, runs (names, or a mapping name -> settings), seeds (or seed). The figure reads:
experiment.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from daedyn import provenance, store
from daedyn.jobs import JobInfo, checkpoints, load_runs, logged, open_problem, save_figure, write_csv

log = logging.getLogger("daedyn")


def train_job(params: Mapping[str, Any], dataset_path: str, spectrum_path: str, output: str,
              job: JobInfo = JobInfo(), *, threads: int | None = None, checkpoint_every: int = 0) -> None:
    """Train one run (one condition, one seed) → ``results/{experiment}/runs/{run}/seed{seed}.nc``.

    ``params`` are the run's settings (:meth:`daedyn.runconfig.NonlinearConfig.from_params`);
    ``threads`` and ``checkpoint_every`` (0: no checkpoints) do not change the result. A bundle
    trains its runs with :func:`problem` and :func:`write` the same way.
    """
    from daedyn import nonlinear
    from daedyn.runconfig import NonlinearConfig

    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        config = NonlinearConfig.from_params(params)
        inputs = {"spectrum": spectrum_path, "dataset": dataset_path}
        trained = problem(config, inputs, job.rule or "nonlinear_train")
        eff = nonlinear.theory_params(config.lr, config.noise_std, config.weight_decay, trained.d)
        log.info("%s seed %d: %s, H=%d, lr=%g, noise std=%g (variance %g), weight decay=%g; theory units "
                 "eta_eff=%.4g (eta_eff*lam_1=%.3g), eps=%g, gamma_eff=%.4g", config.label, config.seed,
                 config.activation, config.hidden, config.lr, config.noise_std, eff["eps"], config.weight_decay,
                 eff["lr"], eff["lr"] * trained.lam[0], eff["eps"], eff["gamma"])
        result = nonlinear.train(config, trained, checkpoint=checkpoint(), threads=threads, progress=True)
        write(result, params, inputs, output, job, started)


def problem(config, inputs: Mapping[str, str], who: str):
    """A run's training problem: Σ's spectrum and the data (float32, as the network trains)."""
    return open_problem(inputs["spectrum"], config.n_samples, who, inputs["dataset"], dtype="float32")


def write(result, params: Mapping[str, Any], inputs: Mapping[str, str], output: str, job: JobInfo,
          started: str) -> None:
    """A trained run's file, with its provenance (its params, seed, inputs and device)."""
    from daedyn.training import resolve_device

    config = result.config
    log.info("%s seed %d: final mapping of modes 0..%d: %s", config.label, config.seed, config.k_modes - 1,
             np.array2string(result.trajectory["mapping"].values[-1], precision=4))
    store.write_dataset(result.dataset(), output, provenance_attrs=provenance.collect(
        dict(params), rule=job.rule, wildcards=job.wildcards, inputs=[inputs["spectrum"], inputs["dataset"]],
        seed=config.seed, device=str(resolve_device(config.device)), started=started,
        resumed_from=result.resumed_from))


def add_linear_theory(combined: xr.Dataset, d: int) -> xr.Dataset:
    """Add ``mapping_theory`` (run, mode, epoch), the half-times ``t_half``, ``t_half_noisy``
    (run, seed, mode) and ``t_half_theory`` (run, mode), and each run's ``eta_max`` (run): the linear
    theory's stability limit in the network's units, the limit the training guard warned about."""
    from daedyn import nonlinear, theory

    epochs = combined["epoch"].values
    curves = []
    for r in combined["run"].values:
        one = combined.sel(run=r)  # its own spectrum too: runs of a sweep over n_samples have their own
        curves.append(nonlinear.linear_theory(
            one["lam"].values, epochs, lr=float(one["lr"]), noise_std=float(one["noise_std"]),
            weight_decay=float(one["weight_decay"]), d=d, init_std=float(one["init_std"]),
            hidden=int(one["hidden_units"])))
    th = xr.concat([c.drop_vars("lam") for c in curves], dim="run").assign_coords(run=combined["run"].values)
    out = combined.copy()
    out["mapping_theory"] = th.assign_attrs(
        long_name="linear theory: per-mode theory (E15 map, expected i.i.d. init x0 = y0 = H init_std^2 / 2) for "
                  "the same hyperparameters in theory units, eta_eff = 2 lr/d, gamma_eff = wd d/2, eps = noise_std^2",
        units="1")
    out["t_half"] = nonlinear.half_times(out["mapping"])
    out["t_half_noisy"] = nonlinear.half_times(out["mapping_noisy"])
    out["t_half_theory"] = nonlinear.half_times(out["mapping_theory"])
    for name, short, what in (("t_half", "network", "network, clean inputs"),
                              ("t_half_noisy", "noisy pass", "network, noisy pass (paper)"),
                              ("t_half_theory", "linear theory", "linear theory")):
        out[name].attrs["long_name"] = (f"half-time, {short}: first recorded epoch at half the final mapping "
                                        f"({what}); NaN: never")
    eff = [nonlinear.theory_params(float(lr), float(s), float(w), d)
           for lr, s, w in zip(out["lr"].values, out["noise_std"].values, out["weight_decay"].values)]
    out = out.assign_coords(
        noise_var=("run", out["noise_std"].values ** 2, {"long_name": "input noise variance sigma^2", "units": "1"}),
        gamma_theory=("run", [e["gamma"] for e in eff],
                      {"long_name": "weight decay in theory units: gamma_eff = wd d/2", "units": "1"}))
    out = out.assign_coords(lr_theory=("run", [e["lr"] for e in eff], {
        "long_name": "learning rate in theory units: eta_eff = 2 lr/d", "units": "1"}))
    # as the engine's guard: the linear limit (theory units) of the run's measured modes, times d/2
    eta_max = [theory.stability_limit(out.sel(run=r)["lam"].values, e["eps"], e["gamma"],
                                      int(out.sel(run=r)["hidden_units"])) * d / 2
               for e, r in zip(eff, out["run"].values)]
    out = out.assign_coords(eta_max=("run", eta_max, {
        "long_name": "linear stability limit: the linear theory's limit of the learning rate, in the "
                     "network's units (eta_max_theory d/2); only approximate for the nonlinear network", "units": "1"}))
    out.attrs["n_features"] = int(d)
    return out


def halftime_rows(combined: xr.Dataset) -> list[dict]:
    """One row per run, seed and mode: final mapping and half-times, network vs linear theory, and the
    learning rate against the linear theory's stability limit (``above_stability_limit`` flags a run
    trained above it, which the linear theory does not describe)."""
    rows = []
    for run in combined["run"].values:
        for seed in combined["seed"].values:
            one = combined.sel(run=run, seed=seed)
            lr, eta_max = float(one["lr"]), float(one["eta_max"])
            for mode in one["mode"].values:
                m = one.sel(mode=mode)
                t_net, t_th = float(m["t_half"]), float(m["t_half_theory"])
                rows.append({
                    "run": str(run), "seed": int(seed), "mode": int(mode), "lam": float(m["lam"]),
                    "noise_std": float(m["noise_std"]), "noise_var": float(m["noise_std"]) ** 2,
                    "weight_decay": float(m["weight_decay"]), "gamma_theory": float(m["gamma_theory"]),
                    "lr": lr, "eta_max": eta_max, "lr_over_eta_max": lr / eta_max,
                    "above_stability_limit": int(lr >= eta_max),
                    "final": float(m["mapping"][-1]), "final_noisy": float(m["mapping_noisy"][-1]),
                    "final_theory": float(m["mapping_theory"][-1]),
                    "t_half": t_net, "t_half_noisy": float(m["t_half_noisy"]), "t_half_theory": t_th,
                    "t_half_ratio": t_net / t_th if np.isfinite(t_net) and np.isfinite(t_th) and t_th > 0
                    else float("nan"),
                })
    return rows


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], spectrum_path: str, combined_out: str,
                  halftimes_csv_out: str, job: JobInfo = JobInfo()) -> None:
    """Combine an experiment's runs, add the linear theory, write combined.nc and the half-times CSV."""
    from daedyn import analysis

    with logged(job):
        started = provenance.now()
        who = job.rule or "nonlinear_aggregate"
        seeds = list(params["seeds"]) if "seeds" in params else [int(params["seed"])]
        combined = analysis.combine_runs(load_runs(run_paths, who), list(params["runs"]), seeds)
        spec = store.open_dataset(spectrum_path, needed_by=who)
        combined = add_linear_theory(combined, int(spec.sizes["feature"]))
        rows = halftime_rows(combined)
        for row in rows:
            log.info("%(run)s seed %(seed)s mode %(mode)d: final %(final).3f (theory %(final_theory).3f), "
                     "t_half %(t_half)g (theory %(t_half_theory)g)", row)
        write_csv(rows, halftimes_csv_out)
        store.write_dataset(
            combined, combined_out,
            title=f"daedyn nonlinear experiment {params['experiment']}: runs and linear theory",
            summary="Learned mapping of trained nonlinear autoencoders along the top eigen-directions of the "
                    "inputs (clean and noisy pass), the linear per-mode theory for the same hyperparameters, "
                    "and half-times.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=list(run_paths) + [spectrum_path], started=started),
        )


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str],
               job: JobInfo = JobInfo()) -> None:
    """Draw Fig. 6 for one experiment from its combined file."""
    from daedyn.figures.nonlinear import plot_fig6

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "nonlinear_figure")
        save_figure(plot_fig6(combined, title=params["experiment"], facet_by=params["facet_by"],
                              max_panels=params["max_panels"]), outputs)
