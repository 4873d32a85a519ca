"""The results-unchanged check itself (tests/results_check.py): machine noise passes, real changes fail."""

from __future__ import annotations

import numpy as np
import pytest

from results_check import assert_same, new_run_path


def mapping_like() -> np.ndarray:
    """float32 values of order one beside values near 1e-6, as a nonlinear run's `mapping` holds."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(0.1, 1.0, 50), rng.uniform(1e-7, 2e-6, 50)]).astype(np.float32)


def test_thread_and_cpu_differences_pass():
    old = mapping_like()
    new = old.copy()
    new[60] += np.float32(1.7e-11)  # 1.4e-5 relative: failed the old rtol=1e-6 check on another machine
    new[:50] *= np.float32(1 + 2e-7)  # a rounding difference of the large entries
    assert_same(new, old, exact=False, where="mapping")


@pytest.mark.parametrize("index, change", [(3, 1e-4), (60, 1e-5)])
def test_real_changes_fail(index, change):
    old = mapping_like()
    new = old.copy()
    new[index] += np.float32(change)
    with pytest.raises(AssertionError):
        assert_same(new, old, exact=False, where="mapping")


def test_float64_runs_compare_bitwise():
    old = np.linspace(0, 1, 11)
    new = old.copy()
    new[5] = np.nextafter(new[5], 2)
    with pytest.raises(AssertionError):
        assert_same(new, old, exact=True, where="u")
    assert_same(old.copy(), old, exact=True, where="u")


def test_old_run_paths_map_into_each_experiments_tree():
    assert new_run_path("runs/fig5_mnist/dae/seed0.nc") == "fig5_mnist/runs/dae/seed0.nc"
    assert new_run_path("nonlinear/fig6_mnist/ae/seed0.nc") == "fig6_mnist/runs/ae/seed0.nc"
    assert new_run_path("runs/sampled_x/traj_full.nc") == "sampled_x/runs/traj_full.nc"
    assert new_run_path("fig5_mnist/combined.nc") == "fig5_mnist/combined.nc"
