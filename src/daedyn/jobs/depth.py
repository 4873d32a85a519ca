"""Jobs of the depth-L experiments: train a run, aggregate with the per-mode theory, draw.

Training reads the run's settings (:meth:`daedyn.runconfig.DepthConfig.from_params`).
Aggregation reads: experiment, runs (names), seeds. The figure reads: experiment, modes.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from daedyn import provenance, store
from daedyn.jobs import JobInfo, checkpoints, load_runs, logged, open_problem, save_figure, write_claims, write_csv

log = logging.getLogger("daedyn")


def train_job(params: Mapping[str, Any], spectrum_path: str, output: str, job: JobInfo = JobInfo(), *,
              threads: int | None = None, checkpoint_every: int = 0) -> None:
    """Train one run (one condition, one seed) → ``results/{experiment}/runs/{run}/seed{seed}.nc``.

    The engine needs only Σ's spectrum; ``threads`` and ``checkpoint_every`` (0: no checkpoints)
    do not change the result. A bundle trains its runs with :func:`problem` and :func:`write` the same way.
    """
    from daedyn import depth
    from daedyn.runconfig import DepthConfig

    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        config = DepthConfig.from_params(params)
        inputs = {"spectrum": spectrum_path}
        result = depth.train(config, problem(config, inputs, job.rule or "depth_train"), checkpoint=checkpoint(),
                             threads=threads, progress=True)
        write(result, params, inputs, output, job, started)


def problem(config, inputs: Mapping[str, str], who: str):
    """A run's training problem: Σ's spectrum (``inputs["spectrum"]``)."""
    return open_problem(inputs["spectrum"], config.n_samples, who)


def write(result, params: Mapping[str, Any], inputs: Mapping[str, str], output: str, job: JobInfo,
          started: str) -> None:
    """A trained run's file, with its provenance (its params, seed, inputs and device)."""
    from daedyn.training import resolve_device

    c = result.config
    log.info("%s seed %d: L=%d, widths %s, %s start, eps=%g, gamma=%g%s, lr=%g (eta_max %.4g), %d epochs",
             c.label, c.seed, c.depth, c.layer_widths, c.init, c.eps, c.gamma,
             f" (gamma_L matched to eps={c.match_eps:g} at mode {c.match_mode})" if c.match_eps else "",
             c.lr, float(result.trajectory["eta_max"]), c.epochs)
    log.info("final u of modes 0..4: %s", np.array2string(result.trajectory["u"].values[-1, :5], precision=4))
    store.write_dataset(result.dataset(), output, provenance_attrs=provenance.collect(
        dict(params), rule=job.rule, wildcards=job.wildcards, inputs=[inputs["spectrum"]], seed=c.seed,
        device=str(resolve_device(c.device)), started=started, resumed_from=result.resumed_from))


def learnable_modes(combined) -> int:
    """min(d, narrowest hidden width) over the runs: the modes a network of the experiment can learn."""
    widths = [int(w) for run in combined["layer_widths"].values for w in str(run).split(",")]
    return min(combined.sizes["mode"], *widths)


def metrics_rows(m) -> list[dict]:
    """One row per run, seed and mode of :func:`daedyn.depth_analysis.metrics`, with the run's
    settings and its learning rate against the stability limit."""
    from daedyn.depth_analysis import model_name

    table = m.to_dataframe().reset_index()
    table.insert(3, "model", [model_name(e, g) for e, g in zip(table["eps"], table["gamma"])])
    table["lr_over_eta_max"] = table["lr"] / table["eta_max"]
    return table.to_dict("records")


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], combined_out: str, metrics_out: str,
                  claims_out: str, job: JobInfo = JobInfo()) -> None:
    """Combine an experiment's runs, add the per-mode theory; write combined.nc, metrics.csv and claims.csv."""
    from daedyn import analysis, depth_analysis
    with logged(job):
        started = provenance.now()
        who = job.rule or "depth_aggregate"
        runs = load_runs(run_paths, who)
        layers = np.arange(1, max(r.sizes["layer"] for r in runs) + 1)  # layer_norm of shallower runs: NaN-padded
        runs = [r.reindex(layer=layers) for r in runs]
        combined = analysis.combine_runs(runs, list(params["runs"]), list(params["seeds"]))
        # the initial weights stay in the run files; the modes beyond the narrowest layer cannot be learned
        combined = combined.drop_vars(["w1_init", "w2_init"]).isel(mode=slice(0, learnable_modes(combined)))
        combined = depth_analysis.add_theory(combined)
        m = depth_analysis.metrics(combined)
        rows = metrics_rows(m)
        claims = depth_analysis.claims(m)
        write_csv(rows, metrics_out)
        write_claims(claims, claims_out)
        store.write_dataset(
            combined, combined_out,
            title=f"daedyn depth experiment {params['experiment']}: runs and per-mode theory",
            summary="Mode strengths of trained depth-L linear autoencoders (u), the exact per-mode map of an "
                    "aligned balanced network from each mode's recorded u(0) (u_theory), where each mode ends "
                    "(u_limit) and the threshold below which it decays to 0 (u_threshold).",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=list(run_paths), started=started),
        )


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str],
               job: JobInfo = JobInfo()) -> None:
    """Draw the depth figure of one experiment from its combined file."""
    from daedyn.figures.depth import plot_depth

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "depth_figure")
        save_figure(plot_depth(combined, params["modes"], title=params["experiment"]), outputs)
