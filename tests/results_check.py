"""Comparing result arrays across code versions, machines and thread counts.

Integers and strings must be equal. Floating-point arrays are compared with a tolerance scaled to
the array's magnitude: |new - old| <= rtol * (|old| + max |old|). A relative tolerance alone fails
on entries near zero of an array of order one (thread and CPU differences of 1e-11 on values of
1e-6 are 1e-5 relative), while a change of the computation moves entries by far more than that.

* float32 runs: rtol 1e-6 (RTOL32);
* float64 runs on the same machine (before and after a refactor): bitwise;
* float64 runs against a fixture made on another machine: rtol 1e-12 (RTOL64) of the array's
  magnitude, or of 1 where the array is smaller. Another CPU's BLAS kernels, or another thread
  count, sum in another order: 2e-15 was seen on a `u` array of order one, and 1.4e-15 on
  `balancedness` (about 1e-5, a difference of order-one terms, so it carries their rounding).

Also a command: ``python tests/results_check.py OLD_RESULTS NEW_RESULTS`` compares every run file
of a results folder (of the layout before the experiment-kind registry, or of today's) with one of
today's, e.g. the same config built by two versions of the code on one machine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

RTOL32 = 1e-6
RTOL64 = 1e-12


def tolerance(float64_run: bool, *, same_machine: bool) -> dict:
    """``assert_same``'s keywords for a run's arrays: bitwise for float64 runs made on the same machine."""
    if not float64_run:
        return {"rtol": RTOL32}
    return {"rtol": 0.0} if same_machine else {"rtol": RTOL64, "floor": 1.0}


def assert_same(new: np.ndarray, old: np.ndarray, *, rtol: float, where: str, floor: float = 0.0) -> None:
    """Equal within ``rtol`` of the array's magnitude (at least ``floor``); bitwise where ``rtol`` is 0
    or the values are not floats."""
    assert new.shape == old.shape, (where, new.shape, old.shape)
    if rtol == 0 or old.dtype.kind != "f":
        np.testing.assert_array_equal(new, old, err_msg=where)
        return
    finite = np.isfinite(old)
    scale = max(float(np.abs(old[finite]).max()) if finite.any() else 0.0, floor)
    np.testing.assert_allclose(new, old, rtol=rtol, atol=rtol * scale, err_msg=where)


def new_run_path(rel: str) -> str:
    """A run file's path (relative to the results folder) in the per-experiment tree."""
    return re.sub(r"^(runs|nonlinear|depth|masking)/([^/]+)/", r"\2/runs/", rel)


def compare_trees(old: Path, new: Path) -> int:
    """Every variable of every old run file against its file in the new tree; returns the number of files."""
    import xarray as xr

    files = sorted(p.relative_to(old) for root in ("runs", "nonlinear", "depth", "masking")
                   for p in (old / root).rglob("*.nc"))
    files += sorted(p.relative_to(old) for p in old.glob("*/runs/**/*.nc")  # today's layout
                    if p.relative_to(old).parts[0] not in ("runs", "nonlinear", "depth", "masking"))
    for rel in files:
        a = xr.open_dataset(old / rel, mask_and_scale=False)
        b = xr.open_dataset(new / new_run_path(str(rel)), mask_and_scale=False)
        float64_run = "dtype" in a.coords and "float64" in set(np.atleast_1d(a["dtype"].values).tolist())
        tol = tolerance(float64_run, same_machine=True)
        assert set(a.variables) == set(b.variables), (rel, set(a.variables) ^ set(b.variables))
        for name in a.variables:
            assert_same(b[name].values, a[name].values, where=f"{rel}::{name}", **tol)
    return len(files)


if __name__ == "__main__":
    count = compare_trees(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{count} run files: every array equal (float64 bitwise, float32 within {RTOL32:g} of its scale)")
