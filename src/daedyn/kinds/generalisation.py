"""Kind ``generalisation``: held-out errors of linear DAEs trained on N samples, over the grid N x ε.

Every ε of one N is trained together into one run file, named ``n{N}`` (short runs, one group: batched
on a GPU); a bundle's job trains the files of several N. The ε of a file are the run grid ``eps``
and the fine grid ``eps_fine`` around each test-noise variance (:func:`fine_eps`), whose runs
serve only the measurement of the optimal training noise.
"""

from __future__ import annotations

from daedyn.kinds import Kind, Step, figure_step
from daedyn.plan import (check_distinct, check_heldout, config_error, gemm_seconds, heldout_moment_path,
                         network_bytes, records_bytes, spectrum_path)

TRAIN_KEYS = ("dataset", "heldout", "sigma2_test", "hidden", "lr", "epochs", "log_every", "init_std", "dtype",
              "device")


def fixed_settings() -> dict:
    """The runs are trained as linear runs: the settings a generalisation experiment does not choose take
    the linear schema's defaults, and the engine is the exact one."""
    from daedyn.runconfig import LinearConfig, schema_defaults
    defaults = schema_defaults("linear_experiment")
    return {**{k: v for k, v in defaults.items() if k in LinearConfig.__dataclass_fields__},
            "engine": "exact", "gamma": 0.0}


def eps_tag(eps) -> str:
    """A run-name fragment for a noise variance: 0.25 -> 0p25, 1e-05 -> 1em05."""
    return repr(float(eps)).replace(".", "p").replace("-", "m").replace("+", "")


def fine_eps(exp) -> list[float]:
    """The fine grid's training noises: r·σ²_test for every ratio r of ``eps_fine`` (low, low + step,
    …, high) and every σ²_test > 0, less those of the run grid ``eps``. Rounded to 12 significant
    digits, so that 1.0 × 0.25 is the run grid's 0.25 and the run names stay short."""
    fine = exp.get("eps_fine")
    if not fine:
        return []
    count = round((fine["high"] - fine["low"]) / fine["step"]) + 1
    ratios = [fine["low"] + k * fine["step"] for k in range(count)]
    coarse = {float(f"{e:.12g}") for e in exp["eps"]}
    return sorted({float(f"{r * v:.12g}") for r in ratios for v in exp["sigma2_test"] if v > 0} - coarse)


def run_eps(exp) -> list[float]:
    """Every training noise of one N's run file: the run grid, then the fine grid."""
    return [float(e) for e in exp["eps"]] + fine_eps(exp)


def check(plan, key, exp):
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    check_heldout(plan, key, exp)
    check_distinct(key, exp, "n_samples", "eps", "sigma2_test")
    fine = exp.get("eps_fine")
    if fine:
        if fine["high"] < fine["low"]:
            config_error(f"{key}.eps_fine", f"high = {fine['high']:g} is below low = {fine['low']:g}")
        spans = (fine["high"] - fine["low"]) / fine["step"]
        if abs(spans - round(spans)) > 1e-6:
            config_error(f"{key}.eps_fine.step", f"{fine['step']:g} does not divide high - low = "
                         f"{fine['high'] - fine['low']:g}; choose a step that ends the ratios at high")
        if not any(v > 0 for v in exp["sigma2_test"]):
            config_error(f"{key}.eps_fine", "needs a test-noise variance sigma2_test > 0 to be centred on; "
                         "add one or set eps_fine: null")
    available = plan.dataset_shape(exp["dataset"])[0]
    if max(exp["n_samples"]) > available:
        config_error(f"{key}.n_samples", f"{max(exp['n_samples'])} exceeds the {available} samples of "
                     f"{exp['dataset']!r}")


def train_params(plan, name, exp, run, seed):
    n = exp_runs(exp)[run]["n_samples"]
    settings = {**fixed_settings(), **{k: exp[k] for k in TRAIN_KEYS}, "experiment": name, "seed": int(seed),
                "n_samples": n}
    return {"settings": settings, "runs": {f"n{n}_eps{eps_tag(e)}": {"eps": e} for e in run_eps(exp)},
            "batched": plan.config["batched"]}


def exp_runs(exp):
    return {f"n{n}": {"n_samples": n} for n in exp["n_samples"]}


def memory(plan, exp, run):
    """Spectrum, held-out moment and their copies (d x d float64); the network, once per ε where the
    ``batched`` policy may train them as one tensor (``always``; ``auto`` unless the device is the CPU); the
    records of every ε run (trained together and kept in one file), with the held-out errors."""
    _, d = plan.dataset_shape(exp["dataset"])
    h = exp["hidden"]
    width = d + min(h, d) + 17 + len(exp["sigma2_test"])
    policy = plan.config["batched"]
    together = policy == "always" or (policy == "auto" and exp["device"] != "cpu")
    return {"dataset": 5 * d * d * 8, "hidden": network_bytes(d, h) * (len(run_eps(exp)) if together else 1),
            "epochs": len(run_eps(exp)) * records_bytes(exp["epochs"], exp["log_every"], width)}


def work(plan, exp, run):
    """Every ε run of one N: each an exact-engine run as the linear kind counts it, plus per record the
    held-out errors (2 H d^2 flops)."""
    _, d = plan.dataset_shape(exp["dataset"])
    h = exp["hidden"]
    records = exp["epochs"] // exp["log_every"] + 1
    one = exp["epochs"] * 8 * d * h * h + records * (4 * d * h * h + 50 * h**3 + 2 * h * d * d)
    return gemm_seconds(len(run_eps(exp)) * one)


def aggregate_memory(plan, exp):
    """The measured and theory mode strengths over (N, ε, epoch, mode) and a few temporaries as large
    (the errors over sigma2_test); every run file is read whole, the fine grid's too."""
    _, d = plan.dataset_shape(exp["dataset"])
    records = exp["epochs"] // exp["log_every"] + 1
    grid = len(exp["n_samples"]) * len(run_eps(exp)) * records * d
    return (4 + len(exp["sigma2_test"])) * grid * 8


def aggregate_inputs(plan, name, exp, run):
    """Per N (in the config's order): the runs, the spectrum and the held-out moment."""
    return {"runs": plan.run_files(name),
            "spectra": [spectrum_path(exp["dataset"], n) for n in exp["n_samples"]],
            "moments": [heldout_moment_path(exp["dataset"], n, exp["heldout"]) for n in exp["n_samples"]]}


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.linear import train_runs_job
    train_runs_job(spec, inputs["spectrum"], outputs["run"], job, heldout_path=inputs["heldout"], threads=threads,
                   checkpoint_every=checkpoint_every, batched=KIND.batched.get("exact"))


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.generalisation import aggregate_job
    aggregate_job(spec, inputs["runs"], dict(zip(spec["n_samples"], inputs["spectra"])),
                  dict(zip(spec["n_samples"], inputs["moments"])), outputs, job)


KIND = Kind(
    name="generalisation",
    title="Generalisation",
    schema_def="generalisation_experiment",
    config_class="daedyn.runconfig.LinearConfig",
    engines=("linear.ExactEngine", "linear_batched.BatchedExactEngine"),
    batched={"exact": "daedyn.linear_batched:train_batch"},
    runs=exp_runs,
    seeds=lambda exp: [exp["seed"]],
    run_pattern=r"n\d+",
    threads=1,  # small matrices (d x H): one thread each, two jobs side by side on two cores
    memory=memory,
    work=work,
    aggregate_memory=aggregate_memory,
    check=check,
    # the engines record the held-out errors through daedyn.heldout, not daedyn.generalisation: an edit of
    # the experiment's theory or claims retrains nothing
    train=Step(train, ("training", "runconfig", "linear", "linear_batched", "heldout", "jobs/linear",
                      "jobs/bundle"), train_params,
               lambda plan, name, exp, run: {
                   "spectrum": spectrum_path(exp["dataset"], exp_runs(exp)[run]["n_samples"]),
                   "heldout": heldout_moment_path(exp["dataset"], exp_runs(exp)[run]["n_samples"], exp["heldout"])}),
    aggregate=Step(aggregate, ("spectrum", "theory", "heldout", "generalisation", "generalisation_analysis", "claims",
                               "jobs/generalisation"),
                   lambda plan, name, exp, run, seed: {"experiment": name, "n_samples": exp["n_samples"],
                                                       "eps": exp["eps"], "seed": exp["seed"]},
                   aggregate_inputs,
                   {"combined": "combined.nc", "metrics": "metrics.csv", "optimal_noise": "optimal_noise.csv",
                    "claims": "claims.csv"},
                   {"metrics": ("generalisation_metrics.rst", "errors"),
                    "optimal_noise": ("generalisation_optimal_noise.rst", "optimal noise")}),
    figure=figure_step("daedyn.jobs.generalisation:figure_job", "combined.nc",
                       ("figures/__init__", "figures/style", "figures/generalisation", "jobs/generalisation"),
                       lambda plan, name, exp, run, seed: {"experiment": name},
                       "generalisation_figure.rst"),
)
