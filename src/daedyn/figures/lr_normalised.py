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
    """Step ratio WDAE/DAE per mode: one row of panels per WDAE decay γ, one column per level
    (50 %, 90 % of each model's own plateau).

    The modes stand side by side in the order of the spectrum (λᵢ falling to the right), each
    with one group per fraction f of the stability limit (marker shape), so no two series hide
    each other: filled markers are measured, black crosses the exact per-mode prediction, and a
    bar across the group the early-growth estimate (1 − γ/λ₁)/(1 − γ/λᵢ). A mode without a
    ratio (a model never learns it, or does not reach its plateau within the run) is named in the
    panel with the reason. Each row has its own y range, so small ratios stay readable.
    """
    levels = lr_normalised.comparison_levels(comp)
    lam1 = comp.attrs["lam1"]
    choices = sorted({(float(g), int(k)) for g, k in zip(comp["gamma"].values, comp["matched_mode"].values)},
                     key=lambda c: (c[1] < 0, c[0]))
    colors = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(choices)}
    fractions = sorted(set(comp["fraction"].values.tolist()))
    markers = {f: _MARKERS[i % len(_MARKERS)] for i, f in enumerate(fractions)}
    width = 0.7  # of one mode's slot, shared by its fractions
    offset = {f: width * ((i + 0.5) / len(fractions) - 0.5) for i, f in enumerate(fractions)}
    lam, modes = comp["lam"].values, comp["mode"].values
    order = np.argsort(-lam, kind="stable")
    slot = np.empty(lam.size)
    slot[order] = np.arange(lam.size)
    fig, axes = plt.subplots(len(choices), len(levels), figsize=(6.4 * len(levels), 2.7 * len(choices) + 1.2),
                             squeeze=False, sharex=True)
    for row, c in enumerate(choices):
        g, _ = c
        pairs = [i for i in range(comp.sizes["pair"])
                 if (float(comp["gamma"].values[i]), int(comp["matched_mode"].values[i])) == c]
        curve = lr_normalised.ratio_curve(lam, g, lam1)
        for ax, q in zip(axes[row], levels):
            key = round(100 * q)
            shown = [1.0]
            for j in np.flatnonzero(np.isfinite(curve)):
                ax.plot([slot[j] - width / 2, slot[j] + width / 2], [curve[j]] * 2, color=colors[c], lw=2.0, alpha=0.6)
                shown.append(curve[j])
            for i in pairs:
                one = comp.isel(pair=i)
                f = float(one["fraction"])
                ok = one["compared"].values.astype(bool)
                x = slot[ok] + offset[f]
                meas, pred = one[f"ratio{key}_measured"].values[ok], one[f"ratio{key}_predicted"].values[ok]
                ax.plot(x, meas, markers[f], color=colors[c], ms=7, ls="none", alpha=0.85)
                ax.plot(x, pred, "x", color="black", ms=5, mew=1.2, ls="none")
                shown += [*meas, *pred]
            ax.axhline(1.0, color="black", lw=0.8, ls="--")
            top = float(np.nanmax(shown))
            ax.set_ylim(1.0 - 0.08 * (top - 1.0) - 0.01, 1.0 + 1.25 * (top - 1.0) + 0.02)
            ax.text(0.01, 0.96, _missing(comp, pairs), transform=ax.transAxes, ha="left", va="top", fontsize=8,
                    color="0.3")
            if row == 0:
                ax.set_title(f"steps to {key} % of each model's own plateau")
            ax.grid(False, axis="x")
        axes[row, 0].set_ylabel(f"{_gamma_label(*c)}\nstep ratio WDAE/DAE", color=colors[c], fontsize=9)
    for ax in axes[-1]:
        ax.set_xticks(slot[order], [f"mode {modes[j]}\nλ = {lam[j]:.3g}" for j in order], fontsize=8)
        ax.set_xlim(-0.6, lam.size - 0.4)
    handles = [plt.Line2D([], [], color="0.4", marker=markers[f], ls="none", ms=7, label=f"measured, f = {f:g}")
               for f in fractions]
    handles += [plt.Line2D([], [], color="black", marker="x", ls="none", mew=1.2, label="exact per-mode theory"),
                plt.Line2D([], [], color="0.4", lw=2.0, alpha=0.6, label="early growth (1 − γ/λ₁)/(1 − γ/λᵢ)"),
                plt.Line2D([], [], color="black", lw=0.8, ls="--", label="equal speed")]
    eps = float(comp["eps"].values[0])
    fig.suptitle(f"{title + ': ' if title else ''}noise (σ² = {eps:g}) vs weight decay, each at the same "
                 "fraction f of its own stability limit (ratio > 1: noise faster; colour: the WDAE's γ)",
                 fontsize=11)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def _missing(comp, pairs) -> str:
    """The modes of ``pairs`` without a ratio and why (the statuses of :data:`lr_normalised.STATUS`)."""
    lines = []
    for j, m in enumerate(comp["mode"].values):
        why = sorted({(model, lr_normalised.STATUS[int(comp[f"status_{model.lower()}"].values[i, j])])
                      for i in pairs for model in ("DAE", "WDAE")
                      if int(comp[f"status_{model.lower()}"].values[i, j]) != 0})
        if why:
            lines.append(f"mode {m}: " + "; ".join(f"{model} {text}" for model, text in why))
    return "\n".join(lines)
