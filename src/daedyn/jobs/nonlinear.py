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
from daedyn.jobs import JobInfo, load_runs, logged, save_figure, write_csv

log = logging.getLogger("daedyn")


def train_job(params: Mapping[str, Any], dataset_path: str, spectrum_path: str, output: str,
              job: JobInfo = JobInfo(), threads: int | None = None) -> None:
    """Train one run (one condition, one seed) → ``results/nonlinear/{experiment}/{run}/seed{seed}.nc``."""
    from daedyn import data, nonlinear

    with logged(job):
        started = provenance.now()
        who = job.rule or "nonlinear_train"
        spec = store.open_dataset(spectrum_path, needed_by=who)
        if int(spec.attrs["n_samples"]) != int(params["n_samples"]):
            raise ValueError(f"spectrum {spectrum_path} is of N={spec.attrs['n_samples']} samples, "
                             f"the run uses n_samples={params['n_samples']}")
        k = int(params["k_modes"])
        lam, V = spec["eigenvalue"].values[:k], spec["eigenvector"].values[:, :k]
        ds = store.open_dataset(dataset_path, needed_by=who)
        x = data.matrix(ds, params["n_samples"], center=bool(spec.attrs["center"]), dtype=np.float32)
        eff = nonlinear.theory_params(params["lr"], params["noise_std"], params["weight_decay"], x.shape[1])
        log.info("%s/%s seed %d: %s, H=%d, lr=%g, noise std=%g (variance %g), weight decay=%g; theory units "
                 "eta_eff=%.4g (eta_eff*lam_1=%.3g), eps=%g, gamma_eff=%.4g", params["experiment"], params["run"],
                 params["seed"], params["activation"], params["hidden"], params["lr"], params["noise_std"],
                 eff["eps"], params["weight_decay"], eff["lr"], eff["lr"] * lam[0], eff["eps"], eff["gamma"])
        result = nonlinear.train(
            x, hidden=params["hidden"], activation=params["activation"], lr=params["lr"], epochs=params["epochs"],
            noise_std=params["noise_std"], weight_decay=params["weight_decay"], batch_size=params.get("batch_size"),
            init_std=params["init_std"], seed=params["seed"], dtype=params["dtype"], device=params["device"],
            lam=lam, V=V, k_modes=k, log_every=params["log_every"], progress=True, threads=threads,
            checkpoint=f"{output}.ckpt", checkpoint_every=params.get("checkpoint_every", 0))
        out = result.trajectory.merge(result.weights()[["w1", "w2"]])
        out = out.expand_dims(run=[params["run"]], seed=[params["seed"]])
        out = out.assign_coords(noise_std=("run", [float(params["noise_std"])]),
                                weight_decay=("run", [float(params["weight_decay"])]),
                                lr=float(params["lr"]), hidden_units=int(params["hidden"]))
        out["noise_std"].attrs.update(long_name="input noise STANDARD DEVIATION sigma (variance sigma^2)",
                                      units="1")
        out["weight_decay"].attrs.update(long_name="torch SGD weight_decay wd (adds wd*W to the gradient)",
                                         units="1")
        out["lr"].attrs.update(long_name="learning rate of torch SGD on the MSE over N*d elements", units="1")
        final = out["mapping"].isel(epoch=-1).squeeze()
        log.info("final mapping of modes 0..%d: %s", k - 1, np.array2string(final.values, precision=4))
        store.write_dataset(
            out, output,
            title=f"daedyn nonlinear run {params['experiment']}/{params['run']} seed {params['seed']}",
            summary="Trajectory of a two-layer nonlinear autoencoder trained by SGD with sampled Gaussian input "
                    "noise: learned mapping along the top eigen-directions (clean and noisy pass), losses, "
                    "weight norms; final weights.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=[spectrum_path, dataset_path], seed=params["seed"],
                                                device=str(result.trajectory.attrs.get("device", "cpu")),
                                                started=started),
        )


def add_linear_theory(combined: xr.Dataset, d: int) -> xr.Dataset:
    """Add ``mapping_theory`` (run, mode, epoch) and the half-times ``t_half``, ``t_half_noisy``
    (run, seed, mode) and ``t_half_theory`` (run, mode) to a combined dataset."""
    from daedyn import nonlinear

    lam, epochs = combined["lam"].values, combined["epoch"].values
    lr, hidden, init_std = float(combined["lr"]), int(combined["hidden_units"]), float(combined.attrs["init_std"])
    curves = [nonlinear.linear_theory(lam, epochs, lr=lr, noise_std=float(combined["noise_std"].sel(run=r)),
                                      weight_decay=float(combined["weight_decay"].sel(run=r)), d=d,
                                      init_std=init_std, hidden=hidden)
              for r in combined["run"].values]
    th = xr.concat([c.drop_vars("lam") for c in curves], dim="run").assign_coords(run=combined["run"].values)
    out = combined.copy()
    out["mapping_theory"] = th.assign_attrs(
        long_name="linear per-mode theory (E15 map, expected i.i.d. init x0 = y0 = H init_std^2 / 2) for the "
                  "same hyperparameters in theory units: eta_eff = 2 lr/d, gamma_eff = wd d/2, eps = noise_std^2",
        units="1")
    out["t_half"] = nonlinear.half_times(out["mapping"])
    out["t_half_noisy"] = nonlinear.half_times(out["mapping_noisy"])
    out["t_half_theory"] = nonlinear.half_times(out["mapping_theory"])
    for name, what in (("t_half", "network, clean inputs"), ("t_half_noisy", "network, noisy pass (paper)"),
                       ("t_half_theory", "linear theory")):
        out[name].attrs["long_name"] = f"first recorded epoch at half the final mapping ({what}); NaN: never"
    eff = [nonlinear.theory_params(lr, float(s), float(w), d)
           for s, w in zip(out["noise_std"].values, out["weight_decay"].values)]
    out = out.assign_coords(
        noise_var=("run", out["noise_std"].values ** 2, {"long_name": "input noise variance sigma^2", "units": "1"}),
        gamma_theory=("run", [e["gamma"] for e in eff],
                      {"long_name": "weight decay in theory units gamma_eff = wd d/2", "units": "1"}))
    out.attrs.update(lr_theory=2.0 * lr / d, n_features=int(d))
    return out


def halftime_rows(combined: xr.Dataset) -> list[dict]:
    """One row per run, seed and mode: final mapping and half-times, network vs linear theory."""
    rows = []
    for run in combined["run"].values:
        for seed in combined["seed"].values:
            one = combined.sel(run=run, seed=seed)
            for mode in one["mode"].values:
                m = one.sel(mode=mode)
                t_net, t_th = float(m["t_half"]), float(m["t_half_theory"])
                rows.append({
                    "run": str(run), "seed": int(seed), "mode": int(mode), "lam": float(m["lam"]),
                    "noise_std": float(m["noise_std"]), "noise_var": float(m["noise_std"]) ** 2,
                    "weight_decay": float(m["weight_decay"]), "gamma_theory": float(m["gamma_theory"]),
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
            log.info("%(run)s seed %(seed)d mode %(mode)d: final %(final).3f (theory %(final_theory).3f), "
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
        save_figure(plot_fig6(combined, title=params["experiment"]), outputs)
