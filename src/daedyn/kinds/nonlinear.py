"""Kind ``nonlinear``: ReLU/tanh D→H→D DAE/WDAE trained with sampled input noise (the paper's Fig. 6)."""

from __future__ import annotations

from daedyn.kinds import Kind, Step, Trainer, figure_step
from daedyn.kinds.linear import figure_layout
from daedyn.plan import (check_facets, config_error, dataset_path, gemm_seconds, network_bytes, records_bytes,
                         run_setting, spectrum_path)

TRAIN_KEYS = ("dataset", "n_samples", "hidden", "activation", "lr", "epochs", "log_every", "init_std", "batch_size",
              "shuffle", "dtype", "device", "k_modes")


def check(plan, key, exp):
    """The mapping is measured along the top eigen-directions, each beside the linear theory of its mode."""
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    d = plan.dataset_shape(exp["dataset"])[1]
    for run in exp["runs"]:
        hidden = run_setting(exp, run, "hidden")
        if exp["k_modes"] > min(hidden, d):
            config_error(f"{key}.k_modes", f"{exp['k_modes']} modes cannot be measured against the linear theory "
                         f"with hidden={hidden} units on {exp['dataset']!r} (d={d} inputs; run {run}); k_modes "
                         f"must be <= min(hidden, d) = {min(hidden, d)}")
    check_facets(key, exp, "nonlinear")


def train_inputs(plan, name, exp, run):
    return {"dataset": dataset_path(exp["dataset"]),
            "spectrum": spectrum_path(exp["dataset"], run_setting(exp, run, "n_samples"))}


def memory(plan, exp, run):
    """The data (float64 when read, float32 in training), the noisy copy, activations and outputs of one
    batch; the network; the records (the mapping of k modes, clean and noisy, and four scalars)."""
    _, d = plan.dataset_shape(exp["dataset"])
    n_all, h = run_setting(exp, run, "n_samples"), run_setting(exp, run, "hidden")
    n = run_setting(exp, run, "batch_size") or n_all
    return {"n_samples": n_all * d * 8 + n * (4 * d + 2 * h) * 4, "hidden": network_bytes(d, h),
            "epochs": records_bytes(run_setting(exp, run, "epochs"), run_setting(exp, run, "log_every"),
                                    2 * exp["k_modes"] + 4)}


def work(plan, exp, run):
    """Per epoch 12 N d H flops (forward, backward, update), per record 4 N d H (a clean forward pass)."""
    _, d = plan.dataset_shape(exp["dataset"])
    ndh = run_setting(exp, run, "n_samples") * d * run_setting(exp, run, "hidden")
    records = exp["epochs"] // exp["log_every"] + 1
    return gemm_seconds(exp["epochs"] * 12 * ndh + records * 4 * ndh)


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.nonlinear import train_job
    train_job(spec, inputs["dataset"], inputs["spectrum"], outputs["run"], job, threads=threads,
              checkpoint_every=checkpoint_every)


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.nonlinear import aggregate_job
    aggregate_job(spec, inputs["runs"], inputs["spectrum"], outputs["combined"], outputs["halftimes"], job)


KIND = Kind(
    name="nonlinear",
    title="Nonlinear networks (Fig. 6)",
    schema_def="nonlinear_experiment",
    config_class="daedyn.runconfig.NonlinearConfig",
    engines=("nonlinear.NonlinearEngine",),
    sweepable=True,
    beyond=False,
    threads=2,
    trainer=Trainer("daedyn.nonlinear:train", "daedyn.jobs.nonlinear",
                    ("hidden", "activation", "k_modes", "n_samples", "dtype", "device", "epochs", "log_every",
                     "batch_size", "shuffle")),
    memory=memory,
    work=work,
    check=check,
    train=Step(train, ("training", "runconfig", "nonlinear", "linear", "data", "jobs/nonlinear"),
               lambda plan, name, exp, run, seed: {"experiment": name, "run": run, "seed": int(seed),
                                                   **{k: exp[k] for k in TRAIN_KEYS}, **exp["runs"][run]},
               train_inputs),
    aggregate=Step(aggregate, ("nonlinear", "theory", "analysis", "jobs/nonlinear"),
                   lambda plan, name, exp, run, seed: {"experiment": name, "runs": list(exp["runs"]),
                                                       "seeds": exp["seeds"]},
                   lambda plan, name, exp, run: {"runs": plan.run_files(name),
                                                 "spectrum": spectrum_path(exp["dataset"], exp["n_samples"])},
                   {"combined": "combined.nc", "halftimes": "halftimes.csv"},
                   {"halftimes": ("nonlinear_halftimes.rst", "half-times")}),
    figure=figure_step("daedyn.jobs.nonlinear:figure_job", "combined.nc",
                       ("figures/__init__", "figures/style", "figures/nonlinear", "jobs/nonlinear"),
                       lambda plan, name, exp, run, seed: {"experiment": name, **figure_layout(exp)},
                       "nonlinear_figure.rst"),
)
