"""Kind ``sampled``: sampled against marginalised input noise in a linear DAE (beyond the paper).

An experiment trains in parts, each one job whose file holds every seed: the trajectories of one
batch size (``traj_full``, ``traj_b{B}``), the learning-rate sweep of the stationary variance
(``variance``) and the fixed noisy copies (``fixed_copy``).
"""

from __future__ import annotations

from daedyn.kinds import Kind, Step, figure_step
from daedyn.plan import check_distinct, config_error, dataset_path, gemm_seconds, network_bytes, spectrum_path

#: the keys every part uses, and each part's own (daedyn.runconfig.SampledConfig)
COMMON = ("dataset", "n_samples", "dim", "hidden", "eps", "modes", "seeds", "init_std", "init_seed", "dtype",
          "device")
PART_KEYS = {
    "traj": ("fraction", "steps", "records", "burn_in"),
    "variance": ("var_fractions", "var_batch", "burn_in", "window"),
    "fixed_copy": ("fraction", "steps", "copies", "trained_copies"),
}


def trajectory_part(batch_size) -> str:
    return "traj_full" if batch_size is None else f"traj_b{batch_size}"


def parts(exp) -> dict[str, dict]:
    """Part name -> its own values."""
    runs = {trajectory_part(b): {k: exp[k] for k in PART_KEYS["traj"]} | {"batches": [b]} for b in exp["batches"]}
    return runs | {part: {k: exp[k] for k in PART_KEYS[part]} for part in ("variance", "fixed_copy")}


def check(plan, key, exp):
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    d = plan.dataset_shape(exp["dataset"])[1]
    dim = exp["dim"] or d
    if dim > d:
        config_error(f"{key}.dim", f"{dim} exceeds the data's d = {d}")
    if exp["hidden"] > dim or max(exp["modes"]) >= exp["hidden"]:
        config_error(f"{key}.modes", f"need max(modes) < hidden <= dim (the variance sweep starts at the minimum "
                     f"of a network that learns every tracked mode); got modes {exp['modes']}, "
                     f"hidden={exp['hidden']}, dim={dim}")
    for b in [*exp["batches"], exp["var_batch"]]:
        if b is not None and b > exp["n_samples"]:
            config_error(f"{key}.batches", f"batch size {b} exceeds n_samples={exp['n_samples']}")
    check_distinct(key, exp, "batches", "var_fractions")
    if exp["trained_copies"] > exp["copies"]:
        config_error(f"{key}.trained_copies", f"more than copies={exp['copies']}")


def inputs(plan, name, exp, run):
    return {"spectrum": spectrum_path(exp["dataset"], exp["n_samples"]), "dataset": dataset_path(exp["dataset"])}


def memory(plan, exp, run):
    """The data (float64) and, per seed, a full batch of inputs, noise and errors (4 x N x d) and a network
    (the records, a few hundred rows of the tracked modes, are small)."""
    n, d = plan.dataset_shape(exp["dataset"])
    dim = exp["dim"] or d
    return {"n_samples": (3 * n * d + 4 * exp["seeds"] * exp["n_samples"] * dim) * 8,
            "hidden": exp["seeds"] * network_bytes(dim, exp["hidden"])}


def work(plan, exp, run):
    """The full-batch trajectories: 12 N dim H flops per seed and step."""
    dim = exp["dim"] or plan.dataset_shape(exp["dataset"])[1]
    return gemm_seconds(12 * exp["seeds"] * exp["n_samples"] * dim * exp["hidden"] * exp["steps"])


def aggregate_inputs(plan, name, exp, run):
    base = f"results/{name}/runs"
    return {"trajectories": [f"{base}/{trajectory_part(b)}.nc" for b in exp["batches"]],
            "variance": f"{base}/variance.nc", "fixed": f"{base}/fixed_copy.nc", **inputs(plan, name, exp, run)}


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.sampled import sampled_part_job
    sampled_part_job(spec, inputs["spectrum"], inputs["dataset"], outputs["run"], job, threads=threads,
                     checkpoint_every=checkpoint_every)


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.sampled import sampled_aggregate_job
    sampled_aggregate_job(spec, inputs["trajectories"], inputs["variance"], inputs["fixed"], inputs["spectrum"],
                          inputs["dataset"], outputs["summary"], outputs["metrics"], outputs["claims"], job)


def aggregate_params(plan, name, exp, run, seed):
    keys = COMMON + tuple({k for v in PART_KEYS.values() for k in v})
    return {"experiment": name, "run": "summary", "batches": exp["batches"], **{k: exp[k] for k in keys}}


KIND = Kind(
    name="sampled",
    title="Sampled against marginalised noise",
    schema_def="sampled_experiment",
    config_class="daedyn.runconfig.SampledConfig",
    engines=("sampled_engines.SeedBatchSampledEngine", "sampled_engines.FixedCopyEngine"),
    runs=parts,
    seeds=lambda exp: list(range(exp["seeds"])),
    file_per_seed=False,
    run_pattern=r"traj_full|traj_b\d+|variance|fixed_copy",
    threads=1,
    memory=memory,
    work=work,
    check=check,
    # theory sets the learning rates (fractions of the stability limit): a theory edit retrains
    train=Step(train, ("training", "runconfig", "theory", "linear", "sampled", "sampled_engines", "data", "jobs/sampled"),
               lambda plan, name, exp, run, seed: {"experiment": name, "run": run, **{k: exp[k] for k in COMMON},
                                                   **parts(exp)[run]},
               inputs),
    aggregate=Step(aggregate, ("training", "runconfig", "theory", "linear", "sampled", "sampled_engines",
                               "sampled_analysis", "data", "claims", "jobs/sampled"),
                   aggregate_params, aggregate_inputs,
                   {"summary": "summary.nc", "metrics": "metrics.csv", "claims": "claims.csv"},
                   {"metrics": ("sampled_metrics.rst", "metrics")}),
    figure=figure_step("daedyn.jobs.sampled:sampled_figure_job", "summary.nc",
                       ("figures/__init__", "figures/style", "figures/sampled", "jobs/sampled"),
                       lambda plan, name, exp, run, seed: {"experiment": name},
                       "sampled_figure.rst"),
)
