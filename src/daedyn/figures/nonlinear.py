"""The paper's Figure 6: nonlinear AE / WDAE / DAE on real data, with the linear theory beside it.

Drawn only from an experiment's combined file (:func:`daedyn.jobs.nonlinear.aggregate_job`), dims
(run, [seed], epoch, mode). Left: the paper's panel, the learned mapping m_i along the top
eigen-directions vs epoch (lines: measured on clean inputs; dots: on the noisy pre-update pass,
the paper's measurement, which differs only for the DAE). Middle: the same network curves as
markers under the linear per-mode theory for the same hyperparameters in theory units (E21 in docs/science.md).
Right: a table of final values and half-times (first recorded epoch at half the final value),
network vs linear theory, which makes "qualitatively" a number. Colours: AE blue, WDAE orange,
DAE green.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from daedyn.figures import style
from daedyn.figures.style import model_of, shared

__all__ = ["run_label", "plot_fig6"]

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def run_label(noise_std: float, weight_decay: float, d: int | None = None) -> str:
    """Legend label; the noise is a standard deviation σ (variance σ²), weight decay torch's wd."""
    model = model_of(noise_std, weight_decay)
    wd = f"wd = {weight_decay:g}" + (f" (γ_eff = {weight_decay * d / 2:.3g})" if d else "")
    noise = f"noise std σ = {noise_std:g} (var σ² = {noise_std ** 2:g})"
    return {"AE": "AE", "WDAE": f"WDAE {wd}", "DAE": f"DAE {noise}"}.get(model, f"DAE {noise}, {wd}")


def _fmt(t) -> str:
    return "never" if not np.isfinite(t) else f"{t:.0f}"


@style.styled
def plot_fig6(ds, title: str = "", seed=None, modes=None, facet_by: str | None = None, max_panels: int = 6):
    """Fig. 6 for one dataset from a combined file: the mean over seeds (±1 sd band) or one
    ``seed``; modes: all k unless ``modes``. ``facet_by`` and ``max_panels`` choose the layout
    (:func:`daedyn.figures.style.facets`): the paper's single panel while the runs fit in it."""
    n_seeds = ds.sizes.get("seed", 1) if seed is None else 1
    if modes is not None:
        ds = ds.sel(mode=list(modes))
    ds = style.seed_view(ds, seed)
    modes = [int(m) for m in ds["mode"].values]
    runs = [str(r) for r in ds["run"].values]
    layout = style.facets(ds, modes, facet_by, max_panels, len(runs))
    # as Fig. 5: a run above the (linear theory's) stability limit is named in the title
    unstable = [f"{r}: lr = {ratio:.2f} η_max (above the linear theory's stability limit)"
                for r, ratio in zip(runs, ds["lr"].values / ds["eta_max"].values) if ratio >= 1]
    if unstable:
        title = f"{title} — {'; '.join(unstable)}"
    if layout is not None:
        return _faceted(ds, title, n_seeds, *layout)
    epochs = ds["epoch"].values
    d = int(ds.attrs.get("n_features", 0)) or None
    step = max(1, len(epochs) // 25)                      # ~25 markers per curve
    marks = slice(0, None, step)

    fig = plt.figure(figsize=(17, 6.2))
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.95], wspace=0.22)
    ax_net, ax_th, ax_tab = fig.add_subplot(gs[0]), fig.add_subplot(gs[1]), fig.add_subplot(gs[2])
    rows = []
    for r in runs:
        one = ds.sel(run=r)
        sd, wd = float(one["noise_std"]), float(one["weight_decay"])
        color = style.COLORS.get(model_of(sd, wd), "tab:red")
        label = run_label(sd, wd, d)
        for k, mode in enumerate(modes):
            m = one["mapping"].sel(mode=mode).values
            mk = MARKERS[k % len(MARKERS)]
            kw = {"label": label} if k == 0 else {}
            ax_net.plot(epochs, m, color=color, lw=1.3, **kw)
            _band(ax_net, epochs, one, mode, color)
            ax_net.plot(epochs[marks], one["mapping_noisy"].sel(mode=mode).values[marks], mk, color=color,
                        ms=3.5, alpha=0.55, mew=0)
            ax_th.plot(epochs, one["mapping_theory"].sel(mode=mode).values, color=color, lw=1.6, **kw)
            ax_th.plot(epochs[marks], m[marks], mk, color=color, ms=4, mfc="none", mew=1.0)
            for ax, y in ((ax_net, m[-1]), (ax_th, float(one["mapping_theory"].sel(mode=mode)[-1]))):
                ax.annotate(f"{mode + 1}", (epochs[-1], y), xytext=(3, 0), textcoords="offset points",
                            fontsize=8, color=color, va="center")
            rows.append([r.upper() if r in ("ae", "wdae", "dae") else r, f"{mode + 1}",
                         f"{float(one['lam'].sel(mode=mode)):.3g}", f"{m[-1]:.3f}",
                         f"{float(one['mapping_noisy'].sel(mode=mode)[-1]):.3f}",
                         f"{float(one['mapping_theory'].sel(mode=mode)[-1]):.3f}",
                         _fmt(float(one["t_half"].sel(mode=mode))),
                         _fmt(float(one["t_half_theory"].sel(mode=mode)))])
    act = shared(ds, "activation")
    seeds = f"; mean of {n_seeds} seeds, band ±1 sd" if n_seeds > 1 else ""
    ax_net.set_title(f"{act} network: mapping $m_i = v_i^T\\hat C v_i/\\lambda_i$\n"
                     f"lines: clean inputs; dots: noisy pre-update pass (paper){seeds}")
    ax_th.set_title("linear theory for the same hyperparameters (lines)\n"
                    "markers: network (clean inputs)")
    for ax in (ax_net, ax_th):
        ax.set_xlabel("epoch (full-batch SGD steps)")
        ax.set_ylim(-0.05, 1.1)
        ax.set_xlim(epochs[0], epochs[-1] * 1.05)
        ax.legend(loc="lower right", fontsize=8)
    ax_net.set_ylabel("learned mapping along eigen-direction $v_i$")

    ax_tab.axis("off")
    header = ["run", "mode", "λ", "final\nnet", "final\nnoisy", "final\ntheory", "t½\nnet", "t½\ntheory"]
    table = ax_tab.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1.0, 1.35)
    for (i, _), cell in table.get_celld().items():
        if i == 0:
            cell.set_height(cell.get_height() * 1.9)          # two-line header
            cell.set_text_props(weight="bold")
        else:
            r = runs[(i - 1) // len(modes)]
            model = model_of(float(ds["noise_std"].sel(run=r)), float(ds["weight_decay"].sel(run=r)))
            cell.set_facecolor(_tint(style.COLORS.get(model, "tab:red")))
    ax_tab.set_title("net: clean inputs; noisy: noisy pre-update pass (paper);\n"
                     "t½: first recorded epoch at half the final value", fontsize=10)

    d_txt = f"d = {d}" if d else ""
    fig.suptitle(
        f"Fig. 6 — {title}: {act} autoencoder, H = {shared(ds, 'hidden_units')}, N = {shared(ds, 'n_samples')}, "
        f"{d_txt}, lr = {shared(ds, 'lr')}, init std = {shared(ds, 'init_std')}, modes 1–{len(modes)} "
        f"(1 = top eigenvector of Σ = XᵀX/N)\n"
        f"theory units: η_eff = 2·lr/d = {shared(ds, 'lr_theory', '.3g')}, γ_eff = wd·d/2, ε = σ² "
        "(noise is a standard deviation σ; its variance σ² enters the theory)", fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.80, bottom=0.09)
    return fig


def _band(ax, epochs, one, mode, color):
    """±1 sd over seeds of the network's mapping (clean inputs), when the view holds one."""
    if "mapping_sd" in one:
        mean, sd = one["mapping"].sel(mode=mode).values, one["mapping_sd"].sel(mode=mode).values
        ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)


def _faceted(ds, title, n_seeds, key, panels, omitted):
    """One panel per facet: the network (solid, ±1 sd band) and the linear theory (dashed), a
    colour per run; the final values and half-times of every run are in halftimes.csv."""
    epochs = ds["epoch"].values
    names = [n for n in style.varying_settings(ds) if n != key]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.6), squeeze=False, sharey=True)
    for ax, (panel, runs, modes) in zip(axes[0], panels):
        colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(runs)))
        shown = set(style.capped(runs, 12))
        for r, color in zip(runs, colors):
            one = ds.sel(run=r)
            for k, mode in enumerate(modes):
                kw = {"label": style.run_label(ds, r, names)} if k == 0 and r in shown else {}
                ax.plot(epochs, one["mapping"].sel(mode=mode).values, color=color, lw=1.3, **kw)
                _band(ax, epochs, one, mode, color)
                ax.plot(epochs, one["mapping_theory"].sel(mode=mode).values, color=color, lw=1.0, ls="--")
        ax.set_title(panel if len(modes) == 1 else f"{panel}; modes {', '.join(str(m + 1) for m in modes)}")
        ax.set_xlabel("epoch (full-batch SGD steps)")
        ax.set_ylim(-0.05, 1.1)
        ax.legend(loc="lower right", fontsize=7, ncol=2 if len(shown) > 6 else 1)
    axes[0, 0].set_ylabel("learned mapping along eigen-direction $v_i$")
    seeds = f"mean of {n_seeds} seeds (band: ±1 sd)" if n_seeds > 1 else "one seed"
    fig.suptitle(f"Fig. 6 — {title}: {shared(ds, 'activation')} autoencoder, {seeds}; solid: network "
                 "on clean inputs, dashed: linear theory for the same hyperparameters; modes numbered from 1",
                 fontsize=11)
    if omitted:
        fig.text(0.5, 0.005, f"{omitted} more panel(s) left out (max_panels); every run is in the "
                             "experiment's halftimes.csv", ha="center", fontsize=9)
    fig.tight_layout()
    return fig


def _tint(color, alpha=0.18):
    from matplotlib.colors import to_rgba
    r, g, b, _ = to_rgba(color)
    return (1 - alpha + alpha * r, 1 - alpha + alpha * g, 1 - alpha + alpha * b)
