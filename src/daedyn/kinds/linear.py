"""Kind ``linear``: two-layer linear AE/DAE/WDAE trained by gradient descent (the paper's Fig. 5)."""

from __future__ import annotations

from daedyn.kinds import Kind, Step, Trainer, figure_step
from daedyn.plan import (check_facets, check_heldout, check_modes, config_error, dataset_path, gemm_seconds,
                         heldout_moment_path, network_bytes, records_bytes, run_key, run_setting, spectrum_path)

#: the experiment's keys a run's params take (a run's own entry overrides them)
TRAIN_KEYS = ("dataset", "n_samples", "hidden", "lr", "epochs", "log_every", "init_std", "engine", "batch_size",
              "shuffle", "dtype", "device", "allow_unstable", "heldout", "sigma2_test")


def check(plan, key, exp):
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    for run in exp["runs"]:
        check_modes(plan, key, exp, run=run)
        if run_setting(exp, run, "engine") != "sampled" and run_setting(exp, run, "batch_size") is not None:
            config_error(run_key(key, exp, run, "batch_size"),
                         f"only used by engine: sampled (the other engines are full batch; run {run})")
    for run, values in exp["paper_plateaus"].items():
        if run not in exp["runs"] or len(values) != len(exp["modes"]):
            config_error(f"{key}.paper_plateaus.{run}", f"needs a run name of `runs` ({sorted(exp['runs'])}) and "
                         f"one value per mode ({len(exp['modes'])})")
    check_facets(key, exp, "linear")
    if exp["heldout"] is not None:
        check_heldout(plan, key, exp)
    elif exp["sigma2_test"]:
        config_error(f"{key}.sigma2_test", "test-noise variances need a held-out set (`heldout`)")


def train_inputs(plan, name, exp, run):
    """The run's spectrum (its own N); the dataset for the engines that pass over the data; the held-out
    moment, and the module that evaluates it, when the experiment names a held-out set."""
    n = run_setting(exp, run, "n_samples")
    inputs = {"spectrum": spectrum_path(exp["dataset"], n)}
    if run_setting(exp, run, "engine") != "exact":
        inputs["dataset"] = dataset_path(exp["dataset"])
    if exp["heldout"] is not None:
        inputs["heldout"] = heldout_moment_path(exp["dataset"], n, exp["heldout"])
        inputs["heldout_code"] = plan.source("heldout")
    return inputs


def train_params(plan, name, exp, run, seed):
    return {"experiment": name, "run": run, "seed": int(seed), **{k: exp[k] for k in TRAIN_KEYS},
            **exp["runs"][run]}


def memory(plan, exp, run):
    """Spectra (d x d); the network; the records (u of every mode, singular values, scalars and held-out
    errors); the data and a batch's work arrays for the engines that pass over it."""
    _, d = plan.dataset_shape(exp["dataset"])
    h, n = run_setting(exp, run, "hidden"), run_setting(exp, run, "n_samples")
    batch = n if run_setting(exp, run, "engine") == "datapass" else run_setting(exp, run, "batch_size") or n
    data = 0 if run_setting(exp, run, "engine") == "exact" else (3 * n * d + batch * (2 * h + 2 * d)) * 8
    width = d + min(h, d) + 16 + len(exp["sigma2_test"])
    return {"dataset": 3 * d * d * 8, "n_samples": data, "hidden": network_bytes(d, h),
            "epochs": records_bytes(run_setting(exp, run, "epochs"), run_setting(exp, run, "log_every"), width)}


def work(plan, exp, run):
    """Per epoch 8 d H^2 flops (exact engine) or 10 N d H (a pass over the data); per record two QR
    factorisations (4 d H^2) and an SVD, counted as 50 H^3 because it runs far below GEMM speed
    (measured: 10 ms per record at d = 784, H = 256)."""
    _, d = plan.dataset_shape(exp["dataset"])
    h, n = run_setting(exp, run, "hidden"), run_setting(exp, run, "n_samples")
    step = 8 * d * h * h if run_setting(exp, run, "engine") == "exact" else 10 * n * d * h
    records = exp["epochs"] // exp["log_every"] + 1
    return gemm_seconds(exp["epochs"] * step + records * (4 * d * h * h + 50 * h**3))


def aggregate_inputs(plan, name, exp, run):
    """The runs, the spectrum of the experiment's N and those of runs trained on another N."""
    own = spectrum_path(exp["dataset"], exp["n_samples"])
    others = sorted({spectrum_path(exp["dataset"], run_setting(exp, r, "n_samples")) for r in exp["runs"]} - {own})
    return {"runs": plan.run_files(name), "spectrum": own, "run_spectra": others}


def figure_layout(exp):
    """How an experiment's figure lays out its runs (daedyn.figures.style.facets)."""
    return {"facet_by": exp["facet_by"], "max_panels": exp["max_panels"]}


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.linear import train_job
    train_job(spec, inputs["spectrum"], inputs.get("dataset"), outputs["run"], job, threads=threads,
              checkpoint_every=checkpoint_every, heldout_path=inputs.get("heldout"))


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.linear import aggregate_job
    aggregate_job(spec, inputs["runs"], inputs["spectrum"], outputs["combined"], outputs["metrics"], job,
                  run_spectra=inputs["run_spectra"])


KIND = Kind(
    name="linear",
    title="Linear networks (Fig. 5)",
    schema_def="linear_experiment",
    config_class="daedyn.runconfig.LinearConfig",
    engines=("linear.ExactEngine", "linear_batched.BatchedExactEngine", "linear.DatapassEngine",
             "linear.SampledEngine"),
    batched={"exact": "daedyn.linear_batched:train_batch"},
    sweepable=True,
    beyond=False,
    threads=2,
    # a bundle's runs that share these train as one group (one batched call where `batched` names the engine)
    trainer=Trainer("daedyn.linear:train", "daedyn.jobs.linear",
                    ("engine", "hidden", "heldout", "sigma2_test", "n_samples", "dtype", "device",
                     "epochs", "log_every", "batch_size", "shuffle")),
    memory=memory,
    work=work,
    check=check,
    train=Step(train, ("training", "runconfig", "linear", "linear_batched", "data", "jobs/linear"), train_params,
               train_inputs),
    aggregate=Step(aggregate, ("theory", "analysis", "jobs/linear"),
                   lambda plan, name, exp, run, seed: {"experiment": name, "runs": list(exp["runs"]),
                                                       "seeds": exp["seeds"], "modes": exp["modes"],
                                                       "paper_plateaus": exp["paper_plateaus"]},
                   aggregate_inputs, {"combined": "combined.nc", "metrics": "metrics.csv"},
                   {"metrics": ("linear_metrics.rst", "theory vs actual")}),
    figure=figure_step("daedyn.jobs.linear:figure_job", "combined.nc",
                       ("figures/__init__", "figures/style", "figures/linear", "jobs/linear"),
                       lambda plan, name, exp, run, seed: {"experiment": name, "modes": exp["modes"],
                                                           **figure_layout(exp)},
                       "linear_figure.rst"),
)
