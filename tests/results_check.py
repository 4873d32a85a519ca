"""Comparing result arrays across code versions, machines and thread counts.

float64 arrays (and integers, strings) must be bitwise equal. float32 arrays are compared with a
tolerance scaled to the array's magnitude: |new - old| <= RTOL * (|old| + max |old|). A relative
tolerance alone fails on entries near zero of an array of order one (thread and CPU differences
of 1e-11 on values of 1e-6 are 1e-5 relative), while a change of the computation moves entries by
far more than 1e-6 of the array's scale.

Also a command: ``python tests/results_check.py OLD_RESULTS NEW_RESULTS`` compares every run file
of a results folder of the layout before the experiment-kind registry with one of today's.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

RTOL = 1e-6


def assert_same(new: np.ndarray, old: np.ndarray, *, exact: bool, where: str) -> None:
    """``exact``: bitwise (float64 runs); else float32 within RTOL of the array's magnitude."""
    assert new.shape == old.shape, (where, new.shape, old.shape)
    if exact or old.dtype.kind != "f":
        np.testing.assert_array_equal(new, old, err_msg=where)
        return
    finite = np.isfinite(old)
    scale = float(np.abs(old[finite]).max()) if finite.any() else 0.0
    np.testing.assert_allclose(new, old, rtol=RTOL, atol=RTOL * scale, err_msg=where)


def new_run_path(rel: str) -> str:
    """A run file's path (relative to the results folder) in the per-experiment tree."""
    return re.sub(r"^(runs|nonlinear|depth|masking)/([^/]+)/", r"\2/runs/", rel)


def compare_trees(old: Path, new: Path) -> int:
    """Every variable of every old run file against its file in the new tree; returns the number of files."""
    import xarray as xr

    files = sorted(p.relative_to(old) for root in ("runs", "nonlinear", "depth", "masking")
                   for p in (old / root).rglob("*.nc"))
    for rel in files:
        a = xr.open_dataset(old / rel, mask_and_scale=False)
        b = xr.open_dataset(new / new_run_path(str(rel)), mask_and_scale=False)
        exact = "dtype" in a.coords and "float64" in set(np.atleast_1d(a["dtype"].values).tolist())
        assert set(a.variables) == set(b.variables), (rel, set(a.variables) ^ set(b.variables))
        for name in a.variables:
            assert_same(b[name].values, a[name].values, exact=exact, where=f"{rel}::{name}")
    return len(files)


if __name__ == "__main__":
    count = compare_trees(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{count} run files: every array equal (float64 bitwise, float32 within {RTOL:g} of its scale)")
