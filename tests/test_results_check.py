"""The results-unchanged check itself (tests/results_check.py): machine noise passes, real changes fail."""

from __future__ import annotations

import numpy as np
import pytest

from results_check import RTOL32, assert_same, new_run_path, tolerance


def mapping_like() -> np.ndarray:
    """float32 values of order one beside values near 1e-6, as a nonlinear run's `mapping` holds."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(0.1, 1.0, 50), rng.uniform(1e-7, 2e-6, 50)]).astype(np.float32)


def test_thread_and_cpu_differences_pass():
    old = mapping_like()
    new = old.copy()
    new[60] += np.float32(1.7e-11)  # 1.4e-5 relative: failed the old rtol=1e-6 check on another machine
    new[:50] *= np.float32(1 + 2e-7)  # a rounding difference of the large entries
    assert_same(new, old, rtol=RTOL32, where="mapping")


@pytest.mark.parametrize("index, change", [(3, 1e-4), (60, 1e-5)])
def test_real_changes_fail(index, change):
    old = mapping_like()
    new = old.copy()
    new[index] += np.float32(change)
    with pytest.raises(AssertionError):
        assert_same(new, old, rtol=RTOL32, where="mapping")


def test_float64_runs_compare_bitwise_on_one_machine_and_within_1e_12_across_machines():
    old = np.linspace(0, 1, 11)
    new = old.copy()
    new[5] = np.nextafter(new[5], 2)
    with pytest.raises(AssertionError):
        assert_same(new, old, rtol=0, where="u")
    assert_same(old.copy(), old, rtol=0, where="u")
    # what another CPU gave in CI: 2e-15 on entries near 1e-7 of an array of order one
    small = old.copy()
    small[1] = 9.145757971410901e-08
    other_cpu = small.copy()
    other_cpu[1] += 2e-15
    across = tolerance(True, same_machine=False)
    assert_same(other_cpu, small, where="u", **across)
    changed = small.copy()
    changed[5] += 1e-10      # a change of the computation: far above rounding
    with pytest.raises(AssertionError):
        assert_same(changed, small, where="u", **across)
    # a small difference of order-one terms carries their rounding, not its own
    balancedness = np.linspace(3e-6, 1.4e-5, 21)
    assert_same(balancedness + 1.4e-15, balancedness, where="balancedness", **across)
    with pytest.raises(AssertionError):
        assert_same(balancedness * (1 + 1e-6), balancedness, where="balancedness", **across)
    assert tolerance(True, same_machine=True) == {"rtol": 0.0}


def test_old_run_paths_map_into_each_experiments_tree():
    assert new_run_path("runs/fig5_mnist/dae/seed0.nc") == "fig5_mnist/runs/dae/seed0.nc"
    assert new_run_path("nonlinear/fig6_mnist/ae/seed0.nc") == "fig6_mnist/runs/ae/seed0.nc"
    assert new_run_path("runs/sampled_x/traj_full.nc") == "sampled_x/runs/traj_full.nc"
    assert new_run_path("fig5_mnist/combined.nc") == "fig5_mnist/combined.nc"
