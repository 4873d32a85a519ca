"""Kind ``nonlinear_theory``: a nonlinear D → K → D (denoising) autoencoder under online SGD against the
exact order-parameter ODEs, on spiked Gaussian inputs and on real data made spiked (beyond the paper).

Runs: one per activation in ``activations`` (spiked Gaussian inputs), and ``data`` when the experiment
names a ``dataset`` (that dataset made spiked, beside its Gaussian twin). Each run's file holds every
(σ², η) condition and seed.
"""

from __future__ import annotations

from daedyn.kinds import Kind, Step, figure_step
from daedyn.plan import config_error, dataset_path, spectrum_path

#: the keys every run shares
COMMON = ("hidden", "bulk", "noise_var", "tied", "weight_decay", "record_every", "seeds", "init_seed",
          "init_overlap", "init_std", "dec_std", "device")


def runs(exp) -> dict[str, dict]:
    """Run name → its own values (activation, inputs, dimension, spikes, learning rates, time)."""
    out = {a: {"activation": a, "source": "gaussian", "dataset": "", "n_samples": None, "dim": exp["dim"],
               "spikes": exp["spikes"], "data_spikes": None, "lr": exp["lr"], "time": exp["time"],
               "eval_samples": None}
           for a in exp["activations"]}
    if exp["dataset"]:
        out["data"] = {"activation": exp["data_activation"], "source": "data", "dataset": exp["dataset"],
                       "n_samples": exp["n_samples"], "dim": exp["data_dim"], "spikes": None,
                       "data_spikes": exp["data_spikes"], "lr": exp["data_lr"], "time": exp["data_time"],
                       "eval_samples": exp["eval_samples"]}
    return out


def train_params(plan, name, exp, run, seed):
    return {"experiment": name, "run": run, **{k: exp[k] for k in COMMON}, **runs(exp)[run]}


def check(plan, key, exp):
    if exp["hidden"] > exp["dim"] or len(exp["spikes"]) > exp["dim"]:
        config_error(f"{key}.hidden", f"hidden={exp['hidden']} units and {len(exp['spikes'])} spikes need at most "
                     f"dim={exp['dim']} inputs")
    if not exp["dataset"]:
        return
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    n, d = plan.dataset_shape(exp["dataset"])
    if exp["n_samples"] is None or exp["n_samples"] > n:
        config_error(f"{key}.n_samples", f"a data run needs n_samples, at most the {n} rows of {exp['dataset']!r}")
    if exp["data_dim"] > d:
        config_error(f"{key}.data_dim", f"{exp['data_dim']} exceeds the d={d} inputs of {exp['dataset']!r}")
    if exp["data_spikes"] is None or not exp["hidden"] <= exp["data_dim"] or exp["data_spikes"] >= exp["data_dim"]:
        config_error(f"{key}.data_spikes", f"need data_spikes < data_dim and hidden <= data_dim; got data_spikes="
                     f"{exp['data_spikes']}, hidden={exp['hidden']}, data_dim={exp['data_dim']}")
    if exp["eval_samples"] is not None and exp["eval_samples"] > exp["n_samples"]:
        config_error(f"{key}.eval_samples", f"more than n_samples={exp['n_samples']}")


def train_inputs(plan, name, exp, run):
    if runs(exp)[run]["source"] != "data":
        return {}
    return {"spectrum": spectrum_path(exp["dataset"], exp["n_samples"]), "dataset": dataset_path(exp["dataset"])}


def _networks(exp, run) -> int:
    entry = runs(exp)[run]
    return len(exp["noise_var"]) * len(entry["lr"]) * exp["seeds"] * (2 if entry["source"] == "data" else 1)


def memory(plan, exp, run):
    """The networks and a step's temporaries (~8 copies of B x K x D); a data run also holds the data
    (float64, three copies of N x d) and its evaluation rows."""
    entry = runs(exp)[run]
    nets = _networks(exp, run) * exp["hidden"] * entry["dim"] * 8 * 8
    if entry["source"] != "data":
        return nets
    n, d = plan.dataset_shape(exp["dataset"])
    return nets + 3 * n * d * 8 + 2 * exp["n_samples"] * entry["dim"] * 8


def work(plan, exp, run):
    """Measured on one CPU thread: about 0.3 ms per SGD step plus 15 ns per network x unit x input."""
    entry = runs(exp)[run]
    steps = entry["time"] * entry["dim"]
    return steps * (3e-4 + 1.5e-8 * _networks(exp, run) * exp["hidden"] * entry["dim"])


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.nonlinear_theory import train_job
    train_job(spec, inputs.get("spectrum"), inputs.get("dataset"), outputs["run"], job, threads=threads,
              checkpoint_every=checkpoint_every)


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.nonlinear_theory import aggregate_job
    aggregate_job(spec, inputs["runs"], outputs["combined"], outputs["metrics"], outputs["claims"], job)


KIND = Kind(
    name="nonlinear_theory",
    title="Nonlinear autoencoders against their ODE theory",
    schema_def="nonlinear_theory_experiment",
    config_class="daedyn.nonlinear_theory.NonlinearTheoryConfig",
    engines=("nonlinear_online.OnlineEngine",),
    runs=runs,
    seeds=lambda exp: list(range(exp["seeds"])),
    file_per_seed=False,
    run_pattern=r"erf|relu|data",
    threads=1,  # small tensors: a second intra-op thread spin-waits on a busy CPU
    memory=memory,
    work=work,
    check=check,
    train=Step(train, ("training", "runconfig", "nonlinear_averages", "nonlinear_theory", "nonlinear_online", "data",
                      "jobs/nonlinear_theory"),
               train_params, train_inputs),
    aggregate=Step(aggregate, ("training", "runconfig", "nonlinear_averages", "nonlinear_theory",
                               "nonlinear_theory_analysis", "claims",
                               "jobs/nonlinear_theory"),
                   lambda plan, name, exp, run, seed: {
                       "experiment": name, "ode_dt": exp["ode_dt"], "tolerance": exp["tolerance"],
                       "runs": {r: train_params(plan, name, exp, r, None) for r in runs(exp)}},
                   lambda plan, name, exp, run: {"runs": plan.run_files(name)},
                   {"combined": "combined.nc", "metrics": "metrics.csv", "claims": "claims.csv"},
                   {"metrics": ("nonlinear_theory_metrics.rst", "metrics")}),
    figure=figure_step("daedyn.jobs.nonlinear_theory:figure_job", "combined.nc",
                       ("figures/__init__", "figures/style", "figures/nonlinear_theory", "jobs/nonlinear_theory"),
                       lambda plan, name, exp, run, seed: {"experiment": name},
                       "nonlinear_theory_figure.rst"),
)
