"""Depth-L linear DAEs: per-mode theory, the exact engine, and the experiment helpers."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.integrate import solve_ivp

from conftest import killed_after_checkpoint
from daedyn import depth, depth_analysis, linear, theory, training
from daedyn.runconfig import DepthConfig
from daedyn.training import log_epochs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _orthogonal(n, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _aligned_layers(V, widths, w, rng):
    """Aligned balanced layers in the data's basis, the hidden spaces randomly rotated."""
    d = V.shape[0]
    dims = [d, *widths, d]
    rots = [V] + [_orthogonal(h, rng) for h in widths] + [V]
    layers = []
    for i in range(len(dims) - 1):
        core = np.zeros((dims[i + 1], dims[i]))
        core[range(w.size), range(w.size)] = w
        layers.append(rots[i + 1] @ core @ rots[i].T)
    return layers


def _grad_numpy(layers, sigma, eps, gamma):
    """∇W_l = −(W_L⋯W_{l+1})ᵀ M (W_{l−1}⋯W_1)ᵀ + γW_l with M = Σ − W(Σ+εI), in plain numpy."""
    d = sigma.shape[0]
    W = np.linalg.multi_dot(layers[::-1]) if len(layers) > 2 else layers[1] @ layers[0]
    M = sigma - W @ (sigma + eps * np.eye(d))
    grads = []
    for l in range(len(layers)):
        above = np.eye(d) if l == len(layers) - 1 else _prod(layers[l + 1:])
        below = np.eye(d) if l == 0 else _prod(layers[:l])
        grads.append(-above.T @ M @ below.T + gamma * layers[l])
    return grads


def _prod(mats):
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


# --------------------------------------------------------------------------- theory


def test_two_layer_theory_reduces_to_the_paper():
    lam, eps, gamma, lr = np.array([2.0, 1.0, 0.5]), 0.4, 0.1, 0.05
    assert np.allclose(depth.matched_decay(lam, eps, 2), theory.noise_to_decay(lam, eps), rtol=1e-14)
    up, um = depth.fixed_points(lam, eps, gamma, 2)
    assert np.allclose(up, theory.fixed_point(lam, eps, gamma), rtol=1e-14) and np.all(um == 0)
    m = depth.mode_map(200, lam, eps, gamma, lr, 0.01, 2)
    assert np.allclose(m, theory.balanced_map(200, lam, eps, gamma, lr, 1e-4), rtol=1e-12, atol=0)
    # quadrature against the closed-form half-time of the balanced two-layer flow
    t = depth.time_to_fraction(0.5, lam, eps, gamma, lr, 1e-4, 2)
    assert np.allclose(t, theory.steps_to_fraction(0.5, lam, eps, gamma, lr, 1e-4), rtol=1e-9)
    assert np.allclose(depth.eta_max_mode(lam, eps, gamma, 2), 2 / np.maximum(2 * (lam - gamma), 2 * gamma))


@pytest.mark.parametrize("L", [3, 4, 6])
def test_fixed_points_are_zeros_of_the_rate_and_matched_decay_matches(L):
    lam, eps = np.array([2.0, 0.7]), 1.0
    gamma = depth.matched_decay(lam, eps, L)
    up, um = depth.fixed_points(lam, 0.0, gamma, L)
    assert np.allclose(up, lam / (lam + eps), rtol=1e-12)          # WDAE(γ_L) shares the DAE's u*
    assert np.all((um > 0) & (um < up))
    for u in (up, um):
        assert np.all(np.abs(depth.mode_rate(u, lam, 0.0, gamma, L)) < 1e-13)
    # stability: the rate points away from u₋ and towards u₊ and 0
    assert np.all(depth.mode_rate(um * 1.01, lam, 0.0, gamma, L) > 0)
    assert np.all(depth.mode_rate(um * 0.99, lam, 0.0, gamma, L) < 0)
    assert np.all(depth.mode_rate(up * 1.01, lam, 0.0, gamma, L) < 0)
    # a decay larger than max u^{1-2/L}(λ − λu) leaves only the origin
    none = depth.fixed_points(1.0, 0.0, 0.5, L)
    assert np.isnan(none[0]) and np.isnan(none[1])
    assert depth.limit(1.0, 0.0, 0.5, L, 0.9) == 0.0


def test_fixed_point_numbers_for_deep_wdae():
    # λ = 2, ε = 1, w0 = 0.05: DAE and WDAE(γ_L) both go to 2/3 except the deep WDAE (to 0)
    for L in (2, 3, 4):
        g = depth.matched_decay(2.0, 1.0, L)
        assert depth.limit(2.0, 1.0, 0.0, L, 0.05**L) == pytest.approx(2 / 3, rel=1e-12)
        assert depth.limit(2.0, 1.0, 0.0, L, 0.9**L) == pytest.approx(2 / 3, rel=1e-12)
        assert depth.limit(2.0, 0.0, g, L, 0.9**L) == pytest.approx(2 / 3, rel=1e-12)
        small = float(depth.limit(2.0, 0.0, g, L, 0.05**L))
        assert small == (pytest.approx(2 / 3, rel=1e-12) if L == 2 else 0.0)


def test_learning_time_is_infinite_when_blocked_and_additive():
    L, lam, g = 3, 2.0, depth.matched_decay(2.0, 1.0, 3)
    up, um = depth.fixed_points(lam, 0.0, g, L)
    assert depth.learning_time(0.5, lam, 0.0, g, 1.0, um / 2, L) == np.inf   # below u₋: never
    assert depth.learning_time(up * 1.1, lam, 0.0, g, 1.0, 0.5, L) == np.inf  # beyond u₊: never
    t1 = depth.learning_time(0.3, lam, 0.5, 0.0, 0.1, 1e-4, L)
    t2 = depth.learning_time(0.5, lam, 0.5, 0.0, 0.1, 0.3, L)
    assert depth.learning_time(0.5, lam, 0.5, 0.0, 0.1, 1e-4, L) == pytest.approx(t1 + t2, rel=1e-11)
    # decreasing from above the fixed point takes a finite positive time
    assert 0 < depth.learning_time(0.85, lam, 0.5, 0.0, 0.1, 0.95, L) < np.inf  # u* = 0.8


# --------------------------------------------------------------------------- engine


def _config(**kw) -> DepthConfig:
    return DepthConfig.make(**{"dtype": "float64", "device": "cpu", **kw})


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_layers_reproduce_train_exact_bitwise(dtype):
    rng = np.random.default_rng(0)
    d, H = 12, 5
    lam = np.sort(rng.uniform(0.1, 3.0, d))[::-1].copy()
    V = _orthogonal(d, rng)
    kw = dict(hidden=H, lr=0.1, eps=0.3, gamma=0.05, init_std=0.1, seed=3, dtype=dtype, device="cpu",
              epochs=60, log_every=5)
    run = linear.train_exact(lam, V, **kw)
    deep = depth.train(DepthConfig.make(depth=2, **kw), training.Problem(lam, V))
    assert np.array_equal(deep.trajectory["u"].values, run.trajectory["u"].values)
    assert np.array_equal(deep.W1, run.W1) and np.array_equal(deep.W2, run.W2)
    assert np.array_equal(deep.W1_init, run.W1_init) and np.array_equal(deep.W2_init, run.W2_init)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for name in ("loss", "loss_reconstruction", "loss_noise", "loss_decay", "norm_w1", "norm_w2",
                 "balancedness", "singular_values"):
        assert np.allclose(deep.trajectory[name], run.trajectory[name], rtol=tol, atol=tol), name
    traj = deep.trajectory
    assert np.allclose(traj["layer_norm"].values, traj[["norm_w1", "norm_w2"]].to_array().T.values)
    assert float(traj["eta_max"]) == pytest.approx(theory.stability_limit(lam, 0.3, 0.05, H), rel=1e-12)


def test_random_init_follows_the_init_weights_convention():
    w1, w2 = training.init_weights(7, 3, init_std=0.2, seed=5)
    layers = depth.init_layers(7, 3, 2, init_std=0.2, seed=5)
    assert np.array_equal(layers[0], w1) and np.array_equal(layers[1], w2)
    deep = depth.init_layers(7, [3, 4, 2], 4, init_std=0.2, seed=5)
    assert [m.shape for m in deep] == [(3, 7), (4, 3), (2, 4), (7, 2)]
    assert np.array_equal(deep[0], w1)          # the same stream, layer by layer
    eng = depth.DepthEngine(_config(depth=4, hidden=3, widths=[3, 4, 2], lr=0.01, epochs=1, init_std=0.2,
                                    seed=5), np.ones(7), np.eye(7))
    assert all(np.array_equal(a, b) for a, b in zip(eng.weights(), deep))
    # the run file's w2 is the product of the layers above the first: W = w2 w1
    w1_0, w2_0 = (t.numpy() for t in (eng.W1_0, eng.W2_0))
    assert np.allclose(w2_0 @ w1_0, deep[3] @ deep[2] @ deep[1] @ deep[0], rtol=1e-14, atol=1e-18)


@pytest.mark.parametrize("L,widths", [(3, (5, 6)), (4, (5, 6, 4))])
@pytest.mark.parametrize("eps,gamma", [(0.4, 0.0), (0.0, 0.05), (0.3, 0.02)])
def test_aligned_matrix_gd_equals_the_per_mode_map(L, widths, eps, gamma):
    rng = np.random.default_rng(L)
    lam, lr, steps = np.array([2.0, 1.0, 0.5, 0.3]), 0.1, 300
    V = _orthogonal(4, rng)
    cfg = _config(depth=L, hidden=widths[0], widths=list(widths), lr=lr, eps=eps, gamma=gamma, epochs=steps,
                  log_every=1, init="aligned", w0=0.45)
    aligned = depth.train(cfg, training.Problem(lam, V)).trajectory
    ref = depth.mode_map(steps, lam, eps, gamma, lr, 0.45, L).T
    assert np.abs(aligned["u"].values - ref).max() <= 1e-12
    w0 = np.array([0.6, 0.5, -0.4, 0.3])
    rotated = depth.train(cfg, training.Problem(lam, V), layers=_aligned_layers(V, widths, w0, rng)).trajectory
    ref = depth.mode_map(steps, lam, eps, gamma, lr, w0, L).T
    assert np.abs(rotated["u"].values - ref).max() <= 1e-12
    assert float(rotated["balancedness"].max()) <= 1e-12          # balanced stays balanced
    sq = np.stack([np.sum(m**2) for m in _aligned_layers(V, widths, w0, np.random.default_rng(0))])
    assert float(rotated["loss_decay"][0]) == pytest.approx(0.5 * gamma * sq.sum(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("L,widths", [(3, (3, 4)), (4, (4, 3, 5))])
def test_aligned_gradient_flow_matches_the_quadrature(L, widths):
    rng = np.random.default_rng(10 + L)
    lam, eps, gamma, w0 = np.array([2.0, 1.2, 0.7]), 0.5, 0.01, np.array([0.3, 0.35, 0.4])
    V = _orthogonal(3, rng)
    sigma = V @ np.diag(lam) @ V.T
    layers = _aligned_layers(V, widths, w0, rng)
    shapes = [m.shape for m in layers]
    sizes = np.cumsum([0] + [m.size for m in layers])

    def unpack(y):
        return [y[sizes[i]:sizes[i + 1]].reshape(s) for i, s in enumerate(shapes)]

    def rhs(_t, y):
        return -np.concatenate([g.ravel() for g in _grad_numpy(unpack(y), sigma, eps, gamma)])

    u0 = w0**L
    target = 0.5 * depth.limit(lam, eps, gamma, L, u0)

    def event(i):
        def f(_t, y):
            return V[:, i] @ _prod(unpack(y)) @ V[:, i] - target[i]
        f.direction = 1
        return f

    t_quad = depth.learning_time(target, lam, eps, gamma, 1.0, u0, L)
    sol = solve_ivp(rhs, (0.0, 1.5 * t_quad.max()), np.concatenate([m.ravel() for m in layers]),
                    method="DOP853", rtol=1e-10, atol=1e-13, events=[event(i) for i in range(3)])
    t_flow = np.array([ev[0] for ev in sol.t_events])
    assert np.all(np.abs(t_flow / t_quad - 1.0) <= 1e-6), (t_flow, t_quad)


def test_engine_gradient_equals_autograd():
    rng = np.random.default_rng(2)
    d, widths, eps, gamma, lr = 6, [5, 4, 3], 0.3, 0.07, 1e-3
    lam = np.sort(rng.uniform(0.2, 2.0, d))[::-1].copy()
    V = _orthogonal(d, rng)
    eng = depth.DepthEngine(_config(depth=4, hidden=5, widths=widths, lr=lr, eps=eps, gamma=gamma, epochs=1,
                                    init_std=0.5, seed=1), lam, V)
    before = eng.weights()
    loss = eng.record(0, 0)
    eng.step(0)
    after = eng.weights()
    ws = [torch.tensor(m, requires_grad=True) for m in before]
    sigma = torch.tensor(V @ np.diag(lam) @ V.T)
    W = ws[3] @ ws[2] @ ws[1] @ ws[0]
    R = torch.eye(d, dtype=torch.float64) - W
    ref = (0.5 * torch.trace(R @ sigma @ R.T) + 0.5 * eps * W.square().sum()
           + 0.5 * gamma * sum(w.square().sum() for w in ws))
    ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=1e-12)
    for b, a, w in zip(before, after, ws):
        step = (b - a) / lr
        assert np.abs(step - w.grad.numpy()).max() <= 1e-9 * np.abs(w.grad.numpy()).max()
    # singular values of W = W_L...W_1: min(d, H_1) of them, zero beyond the narrowest layer's width
    sv = eng.tracker.sv[0].numpy()
    assert np.allclose(sv, np.r_[np.linalg.svd(W.detach().numpy(), compute_uv=False)[:3], 0, 0], atol=1e-12)


@pytest.mark.parametrize("L", [3, 4])
def test_small_init_deep_wdae_stays_at_zero_while_the_dae_learns(L):
    # λ = 2, ε = 1, w0 = 0.05 on the first mode; a second mode at λ = 0.5 rides along
    lam, V = np.array([2.0, 0.5]), np.eye(2)
    g = float(depth.matched_decay(2.0, 1.0, L))
    common = dict(depth=L, hidden=3, lr=0.15, epochs=1500, log_every=1500, init="aligned")
    ends = {}
    for name, w0, eps, match in [("dae", 0.05, 1.0, 0.0), ("wdae", 0.05, 0.0, 1.0), ("wdae_big", 0.9, 0.0, 1.0)]:
        run = depth.train(_config(w0=w0, eps=eps, match_eps=match, **common), training.Problem(lam, V))
        ends[name] = run.trajectory["u"].values[-1, 0]
        if match:                              # gamma_L matched at mode 0, stored as the run's gamma
            assert run.config.gamma == float(run.trajectory["gamma"]) == pytest.approx(g, rel=1e-14)
    assert ends["dae"] == pytest.approx(2 / 3, abs=1e-6)
    assert 0 <= ends["wdae"] < 0.05**L                           # decayed towards 0
    assert ends["wdae_big"] == pytest.approx(2 / 3, abs=1e-6)    # above the threshold u₋: learns


def interrupted_and_resumed(train, path, *, every: int, killed_at: int, monkeypatch):
    """``train(checkpoint)`` killed right after its checkpoint of epoch ``killed_at``, then run again
    with the same checkpoint file: the resumed result."""
    with killed_after_checkpoint(monkeypatch, killed_at):
        train(training.Checkpoint(path, every))
    return train(training.Checkpoint(path, every))


def test_resumed_deep_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    lam, V = np.array([2.0, 1.0, 0.6, 0.3, 0.1]), _orthogonal(5, rng)
    cfg = _config(depth=3, hidden=4, lr=0.1, eps=0.2, gamma=0.01, epochs=80, log_every=7, init_std=0.3,
                  dtype="float32")
    reference = depth.train(cfg, training.Problem(lam, V))
    resumed = interrupted_and_resumed(lambda ckpt: depth.train(cfg, training.Problem(lam, V), checkpoint=ckpt),
                                      tmp_path / "run.ckpt", every=20, killed_at=40, monkeypatch=monkeypatch)
    xr.testing.assert_identical(resumed.trajectory, reference.trajectory)
    assert np.array_equal(resumed.W2, reference.W2) and resumed.resumed_from == [40]


def test_bad_arguments_are_reported():
    lam, V = np.array([1.0, 0.5]), np.eye(2)
    with pytest.raises(ValueError, match="depth must be >= 2"):
        _config(depth=1, hidden=2, lr=0.1, epochs=1)
    with pytest.raises(ValueError, match="widths needs depth - 1 = 1"):
        _config(depth=2, hidden=2, widths=[2, 3], lr=0.1, epochs=1)
    with pytest.raises(ValueError, match="exclude each other"):
        _config(depth=3, hidden=2, lr=0.1, epochs=1, eps=0.5, match_eps=0.5)
    with pytest.raises(ValueError, match="exclude each other"):
        depth.DepthEngine(_config(depth=3, hidden=2, lr=0.1, epochs=1, gamma=0.1, match_eps=0.5), lam, V)
    with pytest.raises(ValueError, match="match_mode 2"):
        depth.DepthEngine(_config(depth=3, hidden=2, lr=0.1, epochs=1, match_eps=0.5, match_mode=2), lam, V)
    with pytest.raises(ValueError, match="shapes"):
        depth.DepthEngine(_config(depth=2, hidden=2, lr=0.1, epochs=1), lam, V, layers=[np.eye(2), np.eye(3)])
    unstable = _config(depth=3, hidden=2, lr=5.0, epochs=49, init="aligned", w0=0.5)
    with pytest.raises(training.UnstableLearningRateError, match="eta_max"):
        depth.train(unstable, training.Problem(lam, V))                   # stopped before the first step
    with pytest.raises(training.DivergenceError, match="eta_max"):
        # trained on purpose: diverges
        depth.train(dataclasses.replace(unstable, allow_unstable=True), training.Problem(lam, V))


# --------------------------------------------------------------------------- experiment helpers


def _synthetic(epochs=2000, every=20, lr=0.05):
    """A trajectory dataset whose 'trained' u is the exact per-mode map (depth × model × mode)."""
    lam = np.array([2.0, 0.5, 0.05])
    w0 = 0.05
    depths, models = [2, 3], ["dae", "wdae"]
    eps = np.array([[1.0, 0.0], [1.0, 0.0]])
    gamma = np.array([[0.0, float(depth.matched_decay(2.0, 1.0, L))] for L in depths])
    logged = log_epochs(epochs, every)
    u = np.empty((2, 2, logged.size, 3))
    for i, L in enumerate(depths):
        for j in range(2):
            u[i, j] = depth.mode_map(epochs, lam, eps[i, j], gamma[i, j], lr, w0, L)[:, logged].T
    return xr.Dataset(
        {"u": (("depth", "model", "epoch", "mode"), u), "eps": (("depth", "model"), eps),
         "gamma": (("depth", "model"), gamma)},
        coords={"depth": depths, "model": models, "epoch": logged, "mode": [0, 1, 2],
                "lam": ("mode", lam)}, attrs={"lr": lr})


def _as_runs(ds):
    """The (depth, model) dataset laid out like an experiment's combined file: dims (run, seed)."""
    names = [f"{m}_l{L}" for L in ds["depth"].values for m in ds["model"].values]
    flat = {k: ds[k].values.reshape(len(names), *ds[k].shape[2:]) for k in ("u", "eps", "gamma")}
    return xr.Dataset(
        {"u": (("run", "seed", "epoch", "mode"), flat["u"][:, None])},
        coords={"run": names, "seed": [0], "epoch": ds["epoch"].values, "mode": ds["mode"].values,
                "lam": ds["lam"], "depth": ("run", np.repeat(ds["depth"].values, ds.sizes["model"])),
                "eps": ("run", flat["eps"]), "gamma": ("run", flat["gamma"]),
                "lr": ("run", np.full(len(names), ds.attrs["lr"]))})


def test_depth_metrics_against_direct_computations():
    ds = depth_analysis.add_theory(_synthetic())
    assert np.abs(ds["u_theory"] - ds["u"]).max() <= 1e-15            # the map reproduces itself
    m = depth_analysis.metrics(ds)
    lam, lr, t = ds["lam"].values, ds.attrs["lr"], ds["epoch"].values
    for i, L in enumerate([2, 3]):
        for j in range(2):
            one = m.isel(depth=i, model=j)
            eps, gamma = float(ds["eps"][i, j]), float(ds["gamma"][i, j])
            u = ds["u"].values[i, j]
            lim = depth.limit(lam, eps, gamma, L, u[0])
            assert np.allclose(one["u_limit"], lim)
            for k in range(3):
                quad = depth.learning_time(lim[k] / 2, lam[k], eps, gamma, lr, u[0, k], L) if lim[k] else np.inf
                assert float(one["t50_quadrature"][k]) == pytest.approx(quad, rel=1e-12)
                if lim[k] > 0 and u[-1, k] >= lim[k] / 2 and u[0, k] < lim[k] / 2:
                    # brute force: step the map one step at a time and count the steps
                    w, n = (u[0, k] ** (1 / L)), 0
                    while w**L < lim[k] / 2:
                        w, n = w + lr * (w ** (L - 1) * (lam[k] - (lam[k] + eps) * w**L) - gamma * w), n + 1
                    assert float(one["t50_measured"][k]) == n == float(one["t50_map"][k])
                    assert float(one["t50_rel_error"][k]) == pytest.approx(n / quad - 1, rel=1e-12)
    wdae3 = m.sel(depth=3, model="wdae")
    assert list(wdae3["stayed_at_zero"].values) == [1, 1, 1]            # L = 3 WDAE: all stay at 0
    assert m.sel(depth=3, model="dae")["learned"].values[0] == 1
    assert m.sel(depth=2, model="wdae")["learned"].values[0] == 1       # L = 2 WDAE learns λ = 2


def test_per_step_crossings_of_sparse_records_equal_a_brute_force_step_count():
    """An aligned depth-3 run recorded every 10 epochs: its half-times equal the first step at
    which the same run recorded every step reaches half its limit, not a 10-epoch interpolation."""
    lam, V = np.array([2.0, 1.0, 0.45, 0.2]), _orthogonal(4, np.random.default_rng(1))
    runs = {}
    for every in (10, 1):
        cfg = _config(depth=3, hidden=4, lr=0.05, eps=0.3, epochs=1500, log_every=every, init="aligned", w0=0.3)
        ds = depth.train(cfg, training.Problem(lam, V)).trajectory
        runs[every] = ds.expand_dims(run=[f"every{every}"]).assign_coords(
            depth=("run", [3]), eps=("run", [0.3]), gamma=("run", [0.0]), lr=("run", [0.05]))
    m = depth_analysis.metrics(depth_analysis.add_theory(runs[10])).isel(run=0)
    dense = runs[1]["u"].isel(run=0).values                          # (epoch, mode), every step
    half = m["u_limit"].values / 2
    brute = np.array([np.flatnonzero(dense[:, k] >= half[k])[0] for k in range(4)])
    assert np.all(brute % 10 != 0)                                   # the crossings fall between records
    assert np.array_equal(m["t50_measured"].values, brute)
    assert np.array_equal(m["t50_map"].values, brute)
    records = runs[10]["u"].isel(run=0).values                       # what interpolating records would say
    coarse = np.array([np.interp(half[k], records[:, k], runs[10]["epoch"].values) for k in range(4)])
    assert np.abs(coarse - brute).max() > 0.1
    assert np.array_equal(depth_analysis.step_crossing(np.arange(1501), dense.T, half, lam, 0.3, 0.0, 0.05, 3), brute)


def test_a_mode_counts_as_learned_only_if_it_rises_through_half_its_plateau():
    """L = 2 WDAE modes from u(0) = 0.04: one far below its plateau learns, one whose plateau is below
    2 u(0) (starts above half of it) has nothing to learn, one with no plateau decays."""
    lam, eps, gamma, lr, L, steps = np.array([2.0, 0.021, 0.01]), 0.0, 0.02, 0.2, 2, 4000
    u = depth.mode_map(steps, lam, eps, gamma, lr, 0.2, L)
    logged = log_epochs(steps, 10)
    ds = xr.Dataset({"u": (("run", "epoch", "mode"), u[:, logged].T[None])},
                    coords={"run": ["wdae_l2"], "epoch": logged, "mode": [0, 1, 2], "lam": ("mode", lam),
                            "depth": ("run", [L]), "eps": ("run", [eps]), "gamma": ("run", [gamma]),
                            "lr": ("run", [lr])})
    m = depth_analysis.metrics(depth_analysis.add_theory(ds)).isel(run=0)
    u_plus = (lam - gamma) / lam                                     # the L = 2 WDAE's plateau
    assert m["u_plus"].values[:2] == pytest.approx(u_plus[:2], rel=1e-9) and np.isnan(m["u_plus"].values[2])
    assert 0.04 >= u_plus[1] / 2 and u[1, -1] >= u_plus[1] / 2       # mode 1 starts and ends above half
    assert list(m["learned"].values) == [1, 0, 0]


def test_depth_claims_confirm_and_refute():
    ds = _synthetic()
    rows = depth_analysis.claims(depth_analysis.metrics(depth_analysis.add_theory(ds)))
    assert [r["verdict"] for r in rows] == ["confirmed", "confirmed"]
    assert "L=3: of 2 modes, WDAE stayed at 0 in 2, DAE learned in 2" in rows[0]["measured"]
    # a deep WDAE that learned after all (its trajectory replaced by the DAE's) refutes the first row
    bad = ds.copy(deep=True)
    bad["u"][1, 1] = bad["u"][1, 0].values
    bad["u"][1, 1, 0] = ds["u"][1, 1, 0]
    assert depth_analysis.claims(depth_analysis.metrics(depth_analysis.add_theory(bad)))[0]["verdict"] == "refuted"
    # half-times far from the quadrature (time stretched by 1.5) refute the second row
    slow = ds.assign_coords(epoch=(ds["epoch"] * 1.5).astype(int))
    slow = depth_analysis.add_theory(slow.assign_attrs(lr=ds.attrs["lr"]))
    assert depth_analysis.claims(depth_analysis.metrics(slow))[1]["verdict"] != "confirmed"
    # the experiment's (run, seed) layout gives the same rows, the worst run-mode named by run and seed
    as_runs = depth_analysis.claims(depth_analysis.metrics(depth_analysis.add_theory(_as_runs(ds))))
    assert as_runs[0] == rows[0] and {**as_runs[1], "judged_on": ""} == {**rows[1], "judged_on": ""}
    L, model, mode = re.search(r"at depth (\d), model (\w+), mode (\d)$", rows[1]["judged_on"]).groups()
    assert as_runs[1]["judged_on"].endswith(f"at run {model}_l{L}, seed 0, mode {mode}")


def test_depth_claims_state_tolerance_and_the_worst_case_they_judged():
    """tolerance and judged_on checked against the metrics: the deep-WDAE row names the checked mode whose
    |u| came closest to its bound and the DAE mode that rose least; the timing row the worst run-mode."""
    m = depth_analysis.metrics(depth_analysis.add_theory(_synthetic()))
    wdae, dae = m.sel(depth=3, model="wdae"), m.sel(depth=3, model="dae")
    checked = ((wdae["u_limit"] == 0) & (wdae["u0"] > 0)
               & (dae["t50_quadrature"] <= 0.8 * m.attrs["last_epoch"])).values
    assert checked.sum() == 2
    ratio = wdae["u_max_abs"].values / (1.01 * np.maximum(np.abs(wdae["u0"].values), 0.02))
    reach = dae["u_final"].values / dae["u_plus"].values
    assert np.array_equal(m["u_max_abs"].values, np.abs(_synthetic()["u"].values).max(axis=2))
    for bump in (None, 0, 1):           # as trained, then each checked mode made the WDAE's worst
        if bump is not None:
            k = np.flatnonzero(checked)[bump]
            m["u_max_abs"].loc[dict(depth=3, model="wdae", mode=k)] = 1.0 * 1.01 * 0.02
            ratio[k] = 1.0
        w = np.flatnonzero(checked)[np.argmax(np.where(checked, ratio, -np.inf))]
        d = np.flatnonzero(checked)[np.argmin(np.where(checked, reach, np.inf))]
        row = depth_analysis.claims(m)[0]
        assert row["tolerance"] == ("WDAE max |u| <= 1.01 x max(|u(0)|, 0.02); DAE from u(0) < u+/2 to "
                                    "u_final >= u+/2")
        assert row["judged_on"] == (f"every one of 2 checked modes (L >= 3); worst WDAE: L=3 mode {w}, max |u| "
                                    f"{ratio[w]:.3g} x its bound; worst DAE: L=3 mode {d}, u_final/u+ {reach[d]:.3g}")
    assert row["verdict"] == "confirmed"                               # at the bound is still within it
    rel = np.abs(m["t50_rel_error"].where(m["t50_quadrature"] >= 50).values)
    i, j, k = np.unravel_index(np.nanargmax(rel), rel.shape)
    row = depth_analysis.claims(m)[1]
    assert row["tolerance"] == "|t50_measured / t50_quadrature - 1| <= 0.05 (qualified <= 0.1)"
    assert row["judged_on"] == (f"worst of {int(np.isfinite(rel).sum())} run-modes: {np.nanmax(rel):.3g} at "
                                f"depth {m['depth'].values[i]}, model {m['model'].values[j]}, mode {k}")


def test_plot_depth_draws_one_column_per_depth(tmp_path):
    from daedyn.figures import style
    from daedyn.figures.depth import plot_depth

    ds = depth_analysis.add_theory(_as_runs(_synthetic()))
    fig = plot_depth(ds, modes=[0, 1], title="synthetic")
    assert len(fig.axes) == 4 and all(ax.has_data() for ax in fig.axes)
    assert [ax.get_title().split(" (")[0] for ax in fig.axes[:2]] == ["L = 2 weight matrices", "L = 3 weight matrices"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["DAE ε = 1", "WDAE (γ matched)"]
    assert {"threshold u₋ (marker: its mode)", "start u(0)", "mode 0: trained", "mode 1: trained"} <= set(labels)
    theory_line = fig.axes[1].get_lines()[0]
    assert np.allclose(theory_line.get_ydata(), ds["u_theory"].sel(run="dae_l3", seed=0, mode=0))
    # the L = 3 WDAE's log panel: its thresholds u₋ and its start u(0), where the reader sees why it stays at 0
    bottom = fig.axes[3]
    flat = {round(float(ln.get_ydata()[0]), 12) for ln in bottom.get_lines() if np.ptp(ln.get_ydata()) == 0}
    thr = ds["u_threshold"].sel(run="wdae_l3", seed=0, mode=[0, 1]).values
    assert {round(float(t), 12) for t in thr if np.isfinite(t)} <= flat
    assert round(float(ds["u"].sel(run="wdae_l3", seed=0).isel(epoch=0, mode=0)), 12) in flat
    written = style.save(fig, tmp_path / "depth.png")
    assert written[0].stat().st_size > 10_000
