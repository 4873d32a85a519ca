"""Batched depth-L and masking engines (depth.train_batch, masking.train_batch) against the one-run
engines: every run of a batch must be the run its configuration gives alone.

The one-run engine is the batched one with a single run, so on the CPU with one thread (these
tests) each run's file (``Run.dataset()``: every variable, coordinate and attribute) is identical
to the one-run file, bit for bit, in float64 and in float32. (With more threads or on a GPU the
products may add in another order for another batch size: a run then agrees with the run alone to
rounding.) The one-run engines themselves are checked against the theory in test_depth.py and
test_masking.py.
"""

import dataclasses
import logging

import numpy as np
import pytest
import xarray as xr

from daedyn import depth, masking, training
from daedyn.runconfig import DepthConfig, MaskingConfig
from test_depth import interrupted_and_resumed

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, D = 40, 6


@pytest.fixture(scope="module")
def problem() -> training.Problem:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((N, D)) * np.linspace(1.5, 0.3, D)
    lam, V = np.linalg.eigh(X.T @ X / N)
    return training.Problem(lam[::-1].copy(), V[:, ::-1].copy(), X)


def depth_configs(dtype: str, epochs: int, L: int) -> list[DepthConfig]:
    common = dict(depth=L, hidden=4, epochs=epochs, log_every=10, dtype=dtype, device="cpu", experiment="e")
    return [DepthConfig.make(run="dae", lr=0.05, eps=0.2, init="random", init_std=0.1, seed=1, **common),
            DepthConfig.make(run="wdae", lr=0.1, gamma=0.02, init="random", init_std=0.05, seed=2, **common),
            DepthConfig.make(run="aligned", lr=0.08, init="aligned", w0=0.3, **common),
            DepthConfig.make(run="matched", lr=0.03, match_eps=0.3, init="aligned", w0=0.5, **common)]


def masking_configs(dtype: str, epochs: int) -> list[MaskingConfig]:
    common = dict(hidden=4, epochs=epochs, log_every=10, dtype=dtype, device="cpu", n_samples=N, experiment="e")
    return [MaskingConfig.make(run="inverted", lr=0.1, q=0.7, seed=1, init_std=0.1, **common),
            MaskingConfig.make(run="unscaled", lr=0.05, q=0.5, form="unscaled", gamma=0.02, seed=2, init_std=0.05,
                               **common),
            MaskingConfig.make(run="per_mode", lr=0.08, q=0.8, noise="per_mode", seed=3, init_std=0.1, **common),
            MaskingConfig.make(run="gaussian", lr=0.12, q=0.6, noise="gaussian", gamma=0.01, seed=4, init_std=0.02,
                               **common)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("L", [2, 3, 4])
def test_every_batched_depth_run_is_the_run_trained_alone(problem, dtype, L):
    configs = depth_configs(dtype, 300, L)
    runs = depth.train_batch(configs, problem)
    assert [r.config.run for r in runs] == [c.run for c in configs]
    for config, run in zip(configs, runs):
        alone = depth.train(config, problem)
        assert run.config == alone.config          # match_eps resolved to the same gamma
        xr.testing.assert_identical(run.dataset(), alone.dataset())
        for name in ("W1", "W2", "W1_init", "W2_init"):
            assert np.array_equal(getattr(run, name), getattr(alone, name)), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("subset", [[0, 1, 2, 3], [2, 3]], ids=["masks_and_gaussian", "gaussian_only"])
def test_every_batched_masking_run_is_the_run_trained_alone(problem, dtype, subset):
    """Every noise variant and both forms in one batch, and a batch without masks (no VᵀDV product)."""
    configs = [masking_configs(dtype, 300)[i] for i in subset]
    for config, run in zip(configs, masking.train_batch(configs, problem)):
        xr.testing.assert_identical(run.dataset(), masking.train(config, problem).dataset())


@pytest.mark.parametrize("family", ["depth", "masking"])
def test_a_killed_batch_resumes_bit_identically(problem, family, tmp_path, monkeypatch):
    module = {"depth": depth, "masking": masking}[family]
    configs = depth_configs("float64", 60, 3) if family == "depth" else masking_configs("float64", 60)
    reference = module.train_batch(configs, problem)
    resumed = interrupted_and_resumed(lambda ckpt: module.train_batch(configs, problem, checkpoint=ckpt),
                                      tmp_path / "batch.ckpt", every=20, killed_at=40, monkeypatch=monkeypatch)
    for got, ref in zip(resumed, reference, strict=True):
        xr.testing.assert_identical(got.dataset(), ref.dataset())
        assert got.resumed_from == [40]


def test_a_divergent_run_is_named_with_its_epoch_and_why(problem):
    stable, unstable = depth_configs("float64", 200, 2)[:2]
    eta_max = depth.train(stable, problem).trajectory["eta_max"].item()
    unstable = dataclasses.replace(unstable, run="too_fast", lr=3 * eta_max, allow_unstable=True)
    with pytest.raises(training.DivergenceError) as alone:          # the one-run engine: when and why
        depth.train(unstable, problem)
    epoch = alone.value.args[0].split("by epoch ")[1].split(" ")[0]
    with pytest.raises(training.DivergenceError, match=f"by epoch {epoch} in 1 of 2 runs") as batch:
        depth.train_batch([stable, unstable], problem)
    message = str(batch.value)
    assert "run 1 (e/too_fast, seed 2)" in message and "e/dae" not in message and batch.value.runs == [1]
    assert f"learning rate eta={unstable.lr:g}" in message and "eta_max=" in message


def test_the_guard_names_every_run_above_its_limit(problem):
    configs = masking_configs("float64", 10)
    limits = [run.trajectory["eta_max"].item() for run in masking.train_batch(configs, problem)]
    fast = [dataclasses.replace(c, lr=2 * eta) for c, eta in zip(configs, limits)]
    batch = [configs[0], fast[1], fast[2]]
    with pytest.raises(training.UnstableLearningRateError, match="2 of 3 runs") as err:
        masking.train_batch(batch, problem)
    assert "e/unscaled" in str(err.value) and "e/per_mode" in str(err.value) and "e/inverted" not in str(err.value)
    batch[1] = dataclasses.replace(batch[1], allow_unstable=True)   # allowed per run: only the other is named
    with pytest.raises(training.UnstableLearningRateError, match="1 of 3 runs") as err:
        masking.train_batch(batch, problem)
    assert "e/per_mode" in str(err.value) and "e/unscaled" not in str(err.value)


@pytest.mark.parametrize("family, key, change", [
    ("depth", "depth", dict(depth=3)),
    ("depth", "hidden", dict(hidden=5)),
    ("depth", "epochs", dict(epochs=20)),
    ("masking", "dtype", dict(dtype="float32")),
    ("masking", "log_every", dict(log_every=5)),
    ("masking", "hidden", dict(hidden=3)),
])
def test_runs_that_cannot_share_a_batch_are_refused_naming_the_key(problem, family, key, change):
    module = {"depth": depth, "masking": masking}[family]
    first = depth_configs("float64", 10, 2)[0] if family == "depth" else masking_configs("float64", 10)[0]
    other = dataclasses.replace(first, run="other", **change)
    with pytest.raises(ValueError, match=f"cannot train as one batch: they differ in {key} "):
        module.train_batch([first, other], problem)
    assert module.batch_groups([first, other, first, other]) == [[0, 2], [1, 3]]


def test_the_sampled_masking_engine_is_not_batched(problem):
    config = dataclasses.replace(masking_configs("float64", 10)[0], engine="sampled", batch_size=8)
    with pytest.raises(ValueError, match="engine is 'sampled'; a batch trains the marginal engine"):
        masking.train_batch([config], problem)


def test_the_batch_logs_progress_lines(problem, caplog):
    configs = depth_configs("float64", 50, 2)
    with caplog.at_level(logging.INFO, logger="daedyn.training"):
        depth.train_batch(configs, problem, progress=True)
    lines = [r.getMessage() for r in caplog.records if "BatchedDepthEngine 4 runs from e/dae" in r.getMessage()]
    assert any("epoch 50/50" in line and "(mean of 4 runs" in line for line in lines)
    assert any("done, 50 epochs" in line for line in lines)


def test_batch_groups_keep_order_and_split_by_every_shared_key():
    base = depth_configs("float64", 10, 2)
    configs = [base[0], dataclasses.replace(base[1], dtype="float32"), base[2], dataclasses.replace(base[3], depth=3)]
    assert depth.batch_groups(configs) == [[0, 2], [1], [3]]
