"""Figure of the learning-rate-normalised comparison (see :mod:`daedyn.lr_normalised`): the WDAE/DAE
step ratio per mode at equal fractions of each model's own stability limit, measured and predicted,
against the early-growth curve."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn import lr_normalised
from daedyn.figures import style

__all__ = ["plot_lr_normalised"]

_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
_PALETTE = ["tab:purple", "tab:blue", "tab:cyan", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:gray"]


def _gamma_label(g: float, k: int) -> str:
    return f"γ = {g:.3g}" + (f" (plateau of mode {k})" if k >= 0 else " (free)")


@style.styled
def plot_lr_normalised(comp, title: str = ""):
    """Step ratio WDAE/DAE against λᵢ (log x), one panel per level (50 %, 90 % of the plateau).

    Colour: the WDAE's γ; marker: the fraction f of the stability limit. Filled markers are
    measured, small white dots inside them the exact per-mode prediction; lines the early-growth
    curve (1 − γ/λ₁)/(1 − γ/λᵢ). Only modes that reached their plateau in both runs are drawn.
    """
    levels = lr_normalised.comparison_levels(comp)
    lam1 = comp.attrs["lam1"]
    choices = sorted({(float(g), int(k)) for g, k in zip(comp["gamma"].values, comp["matched_mode"].values)},
                     key=lambda c: (c[1] < 0, c[0]))
    colors = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(choices)}
    fractions = sorted(set(comp["fraction"].values.tolist()))
    markers = {f: _MARKERS[i % len(_MARKERS)] for i, f in enumerate(fractions)}
    # side by side per fraction (the ratios hardly depend on f and would hide each other)
    dodge = {f: 1.07 ** (i - (len(fractions) - 1) / 2) for i, f in enumerate(fractions)}
    lam = comp["lam"].values
    ok_all = comp["compared"].values.astype(bool)
    shown = [comp[f"ratio{round(100 * q)}_{k}"].values[ok_all] for q in levels for k in ("measured", "predicted")]
    top = max(1.2, 1.15 * float(np.nanmax(np.concatenate(shown)))) if ok_all.any() else 2.0
    fig, axes = plt.subplots(1, len(levels), figsize=(6.4 * len(levels), 5.2), squeeze=False, sharey=True)
    for ax, q in zip(axes[0], levels):
        key = round(100 * q)
        for c in choices:
            g, _ = c
            grid = np.geomspace(max(g * 1.001, lam.min() * 0.7), lam1 * 1.3, 400)
            ax.plot(grid, lr_normalised.ratio_curve(grid, g, lam1), color=colors[c], lw=1.2, alpha=0.8)
        for i in range(comp.sizes["pair"]):
            one = comp.isel(pair=i)
            f = float(one["fraction"])
            c = (float(one["gamma"]), int(one["matched_mode"]))
            ok = one["compared"].values.astype(bool)
            x = lam[ok] * dodge[f]
            ax.plot(x, one[f"ratio{key}_measured"].values[ok], markers[f], color=colors[c], ms=8, ls="none",
                    alpha=0.9)
            ax.plot(x, one[f"ratio{key}_predicted"].values[ok], ".", color="white", ms=3, ls="none")
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_ylim(0.9, top)
        ax.set_xlabel("eigenvalue $\\lambda_i$ of the mode (numbers: mode index)")
        ax.set_title(f"steps to {key} % of each model's own plateau")
        for m, lm in zip(comp["mode"].values, lam):
            ax.annotate(f"{m}", (lm, 0.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=8, color="0.3")
    axes[0, 0].set_ylabel("step ratio WDAE / DAE  (> 1: noise faster)")
    handles = [plt.Line2D([], [], color=colors[c], lw=1.5, label=_gamma_label(*c)) for c in choices]
    handles += [plt.Line2D([], [], color="0.4", marker=markers[f], ls="none", label=f"f = {f:g}")
                for f in fractions]
    handles += [plt.Line2D([], [], color="0.4", marker="o", ls="none", ms=8, label="measured"),
                plt.Line2D([], [], color="0.4", marker=".", mfc="white", mec="0.4", ls="none",
                           label="exact per-mode theory"),
                plt.Line2D([], [], color="0.4", lw=1.2, label="(1 − γ/λ₁)/(1 − γ/λᵢ)")]
    axes[0, -1].legend(handles=handles, loc="upper right", fontsize=8)
    eps = float(comp["eps"].values[0])
    fig.suptitle(f"{title + ': ' if title else ''}noise (σ² = {eps:g}) vs weight decay, each at the same "
                 f"fraction f of its own stability limit (dashed: equal speed)",
                 fontsize=11)
    fig.tight_layout()
    return fig
