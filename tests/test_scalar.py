"""Tests for daedyn.scalar: the scalar-network simulator and the Fig. 1–4 datasets."""

import json

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from daedyn import scalar, theory


def _e6_torch(w1, w2, lam, eps, gamma):
    u = w1 * w2
    return 0.5 * lam * (1 - u) ** 2 + 0.5 * eps * u**2 + 0.5 * gamma * (w1**2 + w2**2)


@pytest.mark.parametrize("lam,eps,gamma,lr", [(1.0, 0.0, 0.0, 0.01), (2.5, 0.7, 0.0, 0.05),
                                              (1.0, 0.0, 0.3, 0.02), (0.5, 1.2, 0.1, 0.1)])
def test_simulate_matches_theory_mode_map(lam, eps, gamma, lr):
    w1, w2 = scalar.init_trials(6)
    ds = scalar.simulate(lam, eps, gamma, lr, 300, w1, w2)
    m1, m2 = theory.mode_map(300, lam, eps, gamma, lr, w1, w2)
    assert ds["w1"].dims == ("trial", "epoch") and ds["w1"].shape == (6, 301)
    np.testing.assert_allclose(ds["w1"].values, m1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["w2"].values, m2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["u"].values, m1 * m2, rtol=0, atol=1e-12)


def test_simulate_matches_bruteforce_autograd_loop():
    """Per-trial Python loop with torch autograd gradients of (E6), float64."""
    lam, eps, gamma, lr, epochs = 1.3, 0.4, 0.2, 0.03, 40
    w1s, w2s = np.array([0.3, -1.7, 1.1]), np.array([1.9, 0.5, -0.05])
    ds = scalar.simulate(lam, eps, gamma, lr, epochs, w1s, w2s)
    for k in range(w1s.size):
        w1 = torch.tensor(w1s[k], dtype=torch.float64, requires_grad=True)
        w2 = torch.tensor(w2s[k], dtype=torch.float64, requires_grad=True)
        losses = []
        for step in range(epochs + 1):
            loss = _e6_torch(w1, w2, lam, eps, gamma)
            losses.append(loss.item())
            assert abs(ds["w1"].values[k, step] - w1.item()) < 1e-13
            assert abs(ds["w2"].values[k, step] - w2.item()) < 1e-13
            g1, g2 = torch.autograd.grad(loss, (w1, w2))
            with torch.no_grad():
                w1 = (w1 - lr * g1).requires_grad_(True)
                w2 = (w2 - lr * g2).requires_grad_(True)
        np.testing.assert_allclose(ds["loss"].values[k], losses, rtol=1e-13, atol=1e-14)


def test_grad_e6_matches_finite_differences():
    rng = np.random.default_rng(0)
    w1, w2 = rng.uniform(-2, 2, 20), rng.uniform(-2, 2, 20)
    h = 1e-6
    g1, g2 = scalar.grad_e6(w1, w2, 1.7, 0.3, 0.2)
    f = lambda a, b: scalar.loss_e6(a, b, 1.7, 0.3, 0.2)  # noqa: E731
    np.testing.assert_allclose(g1, (f(w1 + h, w2) - f(w1 - h, w2)) / (2 * h), atol=1e-7)
    np.testing.assert_allclose(g2, (f(w1, w2 + h) - f(w1, w2 - h)) / (2 * h), atol=1e-7)


def test_init_trials_reproduces_notebook_seeding():
    w1, w2 = scalar.init_trials(4)
    for t in range(4):
        np.random.seed(2 * t)
        assert w1[t] == np.random.uniform(-2, 2)
        assert w2[t] == np.random.uniform(-2, 2)
    s1, s2 = scalar.init_trials(3, small_init=0.01)
    assert s1.size == 4 and s1[0] == s2[0] == 0.01
    np.random.seed(2)  # Fig. 4: random trials are t = 1..trials with seed 2t
    assert s1[1] == np.random.uniform(-2, 2) and s2[1] == np.random.uniform(-2, 2)


def test_fig1_gd_vs_hyperbolic_theory_claim2_numbers():
    ds = scalar.fig1_data(**scalar.FIGURE_DEFAULTS["fig1"])
    d = np.abs(ds["u_theory"] - ds["u_gd"])
    mx = d.max(("trial", "epoch")).values
    # claim 2 (docs/science.md): 0.02, 0.04, 0.16 (rounded) for ε = 0, 1, 5
    np.testing.assert_allclose(mx, [0.02, 0.04, 0.16], rtol=0.05)
    late = d.where(ds["epoch"] > 50).max(("trial", "epoch")).values
    assert late[2] <= 0.0015 and np.all(late < 0.01)
    # the theory itself matches an independent ODE solve of (E5)
    t = ds["epoch"].values.astype(float)
    for i, e in enumerate(ds["eps"].values):
        for k in (0, 4):
            sol = solve_ivp(lambda _t, w: [0.01 * w[1] * (1 - (1 + e) * w[0] * w[1]),
                                           0.01 * w[0] * (1 - (1 + e) * w[0] * w[1])],
                            (0, t[-1]), [ds["w1_init"][k], ds["w2_init"][k]], t_eval=t,
                            method="DOP853", rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(ds["u_theory"].values[i, k], sol.y[0] * sol.y[1], atol=1e-9)
    np.testing.assert_allclose(ds["u_star"].values, [1.0, 0.5, 1 / 6], rtol=1e-14)


def _check_attrs(ds):
    for v in list(ds.data_vars) + list(ds.coords):
        for val in ds[v].attrs.values():
            assert isinstance(val, (str, int, float)) and not isinstance(val, bool)
    for v in ds.data_vars:
        assert "long_name" in ds[v].attrs and "units" in ds[v].attrs, v
    for val in ds.attrs.values():
        assert isinstance(val, (str, int, float)) and not isinstance(val, bool)
    json.loads(ds.attrs["params"])


def test_fig1_data_structure_small():
    ds = scalar.fig1_data(eps=[0.0, 2.0], epochs=15, trials=3, surface_points=11,
                          manifold_points=7)
    assert dict(ds.sizes) == {"eps": 2, "trial": 3, "epoch": 16, "s_w1": 11, "s_w2": 11,
                              "branch": 2, "manifold_point": 7}
    assert ds["u_gd"].dims == ("eps", "trial", "epoch")
    assert ds["surface_loss"].dims == ("eps", "s_w1", "s_w2")
    np.testing.assert_array_equal(ds["eps"].values, [0.0, 2.0])
    # the manifold lies on w1 w2 = u* and is a set of stationary points of (E6)
    u = ds["min_w1"] * ds["min_w2"]
    np.testing.assert_allclose((u - ds["u_star"]).values, 0, atol=1e-14)
    g1, g2 = scalar.grad_e6(ds["min_w1"].values, ds["min_w2"].values, 1.0,
                            ds["eps"].values[:, None, None], 0.0)
    assert np.nanmax(np.abs(g1)) < 1e-12 and np.nanmax(np.abs(g2)) < 1e-12
    # and no grid point is below the minimum loss
    assert float((ds["surface_loss"] - ds["min_loss"]).min()) >= -1e-14
    _check_attrs(ds)


def test_fig2_data_structure_and_closed_form():
    ds = scalar.fig2_data(lam=[2.0, 0.5], eps=[0.0, 0.6, 1.2], epochs=3000, record_every=50)
    assert dict(ds.sizes) == {"lam": 2, "eps": 3, "epoch": 61}
    assert ds["u_dae"].dims == ("lam", "eps", "epoch")
    np.testing.assert_array_equal(ds["epoch"].values, np.arange(0, 3001, 50))
    L, E = ds["lam"].values[:, None], ds["eps"].values[None, :]
    np.testing.assert_allclose(ds["gamma"].values, L * E / (L + E), rtol=1e-14)
    np.testing.assert_allclose(ds["u_star_dae"].values, L / (L + E), rtol=1e-14)
    np.testing.assert_allclose(ds["u_star_wdae"].values, 1 - ds["gamma"].values / L, rtol=1e-14)
    # the WDAE curve solves τu̇ = 2u(λ−γ−λu) (E7a), checked with an ODE solver
    a, b = 0.5 - ds["gamma"].values[1, 2], 0.5
    t = ds["epoch"].values.astype(float)
    sol = solve_ivp(lambda _t, u: 1e-3 * 2 * u * (a - b * u), (0, t[-1]), [1e-6], t_eval=t,
                    method="DOP853", rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(ds["u_wdae"].values[1, 2], sol.y[0], rtol=1e-8)
    _check_attrs(ds)


def test_fig3_data_optimal_rates_coincide_notebook_rates_do_not():
    ds = scalar.fig3_data(epochs=20000, record_every=100, eps_grid_step=0.5)
    assert ds["u_wdae"].dims == ("lr_rule", "eps", "epoch")
    assert list(ds["lr_rule"].values) == ["notebook", "optimal"]
    assert ds.sizes["eps_grid"] == 20
    opt = ds["u_diff"].sel(lr_rule="optimal")
    assert float(np.abs(opt).max()) <= 1e-12
    nb = ds["u_diff"].sel(lr_rule="notebook")
    assert float(nb.min()) >= -1e-12
    assert np.all(nb.max("epoch").values[1:] > 0.1)  # every ε > 0 gives a clear DAE lead
    E = ds["eps"].values
    G = E / (1 + E)
    np.testing.assert_allclose(ds["lr_wdae"].sel(lr_rule="notebook"), 0.005 / (2 + 2 * G),
                               rtol=1e-14)
    np.testing.assert_allclose(ds["lr_wdae"].sel(lr_rule="optimal"), 0.005 / (2 + G), rtol=1e-14)
    np.testing.assert_allclose(ds["lr_dae"], 0.005 / (2 + 3 * E), rtol=1e-14)
    g = ds["eps_grid"].values
    np.testing.assert_allclose(ds["eta_ratio"], 1 / (1 + g), rtol=1e-13)
    _check_attrs(ds)


def test_fig4_data_norms_and_structure():
    ds = scalar.fig4_data(**scalar.FIGURE_DEFAULTS["fig4"])
    assert dict(ds.sizes)["trial"] == 11 and list(ds["model"].values) == ["DAE", "WDAE"]
    assert ds["norm"].dims == ("model", "trial", "epoch")
    assert ds["small_init_run"].values.tolist() == [1] + [0] * 10
    np.testing.assert_allclose(ds["gamma_model"].values, [0.0, 0.1 / 1.1], rtol=1e-14)
    np.testing.assert_allclose(ds["norm"], np.hypot(ds["w1"], ds["w2"]), rtol=1e-15)
    np.testing.assert_allclose(ds["norm_min"].values, np.sqrt(2 / 1.1), rtol=1e-14)
    # WDAE: every run ends at the minimum-norm balanced solution; DAE keeps its imbalance (E12)
    np.testing.assert_allclose(ds["norm_long"].sel(model="WDAE"), np.sqrt(2 / 1.1), atol=1e-9)
    dae_end = ds["norm"].sel(model="DAE").isel(epoch=-1).values
    np.testing.assert_allclose(dae_end, ds["norm_pred"].sel(model="DAE").values, atol=0.01)
    assert 1.35 < dae_end[1:].min() < 1.37 and 1.98 < dae_end[1:].max() < 2.0
    # gradient-flow imbalance: conserved (DAE) or e^{−2γt/τ} decay (WDAE)
    c0 = (ds["w1_init"] ** 2 - ds["w2_init"] ** 2).values
    t = ds["epoch"].values
    np.testing.assert_allclose(ds["imbalance_flow"].sel(model="DAE").values,
                               np.broadcast_to(c0[:, None], (11, t.size)), atol=1e-9)
    np.testing.assert_allclose(ds["imbalance_flow"].sel(model="WDAE").values,
                               c0[:, None] * np.exp(-2 * (0.1 / 1.1) * t * 0.01), atol=1e-9)
    # WDAE minima are the two isolated points ±√u*
    m = ds["min_w1"].sel(model="WDAE").values
    assert np.isfinite(m).sum() == 2
    np.testing.assert_allclose(np.sort(m[np.isfinite(m)]), [-np.sqrt(1 / 1.1), np.sqrt(1 / 1.1)])
    _check_attrs(ds)


def test_figure_defaults_match_paper_parameters():
    d = scalar.FIGURE_DEFAULTS
    assert d["fig1"]["eps"] == [0.0, 1.0, 5.0] and d["fig1"]["lr"] == 0.01
    assert d["fig1"]["epochs"] == 200 and d["fig1"]["trials"] == 10
    assert d["fig2"]["lam"] == [2.5, 1.0, 0.5] and d["fig2"]["lr"] == 0.001
    assert np.allclose(d["fig2"]["eps"], np.arange(10) * 0.2) and d["fig2"]["epochs"] == 20000
    assert d["fig3"]["lr_scale"] == 0.005 and d["fig3"]["eps_grid_max"] == 10.0
    assert d["fig4"]["eps"] == 0.1 and d["fig4"]["epochs"] == 1000
    assert d["fig4"]["small_init"] == 0.01
    for k in d:  # every default is a keyword argument of its builder
        assert set(d[k]) <= set(getattr(scalar, f"{k}_data").__code__.co_varnames)
