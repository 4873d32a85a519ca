"""The batched exact engine (linear_batched.train_batch): every run of a batch equals the same run trained
alone by linear.train, array by array; the batch resumes bit-identically; guard, divergence and
grouping are per run."""

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

from daedyn import linear, linear_batched, theory, training
from daedyn.runconfig import LinearConfig
from test_depth import interrupted_and_resumed

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D, H = 7, 3
#: runs that differ in every per-run key: lr, eps, gamma, seed, init_std
VARIANTS = [dict(), dict(lr=0.08, eps=0.0, seed=2), dict(gamma=0.0, init_std=0.3, seed=3),
            dict(lr=0.02, eps=0.6, gamma=0.05, seed=4, init_std=0.05)]


@pytest.fixture(scope="module")
def problem() -> training.Problem:
    """A random spectrum and eigenbasis, and the held-out moment C of another random covariance."""
    rng = np.random.default_rng(7)
    lam = np.sort(rng.uniform(0.05, 2.0, D))[::-1].copy()
    V = np.linalg.qr(rng.standard_normal((D, D)))[0]
    Xt = rng.standard_normal((40, D)) * np.linspace(1.5, 0.2, D)
    return training.Problem(lam, V, C=V.T @ (Xt.T @ Xt / 40) @ V)


def _configs(dtype="float64", device="cpu", **kw) -> list[LinearConfig]:
    base = LinearConfig.make(engine="exact", experiment="batch", run="r0", hidden=H, lr=0.05, eps=0.2, gamma=0.01,
                             epochs=120, log_every=7, seed=1, init_std=0.1, dtype=dtype, device=device, **kw)
    return [dataclasses.replace(base, run=f"r{i}", **v) for i, v in enumerate(VARIANTS)]


def _worst_relative(a: xr.Dataset, b: xr.Dataset) -> dict[str, float]:
    """Every array of ``a`` and ``b`` (same variables, coordinates, attributes): the largest
    difference relative to the array's largest magnitude; non-float arrays must be equal. The
    balancedness ‖W1W1ᵀ − W2ᵀW2‖ is a difference of two Gram matrices and carries their rounding, so
    its scale is theirs, ‖W1‖² + ‖W2‖²."""
    assert set(a.variables) == set(b.variables) and a.attrs == b.attrs
    worst = {}
    for name in a.variables:
        assert a[name].dims == b[name].dims and a[name].attrs == b[name].attrs, name
        x, y = a[name].values, b[name].values
        if x.dtype.kind != "f":
            assert np.array_equal(x, y), name
            continue
        scale = (np.max(a["norm_w1"].values ** 2 + a["norm_w2"].values ** 2) if name == "balancedness"
                 else np.max(np.abs(x), initial=0.0))
        worst[name] = float(np.max(np.abs(x - y), initial=0.0) / max(scale, 1e-300))
    return worst


def _check_batch_equals_runs(configs, problem, rtol):
    runs = linear_batched.train_batch(configs, problem)
    assert [r.config for r in runs] == configs
    for config, run in zip(configs, runs):
        worst = _worst_relative(linear.train(config, problem).dataset(), run.dataset())
        assert max(worst.values()) <= rtol, (config.run, worst)
    return runs


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-6)])
def test_every_run_of_a_batch_equals_the_run_alone(problem, dtype, rtol):
    """Held-out records included: every array of every run's file within ``rtol`` of its scale."""
    configs = _configs(dtype, heldout="test", sigma2_test=[0.0, 0.5])
    runs = _check_batch_equals_runs(configs, problem, rtol)
    assert {"test_reconstruction", "test_denoising"} <= set(runs[0].trajectory.data_vars)
    # the runs differ: a batch that trained one run R times would pass the check above for run 0 only
    assert len({float(r.trajectory["loss"][-1]) for r in runs}) == len(runs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-6)])
def test_batched_cuda_runs_equal_the_runs_alone(problem, dtype, rtol):
    _check_batch_equals_runs(_configs(dtype, "cuda", heldout="test", sigma2_test=[0.5]), problem, rtol)


def test_a_batched_run_follows_plain_gradient_descent(problem):
    """Independent of the engines: numpy GD on W1, W2 in the data basis with Σ = VΛVᵀ."""
    configs = _configs()
    runs = linear_batched.train_batch(configs, problem)
    Sigma = problem.V @ np.diag(problem.lam) @ problem.V.T
    for c, run in zip(configs, runs):
        W1, W2 = training.init_weights(D, H, init_std=c.init_std, seed=c.seed)
        for _ in range(c.epochs):
            M = Sigma - W2 @ W1 @ (Sigma + c.eps * np.eye(D))
            W1, W2 = W1 + c.lr * (W2.T @ M - c.gamma * W1), W2 + c.lr * (M @ W1.T - c.gamma * W2)
        np.testing.assert_allclose(run.W1, W1, rtol=0, atol=1e-12)
        np.testing.assert_allclose(run.W2, W2, rtol=0, atol=1e-12)
        u = np.einsum("ij,ji->i", problem.V.T @ W2 @ W1, problem.V)
        np.testing.assert_allclose(run.trajectory["u"][-1], u, rtol=0, atol=1e-12)


def test_a_killed_batch_resumes_bit_identically(problem, tmp_path, monkeypatch):
    configs = _configs(heldout="test", sigma2_test=[0.5])
    reference = linear_batched.train_batch(configs, problem)
    resumed = interrupted_and_resumed(lambda ckpt: linear_batched.train_batch(configs, problem, checkpoint=ckpt),
                                      tmp_path / "batch.ckpt", every=30, killed_at=60, monkeypatch=monkeypatch)
    for got, want in zip(resumed, reference, strict=True):
        xr.testing.assert_identical(got.dataset(), want.dataset())
        assert got.resumed_from == [60]
    # the checkpoint left (the final state) belongs to this batch only: one lr changed trains afresh
    other = [dataclasses.replace(configs[0], lr=0.04), *configs[1:]]
    assert all(r.resumed_from == [] for r in
               linear_batched.train_batch(other, problem, checkpoint=training.Checkpoint(tmp_path / "batch.ckpt", 30)))


def test_the_guard_names_every_run_above_its_own_limit(problem):
    configs = _configs()
    lims = [theory.stability_limit(problem.lam, c.eps, c.gamma, H) for c in configs]
    too_fast = [dataclasses.replace(c, lr=1.5 * m) for c, m in zip(configs, lims)]
    batch = [configs[0], too_fast[1], configs[2], too_fast[3]]
    with pytest.raises(training.UnstableLearningRateError, match="2 of 4 runs") as err:
        linear_batched.train_batch(batch, problem)
    assert "batch/r1" in str(err.value) and "batch/r3" in str(err.value) and "batch/r0" not in str(err.value)
    assert f"{lims[1]:.6g}" in str(err.value) and f"{lims[3]:.6g}" in str(err.value)
    # allow_unstable holds per run: only the other run is named
    batch[1] = dataclasses.replace(batch[1], allow_unstable=True, epochs=2)
    batch = [dataclasses.replace(c, epochs=2) for c in batch]
    with pytest.raises(training.UnstableLearningRateError, match="1 of 4 runs") as err:
        linear_batched.train_batch(batch, problem)
    assert "batch/r3" in str(err.value) and "batch/r1" not in str(err.value)


def test_a_diverging_run_is_named_with_its_epoch_and_why(problem, tmp_path):
    configs = _configs()
    lim = theory.stability_limit(problem.lam, configs[2].eps, configs[2].gamma, H)
    configs[2] = dataclasses.replace(configs[2], lr=3 * lim, allow_unstable=True)
    ckpt = training.Checkpoint(tmp_path / "batch.ckpt", 10)
    with pytest.raises(training.DivergenceError, match=r"diverged by epoch \d+ in 1 of 4 runs") as err:
        linear_batched.train_batch(configs, problem, checkpoint=ckpt)
    message = str(err.value)
    assert err.value.runs == [2]
    assert "run 2 (batch/r2, seed 3)" in message and f"eta_max={lim:.6g}" in message
    assert "batch/r0" not in message and "batch/r1" not in message
    assert not ckpt.path.exists()  # a diverged batch is final: its checkpoint goes


def test_runs_that_cannot_batch_are_named_and_grouped(problem):
    configs = _configs()
    wider = dataclasses.replace(configs[1], hidden=H + 1)
    with pytest.raises(ValueError, match=r"differ in hidden \(3 vs 4\)"):
        linear_batched.train_batch([configs[0], wider], problem)
    with pytest.raises(ValueError, match="differ in epochs"):
        linear_batched.train_batch([configs[0], dataclasses.replace(configs[1], epochs=5)], problem)
    datapass = dataclasses.replace(configs[0], engine="datapass")
    mixed = [configs[0], wider, datapass, configs[2], dataclasses.replace(wider, lr=0.01), configs[3]]
    assert linear_batched.batch_groups(mixed) == [[0, 3, 5], [1, 4], [2]]
    with pytest.raises(ValueError, match="differ in engine"):
        linear_batched.train_batch([configs[0], datapass], problem)
    with pytest.raises(ValueError, match="only runs of the exact engine"):
        linear_batched.train_batch([datapass, dataclasses.replace(datapass, lr=0.01)], problem)
    with pytest.raises(ValueError, match="at least one"):
        linear_batched.train_batch([], problem)
    # a group of one run of another engine (batch_groups makes them) is trained alone
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, D)) * np.linspace(1.2, 0.3, D)
    lam, V = np.linalg.eigh(X.T @ X / 30)
    data = training.Problem(lam[::-1].copy(), V[:, ::-1].copy(), X)
    alone = dataclasses.replace(datapass, n_samples=30, epochs=10)
    (run,) = linear_batched.train_batch([alone], data)
    xr.testing.assert_identical(run.dataset(), linear.train(alone, data).dataset())


def test_progress_lines_show_the_batch(problem, caplog):
    configs = _configs()
    with caplog.at_level("INFO", logger="daedyn.training"):
        runs = linear_batched.train_batch(configs, problem, progress=True)
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert lines and all("4 runs from batch/r0" in line for line in lines)
    final = np.array([float(r.trajectory["loss"][-1]) for r in runs])
    done = next(r.getMessage() for r in caplog.records if ": done," in r.getMessage())
    assert f"loss {final.mean():.6g} (mean of 4 runs, max {final.max():.6g})" in done
