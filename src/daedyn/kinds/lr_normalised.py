"""Kind ``lr_normalised``: noise against weight decay at matched stability (beyond the paper).

Every grid value is a run of its own (names as the plan of the lr-normalised experiment gives them;
the job checks), so adding a value trains only the new runs.
"""

from __future__ import annotations

from daedyn.kinds import Kind, Step, figure_step
from daedyn.plan import (check_distinct, check_modes, config_error, gemm_seconds, network_bytes, records_bytes,
                         spectrum_path)

TRAIN_KEYS = ("dataset", "n_samples", "hidden", "eps", "modes", "epoch_budget", "init_std", "log_every", "dtype",
              "device")


def grid(exp) -> dict[str, dict]:
    """Run name -> the grid values of that run alone."""
    runs = {}
    for f in exp["fractions"]:
        runs[f"dae_f{f:g}"] = {"fractions": [f], "matched_modes": [], "gammas": []}
        for k in exp["matched_modes"]:
            runs[f"wdae_k{k}_f{f:g}"] = {"fractions": [f], "matched_modes": [k], "gammas": []}
        for g in exp["gammas"]:
            runs[f"wdae_g{g:g}_f{f:g}"] = {"fractions": [f], "matched_modes": [], "gammas": [g]}
    return runs


def check(plan, key, exp):
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    check_modes(plan, key, exp)
    check_modes(plan, key, exp, "matched_modes")
    check_distinct(key, exp, "fractions", "gammas")
    for field in ("fractions", "gammas"):  # run names keep 6 digits: two values must not share one
        tags = [f"{v:g}" for v in exp[field]]
        if len(set(tags)) != len(tags):
            config_error(f"{key}.{field}", f"{exp[field]} name runs by 6 significant digits ({tags}), so one run "
                         "would silently stand for two values; make them differ within 6 digits")
    if not exp["matched_modes"] and not exp["gammas"]:
        config_error(f"{key}.matched_modes", "the experiment compares WDAEs with the DAE: give `matched_modes` "
                     "or `gammas` (or both)")


def memory(plan, exp, run):
    """Spectrum (d x d), the network and the records of the longest possible run (as the linear kind's)."""
    _, d = plan.dataset_shape(exp["dataset"])
    h = exp["hidden"]
    epochs = exp["epoch_budget"] / min(exp["fractions"])
    return {"dataset": 3 * d * d * 8, "hidden": network_bytes(d, h),
            "epoch_budget": records_bytes(epochs, exp["log_every"], d + min(h, d) + 16)}


def work(plan, exp, run):
    """The longest possible run (8 d H^2 flops per epoch, as the linear exact engine)."""
    _, d = plan.dataset_shape(exp["dataset"])
    epochs = exp["epoch_budget"] / min(exp["fractions"])
    return gemm_seconds(epochs * 8 * d * exp["hidden"] ** 2)


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.lr_normalised import lr_normalised_train_job
    lr_normalised_train_job(spec, inputs["spectrum"], outputs["run"], job, threads=threads,
                            checkpoint_every=checkpoint_every)


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.lr_normalised import lr_normalised_aggregate_job
    lr_normalised_aggregate_job(spec, inputs["runs"], inputs["spectrum"], outputs["combined"], outputs["comparison"],
                                outputs["metrics"], outputs["claims"], job)


def spectrum(plan, name, exp, run):
    return {"spectrum": spectrum_path(exp["dataset"], exp["n_samples"])}


KIND = Kind(
    name="lr_normalised",
    title="Noise against weight decay at matched stability",
    schema_def="lr_normalised_experiment",
    config_class="daedyn.runconfig.LrNormalisedConfig",
    engines=("linear.ExactEngine",),
    runs=grid,
    seeds=lambda exp: exp["seeds"][:1],
    run_pattern=r"(dae|wdae_k\d+|wdae_g[0-9.e+-]+)_f[0-9.e-]+",
    threads=1,
    memory=memory,
    work=work,
    check=check,
    # theory sets the run's learning rate, gamma and length: a theory edit retrains
    train=Step(train, ("training", "runconfig", "theory", "linear", "lr_normalised", "jobs/lr_normalised"),
               lambda plan, name, exp, run, seed: {"experiment": name, "run": run, "seed": int(seed),
                                                   **{k: exp[k] for k in TRAIN_KEYS}, **grid(exp)[run]},
               spectrum),
    aggregate=Step(aggregate, ("theory", "lr_normalised", "claims", "jobs/lr_normalised"),
                   lambda plan, name, exp, run, seed: {"experiment": name, "modes": exp["modes"]},
                   lambda plan, name, exp, run: {"runs": plan.run_files(name), **spectrum(plan, name, exp, run)},
                   {"combined": "combined.nc", "comparison": "comparison.nc", "metrics": "metrics.csv",
                    "claims": "claims.csv"},
                   {"metrics": ("lr_normalised_metrics.rst", "step counts")}),
    figure=figure_step("daedyn.jobs.lr_normalised:lr_normalised_figure_job", "comparison.nc",
                       ("figures/__init__", "figures/style", "figures/lr_normalised", "lr_normalised", "jobs/lr_normalised"),
                       lambda plan, name, exp, run, seed: {"experiment": name},
                       "lr_normalised_figure.rst"),
)
