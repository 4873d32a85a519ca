"""Kind ``masking``: linear DAEs with Bernoulli masking (dropout) noise of keep probability q (beyond the paper)."""

from __future__ import annotations

from daedyn.kinds import Kind, Step, Trainer, figure_step
from daedyn.plan import (check_modes, config_error, dataset_path, gemm_seconds, network_bytes, records_bytes,
                         spectrum_path)

TRAIN_KEYS = ("dataset", "n_samples", "engine", "hidden", "form", "lr", "epochs", "log_every", "init_std",
              "batch_size", "shuffle", "dtype", "device", "allow_unstable")


def check(plan, key, exp):
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    masked = {}
    for run, entry in exp["runs"].items():
        q = entry.get("q", exp.get("q"))
        if q is None:
            config_error(f"{key}.runs.{run}.q",
                         "the keep probability q is needed, in the run's entry or for the whole experiment")
        if exp["engine"] == "sampled" and entry["noise"] != "masking":
            config_error(f"{key}.runs.{run}.noise",
                         f"{entry['noise']} needs engine: marginal (the sampled engine draws masks)")
        if entry["noise"] == "masking":
            if q == 1:
                config_error(f"{key}.runs.{run}.q", "q=1 keeps every input: a masked run needs q < 1 "
                             "(train an AE, without noise, in a linear experiment)")
            if q in masked.values():
                config_error(f"{key}.runs.{run}.q", f"q={q} is also the keep probability of masked run "
                             f"{[r for r, v in masked.items() if v == q][0]}; masked runs need distinct q")
            masked[run] = q
    if not masked:
        config_error(f"{key}.runs", "needs at least one run with noise: masking")
    if exp["engine"] != "sampled" and exp["batch_size"] is not None:
        config_error(f"{key}.batch_size", "only used by engine: sampled (the marginal engine is full batch)")
    check_modes(plan, key, exp)


def train_inputs(plan, name, exp, run):
    """The spectrum always; the dataset too for the sampled engine, which draws masks on the data."""
    inputs = {"spectrum": spectrum_path(exp["dataset"], exp["n_samples"])}
    if exp["engine"] == "sampled":
        inputs["dataset"] = dataset_path(exp["dataset"])
    return inputs


def memory(plan, exp, run):
    """Spectrum and noise covariance (d x d); the network; the records (u of every mode, singular values,
    scalars); the data and a batch of masks for the sampled engine."""
    _, d = plan.dataset_shape(exp["dataset"])
    h, n = exp["hidden"], exp["n_samples"]
    batch = exp["batch_size"] or n
    data = (3 * n * d + 4 * batch * d) * 8 if exp["engine"] == "sampled" else 0
    return {"dataset": 5 * d * d * 8, "n_samples": data, "hidden": network_bytes(d, h),
            "epochs": records_bytes(exp["epochs"], exp["log_every"], d + min(h, d) + 16)}


def work(plan, exp, run):
    """Per epoch: marginal, the d x d x H product dominates; sampled, a pass over the data."""
    _, d = plan.dataset_shape(exp["dataset"])
    h = exp["hidden"]
    flops = 6 * exp["n_samples"] * d * h if exp["engine"] == "sampled" else 2 * d * d * h + 8 * d * h * h
    return gemm_seconds(exp["epochs"] * flops)


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.masking import train_job
    train_job(spec, inputs["spectrum"], inputs.get("dataset"), outputs["run"], job, threads=threads,
              checkpoint_every=checkpoint_every)


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.masking import aggregate_job
    aggregate_job(spec, inputs["runs"], inputs["spectrum"], outputs["combined"], outputs["metrics"],
                  outputs["claims"], job)


def train_params(plan, name, exp, run, seed):
    keys = TRAIN_KEYS + (("q",) if "q" in exp else ())
    return {"experiment": name, "run": run, "seed": int(seed), **{k: exp[k] for k in keys}, **exp["runs"][run]}


KIND = Kind(
    name="masking",
    title="Masking (dropout) noise",
    schema_def="masking_experiment",
    config_class="daedyn.runconfig.MaskingConfig",
    engines=("masking.MarginalMaskingEngine", "masking_batched.BatchedMaskingEngine", "masking.SampledMaskingEngine"),
    batched={"marginal": "daedyn.masking_batched:train_batch"},
    threads=1,  # as depth: small products, two runs side by side use two cores better
    trainer=Trainer("daedyn.masking:train", "daedyn.jobs.masking",
                    ("engine", "hidden", "form", "noise", "n_samples", "dtype", "device",
                     "epochs", "log_every", "batch_size", "shuffle")),
    memory=memory,
    work=work,
    check=check,
    train=Step(train, ("training", "runconfig", "masking", "masking_batched", "tracking", "linear", "data",
                          "jobs/masking"),
               train_params, train_inputs),
    aggregate=Step(aggregate, ("masking", "masking_analysis", "theory", "trajectories", "claims", "analysis",
                               "jobs/masking"),
                   lambda plan, name, exp, run, seed: {"experiment": name, "runs": list(exp["runs"]),
                                                       "seeds": exp["seeds"], "modes": exp["modes"]},
                   # the spectrum: the exact fixed point needs every eigenvector, not only the recorded modes
                   lambda plan, name, exp, run: {"runs": plan.run_files(name),
                                                 "spectrum": spectrum_path(exp["dataset"], exp["n_samples"])},
                   {"combined": "combined.nc", "metrics": "metrics.csv", "claims": "claims.csv"},
                   {"metrics": ("masking_metrics.rst", "theory vs actual"),
                    "claims": ("masking_claims.rst", "claims")}),
    figure=figure_step("daedyn.jobs.masking:figure_job", "combined.nc",
                       ("figures/__init__", "figures/style", "figures/masking", "trajectories", "jobs/masking"),
                       lambda plan, name, exp, run, seed: {"experiment": name, "modes": exp["modes"]},
                       "masking_figure.rst"),
)
