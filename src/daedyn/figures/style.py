"""Shared matplotlib style for daedyn figures.

Colours follow the paper: AE blue, WDAE (weight decay) orange, DAE (noise) green. Importing
this module (or any of :mod:`daedyn.figures`) leaves matplotlib's backend alone, so the figures
show inline in a notebook; the workflow's figure scripts choose the file-only Agg backend.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

#: Model colours used in every figure.
COLORS = {"AE": "tab:blue", "WDAE": "tab:orange", "DAE": "tab:green"}
#: Roles used by the scalar figures (the notebooks' choices).
THEORY = "darkgreen"  # closed-form curves
GD = "orange"  # simulated gradient-descent runs
FIXED = "red"  # fixed point u* / saddle
MANIFOLD = "cyan"  # global minima
SMALL_INIT = "magenta"  # Fig. 4 small-initialisation run
NORM = "purple"  # Fig. 4 weight norms of the random runs
RATIO = "purple"  # Fig. 3 ratio of learning rates

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
    "pdf.fonttype": 42,  # embed TrueType so text stays editable/searchable
}


def apply():
    """Apply the daedyn rcParams globally."""
    plt.rcParams.update(RC)


def figure(*args, **kwargs):
    """``plt.figure`` under the daedyn style (rcParams applied locally)."""
    with plt.rc_context(RC):
        return plt.figure(*args, **kwargs)


def styled(func):
    """Decorator: run a plotting function with the daedyn rcParams in effect (locally)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper


def save(fig, paths, close=True):
    """Write ``fig`` to every path in ``paths`` (a path or an iterable of paths).

    A path with a suffix is written in that format; a path without one is written
    twice, as ``<path>.png`` and ``<path>.pdf``. Parent folders are created. Returns the
    list of written paths.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    written = []
    for p in map(Path, paths):
        targets = [p] if p.suffix else [p.with_suffix(".png"), p.with_suffix(".pdf")]
        for q in targets:
            q.parent.mkdir(parents=True, exist_ok=True)
            with plt.rc_context(RC):
                fig.savefig(q, metadata=_metadata(q))
            written.append(q)
    if close:
        plt.close(fig)
    return written


def _metadata(path):
    # Fixed metadata keeps PDF/PNG bytes reproducible between runs (no creation date).
    if path.suffix == ".pdf":
        return {"CreationDate": None, "Creator": "daedyn"}
    if path.suffix == ".png":
        return {"Software": "daedyn"}
    return None


def model_of(noise: float, decay: float) -> str:
    """AE (no regulariser), WDAE (weight decay only), DAE (input noise only) or DAE+WD."""
    if noise == 0 and decay == 0:
        return "AE"
    if noise == 0:
        return "WDAE"
    return "DAE" if decay == 0 else "DAE+WD"


def shared(ds, name: str, fmt: str = "g") -> str:
    """A per-run coordinate for a title: its value when every run has the same, else "varies"."""
    if name not in ds.coords:
        return "?"
    values = np.unique(np.atleast_1d(ds[name].values))
    if values.size != 1:
        return "varies"
    value = values[0]
    return format(value, fmt) if isinstance(value, (int, float, np.number)) else str(value)


#: symbols of the per-run settings in figure labels
SYMBOLS = {"eps": "ε", "gamma": "γ", "lr": "η", "hidden_units": "H", "n_samples": "N", "init_std": "init std",
           "batch_size": "batch", "engine": "engine", "noise_std": "σ", "weight_decay": "wd"}
#: config keys whose coordinate in a combined dataset has another name
COORDS = {"hidden": "hidden_units"}


def varying_settings(ds, runs=None) -> list[str]:
    """Names of the (run,) coordinates of a combined dataset whose values differ between `runs`."""
    runs = list(ds["run"].values) if runs is None else runs
    return [name for name in SYMBOLS if name in ds.coords and ds[name].dims == ("run",)
            and len({str(v) for v in ds[name].sel(run=runs).values}) > 1]


def run_label(ds, run, names) -> str:
    """'ε = 0.5, γ = 0' for the settings `names` of one run."""
    parts = []
    for name in names:
        value = ds[name].sel(run=run).item()
        parts.append(f"{SYMBOLS[name]} = {value:g}" if isinstance(value, (int, float)) else f"{SYMBOLS[name]} {value}")
    return ", ".join(parts) or str(run)


def capped(values, max_panels: int) -> list:
    """At most `max_panels` of `values`, evenly spread and including the first and the last."""
    values = list(values)
    if len(values) <= max_panels:
        return values
    keep = np.unique(np.round(np.linspace(0, len(values) - 1, max_panels)).astype(int))
    return [values[i] for i in keep]


def facets(ds, modes, facet_by: str | None, max_panels: int, paper_panels: int):
    """Panels of a figure with many runs: ``(key, panels, omitted)``, or None for the paper's layout.

    ``key`` is the facet variable (a coordinate name or "mode"), ``panels`` a list of
    (title, runs, modes) and ``omitted`` the number of its values left out by the cap.
    The paper's layout (`paper_panels` panels) is kept while `facet_by` is None and it needs at
    most `max_panels` panels. Otherwise there is one panel per value of `facet_by` ("mode" by
    default, or a per-run setting such as "eps"), at most `max_panels` of them chosen evenly.
    """
    if facet_by is None and paper_panels <= max_panels:
        return None
    runs = [str(r) for r in ds["run"].values]
    key = COORDS.get(facet_by or "mode", facet_by or "mode")
    if key == "mode":
        shown = capped(modes, max_panels)
        return key, [(f"mode {m}", runs, [m]) for m in shown], len(modes) - len(shown)
    if key not in ds.coords or "run" not in ds[key].dims:  # the same for every run: one panel
        return key, [("all runs", runs, list(modes))], 0
    values = sorted({ds[key].sel(run=r).item() for r in runs})
    shown = capped(values, max_panels)
    panels = [(run_label(ds, [r for r in runs if ds[key].sel(run=r).item() == v][0], [key]),
               [r for r in runs if ds[key].sel(run=r).item() == v], list(modes)) for v in shown]
    return key, panels, len(values) - len(shown)


def seed_view(ds, seed=None):
    """One seed's curves, or over several seeds the mean (``<name>`` holds it) and ``<name>_sd``.

    The variables with a seed dimension are reduced; ``u_sd``/``mapping_sd`` are kept only when
    there is more than one seed (the figures then draw a ±1 sd band).
    """
    if "seed" not in ds.dims:
        return ds
    if seed is not None or ds.sizes["seed"] == 1:
        return ds.sel(seed=ds["seed"].values[0] if seed is None else seed)
    out = ds.mean("seed", keep_attrs=True)
    for name in ("u", "mapping", "mapping_noisy"):
        if name in ds:
            out[f"{name}_sd"] = ds[name].std("seed", ddof=1)
    return out
