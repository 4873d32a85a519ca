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
