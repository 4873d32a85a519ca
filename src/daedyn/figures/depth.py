"""Depth-L linear autoencoders on real data: mode strengths against epoch, one column per depth.

Drawn only from an experiment's dataset after :func:`daedyn.depth_analysis.add_theory`, with dims
("run", "epoch", "mode") (and "seed": the first seed is drawn) and the coordinate ``depth`` along
"run". Colours are models (AE blue, WDAE orange, DAE green), markers modes. Top row: for each
depth L, lines are the per-mode theory (the exact GD map of an aligned balanced mode from the
recorded u(0)), markers the trained network's u_i = v_iᵀWv_i, open circles the quadrature
half-time (t50, u∞/2) and dashed lines where each mode ends; the panel title gives the largest
|theory − trained|. Bottom row: the WDAE on a log scale, with its start u(0) (black dash-dot)
and each mode's threshold u₋ (dotted): a mode that starts below its threshold, or has none
(λ ≤ γ), decays to 0, which is why a deep WDAE from a small start stays there. One legend above
the panels names every colour, marker and line style.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn import depth
from daedyn.figures import style
from daedyn.figures.style import model_of
from daedyn.trajectories import run_param

__all__ = ["plot_depth"]

#: one marker per drawn mode (hollow, so that overlapping ones stay readable)
MARKERS = ("x", "+", "^", "s", "d", "v", "o")
#: the log panels' floor: WDAE modes that decay leave the panel below it
FLOOR = 1e-7


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
    fig, axes = plt.subplots(2, len(depths), figsize=(5.4 * len(depths), 9.2), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [2.0, 1.3]})
    models: dict[str, str] = {}                      # legend label -> colour
    for col, L in enumerate(depths):
        top, bottom = axes[0, col], axes[1, col]
        worst = 0.0
        wdae, thresholds = False, 0
        for r in np.flatnonzero(ds["depth"].values == L):
            one = ds.isel(run=r)
            eps, gamma, lr = (run_param(ds, k, {"run": r}) for k in ("eps", "gamma", "lr"))
            model = model_of(eps, gamma)
            color = style.COLORS.get(model, "tab:red")
            models.setdefault({"AE": "AE", "DAE": f"DAE ε = {eps:g}", "WDAE": "WDAE (γ matched)"}.get(
                model, f"ε = {eps:g}, γ = {gamma:g}"), color)
            u0 = one["u"].isel(epoch=0).values
            t50 = depth.time_to_fraction(0.5, one["lam"].values, eps, gamma, lr, u0, L)
            for k, mode in enumerate(modes):
                marker = MARKERS[k % len(MARKERS)]
                u, th = one["u"].sel(mode=mode).values, one["u_theory"].sel(mode=mode).values
                worst = max(worst, float(np.nanmax(np.abs(th - u))))
                top.plot(epochs, th, color=color, lw=1.3)
                top.plot(epochs[marks], u[marks], marker, color=color, ms=5, mew=1.0, mfc="none", ls="none")
                end = float(one["u_limit"].sel(mode=mode))
                top.axhline(end, color=color, lw=0.6, ls="--", alpha=0.6)
                if np.isfinite(t50[k]) and t50[k] <= epochs[-1]:
                    top.plot(t50[k], end / 2, "o", mfc="none", color=color, ms=9, mew=1.2)
                if model == "WDAE":
                    wdae = True
                    bottom.semilogy(epochs, np.where(th > FLOOR, th, np.nan), color=color, lw=1.3)
                    bottom.semilogy(epochs[marks], np.where(u > FLOOR, u, np.nan)[marks], marker, color=color,
                                    ms=5, mew=1.0, mfc="none", ls="none")
                    thr = float(one["u_threshold"].sel(mode=mode))
                    if np.isfinite(thr) and thr > FLOOR:
                        thresholds += 1
                        bottom.axhline(thr, color=color, lw=1.0, ls=":")
                        bottom.plot(epochs[-1], thr, marker, color=color, ms=7, mew=1.2, mfc="none",
                                    clip_on=False)
            if model == "WDAE":
                bottom.axhline(float(np.median(u0)), color="black", lw=1.0, ls="-.")
        top.set_title(f"L = {L} weight matrices (max |theory − trained| = {worst:.1g})", fontsize=11)
        top.set_ylabel("mode strength $u_i = v_i^T W v_i$")
        top.set_ylim(-0.05, 1.1)
        bottom.set_xlabel("epoch (full-batch gradient steps)")
        bottom.set_ylabel("WDAE $u_i$ (log scale)")
        bottom.set_ylim(FLOOR, 2.0)
        bottom.set_xlim(epochs[0], epochs[-1] * 1.03)
        bottom.set_title("no WDAE at this depth" if not wdae else
                         "WDAE: start u(0) against each mode's threshold u₋" if thresholds else
                         "WDAE: no threshold (u₋ = 0), every mode with λ > γ learns", fontsize=10)
    handles = [plt.Line2D([], [], color=c, lw=1.5, label=name) for name, c in models.items()]
    handles += [plt.Line2D([], [], color="0.3", marker=MARKERS[k % len(MARKERS)], mfc="none", ls="none",
                           label=f"mode {mode}: trained") for k, mode in enumerate(modes)]
    handles += [plt.Line2D([], [], color="0.3", lw=1.3, label="exact per-mode GD map from u(0)"),
                plt.Line2D([], [], color="0.3", marker="o", mfc="none", ms=9, ls="none",
                           label="quadrature half-time (t50, u∞/2)"),
                plt.Line2D([], [], color="0.3", ls="--", lw=0.8, label="where the mode ends (u∞)"),
                plt.Line2D([], [], color="0.3", ls=":", lw=1.0, label="threshold u₋ (marker: its mode)"),
                plt.Line2D([], [], color="black", ls="-.", lw=1.0, label="start u(0)")]
    fig.suptitle(f"Depth-L linear autoencoders{' — ' + title if title else ''}: modes "
                 f"{', '.join(map(str, modes))};" + (" " if len(depths) > 2 else "\n")  # lines: below
                 + "below its threshold u₋ (none where λ ≤ γ) a WDAE mode decays to 0", fontsize=12)
    # as many legend columns as the panels' width holds; the panels start below its rows
    ncol = min(len(handles), 2 * len(depths) + 1)
    rows, lines = -(-len(handles) // ncol), 1 if len(depths) > 2 else 2
    height = fig.get_figheight()
    below_title = 1 - (0.1 + 0.25 * lines) / height
    fig.legend(handles=handles, loc="upper center", ncol=ncol, fontsize=8.5, bbox_to_anchor=(0.5, below_title),
               frameon=False)
    fig.tight_layout()
    fig.subplots_adjust(top=below_title - (0.2 * rows + 0.45) / height)   # 0.45 in: a gap and the panel titles
    return fig
