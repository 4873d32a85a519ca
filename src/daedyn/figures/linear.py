"""The paper's Figure 5: linear AE / WDAE / DAE on real data, theory lines vs trained markers.

Drawn only from an experiment's combined file (:func:`daedyn.analysis.add_theory`).
Top row: one panel per regularised run beside the AE (the paper's left: AE vs WDAE, right:
AE vs DAE); lines are the per-mode theory from the actual initial weights (E15 in docs/science.md), thin dotted
lines the paper's balanced closed form with its heuristic u₀, ``x`` markers the trained
network's uᵢ = vᵢᵀWvᵢ at the epoch they were recorded (the original plots them 100 epochs
late, D6). Bottom row: |theory − actual| per mode, so the agreement is a number. With several
seeds the curves are the means over seeds and a band shows ±1 standard deviation of the
trained uᵢ.

With more runs than fit in ``max_panels`` panels (a sweep), the figure facets instead
(:func:`daedyn.figures.style.facets`): one panel per mode, or per value of a chosen per-run
setting, each run a colour.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style
from daedyn.figures.style import model_of, shared

__all__ = ["plot_fig5"]


def _label(model: str, eps: float, gamma: float) -> str:
    return {"AE": "AE", "WDAE": f"WDAE γ = {gamma:g}", "DAE": f"DAE σ² = {eps:g}"}.get(
        model, f"DAE σ² = {eps:g}, γ = {gamma:g}")


def _marker_stride(epochs: np.ndarray, every: int = 100) -> slice:
    step = max(1, int(round(every / max(1, np.diff(epochs).min() if epochs.size > 1 else 1))))
    return slice(0, None, step)


def _band(ax, epochs, one, mode, color):
    """±1 sd over seeds of the trained uᵢ, when the view holds one."""
    if "u_sd" in one:
        mean, sd = one["u"].sel(mode=mode).values, one["u_sd"].sel(mode=mode).values
        ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)


@style.styled
def plot_fig5(ds, modes, title: str = "", seed=None, facet_by: str | None = None, max_panels: int = 6):
    """Fig. 5 for one dataset: modes `modes`; the mean over seeds (±1 sd band), or one `seed`.

    `facet_by` and `max_panels` choose the layout (:func:`daedyn.figures.style.facets`).
    """
    n_seeds = ds.sizes.get("seed", 1) if seed is None else 1
    ds = style.seed_view(ds.sel(mode=list(modes)), seed)
    runs = [str(r) for r in ds["run"].values]
    models = {r: model_of(float(ds["eps"].sel(run=r)), float(ds["gamma"].sel(run=r))) for r in runs}
    base = [r for r in runs if models[r] == "AE"]
    panels = [r for r in runs if models[r] != "AE"] or base
    layout = style.facets(ds, list(modes), facet_by, max_panels, len(panels))
    seeds_text = f"mean of {n_seeds} seeds (band: ±1 sd)" if n_seeds > 1 else \
        f"seed {seed if seed is not None else int(ds['seed'])}"
    if layout is None:
        fig = _paper_layout(ds, modes, runs, models, base, panels)
        lines = "solid: per-mode theory from the actual initial weights; dotted: paper's closed form " \
                "with heuristic $u_0$; dashed: fixed points $u^*$; x: trained network"
    else:
        fig = _faceted(ds, *layout)
        lines = "lines: per-mode theory from the actual initial weights; x: trained network; " \
                "dashed: fixed points $u^*$; one colour per run"
    unstable = [f"{r}: lr = {ratio:.2f} η_max (above the stability limit)"
                for r, ratio in zip(runs, ds["lr"].values / ds["eta_max"].values) if ratio >= 1]
    if unstable:
        title = f"{title} — {'; '.join(unstable)}"
    fig.suptitle(f"Fig. 5 — {title}: linear autoencoder, H = {shared(ds, 'hidden_units')}, "
                 f"η = {shared(ds, 'lr')}, {seeds_text}, modes {', '.join(map(str, modes))}\n{lines}",
                 fontsize=11)
    fig.tight_layout()
    return fig


def _paper_layout(ds, modes, runs, models, base, panels):
    epochs = ds["epoch"].values
    marks = _marker_stride(epochs)
    fig, axes = plt.subplots(2, len(panels), figsize=(6.2 * len(panels), 8.2), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]}, sharex=True)
    for col, run in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        for r in dict.fromkeys(base + [run]):
            one = ds.sel(run=r)
            model = models[r]
            color = style.COLORS.get(model, "tab:red")
            eps, gamma = float(one["eps"]), float(one["gamma"])
            for k, mode in enumerate(modes):
                kw = {"label": _label(model, eps, gamma)} if k == 0 else {}
                top.plot(epochs, one["u_theory"].sel(mode=mode), color=color, lw=1.6, **kw)
                top.plot(epochs, one["u_paper"].sel(mode=mode), color=color, lw=0.9, ls=":", alpha=0.8)
                top.plot(epochs[marks], one["u"].sel(mode=mode).values[marks], "x", color=color, ms=5, mew=1.2)
                _band(top, epochs, one, mode, color)
                alpha = 0.4 + 0.6 * (k + 1) / len(modes)
                for theory, ls in (("u_theory", "-"), ("u_paper", ":")):
                    err = np.abs(one[theory].sel(mode=mode) - one["u"].sel(mode=mode))
                    bottom.semilogy(epochs, np.maximum(err, 1e-8), color=color, lw=1.0, ls=ls, alpha=alpha)
            if r == run:
                for mode in modes:
                    ustar = float(one["u_star"].sel(mode=mode))
                    top.annotate(f"{mode}", (epochs[-1], float(one["u"].sel(mode=mode)[-1])),
                                 xytext=(4, 0), textcoords="offset points", fontsize=8, color=color,
                                 va="center")
                    top.axhline(ustar, color=color, lw=0.5, ls="--", alpha=0.5)
        top.set_title(" vs ".join(_label(models[r], float(ds["eps"].sel(run=r)), float(ds["gamma"].sel(run=r)))
                                  for r in dict.fromkeys(base + [run])))
        top.set_ylabel("mode strength $u_i = v_i^T W v_i$")
        top.legend(loc="lower right", bbox_to_anchor=(1.0, 0.1), title="lines: theory, x: trained")
        _finish(top, bottom, epochs)
        bottom.set_ylabel("|theory − trained|\n(solid: per-mode, dotted: paper)")
    return fig


def _faceted(ds, key, panels, omitted):
    """One column per facet; each run a colour of a sequential map, in the runs' order."""
    epochs = ds["epoch"].values
    marks = _marker_stride(epochs)
    names = [n for n in style.varying_settings(ds) if n != key]
    fig, axes = plt.subplots(2, len(panels), figsize=(5.2 * len(panels), 8.2), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]}, sharex=True)
    for col, (title, runs, modes) in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(runs)))
        shown = set(style.capped(runs, 12))  # a legend of at most 12 runs, evenly spread
        for r, color in zip(runs, colors):
            one = ds.sel(run=r)
            for k, mode in enumerate(modes):
                kw = {"label": style.run_label(ds, r, names)} if k == 0 and r in shown else {}
                top.plot(epochs, one["u_theory"].sel(mode=mode), color=color, lw=1.3, **kw)
                top.plot(epochs[marks], one["u"].sel(mode=mode).values[marks], "x", color=color, ms=4, mew=1.0)
                _band(top, epochs, one, mode, color)
                top.axhline(float(one["u_star"].sel(mode=mode)), color=color, lw=0.5, ls="--", alpha=0.5)
                err = np.abs(one["u_theory"].sel(mode=mode) - one["u"].sel(mode=mode))
                bottom.semilogy(epochs, np.maximum(err, 1e-8), color=color, lw=1.0)
        top.set_title(title if len(modes) == 1 else f"{title}; modes {', '.join(map(str, modes))}")
        top.set_ylabel("mode strength $u_i = v_i^T W v_i$")
        top.legend(loc="lower right", fontsize=7, ncol=2 if len(shown) > 6 else 1)
        _finish(top, bottom, epochs)
    if omitted:
        fig.text(0.5, 0.005, f"{omitted} more panel(s) left out (max_panels); every run is in the "
                             "experiment's metrics.csv", ha="center", fontsize=9)
    return fig


def _finish(top, bottom, epochs):
    top.set_ylim(-0.05, 1.1)
    bottom.set_xlabel("epoch (full-batch gradient steps)")
    bottom.set_ylabel("|theory − trained|")
    bottom.set_ylim(1e-6, 1)
    bottom.set_xlim(epochs[0], epochs[-1] * 1.04)
