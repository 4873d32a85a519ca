"""Jobs of the linear-network experiments (paper Fig. 5): train a run, aggregate with theory, draw."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from daedyn import provenance, store
from daedyn.jobs import JobInfo, load_runs, logged, save_figure, write_csv

log = logging.getLogger("daedyn")


def train_job(params: Mapping[str, Any], spectrum_path: str, dataset_path: str | None, output: str,
              job: JobInfo = JobInfo(), threads: int | None = None) -> None:
    """Train one run (one condition, one seed) → ``results/runs/{experiment}/{run}/seed{seed}.nc``."""
    from daedyn import data, linear

    with logged(job):
        started = provenance.now()
        spec = store.open_dataset(spectrum_path, needed_by=job.rule or "linear_train")
        lam, V = spec["eigenvalue"].values, spec["eigenvector"].values
        common = dict(hidden=params["hidden"], lr=params["lr"], epochs=params["epochs"], eps=params["eps"],
                      gamma=params["gamma"], init_std=params["init_std"], seed=params["seed"],
                      dtype=params["dtype"], device=params["device"], log_every=params["log_every"],
                      progress=True, threads=threads, checkpoint=f"{output}.ckpt",
                      checkpoint_every=params.get("checkpoint_every", 0))
        log.info("%s/%s seed %d: %s engine, eps=%g, gamma=%g, lr=%g, eta_max=%.4g", params["experiment"],
                 params["run"], params["seed"], params["engine"], params["eps"], params["gamma"], params["lr"],
                 linear.stability_limit(lam, params["eps"], params["gamma"]))
        if params["engine"] == "exact":
            result = linear.train_exact(lam, V, **common)
        else:
            ds = store.open_dataset(dataset_path, needed_by=job.rule or "linear_train")
            x = data.matrix(ds, params["n_samples"], center=bool(spec.attrs["center"]))
            if params["engine"] == "datapass":
                result = linear.train_datapass(x, lam=lam, V=V, **common)
            else:
                result = linear.train_sampled(x, lam=lam, V=V, batch_size=params["batch_size"], **common)
        out = result.trajectory.merge(result.weights()[["w1_init", "w2_init", "w1", "w2"]])
        out = out.expand_dims(run=[params["run"]], seed=[params["seed"]])
        out = out.assign_coords(eps=("run", [float(params["eps"])]), gamma=("run", [float(params["gamma"])]),
                                lr=float(params["lr"]), hidden_units=int(params["hidden"]))
        out["eps"].attrs.update(long_name="input noise variance", units="1")
        out["gamma"].attrs.update(long_name="weight decay", units="1")
        out["lr"].attrs.update(long_name="learning rate (one epoch = one full-batch step)", units="1")
        final = out["u"].isel(epoch=-1).squeeze()
        log.info("final u of modes 0..4: %s", np.array2string(final.values[:5], precision=4))
        inputs = [spectrum_path] + ([dataset_path] if dataset_path else [])
        store.write_dataset(
            out, output,
            title=f"daedyn linear run {params['experiment']}/{params['run']} seed {params['seed']}",
            summary="Trajectory of a two-layer linear autoencoder trained by gradient descent: mode strengths, "
                    "singular values, loss terms, weight norms; initial and final weights.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=inputs, seed=params["seed"],
                                                device=str(result.trajectory.attrs.get("device", "cpu")),
                                                started=started),
        )


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], spectrum_path: str, combined_out: str,
                  metrics_out: str, job: JobInfo = JobInfo()) -> None:
    """Combine an experiment's runs, add the per-mode theory, write combined.nc and metrics.csv."""
    from daedyn import analysis

    with logged(job):
        started = provenance.now()
        who = job.rule or "linear_aggregate"
        combined = analysis.combine_runs(load_runs(run_paths, who), params["runs"], params["seeds"])
        spec = store.open_dataset(spectrum_path, needed_by=who)
        combined = analysis.add_theory(combined, spec["eigenvalue"].values, spec["eigenvector"].values)
        combined = combined.drop_vars(["w1_init", "w2_init"])  # used by the theory; kept in the run files
        rows = analysis.metrics(combined, params["modes"], params.get("paper_plateaus"))
        checked = [r["plateau_matches_paper"] for r in rows if r.get("plateau_matches_paper", "") != ""]
        if checked:
            log.info("plateaus within %.2f of the paper's figure: %d of %d", analysis.PLATEAU_TOLERANCE,
                     sum(checked), len(checked))
        for row in rows:
            log.info("%(run)s seed %(seed)d mode %(mode)d: u*=%(u_star).3f, max |theory-actual| = "
                     "%(max_abs_err_theory).4f (paper's closed form %(max_abs_err_paper).4f)", row)
        write_csv(rows, metrics_out)
        store.write_dataset(
            combined, combined_out,
            title=f"daedyn linear experiment {params['experiment']}: runs and per-mode theory",
            summary="Mode strengths of trained linear autoencoders (u), the per-mode theory from each mode's "
                    "initial weights (u_theory) and the paper's balanced closed form (u_paper).",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=list(run_paths) + [spectrum_path], started=started),
        )


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str],
               job: JobInfo = JobInfo()) -> None:
    """Draw Fig. 5 for one experiment from its combined file."""
    from daedyn.figures.linear import plot_fig5

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "linear_figure")
        save_figure(plot_fig5(combined, params["modes"], title=params["experiment"]), outputs)
