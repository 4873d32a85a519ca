"""Masking (dropout) noise on real data: mode strengths against epoch, one column per keep probability.

Drawn only from an experiment's dataset after :func:`daedyn.masking_analysis.add_theory`, with
dims ("q", "epoch", "mode") (and "seed": the first seed is drawn). Top row: ``x`` markers are the masked network's u_i = v_iᵀWv_i, solid
lines the per-mode approximation (a Gaussian DAE per mode with ε_i = ((1−q)/q) v_iᵀ diag(Σ) v_i),
dotted lines (when the dataset holds ``u_gauss``) a Gaussian DAE with one matched ε, dashed
lines the approximation's fixed points. Bottom row: the errors against training of the theory
(solid), of the network trained with per-mode noise (dash-dot, when the dataset holds
``u_per_mode``) and of the Gaussian DAE (dotted).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style
from daedyn.trajectories import run_param

__all__ = ["plot_masking"]


@style.styled
def plot_masking(ds, modes=None, title: str = ""):
    """The masking figure; ``modes`` (default: up to five modes of ``ds``) in every panel."""
    modes = list(ds["mode"].values[:5] if modes is None else modes)
    ds = ds.sel(mode=modes)
    if "seed" in ds.dims:
        ds = ds.isel(seed=0)
    qs = ds["q"].values
    epochs = ds["epoch"].values
    marks = slice(0, None, max(1, epochs.size // 40))
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(modes)))
    gauss = "u_gauss" in ds
    fig, axes = plt.subplots(2, len(qs), figsize=(5.2 * len(qs), 7.6), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [2.2, 1]})
    for col, q in enumerate(qs):
        top, bottom = axes[0, col], axes[1, col]
        one = ds.isel(q=col)
        form = run_param(ds, "form", {"q": col}, kind=str)
        for k, mode in enumerate(modes):
            c = colors[k]
            m = one.sel(mode=mode)
            u, ap = m["u"].values, m["u_approx"].values
            top.plot(epochs[marks], u[marks], "x", color=c, ms=4.5, mew=1.0)
            top.plot(epochs, ap, color=c, lw=1.5,
                     label=f"mode {mode}: λ = {float(m['lam']):.3g}, ε_i = {float(m['eps_eff']):.3g}")
            top.axhline(float(m["u_star_approx"]), color=c, lw=0.5, ls="--", alpha=0.6)
            bottom.semilogy(epochs, np.maximum(np.abs(u - ap), 1e-9), color=c, lw=1.1)
            if "u_per_mode" in ds:
                net = m["u_per_mode"].values
                bottom.semilogy(epochs, np.maximum(np.abs(u - net), 1e-9), color=c, lw=1.0, ls="-.")
            if gauss:
                g = m["u_gauss"].values
                top.plot(epochs, g, color=c, lw=1.0, ls=":")
                bottom.semilogy(epochs, np.maximum(np.abs(u - g), 1e-9), color=c, lw=1.0, ls=":")
        eps = f", Gaussian ε = {run_param(ds, 'eps_matched', {'q': col}):.3g}" if gauss else ""
        top.set_title(f"keep probability q = {q:g} ({form}){eps}")
        top.set_ylabel("mode strength $u_i = v_i^T W v_i$")
        top.set_ylim(-0.05, 1.1 / (q if form == "unscaled" else 1.0))
        top.legend(loc="lower right", fontsize=8)
        bottom.set_xlabel("epoch (full-batch gradient steps)")
        bottom.set_ylabel("|reference − trained|")
        keys = [("-", "per-mode theory")] + ([("-.", "per-mode noise, trained")]
                                             if "u_per_mode" in ds else [])
        keys += [(":", "Gaussian DAE")] if gauss else []
        bottom.legend([plt.Line2D([], [], color="0.3", ls=ls) for ls, _ in keys],
                      [name for _, name in keys], loc="lower right", fontsize=8)
        bottom.set_ylim(1e-6, 1)
        bottom.set_xlim(epochs[0], epochs[-1])
    fig.suptitle(f"Masking noise{' — ' + title if title else ''}: x: trained masked network; "
                 "solid: per-mode approximation ε_i = ((1−q)/q) v_iᵀ diag(Σ) v_i"
                 + ("; dotted: Gaussian DAE with matched ε" if gauss else "")
                 + "; dashed: its fixed points", fontsize=11)
    fig.tight_layout()
    return fig
