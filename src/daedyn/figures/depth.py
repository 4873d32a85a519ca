"""Depth-L linear autoencoders on real data: mode strengths against epoch, one column per depth.

Drawn only from an experiment's dataset after :func:`daedyn.depth_analysis.add_theory`, with dims
("run", "epoch", "mode") (and "seed": the first seed is drawn) and the coordinate ``depth`` along
"run". Top row: for each depth L, lines are the per-mode theory
(the exact GD map of an aligned balanced mode from the recorded u(0)), ``x`` markers the trained
network's u_i = v_iᵀWv_i, open circles the quadrature half-time (t50, u∞/2) and dashed lines
where each mode ends; colours: AE blue, WDAE orange, DAE green. Bottom row: |theory − trained|.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn import depth
from daedyn.figures import style
from daedyn.figures.style import model_of
from daedyn.trajectories import run_param

__all__ = ["plot_depth"]


def _stride(n: int, marks: int = 40) -> slice:
    return slice(0, None, max(1, n // marks))


@style.styled
def plot_depth(ds, modes=None, title: str = ""):
    """The depth figure; ``modes`` (default: up to five modes of ``ds``) are drawn in each panel."""
    modes = list(ds["mode"].values[:5] if modes is None else modes)
    ds = ds.sel(mode=modes)
    if "seed" in ds.dims:
        ds = ds.isel(seed=0)
    depths = sorted({int(L) for L in ds["depth"].values})
    epochs = ds["epoch"].values
    marks = _stride(epochs.size)
    fig, axes = plt.subplots(2, len(depths), figsize=(5.2 * len(depths), 7.6), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    for col, L in enumerate(depths):
        top, bottom = axes[0, col], axes[1, col]
        parts = []
        for r in np.flatnonzero(ds["depth"].values == L):
            one = ds.isel(run=r)
            eps, gamma, lr = (run_param(ds, k, {"run": r}) for k in ("eps", "gamma", "lr"))
            model = model_of(eps, gamma)
            color = style.COLORS.get(model, "tab:red")
            parts.append({"AE": "AE", "DAE": f"DAE ε = {eps:g}",
                          "WDAE": f"WDAE γ = {gamma:.3g}"}.get(model, f"ε = {eps:g}, γ = {gamma:g}"))
            u0 = one["u"].isel(epoch=0).values
            t50 = depth.time_to_fraction(0.5, one["lam"].values, eps, gamma, lr, u0, L)
            for k, mode in enumerate(modes):
                alpha = 0.45 + 0.55 * (k + 1) / len(modes)
                u, th = one["u"].sel(mode=mode).values, one["u_theory"].sel(mode=mode).values
                top.plot(epochs, th, color=color, lw=1.5, alpha=alpha,
                         label=parts[-1] if k == 0 else None)
                top.plot(epochs[marks], u[marks], "x", color=color, ms=4.5, mew=1.0, alpha=alpha)
                end = float(one["u_limit"].sel(mode=mode))
                top.axhline(end, color=color, lw=0.5, ls="--", alpha=0.5)
                if np.isfinite(t50[k]) and t50[k] <= epochs[-1]:
                    top.plot(t50[k], end / 2, "o", mfc="none", color=color, ms=7, mew=1.2)
                if model != "AE":
                    top.annotate(f"{mode}", (epochs[-1], u[-1]), xytext=(4, 0), fontsize=8,
                                 textcoords="offset points", color=color, va="center")
                bottom.semilogy(epochs, np.maximum(np.abs(th - u), 1e-9), color=color, lw=1.0,
                                alpha=alpha)
        top.set_title(f"L = {L} weight matrices")
        top.set_ylabel("mode strength $u_i = v_i^T W v_i$")
        top.set_ylim(-0.05, 1.1)
        top.legend(loc="center right", fontsize=8, title="lines: theory, x: trained",
                   title_fontsize=8)
        bottom.set_xlabel("epoch (full-batch gradient steps)")
        bottom.set_ylabel("|theory − trained|")
        bottom.set_ylim(1e-8, 1)
        bottom.set_xlim(epochs[0], epochs[-1] * 1.06)
    fig.suptitle(f"Depth-L linear autoencoders{' — ' + title if title else ''}: modes "
                 f"{', '.join(map(str, modes))} (labels at right)\n"
                 "lines: exact per-mode GD map from u(0); x: trained network; o: quadrature "
                 "half-time; dashed: where each mode ends (0 for a WDAE started below its "
                 "threshold)", fontsize=11)
    fig.tight_layout()
    return fig
