"""Generalisation figure: held-out error over training, and the optimal training noise.

Drawn only from an experiment's combined dataset with theory
(:func:`daedyn.generalisation_analysis.add_theory`), dims (n_samples, eps, epoch, mode, sigma2_test).

(a) Top rows, one per test-noise variance σ²_test and one column per training-set size N: the
held-out denoising error against epoch, lines the per-mode theory, markers the trained
network, one colour per training noise ε; stars mark each curve's minimum (early stopping)
and the grey line in the σ²_test = 0 row is the train error of the smallest ε. The y axis
starts after the first tenth of training, when the strongest modes are learned.
(b) Bottom left: the optimal training noise ε* against σ²_test, lines the theory for the
trained fixed point, filled markers the grid search over the trained networks (refined by a
parabola), open markers the theory for the runs' training time, dashed the diagonal ε = σ²_test.
Bottom right: ε*/σ²_test against N.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style

__all__ = ["plot_generalisation"]


def _colors(name: str, n: int):
    cmap = plt.get_cmap(name)
    return [cmap(x) for x in np.linspace(0.1, 0.85, max(n, 1))]


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
    n_colors = _colors("plasma", len(ns))

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
    curve = ds["sigma2_curve"].values
    for i, n in enumerate(ns):
        one = ds.sel(n_samples=n)
        ax_s.plot(curve, one["eps_star_curve"], color=n_colors[i], lw=1.4, label=f"N = {n}")
        ax_s.plot(s2, one["eps_star_measured"], "o", color=n_colors[i], ms=7)
        ax_s.plot(s2, one["eps_star_final_theory"], "o", color=n_colors[i], ms=11, mfc="none", mew=1.0)
    ax_s.plot(curve, curve, "k--", lw=0.8, label="ε = σ²_test")
    ax_s.plot([], [], "-", color="0.3", label="theory, trained to the fixed point")
    ax_s.plot([], [], "o", color="0.3", ms=7, label="grid search over the trained nets")
    ax_s.plot([], [], "o", color="0.3", ms=11, mfc="none", label="theory at the last epoch")
    ax_s.set_xlabel("test-noise variance σ²_test")
    ax_s.set_ylabel("optimal training noise ε*")
    ax_s.set_title("optimal training noise", fontsize=10)
    ax_s.legend(fontsize=8, loc="upper left")

    noisy = s2 > 0
    s2_colors = _colors("cividis", int(noisy.sum()))
    for k, v in enumerate(s2[noisy]):
        one = ds.sel(sigma2_test=v)
        ax_n.plot(ns, one["eps_star"] / v, "-", color=s2_colors[k], lw=1.4, marker="s", ms=4,
                  label=f"σ²_test = {v:g}")
        ax_n.plot(ns, one["eps_star_measured"] / v, "o", color=s2_colors[k], ms=7)
        ax_n.plot(ns, one["eps_star_final_theory"] / v, "o", color=s2_colors[k], ms=11, mfc="none", mew=1.0)
    ax_n.axhline(1.0, color="k", ls="--", lw=0.8)
    ax_n.set_xscale("log")
    ax_n.set_xlabel("training samples N")
    ax_n.set_ylabel("ε* / σ²_test")
    ax_n.set_title("ε* / σ²_test against N (markers as on the left)", fontsize=10)
    ax_n.legend(fontsize=7, loc="best")

    hidden, lr = int(ds["hidden_units"]), float(ds["lr"])
    fig.suptitle(f"{title}: held-out denoising error of a linear DAE, H = {hidden}, η = {lr:g} "
                 f"(errors: ½ mean squared error per sample)", fontsize=12)
    return fig
