"""Figure of the sampled-vs-marginalised-noise experiment (see :mod:`daedyn.sampled`): sampled-noise
training against the marginalised recurrence (mean ± s.e.), the stationary variance against η and B,
the fixed-copy bias, the mean's z-scores against their threshold."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style

__all__ = ["plot_sampled_vs_marginalised"]


@style.styled
def plot_sampled_vs_marginalised(ds, title: str = ""):
    """Six panels from :func:`daedyn.sampled_analysis.sampled_summary`.

    (a) mean over seeds of uᵢ with sampled noise (one line style per batch size, against gradient
    steps) and the marginalised recurrence drawn on top of them (thin black line with dots); (b) their
    difference ± 2 s.e., relative to u*; (f) the largest |z| over the modes at each logged step,
    one line per batch size, against its Bonferroni threshold (the first claim's test);
    (c) the plateaus of fixed noisy copies minus u* (closed form per copy, their mean ± 2 s.e.,
    and trained copies); (d), (e) the stationary variance against η and against B on log-log axes
    with fitted slopes and the first-order prediction (dashed).
    """
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    modes = ds["mode"].values
    batches = ds["batch"].values
    n = int(ds.attrs["n_samples"])
    styles = ["-", "--", ":", "-."]
    colors = {m: plt.cm.tab10(j % 10) for j, m in enumerate(modes)}

    def batch_label(b):
        return "B = N" if b == n else f"B = {int(b)}"

    ax = axes[0, 0]
    for m in modes:
        for k, b in enumerate(batches):
            mean = ds["traj_mean"].sel(batch=b, mode=m)
            ok = np.isfinite(mean.values)
            ax.plot(ds["step"].values[ok], mean.values[ok], ls=styles[k % 4], color=colors[m], lw=1.6)
        # on top of the curves it agrees with: thin, black, with dots (no batch size's line style)
        ax.plot(ds["step"], ds["reference"].sel(mode=m), color="black", lw=0.8, marker="o", ms=2.2, zorder=5)
    handles = [plt.Line2D([], [], color="black", lw=0.8, marker="o", ms=2.2, label="marginalised recurrence (on top)")]
    handles += [plt.Line2D([], [], color=colors[m], label=f"mode {m}") for m in modes]
    handles += [plt.Line2D([], [], color="0.3", ls=styles[k % 4], label=batch_label(b)) for k, b in enumerate(batches)]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("$u_i$, mean over seeds")
    ax.set_title(f"(a) fresh noise, {int(ds.attrs['seeds'])} seeds, η = {ds.attrs['fraction']:g} η_max")

    ax = axes[0, 1]
    for m in modes:
        u_star = float(ds["u_star"].sel(mode=m))
        for k, b in enumerate(batches):
            diff = ds["diff"].sel(batch=b, mode=m) / u_star
            se = ds["traj_se"].sel(batch=b, mode=m) / u_star
            ok = np.isfinite(diff.values)
            st = ds["step"].values[ok]
            ax.plot(st, diff.values[ok], ls=styles[k % 4], color=colors[m], lw=1.2)
            ax.fill_between(st, (diff - 2 * se).values[ok], (diff + 2 * se).values[ok], color=colors[m], alpha=0.12)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("gradient step")
    ax.set_ylabel("(mean − marginalised) / $u^*$, band ± 2 s.e.")
    ax.set_title("(b) mean over seeds minus the marginalised recurrence")
    ax.legend(handles=handles[1:], fontsize=8)

    ax = axes[0, 2]
    bias = ds["bias"]
    ax.axhline(0.0, color="black", lw=0.8)
    for c in range(bias.sizes["copy"]):
        ax.plot(modes, bias.isel(copy=c), "o", color="tab:red", alpha=0.3, ms=4,
                label="closed form, one copy each" if c == 0 else None)
    ax.errorbar(modes, bias.mean("copy"), yerr=2 * bias.std("copy", ddof=1) / np.sqrt(bias.sizes["copy"]),
                fmt="s", color="darkred", ms=7, capsize=3, label="mean over copies ± 2 s.e.")
    if "fixed_trained" in ds:
        for c in range(ds.sizes["trained_copy"]):
            ax.plot(modes, ds["fixed_trained"].isel(trained_copy=c).values - ds["u_star"].values, "x", color="black",
                    ms=8, mew=1.5, label="trained on copies 0, 1, … (last step)" if c == 0 else None)
    ax.set_xticks(modes)
    ax.set_xlabel("mode")
    ax.set_ylabel("plateau on one fixed noisy copy − $u^*$")
    ax.set_title(f"(c) one fixed noisy copy ({bias.sizes['copy']} copies)")
    ax.legend(fontsize=8)

    for ax, key, coord, xlabel, letter in ((axes[1, 0], "lr", "lr", "learning rate η", "d"),
                                           (axes[1, 1], "batch", "batch", "minibatch size B", "e")):
        x = ds[coord].values
        for m in modes:
            ax.errorbar(x, ds[f"var_{key}"].sel(mode=m), yerr=2 * ds[f"var_{key}_se"].sel(mode=m), fmt="o",
                        color=colors[m], ms=5, capsize=2,
                        label=f"mode {m}: slope {float(ds[f'slope_{key}'].sel(mode=m)):+.2f} "
                              f"(predicted {float(ds[f'slope_{key}_predicted'].sel(mode=m)):+.2f})")
            ax.plot(x, ds[f"var_{key}_predicted"].sel(mode=m), color=colors[m], lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("stationary variance of $u_i$ over seeds")
        if key == "lr":
            what = f"η (B = {int(ds.attrs['var_batch'])}, from the minimum)"
            expected = "+1"
        else:
            what = f"B (η = {ds.attrs['fraction']:g} η_max, end of (a))"
            expected = "−1"
        ax.set_title(f"({letter}) variance vs {what}; expected slope {expected}", fontsize=10)
        ax.legend(fontsize=8)
    ax = axes[1, 2]
    top = 0.0
    for k, b in enumerate(batches):
        z = np.abs(ds["z"].sel(batch=b)).max("mode", skipna=True)
        ok = np.isfinite(z.values)
        top = max(top, float(z.values[ok].max(initial=0.0)))
        ax.plot(ds["step"].values[ok], z.values[ok], ls=styles[k % 4], color="0.2", lw=1.2, marker=".", ms=4,
                label=f"{batch_label(b)}: largest |z| over modes")
    if "z_threshold" in ds:               # one line per distinct threshold, naming its batch sizes
        limits = ds["z_threshold"].values
        for j, level in enumerate(np.unique(np.round(limits, 6))):
            which = [batch_label(b) for b, v in zip(batches, limits) if round(float(v), 6) == level]
            ax.axhline(level, color=("tab:red", "tab:purple", "tab:brown")[j % 3], lw=1.0,
                       label=f"Bonferroni threshold {level:.2f} ({', '.join(which)})")
            top = max(top, float(level))
    ax.set_xlabel("gradient step")
    ax.set_ylabel("|mean − marginalised| / s.e.")
    ax.set_ylim(0, 1.8 * top)             # headroom: the legend above the data
    ax.set_title("(f) the mean's z-score against the marginalised recurrence", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{title + ': ' if title else ''}sampled vs marginalised input noise in a linear DAE "
                 f"(N = {n}, d = {int(ds.attrs['dim'])}, H = {int(ds.attrs['hidden'])}, σ² = {ds.attrs['eps']:g}; "
                 "dashed in (d), (e): first-order prediction)", fontsize=12)
    fig.tight_layout()
    return fig
