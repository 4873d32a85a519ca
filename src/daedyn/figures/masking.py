"""Masking (dropout) noise on real data: mode strengths against epoch, one column per keep probability.

Drawn only from an experiment's dataset after :func:`daedyn.masking_analysis.add_theory`, with
dims ("q", "epoch", "mode") (and "seed": the first seed is drawn). Top row: ``x`` markers are the
masked network's u_i = v_iᵀWv_i; dashed lines the exact coupled fixed point u_i* (when the
dataset holds ``u_star``), where training must end; solid lines the per-mode approximation (a
Gaussian DAE per mode with ε_i = ((1−q)/q) v_iᵀ diag(Σ) v_i) and dash-dot lines its fixed points
λ_i/(λ_i + ε_i); dotted lines (when the dataset holds ``u_gauss``) a Gaussian DAE with one matched
ε. Bottom row: how far training lies from each: the exact fixed point (dashed), the per-mode
approximation (solid), the network trained with per-mode noise (dash-dot, with ``u_per_mode``)
and the Gaussian DAE (dotted). Every line style is named in a legend.
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
    exact = "u_star" in ds and bool(np.isfinite(ds["u_star"]).any())
    top_keys = [("x", "trained masked network")] + ([("--", "exact fixed point u*")] if exact else [])
    top_keys += [("-", "per-mode approximation"), ("-.", "its fixed point λ/(λ+ε_i)")]
    top_keys += [(":", "Gaussian DAE, matched ε")] if gauss else []
    bottom_keys = ([("--", "exact fixed point u*")] if exact else []) + [("-", "per-mode approximation")]
    bottom_keys += [("-.", "per-mode noise, trained")] if "u_per_mode" in ds else []
    bottom_keys += [(":", "Gaussian DAE")] if gauss else []

    def keys(ax, entries, loc):
        handles = [plt.Line2D([], [], color="0.25", ls="none", marker="x") if ls == "x"
                   else plt.Line2D([], [], color="0.25", ls=ls, lw=1.3) for ls, _ in entries]
        return ax.legend(handles, [name for _, name in entries], loc=loc, fontsize=8)

    for col, q in enumerate(qs):
        top, bottom = axes[0, col], axes[1, col]
        one = ds.isel(q=col)
        form = run_param(ds, "form", {"q": col}, kind=str)
        for k, mode in enumerate(modes):
            c = colors[k]
            m = one.sel(mode=mode)
            u, ap = m["u"].values, m["u_approx"].values
            top.plot(epochs[marks], u[marks], "x", color=c, ms=4.5, mew=1.0,
                     label=f"mode {mode}: λ = {float(m['lam']):.3g}, ε_i = {float(m['eps_eff']):.3g}")
            top.plot(epochs, ap, color=c, lw=1.5)
            top.axhline(float(m["u_star_approx"]), color=c, lw=0.8, ls="-.", alpha=0.7)
            if exact and np.isfinite(float(m["u_star"])):
                star = float(m["u_star"])
                top.axhline(star, color=c, lw=1.0, ls="--")
                bottom.semilogy(epochs, np.maximum(np.abs(u - star), 1e-9), color=c, lw=1.1, ls="--")
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
        top.add_artist(top.legend(loc="lower right", fontsize=8, title="colour: mode", title_fontsize=8))
        keys(top, top_keys, "center right")
        bottom.set_xlabel("epoch (full-batch gradient steps)")
        bottom.set_ylabel("|reference − trained|")
        keys(bottom, bottom_keys, "lower right")
        bottom.set_ylim(1e-6, 1)
        bottom.set_xlim(epochs[0], epochs[-1])
    fig.suptitle(f"Masking noise{' — ' + title if title else ''}: masked training against the exact coupled "
                 "fixed point" + (" " if len(qs) > 2 else "\n")
                 + "and the per-mode approximation ε_i = ((1−q)/q) v_iᵀ diag(Σ) v_i", fontsize=11)
    fig.tight_layout()
    return fig
