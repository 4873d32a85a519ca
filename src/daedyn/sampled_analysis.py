"""The sampled-noise experiment's answer from its parts: summary, metrics rows and claims.

The parts (trajectories per batch size, the η sweep of the stationary variance, the fixed noisy
copies) are trained by :mod:`daedyn.sampled`; this module compares them with the marginalised
recurrence and the first-order predictions, so that editing the comparison, metrics or claims
reruns the aggregation only.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from daedyn.runconfig import SampledConfig
from daedyn.sampled import (_eta_max, fixed_copies, loglog_slope, marginalised_reference, mean_vs_marginalised,
                            predicted_stationary_variance, sampled_problem, sampled_trajectories, sampled_variance,
                            stationary_variance)
from daedyn.training import Problem

__all__ = ["summarise_sampled", "sampled_summary", "sampled_rows", "sampled_claims", "z_threshold"]


def summarise_sampled(config: SampledConfig, problem: Problem, trajectories: xr.Dataset, variance: xr.Dataset,
                      fixed: xr.Dataset) -> xr.Dataset:
    """The experiment's answer from its parts (:func:`sampled_trajectories` of every batch size, combined
    along ``batch``, :func:`sampled_variance`, :func:`fixed_copies`).

    1. Mean trajectories ± s.e. against the marginalised recurrence (:func:`daedyn.linear.train_exact`
       in float64 from the same initial weights, :func:`mean_vs_marginalised`), and their stationary
       variance over seeds against B, measured from ``burn_in`` relaxation times 1/(2ηλ) of the slowest
       tracked mode after the recurrence is within 1 % of u* on every tracked mode.
    2. The stationary variance against η (from ``window_start``).
    Both with :func:`predicted_stationary_variance` and fitted log-log slopes.
    3. The fixed copies' plateaus minus the marginalised u*.
    """
    problem = sampled_problem(config, problem)
    X, lam, V = problem.X, problem.lam, problem.V
    n, d = X.shape
    modes = list(config.modes)
    ref_u, u_star, lr, settle = marginalised_reference(config, problem)
    out = xr.Dataset(coords={"mode": modes, "lam": ("mode", lam[modes])})
    out["u_star"] = ("mode", u_star)
    means, var_b, var_b_se = [], [], []
    batches = [int(b) for b in trajectories["batch"].values]
    for b in batches:
        u = trajectories["u"].sel(batch=b, drop=True).dropna("step", how="all")
        u = u.where(u["step"] <= config.steps, drop=True)
        means.append(mean_vs_marginalised(u, ref_u.sel(step=u["step"])).expand_dims(batch=[b]))
        st = stationary_variance(u.rename(step="epoch"), start=settle)
        var_b.append(st["variance"].values)
        var_b_se.append(st["se"].values)
    traj = xr.concat(means, "batch", join="outer")
    out["traj_mean"], out["traj_se"], out["diff"], out["z"] = traj["mean"], traj["se"], traj["diff"], traj["z"]
    out["z_threshold"] = ("batch", [z_threshold(out["z"].sel(batch=b).values) for b in batches])
    out["reference"] = ref_u.sel(step=out["step"])
    out["var_batch"] = (("batch", "mode"), np.array(var_b))
    out["var_batch_se"] = (("batch", "mode"), np.array(var_b_se))
    out["var_batch_predicted"] = (("batch", "mode"), np.array([predicted_stationary_variance(
        X, lam, V, eps=config.eps, lr=lr, batch_size=b, modes=modes) for b in batches]))

    lrs = variance["lr"].values
    var_lr, var_lr_se = [], []
    for eta in lrs:
        one = variance.sel(lr=eta)
        st = stationary_variance(one["u"].dropna("epoch", how="all"), start=float(one["window_start"]))
        var_lr.append(st["variance"].values)
        var_lr_se.append(st["se"].values)
    var_batch = int(variance.attrs["var_batch"])
    out = out.assign_coords(lr=lrs)
    out["var_lr"] = (("lr", "mode"), np.array(var_lr))
    out["var_lr_se"] = (("lr", "mode"), np.array(var_lr_se))
    out["var_lr_predicted"] = (("lr", "mode"), np.array([predicted_stationary_variance(
        X, lam, V, eps=config.eps, lr=eta, batch_size=var_batch, modes=modes) for eta in lrs]))
    for key, x in (("lr", lrs), ("batch", batches)):
        out[f"slope_{key}"] = ("mode", loglog_slope(x, out[f"var_{key}"].values))
        out[f"slope_{key}_predicted"] = ("mode", loglog_slope(x, out[f"var_{key}_predicted"].values))

    out["bias"] = (("copy", "mode"), fixed["plateau"].values - u_star[None, :])
    if fixed.sizes["trained_copy"]:
        out["fixed_trained"] = (("trained_copy", "mode"), fixed["trained"].values)
        out["fixed_closed_form"] = (("trained_copy", "mode"), fixed["plateau"].values[:fixed.sizes["trained_copy"]])
    for name, (long_name, units) in _SUMMARY_META.items():
        if name in out.variables:
            out[name].attrs.update(long_name=long_name, units=units)
    out.attrs.update(seeds=config.seeds, n_samples=n, dim=d, hidden=config.hidden, eps=config.eps,
                     eta_max=_eta_max(lam, config), lr=lr, fraction=config.fraction, var_batch=var_batch, steps=config.steps, settle=settle,
                     init_std=config.init_std, burn_in=config.burn_in, window=config.window,
                     copies=fixed.sizes["copy"])
    return out


_SUMMARY_META = {
    "mode": ("eigenmode index: 0 = largest eigenvalue", "1"),
    "lam": ("eigenvalue of Sigma: of the projected data", "1"),
    "u_star": ("marginalised fixed point: lam/(lam + eps)", "1"),
    "batch": ("minibatch size B: N is the full batch", "1"),
    "step": ("gradient steps taken", "1"),
    "lr": ("learning rate: eta of the variance sweep", "1"),
    "copy": ("copy seed: seed of the fixed noisy copy", "1"),
    "trained_copy": ("trained copy seed: seed of a trained fixed copy", "1"),
    "traj_mean": ("mean mode strength: mean over seeds of u_i with fresh noise every step", "1"),
    "traj_se": ("standard error of the mean: over seeds, of (u_i - marginalised recurrence)", "1"),
    "diff": ("deviation of the mean: mean over seeds of u_i minus the marginalised recurrence", "1"),
    "z": ("z-score of the mean: diff / traj_se, against the marginalised recurrence", "1"),
    "z_threshold": ("Bonferroni threshold of |z|: at a 5 % family-wise error over the batch size's logged "
                    "steps and modes", "1"),
    "reference": ("marginalised recurrence: u_i of exact full-batch GD from the same initial weights", "1"),
    "var_batch": ("stationary variance, by batch: of u_i over seeds, trajectories at the batch size", "1"),
    "var_batch_se": ("standard error of var_batch: a lower bound (records are correlated)", "1"),
    "var_batch_predicted": ("first-order prediction of var_batch", "1"),
    "var_lr": ("stationary variance, by learning rate: of u_i over seeds, from the minimum at the learning rate", "1"),
    "var_lr_se": ("standard error of var_lr: a lower bound (records are correlated)", "1"),
    "var_lr_predicted": ("first-order prediction of var_lr", "1"),
    "slope_lr": ("slope of var_lr: fitted log-log slope against eta", "1"),
    "slope_lr_predicted": ("predicted slope of var_lr: log-log slope of var_lr_predicted against eta", "1"),
    "slope_batch": ("slope of var_batch: fitted log-log slope against B", "1"),
    "slope_batch_predicted": ("predicted slope of var_batch: log-log slope of var_batch_predicted against B", "1"),
    "bias": ("fixed-copy bias: plateau u_i on one fixed noisy copy (closed form) minus the marginalised u*", "1"),
    "fixed_trained": ("trained on a fixed copy: u_i after training on the copy (last step)", "1"),
    "fixed_closed_form": ("fixed copy's plateau: u_i of the same copy's empirical minimiser (closed form)", "1"),
}


def sampled_summary(config: SampledConfig, problem: Problem, **runtime) -> xr.Dataset:
    """Every part of the experiment in this process, then :func:`summarise_sampled` (for notebooks and
    tests; the workflow trains the parts in bundles). ``runtime``: ``threads``, ``progress``."""
    parts = [part(config, problem, **runtime)[0] for part in (sampled_trajectories, sampled_variance, fixed_copies)]
    return summarise_sampled(config, problem, *parts)


def sampled_rows(summary: xr.Dataset) -> list[dict]:
    """``metrics.csv`` rows of the sampled-vs-marginalised experiment, one quantity per row.

    Columns: ``quantity``, ``mode``, ``lam``, ``batch_size``, ``lr`` (blank where not applicable),
    ``value``, ``predicted``, ``se``. Quantities: ``max_abs_z`` and ``max_rel_diff`` (mean
    trajectory vs the marginalised recurrence, per batch size), ``variance_vs_batch``,
    ``variance_vs_lr`` (measured, first-order prediction, s.e.), ``slope_vs_lr``,
    ``slope_vs_batch``, ``fixed_copy_bias`` (mean over copies, s.e.) and ``fixed_copy_rms``.
    """
    rows = []
    lr_traj = float(summary.attrs["lr"])

    def add(quantity, mode, value, predicted=np.nan, se=np.nan, batch="", lr=""):
        rows.append({"quantity": quantity, "mode": int(mode), "lam": float(summary["lam"].sel(mode=mode)),
                     "batch_size": batch, "lr": lr, "value": float(value), "predicted": float(predicted),
                     "se": float(se)})

    for m in summary["mode"].values:
        u_star = float(summary["u_star"].sel(mode=m))
        for b in summary["batch"].values:
            one = summary.sel(batch=b, mode=m)
            add("max_abs_z", m, np.nanmax(np.abs(one["z"].values)), batch=int(b), lr=lr_traj)
            add("max_rel_diff", m, np.nanmax(np.abs(one["diff"].values)) / u_star, batch=int(b), lr=lr_traj)
            add("variance_vs_batch", m, one["var_batch"], one["var_batch_predicted"], one["var_batch_se"],
                batch=int(b), lr=lr_traj)
        for eta in summary["lr"].values:
            one = summary.sel(lr=eta, mode=m)
            add("variance_vs_lr", m, one["var_lr"], one["var_lr_predicted"], one["var_lr_se"],
                batch=int(summary.attrs["var_batch"]), lr=float(eta))
        for key in ("lr", "batch"):
            add(f"slope_vs_{key}", m, summary[f"slope_{key}"].sel(mode=m),
                summary[f"slope_{key}_predicted"].sel(mode=m))
        bias = summary["bias"].sel(mode=m)
        add("fixed_copy_bias", m, bias.mean(), se=bias.std(ddof=1) / math.sqrt(bias.size))
        add("fixed_copy_rms", m, np.sqrt((bias**2).mean()))
    return rows


#: family-wise error rate of the test that the mean over seeds follows the marginalised recurrence
FAMILY_ERROR = 0.05


def z_threshold(z) -> float:
    """The |z| that no finite entry of ``z`` may exceed: Bonferroni at :data:`FAMILY_ERROR`, two-sided,
    over every finite entry (all logged steps and modes of one batch size at once)."""
    from scipy.stats import norm

    return float(norm.isf(FAMILY_ERROR / 2 / int(np.isfinite(z).sum())))


def sampled_claims(summary: xr.Dataset, name: str = "") -> list[dict]:
    """Claims rows of the sampled-vs-marginalised experiment from :func:`sampled_summary`.

    ``summary`` holds ``z`` and ``diff`` (batch, step, mode) of the mean trajectories, the variance
    sweeps ``var_lr`` (lr, mode) and ``var_batch`` (batch, mode) with ``slope_lr``/``slope_batch``
    (mode) and their first-order predictions, and the fixed copies' ``bias`` (copy, mode), with
    ``fixed_trained`` and ``fixed_closed_form`` (trained_copy, mode) when copies were trained.
    Each row states its ``tolerance`` and, in ``judged_on``, its worst case: the batch size whose
    largest |z| is the largest multiple of its threshold (with the step and mode), the mode whose
    slope lies furthest from ±1, the mode whose trained copies end furthest from their closed form.
    """
    from daedyn.claims import claim_row, grade

    tag = f" ({name})" if name else ""
    n = int(summary.attrs["n_samples"])
    u_star = summary["u_star"].values
    rows = []
    parts, ok_b, excess = [], [], []
    for b in summary["batch"].values:
        zb = np.abs(summary["z"].sel(batch=b))
        z = zb.values
        z_crit = z_threshold(z)                               # Bonferroni: all points at once
        at = zb.where(zb == zb.max(), drop=True)              # the largest |z|: where it lies
        excess.append((float(zb.max()) / z_crit, z_crit, f"step {int(at['step'][0])}, mode {int(at['mode'][0])}"))
        z = z[np.isfinite(z)]
        rel = float(np.nanmax(np.abs(summary["diff"].sel(batch=b).values) / u_star))
        parts.append(f"B = {'N' if b == n else int(b)}: max |z| {z.max():.1f} (threshold {z_crit:.2f} for {z.size} "
                     f"points), {(z <= 3).mean():.0%} within 3 s.e., max |mean − marginalised| {rel:.2%} of u*")
        ok_b.append(bool(np.all(z <= z_crit)))
    full = [ok for b, ok in zip(summary["batch"].values, ok_b) if b == n]
    batches = ["N" if b == n else str(int(b)) for b in summary["batch"].values]
    worst_b = int(np.argmax([e for e, _, _ in excess]))
    rows.append(claim_row(
        f"sampled noise, mean{tag}",
        "Averaged over noise draws, a DAE with fresh Gaussian noise every step follows the marginalised "
        "recurrence that the paper's linear model trains",
        "; ".join(parts),
        f"no logged step off by more than the Bonferroni threshold ({FAMILY_ERROR:.0%} family-wise) of the "
        "standard error, at every batch size",
        grade(all(ok_b), bool(full) and all(full)),
        f"{int(summary.attrs['seeds'])} seeds from one initial state, η = {summary.attrs['fraction']:g} η_max, "
        "steps on the x axis; qualified: the full batch follows the recurrence, a minibatch size does not: the "
        "mean differs at second order in η, which small minibatches make visible",
        tolerance=f"|z| <= the Bonferroni threshold of its batch size ("
                  + ", ".join(f"{c:.2f}" for _, c, _ in excess) + f" for B = {', '.join(batches)})",
        judged_on=f"worst of {len(excess)} batch sizes: B = {batches[worst_b]}, max |z| {excess[worst_b][0]:.2f} x its "
                  f"threshold, at {excess[worst_b][2]}"))
    for key, label, expected in (("lr", "η", 1.0), ("batch", "B", -1.0)):
        s = summary[f"slope_{key}"].values
        sp = summary[f"slope_{key}_predicted"].values
        ok = np.abs(s - expected) <= 0.1
        near = np.abs(s - sp) <= 0.1
        w = int(np.argmax(np.abs(s - expected)))
        x = summary[key].values
        where = (f"η = {x.min():.3g}…{x.max():.3g} ({x.min() / summary.attrs['eta_max']:g}–"
                 f"{x.max() / summary.attrs['eta_max']:g} η_max), B = {int(summary.attrs['var_batch'])}"
                 if key == "lr" else
                 f"B = {', '.join('N' if b == n else str(int(b)) for b in x)}, "
                 f"η = {summary.attrs['fraction']:g} η_max")
        rows.append(claim_row(
            f"sampled noise, variance vs {label}{tag}",
            f"Near the fixed point the stationary variance of uᵢ over seeds scales as η/B: log-log slope "
            f"{expected:+g} against {label}",
            f"{where}: fitted slopes " + ", ".join(f"mode {m} {a:+.2f} (first-order prediction {c:+.2f})"
                                                   for m, a, c in zip(summary["mode"].values, s, sp)),
            f"{expected:+g} ± 0.1",
            grade(bool(ok.all()), bool(near.all())),
            "the first-order prediction adds the factor 1/(1 − ηλᵢ) of the discrete relaxation"
            if key == "lr" else
            "minibatches are drawn without replacement, one pass per epoch: the data part of the gradient noise "
            "scales as (N−B)/(N−1) and vanishes for the full batch",
            tolerance=f"|slope - ({expected:+g})| <= 0.1 (qualified: |slope - first-order prediction| <= 0.1 "
                      "for every mode)",
            judged_on=f"worst of {s.size} modes: mode {int(summary['mode'][w])}, slope {s[w]:+.2f} "
                      f"({abs(s[w] - expected):.2f} off {expected:+g}); largest gap to the prediction "
                      f"{np.abs(s - sp).max():.2f}, mode {int(summary['mode'][int(np.argmax(np.abs(s - sp)))])}"))
    bias = summary["bias"]
    mean = bias.mean("copy").values
    se = bias.std("copy", ddof=1).values / math.sqrt(bias.sizes["copy"])
    rms = np.sqrt((bias**2).mean("copy").values)
    measured = ("plateau − u* over " + f"{bias.sizes['copy']} copies (closed form): " + ", ".join(
        f"mode {m} mean {a:+.4f} ± {b:.4f}, rms {r:.4f}" for m, a, b, r in zip(summary["mode"].values, mean, se, rms)))
    trained = "fixed_trained" in summary
    if trained:  # the trained copies must sit much closer to their own minimiser than u* is
        gap = np.abs(summary["fixed_trained"] - summary["fixed_closed_form"]).max("trained_copy").values
        ratio = gap / rms
        worst = int(np.argmax(ratio))
        measured += ("; trained copies end within " + ", ".join(f"{g:.1e}" for g in gap) + " of their closed form "
                     f"(worst over copies; largest gap / rms {ratio[worst]:.2g}, mode {int(summary['mode'][worst])})")
        trained = bool(np.all(ratio <= 0.2))
        judged = (f"worst of {ratio.size} modes: mode {int(summary['mode'][worst])}, largest gap over "
                  f"{summary.sizes['trained_copy']} trained copies {gap[worst]:.1e} = {ratio[worst]:.2g} x the rms")
    else:
        least = int(np.argmin(rms))
        judged = (f"no trained copies (not confirmed); smallest rms over {rms.size} modes: {rms[least]:.2g}, "
                  f"mode {int(summary['mode'][least])}")
    rows.append(claim_row(
        f"fixed noisy copy{tag}",
        "Training on one fixed noisy copy of the data ends at that copy's empirical minimiser, not at the "
        "marginalised plateau",
        measured,
        "every mode: the trained copies' largest distance from their own closed-form plateau <= 0.2 x the rms "
        "of (plateau - u*) over copies; the plateaus off u* (rms > 0)",
        grade(trained, bool(np.all(rms > 0))),
        f"N = {n}: the per-copy error shrinks as 1/√N; a systematic offset is significant where |mean| > 3 s.e.; "
        "each copy's noise covariance is not εI and Σ xₙnₙᵀ ≠ 0, while fresh noise averages to u*",
        tolerance="trained copy's largest distance from its closed form <= 0.2 x rms(plateau - u*), per mode "
                  "(qualified: rms > 0 in every mode)",
        judged_on=judged))
    return rows

