"""Generalisation figure: held-out error over training, and the optimal training noise.

Drawn only from an experiment's combined dataset with theory
(:func:`daedyn.generalisation_analysis.add_theory`), dims (n_samples, eps, epoch, mode, sigma2_test).

(a) Top rows, one per test-noise variance σ²_test and one column per training-set size N: the
held-out denoising error against epoch, lines the per-mode theory, markers the trained
network, one colour per training noise ε; stars mark each curve's minimum (early stopping)
and the grey line in the σ²_test = 0 row is the train error of the smallest ε. The y axis
starts after the first tenth of training, when the strongest modes are learned.
(b) Bottom left: the optimal training noise ε* against σ²_test, one colour per N: lines the theory
for the trained fixed point, filled circles the trained networks (the argmin of their held-out
error over the run grid and the fine grid around σ²_test; bars: ± the grid's resolution there),
open diamonds the theory for the runs' training time, dashed the diagonal ε = σ²_test. Bottom
right: ε*/σ²_test against N, one colour per σ²_test, the same kinds, side by side at each N.
A legend of the colours and one of the kinds in each panel.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style

__all__ = ["plot_generalisation"]


def _colors(name: str, n: int):
    cmap = plt.get_cmap(name)
    return [cmap(x) for x in np.linspace(0.1, 0.85, max(n, 1))]


#: distinct colours for a few series (N, σ²_test), Okabe–Ito: told apart also by colour-blind readers
SERIES = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

#: the three kinds of optimal-noise values, the same style in both panels and in both legends
KINDS = {"fixed": dict(ls="-", lw=1.4), "measured": dict(ls="none", marker="o", ms=6),
         "final": dict(ls="none", marker="D", ms=8, mfc="none", mew=1.1)}
KIND_LABELS = {"fixed": "theory, trained to the fixed point",
               "measured": "trained networks: argmin, bar ± resolution",
               "final": "theory at the runs' last epoch"}


def _kind_legend(ax, loc):
    """The legend of the marker and line kinds, in grey, beside the legend of the colours."""
    handles = [ax.plot([], [], color="0.35", **KINDS[k], label=KIND_LABELS[k])[0] for k in KINDS]
    handles.append(ax.plot([], [], "k--", lw=0.8, label="ε* = σ²_test")[0])
    return ax.legend(handles=handles, fontsize=7, loc=loc, framealpha=0.9)


def _optimal_noise_panels(ds, ax_s, ax_n):
    """ε* against σ²_test (left, one colour per N) and ε*/σ²_test against N (right, one colour per σ²_test),
    each with the three kinds of value; series side by side are shifted a little so that none hides another."""
    ns = [int(n) for n in ds["n_samples"].values]
    s2 = ds["sigma2_test"].values
    curve = ds["sigma2_curve"].values
    width = 0.012 * float(curve.max() - curve.min() or 1.0)
    for i, n in enumerate(ns):
        one, color = ds.sel(n_samples=n), SERIES[i % len(SERIES)]
        shift = (i - (len(ns) - 1) / 2) * width
        ax_s.plot(curve, one["eps_star_curve"], color=color, label=f"N = {n}", **KINDS["fixed"])
        ax_s.errorbar(s2 + shift, one["eps_star_measured"], yerr=_bars(one), color=color, capsize=2,
                      **KINDS["measured"])
        ax_s.plot(s2 + shift, one["eps_star_final_theory"], color=color, **KINDS["final"])
    ax_s.plot(curve, curve, "k--", lw=0.8)
    ax_s.set_xlabel("test-noise variance σ²_test")
    ax_s.set_ylabel("optimal training noise ε*")
    ax_s.set_title("optimal training noise", fontsize=10)
    ax_s.add_artist(ax_s.legend(fontsize=7, loc="upper left", title="colour", title_fontsize=7))
    _kind_legend(ax_s, "lower right")

    noisy = s2[s2 > 0]
    for k, v in enumerate(noisy):
        one, color = ds.sel(sigma2_test=v), SERIES[(len(ns) + k) % len(SERIES)]
        factor = 1.0 + 0.04 * (k - (noisy.size - 1) / 2)
        ax_n.plot(ns, one["eps_star"] / v, color=color, label=f"σ²_test = {v:g}", **KINDS["fixed"])
        ax_n.errorbar(np.asarray(ns) * factor / 1.05, one["eps_star_measured"] / v, yerr=_bars(one) / v,
                      color=color, capsize=2, **KINDS["measured"])
        ax_n.plot(np.asarray(ns) * factor * 1.05, one["eps_star_final_theory"] / v, color=color, **KINDS["final"])
    ax_n.axhline(1.0, color="k", ls="--", lw=0.8)
    ax_n.set_xscale("log")
    ax_n.set_xlabel("training samples N (the three kinds side by side)")
    ax_n.set_ylabel("ε* / σ²_test")
    ax_n.set_title("ε* / σ²_test against N", fontsize=10)
    if noisy.size:
        ax_n.add_artist(ax_n.legend(fontsize=7, loc="upper left", title="colour", title_fontsize=7))
    _kind_legend(ax_n, "lower right")
    low, high = ax_n.get_ylim()
    ax_n.set_ylim(low - 0.45 * (high - low), high + 0.25 * (high - low))   # room for the legends


def _bars(one):
    """Error bars (below, above) of the measured ε*: its resolution, not below ε = 0; none where the
    minimum lies at the grid's top (a bound, not a measurement)."""
    res = np.asarray(one["eps_star_resolution"], dtype=np.float64)
    res = np.where(np.isfinite(res), res, 0.0)
    return np.stack([np.minimum(res, np.asarray(one["eps_star_measured"], dtype=np.float64)), res])


@style.styled
def plot_generalisation(ds, title: str = ""):
    """The generalisation figure for one experiment (first seed if there is a seed dimension)."""
    if "seed" in ds.dims:
        ds = ds.isel(seed=0)
    ns = [int(n) for n in ds["n_samples"].values]
    eps = ds["eps"].values
    s2 = ds["sigma2_test"].values
    epochs = ds["epoch"].values
    marks = slice(0, None, max(1, epochs.size // 25))
    eps_colors = _colors("viridis", eps.size)

    fig = plt.figure(figsize=(3.6 * len(ns) + 1.0, 3.0 * s2.size + 4.2))
    gs = fig.add_gridspec(s2.size + 1, len(ns), height_ratios=[1] * s2.size + [1.35], hspace=0.45,
                          wspace=0.28, top=0.94, bottom=0.05)
    for row, v in enumerate(s2):
        for col, n in enumerate(ns):
            ax = fig.add_subplot(gs[row, col])
            for k, e in enumerate(eps):
                one = ds.sel(n_samples=n, eps=e, sigma2_test=v)
                meas, th = one["test_denoising"].values, one["test_denoising_theory"].values
                ax.plot(epochs, th, color=eps_colors[k], lw=1.3, label=f"ε = {e:g}")
                ax.plot(epochs[marks], meas[marks], "o", color=eps_colors[k], ms=3, mfc="none", mew=0.9)
                j = int(np.argmin(meas))
                ax.plot(epochs[j], meas[j], "*", color=eps_colors[k], ms=9, mec="k", mew=0.4)
            if v == 0:
                ae = ds.sel(n_samples=n, eps=eps.min())
                ax.plot(epochs, ae["train_error"], color="0.45", lw=0.9, ls="--", label=f"train, ε = {eps.min():g}")
            # the first epochs (top modes being learned) would squash the part that differs
            late = ds["test_denoising_theory"].sel(n_samples=n, sigma2_test=v).sel(epoch=slice(0.1 * epochs[-1], None))
            low = float(ds["test_denoising"].sel(n_samples=n, sigma2_test=v).min())
            if v == 0:
                low = min(low, float(ds["train_error"].sel(n_samples=n).min()))
            ax.set_ylim(0.95 * low, 1.05 * float(late.max()))
            ax.set_title(f"N = {n}, σ²_test = {v:g}", fontsize=10)
            if col == 0:
                ax.set_ylabel("held-out error" if v == 0 else "held-out denoising error")
            if row == s2.size - 1:
                ax.set_xlabel("epoch")
            if row == 0 and col == len(ns) - 1:
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                          title="lines: theory\no: trained\n★: minimum", title_fontsize=7)

    bottom = gs[s2.size, :].subgridspec(1, 2, wspace=0.25)
    ax_s, ax_n = fig.add_subplot(bottom[0]), fig.add_subplot(bottom[1])
    _optimal_noise_panels(ds, ax_s, ax_n)

    hidden, lr = int(ds["hidden_units"]), float(ds["lr"])
    fig.suptitle(f"{title}: held-out denoising error of a linear DAE, H = {hidden}, η = {lr:g} "
                 f"(errors: ½ mean squared error per sample)", fontsize=12)
    return fig
