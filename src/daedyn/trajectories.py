"""Reading trajectory datasets that stack several runs (helpers for the experiment metrics).

A trajectory dataset holds ``u`` with dims "epoch" and "mode" plus any number of run
dimensions (e.g. "depth" and "model", or "q"). Run parameters (``eps``, ``lr``, ...) are stored
either as variables or coordinates (scalar or along run dimensions) or as dataset attributes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["CORE", "run_dims", "run_index", "run_param"]

#: the per-run dimensions of a trajectory; every other dimension of ``u`` labels a run
CORE = ("epoch", "mode")


def run_dims(ds: xr.Dataset) -> list[str]:
    """The run dimensions of ``ds["u"]``, in its order."""
    return [d for d in ds["u"].dims if d not in CORE]


def run_index(ds: xr.Dataset) -> list[dict[str, int]]:
    """Positional indices of every run: every combination of the run dimensions."""
    extra = run_dims(ds)
    return [dict(zip(extra, pos)) for pos in np.ndindex(*(ds.sizes[d] for d in extra))]


def run_param(ds: xr.Dataset, name: str, idx: dict[str, int], kind=float):
    """The run parameter ``name`` of run ``idx`` (a variable, coordinate or attribute), as ``kind``."""
    if name in ds.variables:
        v = ds[name].isel({k: i for k, i in idx.items() if k in ds[name].dims})
        if v.ndim:
            raise ValueError(f"run parameter {name!r} must not vary along {v.dims}")
        return kind(v.item())
    if name in ds.attrs:
        return kind(ds.attrs[name])
    raise KeyError(f"the dataset needs the run parameter {name!r} as a variable, coordinate or "
                   "attribute")
