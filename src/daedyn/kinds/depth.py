"""Kind ``depth``: linear AE/DAE/WDAE with L >= 2 weight matrices, in Σ's eigenbasis (beyond the paper)."""

from __future__ import annotations

from daedyn.kinds import Kind, Step, Trainer, figure_step
from daedyn.plan import config_error, gemm_seconds, network_bytes, records_bytes, spectrum_path

TRAIN_KEYS = ("dataset", "n_samples", "depth", "hidden", "widths", "init", "w0", "init_std", "lr", "epochs",
              "log_every", "match_mode", "dtype", "device", "allow_unstable", "batch_size", "shuffle")


def check(plan, key, exp):
    plan.check_dataset(f"{key}.dataset", exp["dataset"])
    d = plan.dataset_shape(exp["dataset"])[1]
    for run, entry in exp["runs"].items():
        depth = entry.get("depth", exp["depth"])
        if exp["widths"] is not None and len(exp["widths"]) != depth - 1:
            config_error(f"{key}.widths", f"run {run} has depth {depth}, so widths needs {depth - 1} entries "
                         f"(H_1 ... H_{depth - 1}); got {exp['widths']}")
        if entry["match_eps"] > 0 and (entry["eps"] > 0 or entry["gamma"] > 0):
            config_error(f"{key}.runs.{run}.match_eps",
                         "a matched-decay WDAE sets its own gamma and has no noise: leave eps and gamma at 0")
    # the network learns only the modes below its narrowest layer
    rank = min(d, *(exp["widths"] or [exp["hidden"]]))
    if max(exp["modes"]) >= rank:
        config_error(f"{key}.modes", f"mode {max(exp['modes'])} cannot be learned by hidden widths "
                     f"{exp['widths'] or exp['hidden']} on {exp['dataset']!r} (d={d} inputs); modes must be < {rank}")
    if exp["match_mode"] >= d:
        config_error(f"{key}.match_mode", f"{exp['match_mode']} is not a mode of the d={d} inputs of "
                     f"{exp['dataset']!r}")


def memory(plan, exp, run):
    """Spectrum (d x d eigenvectors, in float64 and the run's dtype); the outer layers as a two-layer
    network and the inner ones (H x H, with gradients and copies); the records (u of every mode,
    per-layer norms, scalars)."""
    _, d = plan.dataset_shape(exp["dataset"])
    depth = exp["runs"][run].get("depth", exp["depth"])
    h = max(exp["widths"] or [exp["hidden"]])
    return {"dataset": 3 * d * d * 8, "hidden": network_bytes(d, h) + (depth - 2) * 6 * h * h * 8,
            "epochs": records_bytes(exp["epochs"], exp["log_every"], d + min(h, d) + depth + 16)}


def work(plan, exp, run):
    """About 4 (L - 1) products of d x H x H per epoch."""
    _, d = plan.dataset_shape(exp["dataset"])
    depth = exp["runs"][run].get("depth", exp["depth"])
    h = max(exp["widths"] or [exp["hidden"]])
    return gemm_seconds(exp["epochs"] * 8 * (depth - 1) * d * h * h)


def train(spec, inputs, outputs, job, *, threads, checkpoint_every):
    from daedyn.jobs.depth import train_job
    train_job(spec, inputs["spectrum"], outputs["run"], job, threads=threads, checkpoint_every=checkpoint_every)


def aggregate(spec, inputs, outputs, job):
    from daedyn.jobs.depth import aggregate_job
    aggregate_job(spec, inputs["runs"], outputs["combined"], outputs["metrics"], outputs["claims"], job)


KIND = Kind(
    name="depth",
    title="Depth-L linear networks",
    schema_def="depth_experiment",
    config_class="daedyn.runconfig.DepthConfig",
    engines=("depth.DepthEngine", "depth_batched.BatchedDepthEngine"),
    batched={"": "daedyn.depth_batched:train_batch"},
    # one thread: the products are small (d x H with H ~ 64-256), a second thread gains little and on a
    # busy CPU costs a lot; two runs side by side use two cores better
    threads=1,
    trainer=Trainer("daedyn.depth:train", "daedyn.jobs.depth",
                    ("depth", "hidden", "widths", "init", "n_samples", "dtype", "device",
                     "epochs", "log_every", "batch_size", "shuffle")),
    memory=memory,
    work=work,
    check=check,
    train=Step(train, ("training", "runconfig", "depth", "depth_batched", "tracking", "linear", "jobs/depth"),
               lambda plan, name, exp, run, seed: {"experiment": name, "run": run, "seed": int(seed),
                                                   **{k: exp[k] for k in TRAIN_KEYS}, **exp["runs"][run]},
               lambda plan, name, exp, run: {"spectrum": spectrum_path(exp["dataset"], exp["n_samples"])}),
    aggregate=Step(aggregate, ("depth", "depth_analysis", "trajectories", "claims", "analysis", "jobs/depth"),
                   lambda plan, name, exp, run, seed: {"experiment": name, "runs": list(exp["runs"]),
                                                       "seeds": exp["seeds"]},
                   lambda plan, name, exp, run: {"runs": plan.run_files(name)},
                   {"combined": "combined.nc", "metrics": "metrics.csv", "claims": "claims.csv"},
                   {"metrics": ("depth_metrics.rst", "half-times"), "claims": ("depth_claims.rst", "claims")}),
    figure=figure_step("daedyn.jobs.depth:figure_job", "combined.nc",
                       ("figures/__init__", "figures/style", "figures/depth", "depth", "trajectories", "jobs/depth"),
                       lambda plan, name, exp, run, seed: {"experiment": name, "modes": exp["modes"]},
                       "depth_figure.rst"),
)
