"""The paper's Figure 5: linear AE / WDAE / DAE on real data, theory lines vs trained markers.

Drawn only from an experiment's combined file (:func:`daedyn.analysis.add_theory`).
Top row: one panel per regularised run beside the AE (the paper's left: AE vs WDAE, right:
AE vs DAE); lines are the per-mode theory from the actual initial weights (E15 in docs/science.md), thin dotted
lines the paper's balanced closed form with its heuristic u₀, ``x`` markers the trained
network's uᵢ = vᵢᵀWvᵢ at the epoch they were recorded (the original plots them 100 epochs
late, D6). Bottom row: |theory − actual| per mode, so the agreement is a number.
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


@style.styled
def plot_fig5(ds, modes, title: str = "", seed=None):
    """Fig. 5 for one dataset: modes `modes`, first seed unless `seed` is given."""
    seed = ds["seed"].values[0] if seed is None else seed
    ds = ds.sel(seed=seed, mode=list(modes))
    runs = [str(r) for r in ds["run"].values]
    models = {r: model_of(float(ds["eps"].sel(run=r)), float(ds["gamma"].sel(run=r))) for r in runs}
    base = [r for r in runs if models[r] == "AE"]
    panels = [r for r in runs if models[r] != "AE"] or base
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
        top.set_ylim(-0.05, 1.1)
        top.legend(loc="lower right", bbox_to_anchor=(1.0, 0.1), title="lines: theory, x: trained")
        bottom.set_xlabel("epoch (full-batch gradient steps)")
        bottom.set_ylabel("|theory − trained|\n(solid: per-mode, dotted: paper)")
        bottom.set_ylim(1e-6, 1)
        bottom.set_xlim(epochs[0], epochs[-1] * 1.04)
    unstable = [f"{r}: lr = {ratio:.2f} η_max (above the stability limit)"
                for r, ratio in zip(runs, ds["lr"].values / ds["eta_max"].values) if ratio >= 1]
    if unstable:
        title = f"{title} — {'; '.join(unstable)}"
    fig.suptitle(f"Fig. 5 — {title}: linear autoencoder, H = {shared(ds, 'hidden_units')}, "
                 f"η = {shared(ds, 'lr')}, seed {seed}, "
                 f"modes {', '.join(map(str, modes))} (labels at right)\n"
                 "solid: per-mode theory from the actual initial weights; dotted: paper's closed form "
                 "with heuristic $u_0$; dashed: fixed points $u^*$", fontsize=11)
    fig.tight_layout()
    return fig
