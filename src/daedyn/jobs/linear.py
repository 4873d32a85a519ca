"""Jobs of the linear-network experiments (paper Fig. 5): train a run, aggregate with theory, draw.

``problem`` and ``write`` are what a bundle's job (:mod:`daedyn.jobs.bundle`) needs of this kind."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping, Sequence

import numpy as np

from daedyn import provenance, store
from daedyn.jobs import JobInfo, checkpoints, load_runs, logged, open_problem, save_figure, write_csv

log = logging.getLogger("daedyn")


def train_job(params: Mapping[str, Any], spectrum_path: str, dataset_path: str | None, output: str,
              job: JobInfo = JobInfo(), *, threads: int | None = None, checkpoint_every: int = 0,
              heldout_path: str | None = None) -> None:
    """Train one run (one condition, one seed) → ``results/{experiment}/runs/{run}/seed{seed}.nc``.

    ``params`` are the run's settings (:meth:`daedyn.runconfig.LinearConfig.from_params`);
    ``heldout_path`` the held-out moment in the spectrum's eigenbasis (rule heldout_moment) when
    the run names a ``heldout`` set; ``threads`` and ``checkpoint_every`` (0: no checkpoints) do
    not change the result. A bundle trains its runs with :func:`problem` and :func:`write` the same way.
    """
    from daedyn import linear
    from daedyn.runconfig import LinearConfig

    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        config = LinearConfig.from_params(params)
        inputs = {"spectrum": spectrum_path, "dataset": dataset_path, "heldout": heldout_path}
        trained = problem(config, inputs, job.rule or "linear_train")
        log.info("%s seed %d: %s engine, H=%d, eps=%g, gamma=%g, lr=%g, %d epochs", config.label, config.seed,
                 config.engine, config.hidden, config.eps, config.gamma, config.lr, config.epochs)
        result = linear.train(config, trained, checkpoint=checkpoint(), threads=threads, progress=True)
        write(result, params, inputs, output, job, started)


def problem(config, inputs: Mapping[str, str | None], who: str):
    """A run's training problem from its named inputs (``spectrum``; ``dataset``, read only for the
    engines that pass over data; ``heldout``)."""
    return _problem(config, inputs["spectrum"], inputs.get("dataset") if config.engine != "exact" else None,
                    inputs.get("heldout"), who)


def write(result, params: Mapping[str, Any], inputs: Mapping[str, str | None], output: str, job: JobInfo,
          started: str) -> None:
    """A trained run's file, with its provenance (its params, seed, inputs and device)."""
    from daedyn.training import resolve_device

    config = result.config
    log.info("%s seed %d: final u of modes 0..4: %s", config.label, config.seed,
             np.array2string(result.trajectory["u"].values[-1, :5], precision=4))
    paths = [inputs["spectrum"]] + [inputs[k] for k in ("dataset", "heldout") if inputs.get(k)]
    store.write_dataset(result.dataset(), output, provenance_attrs=provenance.collect(
        dict(params), rule=job.rule, wildcards=job.wildcards, inputs=paths, seed=config.seed,
        device=str(resolve_device(config.device)), started=started, resumed_from=result.resumed_from))


def _problem(config, spectrum_path: str, dataset_path: str | None, heldout_path: str | None, who: str):
    """The training problem (:func:`daedyn.jobs.open_problem`) with, when the run names a held-out set,
    its moment C."""
    problem = open_problem(spectrum_path, config.n_samples, who, dataset_path)
    if config.heldout is None:
        return problem
    if heldout_path is None:
        raise ValueError(f"{config.label}: heldout = {config.heldout!r} but no held-out moment file was given")
    moment = store.open_dataset(heldout_path, needed_by=who)
    if not np.array_equal(moment["eigenvalue"].values, problem.lam):
        raise ValueError(f"{heldout_path} was computed in the eigenbasis of another spectrum than "
                         f"{spectrum_path}; rebuild it (rule heldout_moment)")
    return dataclasses.replace(problem, C=moment["test_moment"].values)


def train_runs_job(params: Mapping[str, Any], spectrum_path: str, output: str, job: JobInfo = JobInfo(), *,
                   heldout_path: str | None = None, threads: int | None = None, checkpoint_every: int = 0,
                   batched: str | None = None) -> None:
    """Train several runs of the exact engine on one spectrum into one file (the runs along ``run``, the
    layout of a run file), one after another (:func:`daedyn.jobs.bundle.train_group`).

    ``params["settings"]`` are the settings the runs share and ``params["runs"]`` maps each run's
    name to its own settings (:meth:`daedyn.runconfig.LinearConfig.from_params` of the two
    merged); ``heldout_path`` as for :func:`train_job`; ``batched`` the exact engine's batched trainer
    (``"module:function"``), if any, which then trains them together where the config's policy
    ``params["batched"]`` says so (:func:`daedyn.jobs.bundle.batched_trainer`). A checkpoint per run
    (``<output>.<run>.ckpt``) resumes the run a killed job was training; those it had finished resume
    at their final epoch.
    """
    import xarray as xr

    from daedyn import linear
    from daedyn.jobs.bundle import batched_trainer, train_group
    from daedyn.runconfig import LinearConfig
    from daedyn.training import resolve_device

    with logged(job), checkpoints(output, checkpoint_every, job) as checkpoint:
        started = provenance.now()
        configs = [LinearConfig.from_params({**params["settings"], "run": run, **own})
                   for run, own in params["runs"].items()]
        if any(c.engine != "exact" for c in configs):
            raise ValueError("train_runs_job trains the exact engine only (it reads no data)")
        who = job.rule or "train_runs"
        shared = _problem(configs[0], spectrum_path, None, heldout_path, who)

        def tell(i):
            c = configs[i]
            log.info("%s seed %d: H=%d, eps=%g, gamma=%g, lr=%g, %d epochs", c.label, c.seed, c.hidden, c.eps,
                     c.gamma, c.lr, c.epochs)

        datasets, resumed = [], []
        trainer = batched_trainer(batched, params["batched"], configs[0].device)
        for _, result in train_group(linear.train, configs, shared, batched=trainer,
                                     threads=threads, progress=True, tell=tell,
                                     checkpoint=lambda i: checkpoint(configs[i].run if i is not None else "batch")):
            datasets.append(result.dataset())
            resumed += result.resumed_from
        out = xr.concat(datasets, dim="run", data_vars="minimal", coords="minimal", compat="equals",
                        join="exact", combine_attrs="override")
        first = configs[0]
        out.attrs = {"title": f"daedyn linear runs {first.experiment} ({len(configs)}) seed {first.seed}",
                     "summary": datasets[0].attrs["summary"]}
        inputs = [spectrum_path] + ([heldout_path] if heldout_path else [])
        store.write_dataset(out, output, provenance_attrs=provenance.collect(
            dict(params), rule=job.rule, wildcards=job.wildcards, inputs=inputs, seed=first.seed,
            device=str(resolve_device(first.device)), started=started, resumed_from=resumed))


def aggregate_job(params: Mapping[str, Any], run_paths: Sequence[str], spectrum_path: str, combined_out: str,
                  metrics_out: str, job: JobInfo = JobInfo(), run_spectra: Sequence[str] = ()) -> None:
    """Combine an experiment's runs, add the per-mode theory, write combined.nc and metrics.csv.

    ``run_spectra``: the spectra of runs trained on another N than the experiment's (a sweep over
    ``n_samples``)."""
    from daedyn import analysis

    with logged(job):
        started = provenance.now()
        who = job.rule or "linear_aggregate"
        combined = analysis.combine_runs(load_runs(run_paths, who), params["runs"], params["seeds"])
        spec = store.open_dataset(spectrum_path, needed_by=who)
        spectra = {}
        for path in run_spectra:
            other = store.open_dataset(path, needed_by=who)
            spectra[int(other.attrs["n_samples"])] = (other["eigenvalue"].values, other["eigenvector"].values)
        combined = analysis.add_theory(combined, spec["eigenvalue"].values, spec["eigenvector"].values, spectra)
        combined = combined.drop_vars(["w1_init", "w2_init"])  # used by the theory; kept in the run files
        rows = analysis.metrics(combined, params["modes"], params.get("paper_plateaus"))
        checked = [r["plateau_matches_paper"] for r in rows if r.get("plateau_matches_paper", "") != ""]
        if checked:
            log.info("plateaus within %.2f of the paper's figure: %d of %d", analysis.PLATEAU_TOLERANCE,
                     sum(checked), len(checked))
        for row in rows:
            log.info("%(run)s seed %(seed)s mode %(mode)d: u*=%(u_star).3f, max |theory-actual| = "
                     "%(max_abs_err_theory).4f (paper's closed form %(max_abs_err_paper).4f)", row)
        write_csv(rows, metrics_out)
        store.write_dataset(
            combined, combined_out,
            title=f"daedyn linear experiment {params['experiment']}: runs and per-mode theory",
            summary="Mode strengths of trained linear autoencoders (u), the per-mode theory from each mode's "
                    "initial weights (u_theory) and the paper's balanced closed form (u_paper).",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=[*run_paths, spectrum_path, *run_spectra], started=started),
        )


def figure_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str],
               job: JobInfo = JobInfo()) -> None:
    """Draw Fig. 5 for one experiment from its combined file."""
    from daedyn.figures.linear import plot_fig5

    with logged(job):
        combined = store.open_dataset(combined_path, needed_by=job.rule or "linear_figure")
        save_figure(plot_fig5(combined, params["modes"], title=params["experiment"], facet_by=params["facet_by"],
                              max_panels=params["max_panels"]), outputs)
