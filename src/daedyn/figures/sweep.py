"""Summary figure of a parameter sweep: what each mode does as the swept values change.

Drawn from a sweep table (:func:`daedyn.analysis.sweep_table`: one row per grid run and mode,
means and standard deviations over seeds). One row of panels per mode:

* the trained plateau (last recorded epoch) against the swept variable, points with ±1 sd error
  bars; the theory's fixed point max(λ − γ, 0)/(λ + ε) as a dashed line (a continuous curve when
  the variable is the noise or the weight decay), and the theory's value at the same epoch as a
  dotted line, which differs from the fixed point where the run had not converged;
* the epochs to 50 % and 90 % of the plateau, measured (markers with error bars) and predicted
  by the theory (lines), first steps at per-step resolution for a linear sweep (the recording
  interval for a nonlinear one, as the title says), so even a mode learned within the first
  recording interval shows how its timing moves;
* the largest |theory − trained| over the run (at any recorded epoch, mostly while the modes
  grow): a heat map over the grid when two variables are swept, else a line against the swept
  variable with the claims' tolerance (:data:`daedyn.sweep_claims.SWEEP_PLATEAU_TOLERANCE`) dashed.

The x axis is the swept variable with the most values; the other swept variables pick the
colour (one line per combination).
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np

from daedyn import theory
from daedyn.figures import style
from daedyn.sweep_claims import SWEEP_PLATEAU_TOLERANCE

__all__ = ["plot_sweep", "sweep_axes"]

#: axis labels of the sweepable keys
LABELS = {"eps": "noise variance ε", "gamma": "weight decay γ", "lr": "learning rate η", "hidden": "hidden units H",
          "n_samples": "samples N", "init_std": "initial weight std", "batch_size": "batch size (0: full)",
          "engine": "engine", "noise_std": "noise std σ", "weight_decay": "weight decay wd"}

#: legend symbols of the sweepable keys
SHORT = {**style.SYMBOLS, "hidden": "H"}


def sweep_axes(table: list[dict], keys) -> tuple[str, list[str]]:
    """The x variable of a grid's rows (its key with the most values, ties alphabetical) and its
    other keys."""
    counts = {k: len({row[k] for row in table}) for k in keys}
    x = sorted(keys, key=lambda k: (-counts[k], k))[0]
    return x, [k for k in sorted(keys) if k != x]


def _positions(values):
    """Numeric x positions and tick labels (categories such as engines are placed at 0, 1, ...)."""
    values = [v for v in values if v is not None]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return {v: float(v) for v in values}, None
    order = sorted(set(values), key=str)
    return {v: float(i) for i, v in enumerate(order)}, [str(v) for v in order]


def _fixed_point_curve(family, x, fixed, lam, d):
    """The fixed point as a continuous function of x, where x is the noise or the weight decay."""
    if family == "linear" and x in ("eps", "gamma"):
        eps, gamma = fixed.get("eps", 0.0), fixed.get("gamma", 0.0)
        return lambda v: theory.fixed_point(lam, v if x == "eps" else eps, v if x == "gamma" else gamma)
    if family == "nonlinear" and x in ("noise_std", "weight_decay") and d:
        std, wd = fixed.get("noise_std", 0.0), fixed.get("weight_decay", 0.0)
        return lambda v: theory.fixed_point(lam, (v if x == "noise_std" else std) ** 2,
                                            (v if x == "weight_decay" else wd) * d / 2)
    return None


def _err(ax, xs, mean, sd, **kw):
    sd = np.where(np.isfinite(sd), sd, 0.0)
    return ax.errorbar(xs, mean, yerr=sd, capsize=2, lw=0, elinewidth=1, **kw)


def _series(table: list[dict], grid: dict[str, dict]):
    """Curves of the figure: per grid of the sweep (its set of keys), its x variable and one
    curve per combination of its other keys; as (label, x, fixed values, runs)."""
    grids: dict[tuple, list[str]] = {}
    for run, values in grid.items():
        grids.setdefault(tuple(sorted(values)), []).append(run)
    series = []
    for keys, runs in grids.items():
        rows = [row for row in table if row["run"] in runs]
        x, others = sweep_axes(rows, keys)
        for combo in sorted({tuple(row[k] for k in others) for row in rows}, key=str):
            fixed = dict(zip(others, combo))
            parts = ([f"{SHORT.get(x, x)} sweep"] if len(grids) > 1 else []) + \
                [f"{SHORT.get(k, k)} = {v}" for k, v in fixed.items()]
            members = [row["run"] for row in rows if all(row[k] == v for k, v in fixed.items())]
            series.append((", ".join(parts) or None, x, fixed, set(members)))
    return series, grids


@style.styled
def plot_sweep(table: list[dict], grid: dict[str, dict], family: str, title: str = "", d: int | None = None,
               max_modes: int = 6):
    """The sweep summary figure from a sweep table; `grid` maps the grid's runs to their swept
    values (:func:`daedyn.sweep.swept_values`), `d` is the input dimension (nonlinear: the
    weight decay's theory units)."""
    series, grids = _series(table, grid)
    xs_keys = list(dict.fromkeys(x for _, x, _, _ in series))
    modes = style.capped(sorted({row["mode"] for row in table}), max_modes)
    if len(grids) > 1:
        colors = plt.get_cmap("tab10")(np.arange(len(series)) % 10)
    else:
        colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(series))) if len(series) > 1 else ["tab:blue"]
    pos, ticks = _positions([row[x] for _, x, _, runs in series for row in table if row["run"] in runs])
    xs_all = sorted(pos.values())
    logx = ticks is None and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 100
    keys = next(iter(grids))
    heat = len(grids) == 1 and len(keys) == 2 and len(series) > 1
    fig, axes = plt.subplots(len(modes), 3, figsize=(16, 3.3 * len(modes) + 1.2), squeeze=False)
    for r, mode in enumerate(modes):
        ax_p, ax_t, ax_e = axes[r]
        rows_m = [row for row in table if row["mode"] == mode]
        lam = rows_m[0]["lam"]
        for (label, x, fixed, runs), color in zip(series, colors):
            rows = sorted((row for row in rows_m if row["run"] in runs), key=lambda row: pos[row[x]])
            xs = np.array([pos[row[x]] for row in rows])
            get = lambda name: np.array([row[name] for row in rows], dtype=float)  # noqa: E731
            _err(ax_p, xs, get("final"), get("final_sd"), color=color, marker="o", ms=5, label=label)
            ax_p.plot(xs, get("theory_final"), color=color, ls=":", lw=1.2)
            curve = _fixed_point_curve(family, x, fixed, lam, d)
            if curve is not None and xs.size > 1:
                dense = np.geomspace(xs.min(), xs.max(), 200) if logx else np.linspace(xs.min(), xs.max(), 200)
                ax_p.plot(dense, curve(dense), color=color, ls="--", lw=1.0)
            else:
                ax_p.plot(xs, get("fixed_point"), color=color, ls="--", lw=1.0, marker="_")
            for frac, marker, ls in (("50", "o", "-"), ("90", "s", "--")):
                _err(ax_t, xs, get(f"t{frac}_measured"), get(f"t{frac}_measured_sd"), color=color, marker=marker,
                     ms=4, mfc="none")
                ax_t.plot(xs, get(f"t{frac}_predicted"), color=color, ls=ls, lw=1.1)
            if not heat:
                _err(ax_e, xs, get("max_abs_err"), get("max_abs_err_sd"), color=color, marker="o", ms=4)
                ax_e.plot(xs, get("max_abs_err"), color=color, lw=0.8)
        if heat:
            _heat_map(fig, ax_e, rows_m, *sweep_axes(rows_m, keys), pos)
        else:
            ax_e.axhline(SWEEP_PLATEAU_TOLERANCE, color="0.4", ls="--", lw=0.9,
                         label=f"tolerance of the claims ({SWEEP_PLATEAU_TOLERANCE:g})")
            ax_e.set_yscale("log")
            ax_e.set_ylabel("max |theory − trained|")
        ax_p.set_ylim(-0.05, 1.1)
        ax_p.set_ylabel(f"mode {mode} (λ = {lam:.3g})\nplateau")
        ax_t.set_ylabel("epochs to 50 % (o) / 90 % (□)")
        t_all = [row[f"t{f}_{w}"] for row in rows_m for f in ("50", "90") for w in ("measured", "predicted")]
        t_all = [t for t in t_all if np.isfinite(t) and t > 0]
        if t_all and max(t_all) / min(t_all) > 20:
            ax_t.set_yscale("log")
        if not t_all:
            ax_t.text(0.5, 0.5, "50 % of the plateau not reached\nwithin the epochs run", transform=ax_t.transAxes,
                      ha="center", va="center", color="0.4")
        for ax in (ax_p, ax_t) + (() if heat else (ax_e,)):
            if logx:
                ax.set_xscale("log")
            if ticks:
                ax.set_xticks(range(len(ticks)), ticks)
            if r == len(modes) - 1:
                ax.set_xlabel(" / ".join(LABELS.get(x, x) for x in xs_keys))
        if r == 0:
            ax_p.set_title("plateau: trained (points, ±1 sd), fixed point (dashed),\ntheory at the last epoch (dotted)")
            resolution = max(row["t_resolution"] for row in table)
            ax_t.set_title("epochs to 50 % / 90 % of the plateau " + (
                "(first step)" if resolution == 1 else f"(first record, every {resolution} epochs)")
                + ":\nmeasured (markers, ±1 sd), theory (lines)")
            ax_e.set_title("largest |theory − trained| over the run" + (" (colour: log10)" if heat else ""))
            if not heat:
                ax_e.legend(fontsize=8, loc="best")
            if any(label for label, *_ in series):
                ax_p.legend(fontsize=8, loc="best")
    n_runs = len({row["run"] for row in table})
    seeds = sorted({row["n_seeds"] for row in table})
    swept = sorted({k for keys in grids for k in keys})
    fig.suptitle(f"Sweep {title}: {n_runs} runs over {', '.join(LABELS.get(k, k) for k in swept)}, "
                 f"{'/'.join(map(str, seeds))} seed(s) each; "
                 + ("linear autoencoder vs the per-mode theory from its initial weights" if family == "linear"
                    else "nonlinear network vs the linear theory for the same hyperparameters"), fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title
    return fig


def _heat_map(fig, ax, rows, x, others, pos):
    """log10 of the mean max error over (x, y), with the values written in the cells (if few)."""
    (y,) = others
    xv = sorted({row[x] for row in rows}, key=lambda v: pos[v])
    ypos, _ = _positions([row[y] for row in rows])
    yv = sorted(ypos, key=lambda v: ypos[v])
    grid = np.full((len(yv), len(xv)), np.nan)
    for row in rows:
        grid[yv.index(row[y]), xv.index(row[x])] = row["max_abs_err"]
    with np.errstate(divide="ignore"):
        image = ax.imshow(np.log10(grid), origin="lower", aspect="auto", cmap="magma")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    ax.set_xticks(range(len(xv)), [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in xv],
                  rotation=45 if len(xv) > 6 else 0)
    ax.set_yticks(range(len(yv)), [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in yv])
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.grid(False)
    if grid.size <= 80:
        for (i, j) in itertools.product(range(len(yv)), range(len(xv))):
            if np.isfinite(grid[i, j]):
                bright = image.norm(np.log10(grid[i, j])) > 0.6
                ax.text(j, i, f"{grid[i, j]:.1e}", ha="center", va="center", fontsize=7,
                        color="k" if bright else "w")
