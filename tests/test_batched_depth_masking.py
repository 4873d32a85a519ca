"""Batched depth-L and masking engines (depth.train_batch, masking.train_batch) against the one-run
engines: every run of a batch must be the run its configuration gives alone.

What "equal" means here: every variable, coordinate and attribute of each batched run's file
(``Run.dataset()``) is the one-run file's; non-float values exactly, float values within ``rtol`` of
the variable's scale (its largest magnitude in the one-run file): float64 within 1e-12, float32
within 1e-6. The batched products round differently from the one-run engine's fused operations in
the last bit, so bitwise equality is not expected. Some variables are sums that cancel, whose
rounding is that of their terms: ``u`` and ``singular_values`` are entries of W = W_L⋯W₁, whose scale
is the largest product of the layer norms (a small random start gives u far below it), and that of
the stored ``w2`` = W_L⋯W₂ the product of the norms of the layers above the first; a stored weight
matrix is compared normwise (its scale is its Frobenius norm, as its entries are sums that cancel,
rotated from the eigenbasis); the loss
terms' scale is the loss's; ``balancedness`` is a difference of layer Gram matrices (at rounding
level for an aligned start), whose scale is the largest squared layer norm.

float32 runs agree within 1e-6 over 50 steps; longer, the rounding differences grow through a deep
random start's learning transition (up to ~5e-6 after 100 steps at L = 3 and 4), as between any two
float32 evaluations of the same run.
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


def assert_same_run(batched: xr.Dataset, alone: xr.Dataset, rtol: float) -> None:
    """``batched`` is ``alone`` (module docstring): same variables, dims, attributes; values within rtol."""
    assert set(batched.variables) == set(alone.variables) and batched.attrs == alone.attrs
    for name, ref in alone.variables.items():
        got = batched[name].variable
        assert got.dims == ref.dims and got.attrs == ref.attrs, name
        if ref.dtype.kind not in "fc":
            assert np.array_equal(got.values, ref.values), name
            continue
        assert got.dtype == ref.dtype, name
        scale = float(np.nanmax(np.abs(ref.values)))
        if name in ("u", "singular_values"):
            scale = max(scale, float(alone["layer_norm"].prod("layer").max()))
        elif name in ("w1", "w1_init"):
            scale = float(np.linalg.norm(ref.values))
        elif name in ("w2", "w2_init"):
            scale = max(float(np.linalg.norm(ref.values)),
                        float(alone["layer_norm"].isel(layer=slice(1, None)).prod("layer").max()))
        elif name.startswith("loss_"):
            scale = max(scale, float(np.abs(alone["loss"]).max()))
        elif name == "balancedness":
            scale = float(alone["layer_norm"].max()) ** 2
        err = np.abs(got.values.astype(np.float64) - ref.values.astype(np.float64))
        assert np.array_equal(np.isnan(got.values), np.isnan(ref.values)), name
        assert np.nanmax(err, initial=0.0) <= rtol * scale, (name, np.nanmax(err) / scale)


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


@pytest.mark.parametrize("dtype, epochs, rtol", [("float64", 300, 1e-12), ("float32", 50, 1e-6)])
@pytest.mark.parametrize("L", [2, 3, 4])
def test_every_batched_depth_run_is_the_run_trained_alone(problem, dtype, epochs, rtol, L):
    configs = depth_configs(dtype, epochs, L)
    runs = depth.train_batch(configs, problem)
    assert [r.config.run for r in runs] == [c.run for c in configs]
    for config, run in zip(configs, runs):
        alone = depth.train(config, problem)
        assert run.config == alone.config          # match_eps resolved to the same gamma
        assert_same_run(run.dataset(), alone.dataset(), rtol)


@pytest.mark.parametrize("dtype, epochs, rtol", [("float64", 300, 1e-12), ("float32", 50, 1e-6)])
@pytest.mark.parametrize("subset", [[0, 1, 2, 3], [2, 3]], ids=["masks_and_gaussian", "gaussian_only"])
def test_every_batched_masking_run_is_the_run_trained_alone(problem, dtype, epochs, rtol, subset):
    """Every noise variant and both forms in one batch, and a batch without masks (no VᵀDV product)."""
    configs = [masking_configs(dtype, epochs)[i] for i in subset]
    for config, run in zip(configs, masking.train_batch(configs, problem)):
        assert_same_run(run.dataset(), masking.train(config, problem).dataset(), rtol)


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
