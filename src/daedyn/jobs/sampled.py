"""Jobs of the sampled-against-marginalised-noise experiment (:mod:`daedyn.sampled`)."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from daedyn import provenance, store
from daedyn.jobs import JobInfo, checkpoints, logged, open_problem, save_figure, write_claims, write_csv

log = logging.getLogger("daedyn")


def sampled_part_job(params: Mapping[str, Any], spectrum_path: str, dataset_path: str, output: str,
                     job: JobInfo = JobInfo(), *, threads: int | None = None, checkpoint_every: int = 0) -> None:
    """One part of a sampled-noise experiment → ``results/runs/{experiment}/{part}.nc``: the
    trajectories of one batch size (``traj_full``, ``traj_b{B}``), the η sweep (``variance``) or the
    fixed copies (``fixed_copy``). ``params``: :meth:`daedyn.runconfig.SampledConfig.from_params`."""
    from daedyn import sampled
    from daedyn.runconfig import SampledConfig
    from daedyn.training import resolve_device

    parts = {"variance": sampled.sampled_variance, "fixed_copy": sampled.fixed_copies}
    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        config = SampledConfig.from_params(params)
        part = parts.get(config.run, sampled.sampled_trajectories if config.run.startswith("traj_") else None)
        if part is None:
            raise ValueError(f"{config.label}: unknown part {config.run!r}; parts are traj_full, traj_b<B>, "
                             f"{', '.join(parts)}")
        problem = open_problem(spectrum_path, config.n_samples, job.rule or "sampled_part", dataset_path)
        out, resumed_from = part(config, problem, checkpoint=checkpoint, threads=threads, progress=True)
        store.write_dataset(
            out, output, provenance_attrs=provenance.collect(
                dict(params), rule=job.rule, wildcards=job.wildcards, inputs=[spectrum_path, dataset_path],
                seed=config.init_seed, device=str(resolve_device(config.device)), started=started,
                resumed_from=resumed_from),
            title=f"daedyn experiment {config.experiment}: part {config.run}",
            summary=f"{config.seeds} seeds of a linear DAE trained with sampled input noise (or on fixed noisy "
                    f"copies), part {config.run} of the sampled-vs-marginalised experiment.")


def sampled_aggregate_job(params: Mapping[str, Any], trajectory_paths: Sequence[str], variance_path: str,
                          fixed_path: str, spectrum_path: str, dataset_path: str, summary_out: str, metrics_out: str,
                          claims_out: str, job: JobInfo = JobInfo()) -> None:
    """The parts against the marginalised recurrence and the first-order predictions (summary.nc,
    metrics.csv) and the experiment's claims (claims.csv)."""
    import xarray as xr

    from daedyn import sampled_analysis
    from daedyn.runconfig import SampledConfig

    with logged(job):
        started = provenance.now()
        who = job.rule or "sampled_aggregate"
        config = SampledConfig.from_params(params)
        problem = open_problem(spectrum_path, config.n_samples, who, dataset_path)
        traj = xr.concat([store.open_dataset(p, needed_by=who) for p in trajectory_paths], "batch", join="outer",
                         combine_attrs="drop_conflicts")
        summary = sampled_analysis.summarise_sampled(config, problem, traj, store.open_dataset(variance_path, needed_by=who),
                                            store.open_dataset(fixed_path, needed_by=who))
        rows = sampled_analysis.sampled_rows(summary)
        for row in rows:
            if row["quantity"].startswith("slope") or row["quantity"] == "fixed_copy_bias":
                log.info("%(quantity)s mode %(mode)d: %(value).4g (predicted %(predicted).4g)", row)
        write_csv(rows, metrics_out)
        write_claims(sampled_analysis.sampled_claims(summary, config.experiment), claims_out)
        store.write_dataset(
            summary, summary_out,
            title=f"daedyn experiment {config.experiment}: sampled against marginalised input noise",
            summary="Mean over seeds of a linear DAE with fresh input noise against the marginalised recurrence, "
                    "the stationary variance over seeds against the learning rate and the batch size with "
                    "first-order predictions, and the plateaus of fixed noisy copies.",
            provenance_attrs=provenance.collect(
                dict(params), rule=job.rule, wildcards=job.wildcards, started=started,
                inputs=[*trajectory_paths, variance_path, fixed_path, spectrum_path, dataset_path]))
        log.info("slopes against eta %s, against B %s", np.round(summary["slope_lr"].values, 3),
                 np.round(summary["slope_batch"].values, 3))


def sampled_figure_job(params: Mapping[str, Any], summary_path: str, outputs: Sequence[str],
                       job: JobInfo = JobInfo()) -> None:
    """Mean trajectories, stationary variance against η and B, fixed-copy bias."""
    from daedyn.figures.sampled import plot_sampled_vs_marginalised

    with logged(job):
        summary = store.open_dataset(summary_path, needed_by=job.rule or "sampled_figure")
        save_figure(plot_sampled_vs_marginalised(summary, title=params["experiment"]), outputs)
