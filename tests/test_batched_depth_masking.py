"""Batched depth-L and masking engines (depth_batched.train_batch, masking_batched.train_batch) against the one-run
engines: every run of a batch must be the run its configuration gives alone.

The batched engines have their own step (per-run rates as tensors, batched products), while the
one-run engines keep theirs, so a run of a batch equals the run alone to rounding, not bit for bit:
every array of its file (``Run.dataset()``) within 1e-12 (float64) or 1e-6 (float32) of the array's
scale (``assert_close``), on the CPU and on CUDA. Independently of the engines, each batched run also
follows plain numpy gradient descent on its loss.
"""

import dataclasses
import logging

import numpy as np
import pytest
import torch
import xarray as xr

from daedyn import depth, depth_batched, masking, masking_batched, training
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


def assert_close(batched: xr.Dataset, alone: xr.Dataset, rtol: float) -> None:
    """``batched`` is ``alone`` up to rounding: same variables, dims and attributes, float values within
    ``rtol`` of the variable's scale, its largest magnitude, except for sums that cancel, whose rounding
    is that of their terms: u and the singular values (entries of W = W_L⋯W₁: the product of the layer
    norms), the loss terms (the loss), balancedness (a difference of the Gram matrices of adjacent
    layers: ‖W_l‖² + ‖W_{l+1}‖², as tests/test_batched.py) and the stored weights (their Frobenius norm,
    and the largest norm of the layer over the run; w2's the product of the norms above W₁)."""
    assert set(batched.variables) == set(alone.variables) and batched.attrs == alone.attrs
    norms = alone["layer_norm"]
    for name, ref in alone.variables.items():
        got = batched[name].variable
        assert got.dims == ref.dims and got.attrs == ref.attrs, name
        if ref.dtype.kind not in "fc":
            assert np.array_equal(got.values, ref.values), name
            continue
        scale = float(np.nanmax(np.abs(ref.values)))
        if name in ("u", "singular_values"):
            scale = max(scale, float(norms.prod("layer").max()))
        elif name.startswith("loss_"):
            scale = max(scale, float(np.abs(alone["loss"]).max()))
        elif name == "balancedness":
            sq = norms**2
            scale = float((sq.isel(layer=slice(None, -1)).values + sq.isel(layer=slice(1, None)).values).max())
        elif name in ("w1", "w1_init"):
            scale = max(float(np.linalg.norm(ref.values)), float(norms.isel(layer=0).max()))
        elif name in ("w2", "w2_init"):
            scale = max(float(np.linalg.norm(ref.values)), float(norms.isel(layer=slice(1, None)).prod("layer").max()))
        err = np.abs(got.values.astype(np.float64) - ref.values.astype(np.float64))
        assert np.nanmax(err, initial=0.0) <= rtol * scale, (name, np.nanmax(err) / scale)


def depth_configs(dtype: str, epochs: int, L: int, device: str = "cpu") -> list[DepthConfig]:
    common = dict(depth=L, hidden=4, epochs=epochs, log_every=10, dtype=dtype, device=device, experiment="e")
    return [DepthConfig.make(run="dae", lr=0.05, eps=0.2, init="random", init_std=0.1, seed=1, **common),
            DepthConfig.make(run="wdae", lr=0.1, gamma=0.02, init="random", init_std=0.05, seed=2, **common),
            DepthConfig.make(run="aligned", lr=0.08, init="aligned", w0=0.3, **common),
            DepthConfig.make(run="matched", lr=0.03, match_eps=0.3, init="aligned", w0=0.5, **common)]


def masking_configs(dtype: str, epochs: int, device: str = "cpu") -> list[MaskingConfig]:
    common = dict(hidden=4, epochs=epochs, log_every=10, dtype=dtype, device=device, n_samples=N, experiment="e")
    return [MaskingConfig.make(run="inverted", lr=0.1, q=0.7, seed=1, init_std=0.1, **common),
            MaskingConfig.make(run="unscaled", lr=0.05, q=0.5, form="unscaled", gamma=0.02, seed=2, init_std=0.05,
                               **common),
            MaskingConfig.make(run="per_mode", lr=0.08, q=0.8, noise="per_mode", seed=3, init_std=0.1, **common),
            MaskingConfig.make(run="gaussian", lr=0.12, q=0.6, noise="gaussian", gamma=0.01, seed=4, init_std=0.02,
                               **common)]


#: (dtype, tolerance, steps): float32 over fewer steps, as its rounding grows through a deep random
#: start's learning (L = 4 reaches about 9e-7 of the scale by step 50)
TOLERANCES = [("float64", 1e-12, 300), ("float32", 1e-6, 30)]


@pytest.mark.parametrize("dtype, rtol, epochs", TOLERANCES)
@pytest.mark.parametrize("L", [2, 3, 4])
def test_every_batched_depth_run_equals_the_run_trained_alone(problem, dtype, rtol, epochs, L):
    configs = depth_configs(dtype, epochs, L)
    runs = depth_batched.train_batch(configs, problem)
    assert [r.config.run for r in runs] == [c.run for c in configs]
    for config, run in zip(configs, runs):
        alone = depth.train(config, problem)
        assert run.config == alone.config          # match_eps resolved to the same gamma
        assert_close(run.dataset(), alone.dataset(), rtol)
    # the runs differ: a batch that trained one run R times would pass the check above for run 0 only
    assert len({float(r.trajectory["loss"][-1]) for r in runs}) == len(runs)


@pytest.mark.parametrize("dtype, rtol, epochs", TOLERANCES)
@pytest.mark.parametrize("subset", [[0, 1, 2, 3], [2, 3]], ids=["masks_and_gaussian", "gaussian_only"])
def test_every_batched_masking_run_equals_the_run_trained_alone(problem, dtype, rtol, epochs, subset):
    """Every noise variant and both forms in one batch, and a batch without masks (no VᵀDV product)."""
    configs = [masking_configs(dtype, epochs)[i] for i in subset]
    runs = masking_batched.train_batch(configs, problem)
    for config, run in zip(configs, runs):
        assert_close(run.dataset(), masking.train(config, problem).dataset(), rtol)
    assert len({float(r.trajectory["loss"][-1]) for r in runs}) == len(runs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype, rtol, epochs", TOLERANCES)
def test_batched_cuda_runs_equal_the_runs_alone(problem, dtype, rtol, epochs):
    for configs, module, batched in [(depth_configs(dtype, epochs, 3, "cuda"), depth, depth_batched),
                                     (masking_configs(dtype, epochs, "cuda"), masking, masking_batched)]:
        for config, run in zip(configs, batched.train_batch(configs, problem)):
            assert_close(run.dataset(), module.train(config, problem).dataset(), rtol)


def _layers_in_data_basis(config: DepthConfig, V: np.ndarray) -> list[np.ndarray]:
    """A depth run's initial layers [W₁, …, W_L] in the data's basis, built here from the config."""
    widths = config.hidden_widths
    if config.init == "random":
        return depth.init_layers(D, widths, config.depth, init_std=config.init_std, seed=config.seed)
    dims, rank, eig = [D, *widths, D], min(D, *widths), []
    for rows, cols in zip(dims[1:], dims[:-1]):        # w0 on the first `rank` modes of every layer
        eig.append(np.zeros((rows, cols)))
        eig[-1][range(rank), range(rank)] = config.w0
    return [eig[0] @ V.T, *eig[1:-1], V @ eig[-1]]     # W₁V and W_LᵀV are the diagonal starts


@pytest.mark.parametrize("L", [2, 3])
def test_a_batched_depth_run_follows_plain_gradient_descent(problem, L):
    """Independent of the engines: numpy GD on every layer in the data's basis, Σ = VΛVᵀ,
    ∇W_l = −(W_L⋯W_{l+1})ᵀ M (W_{l−1}⋯W₁)ᵀ + γW_l with M = Σ − W(Σ + εI)."""
    configs = depth_configs("float64", 200, L)
    Sigma = problem.V @ np.diag(problem.lam) @ problem.V.T
    for c, run in zip(configs, depth_batched.train_batch(configs, problem)):
        c = run.config                                     # match_eps resolved to its gamma
        Ws = _layers_in_data_basis(c, problem.V)
        chain = lambda mats: np.linalg.multi_dot(mats[::-1]) if len(mats) > 1 else (mats[0] if mats else None)
        for _ in range(c.epochs):
            M = Sigma - chain(Ws) @ (Sigma + c.eps * np.eye(D))
            grads = []
            for l in range(L):
                up, down = chain(Ws[l + 1:]), chain(Ws[:l])
                g = M if up is None else up.T @ M
                grads.append(-(g if down is None else g @ down.T) + c.gamma * Ws[l])
            Ws = [W - c.lr * g for W, g in zip(Ws, grads)]
        np.testing.assert_allclose(run.W1, Ws[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(run.W2, chain(Ws[1:]), rtol=0, atol=1e-12)
        u = np.einsum("ij,ji->i", problem.V.T @ chain(Ws), problem.V)
        np.testing.assert_allclose(run.trajectory["u"][-1], u, rtol=0, atol=1e-12)


def test_a_batched_masking_run_follows_plain_gradient_descent(problem):
    """Independent of the engines: numpy GD on W1, W2 in the data's basis on the mask-averaged loss
    ½tr Σ − κ tr(WΣ) + κ²/2 tr[W(Σ + N)Wᵀ] + γ/2(‖W1‖² + ‖W2‖²), N = ((1−q)/q) diag(diag Σ) for masks,
    V diag(ε_i) Vᵀ (per_mode) or ε_m I (gaussian) for the Gaussian comparisons."""
    configs = masking_configs("float64", 200)
    X = np.asarray(problem.X)
    Sigma, D_sigma = X.T @ X / N, np.diag(np.mean(X**2, axis=0))
    for c, run in zip(configs, masking_batched.train_batch(configs, problem)):
        kappa, rho = (c.q if c.form == "unscaled" else 1.0), (1 - c.q) / c.q
        noise = {"masking": rho * D_sigma,
                 "per_mode": problem.V @ np.diag(rho * np.diag(problem.V.T @ D_sigma @ problem.V)) @ problem.V.T,
                 "gaussian": rho * np.mean(np.diag(D_sigma)) * np.eye(D)}[c.noise]
        W1, W2 = training.init_weights(D, c.hidden, init_std=c.init_std, seed=c.seed)
        for _ in range(c.epochs):
            G = -kappa * Sigma + kappa**2 * W2 @ W1 @ (Sigma + noise)       # ∂ℒ/∂W, W = W2 W1
            W1, W2 = W1 - c.lr * (W2.T @ G + c.gamma * W1), W2 - c.lr * (G @ W1.T + c.gamma * W2)
        np.testing.assert_allclose(run.W1, W1, rtol=0, atol=1e-12)
        np.testing.assert_allclose(run.W2, W2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", ["depth", "masking"])
def test_a_killed_batch_resumes_bit_identically(problem, family, tmp_path, monkeypatch):
    module = {"depth": depth_batched, "masking": masking_batched}[family]
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
        depth_batched.train_batch([stable, unstable], problem)
    message = str(batch.value)
    assert "run 1 (e/too_fast, seed 2)" in message and "e/dae" not in message and batch.value.runs == [1]
    assert f"learning rate eta={unstable.lr:g}" in message and "eta_max=" in message


def test_the_guard_names_every_run_above_its_limit(problem):
    configs = masking_configs("float64", 10)
    limits = [run.trajectory["eta_max"].item() for run in masking_batched.train_batch(configs, problem)]
    fast = [dataclasses.replace(c, lr=2 * eta) for c, eta in zip(configs, limits)]
    batch = [configs[0], fast[1], fast[2]]
    with pytest.raises(training.UnstableLearningRateError, match="2 of 3 runs") as err:
        masking_batched.train_batch(batch, problem)
    assert "e/unscaled" in str(err.value) and "e/per_mode" in str(err.value) and "e/inverted" not in str(err.value)
    batch[1] = dataclasses.replace(batch[1], allow_unstable=True)   # allowed per run: only the other is named
    with pytest.raises(training.UnstableLearningRateError, match="1 of 3 runs") as err:
        masking_batched.train_batch(batch, problem)
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
    module = {"depth": depth_batched, "masking": masking_batched}[family]
    first = depth_configs("float64", 10, 2)[0] if family == "depth" else masking_configs("float64", 10)[0]
    other = dataclasses.replace(first, run="other", **change)
    with pytest.raises(ValueError, match=f"cannot train as one batch: they differ in {key} "):
        module.train_batch([first, other], problem)
    assert module.batch_groups([first, other, first, other]) == [[0, 2], [1, 3]]


def test_the_sampled_masking_engine_is_not_batched(problem):
    config = dataclasses.replace(masking_configs("float64", 10)[0], engine="sampled", batch_size=8)
    with pytest.raises(ValueError, match="engine is 'sampled'; a batch trains the marginal engine"):
        masking_batched.train_batch([config], problem)


def test_the_batch_logs_progress_lines(problem, caplog):
    configs = depth_configs("float64", 50, 2)
    with caplog.at_level(logging.INFO, logger="daedyn.training"):
        depth_batched.train_batch(configs, problem, progress=True)
    lines = [r.getMessage() for r in caplog.records if "BatchedDepthEngine 4 runs from e/dae" in r.getMessage()]
    assert any("epoch 50/50" in line and "(mean of 4 runs" in line for line in lines)
    assert any("done, 50 epochs" in line for line in lines)


def test_batch_groups_keep_order_and_split_by_every_shared_key():
    base = depth_configs("float64", 10, 2)
    configs = [base[0], dataclasses.replace(base[1], dtype="float32"), base[2], dataclasses.replace(base[3], depth=3)]
    assert depth_batched.batch_groups(configs) == [[0, 2], [1], [3]]
