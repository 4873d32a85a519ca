"""Tests of daedyn.nonlinear (Fig. 6 trainer), its linear theory, jobs and figure."""

import csv
import math

import numpy as np
import pytest
import torch
import xarray as xr

from daedyn import linear, nonlinear as nl, spectrum, training
from daedyn.training import DivergenceError, log_epochs, noise_seed


def _train(X, *, lam=None, V=None, W1=None, W2=None, **settings):
    """:func:`nl.train` on X (with its spectrum unless given) and the configuration ``settings``."""
    if lam is None:
        lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    config = nl.NonlinearConfig.make(n_samples=X.shape[0], **settings)
    return nl.train(config, training.Problem(lam, V, X), W1=W1, W2=W2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    """Non-negative data (N=120, d=7) with a dominant mean direction, and its uncentred spectrum."""
    X = np.random.default_rng(0).random((120, 7))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    return X, lam, V


def relu(z):
    return np.maximum(z, 0.0)


def np_mapping(xhat, X, lam, V):
    """m_i = v_iᵀ Ĉ v_i / λ_i with the full d×d cross moment Ĉ = (1/N) Σ x̂_n x_nᵀ."""
    C = xhat.T @ X / len(X)
    return np.diag(V.T @ C @ V) / lam


def replay_noise(noise_std, seed, X, draws):
    """The first `draws` corrupted full batches the trainer sees (documented noise stream)."""
    src = nl.NoiseSource(noise_std, noise_seed(seed), len(X), X.shape[1], dtype=torch.float64)
    Xt = torch.as_tensor(X)
    return [src.corrupt(Xt).numpy().copy() for _ in range(draws)]


# ---------------------------------------------------------------------------------------
# (a) identity / tanh networks against the linear engines, with the loss-scaling map


@pytest.mark.parametrize("wd", [0.0, 0.02])
def test_identity_network_is_the_linear_datapass_engine(data, wd):
    """Noise 0: SGD on the mean MSE at (lr, wd) = GD on the theory loss at (2lr/d, wd·d/2)."""
    X, lam, V = data
    d, H, lr, epochs = 7, 4, 1.5, 120
    run = _train(X, hidden=H, activation="identity", lr=lr, epochs=epochs, weight_decay=wd, init_std=0.05,
                   seed=2, dtype="float64", device="cpu", lam=lam, V=V, k_modes=d, log_every=10)
    eff = nl.theory_params(lr, 0.0, wd, d)
    assert eff["lr"] == pytest.approx(2 * lr / d) and eff["gamma"] == pytest.approx(wd * d / 2)
    ref = linear.train_datapass(X, hidden=H, lr=eff["lr"], epochs=epochs, gamma=eff["gamma"], init_std=0.05,
                                seed=2, dtype="float64", device="cpu", lam=lam, V=V, log_every=10)
    m, u = run.trajectory["mapping"].values, ref.trajectory["u"].values
    assert np.abs(m[-1, 0] - m[0, 0]) > 0.5                      # the top mode was learned
    np.testing.assert_allclose(m, u, rtol=0, atol=1e-10)
    np.testing.assert_allclose(run.trajectory["mapping_noisy"].values, u, rtol=0, atol=1e-10)
    np.testing.assert_allclose(run.W1, ref.W1, rtol=0, atol=1e-10)
    # for a linear net the mapping is v_iᵀ W v_i of the final weights
    np.testing.assert_allclose(m[-1], np.diag(V.T @ run.W2 @ run.W1 @ V), rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch_size", [None, 32])
def test_identity_network_with_noise_is_the_linear_sampled_engine(data, batch_size):
    """Sampled noise std σ ↔ the linear DAE with variance ε = σ² (same documented noise stream)."""
    X, lam, V = data
    d, H, lr, sd, wd = 7, 4, 1.2, 0.4, 0.01
    kw = dict(hidden=H, epochs=30, init_std=0.1, seed=5, dtype="float64", device="cpu", lam=lam, V=V,
              log_every=5, batch_size=batch_size)
    run = _train(X, activation="identity", lr=lr, noise_std=sd, weight_decay=wd, k_modes=d, **kw)
    eff = nl.theory_params(lr, sd, wd, d)
    assert eff["eps"] == pytest.approx(sd**2)
    ref = linear.train_sampled(X, lr=eff["lr"], eps=eff["eps"], gamma=eff["gamma"], **kw)
    np.testing.assert_allclose(run.trajectory["mapping"].values, ref.trajectory["u"].values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(run.W2, ref.W2, rtol=0, atol=1e-10)
    # without noise the trajectory would be different: the noise took effect
    clean = _train(X, activation="identity", lr=lr, weight_decay=wd, k_modes=d, **kw)
    assert np.abs(clean.W2 - run.W2).max() > 1e-3


def test_tanh_with_small_preactivations_tracks_the_linear_theory_engine():
    """tanh(z) ≈ z for |z| ≪ 1: data scaled so pre-activations stay ≲ 0.05 while modes are learned."""
    X = 0.02 * np.random.default_rng(1).random((100, 6))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    lr = 0.3 / lam[0] * 6 / 2                                   # η_eff λ₁ = 0.3
    run = _train(X, hidden=5, activation="tanh", lr=lr, epochs=80, init_std=0.05, seed=0, dtype="float64",
                   device="cpu", lam=lam, V=V, k_modes=3, log_every=4)
    eff = nl.theory_params(lr, 0.0, 0.0, 6)
    ref = linear.train_datapass(X, hidden=5, lr=eff["lr"], epochs=80, init_std=0.05, seed=0, dtype="float64",
                                device="cpu", lam=lam, V=V, log_every=4)
    m, u = run.trajectory["mapping"].values, ref.trajectory["u"].values[:, :3]
    assert m[-1, 0] > 0.9 and np.abs(np.tanh(X @ run.W1.T)).max() < 0.1
    assert np.abs(m - u).max() < 2e-3
    relu_run = _train(X, hidden=5, activation="relu", lr=lr, epochs=80, init_std=0.05, seed=0,
                        dtype="float64", device="cpu", lam=lam, V=V, k_modes=3, log_every=4)
    assert np.abs(relu_run.trajectory["mapping"].values - u).max() > 2e-2   # the comparison has power


# ---------------------------------------------------------------------------------------
# (b) the measurement against numpy


def test_mapping_and_losses_match_numpy(data):
    X, lam, V = data
    sd, seed, epochs = 0.3, 4, 7
    run = _train(X, hidden=5, activation="relu", lr=0.8, epochs=epochs, noise_std=sd, init_std=0.3, seed=seed,
                   dtype="float64", device="cpu", lam=lam, V=V, k_modes=3, log_every=3)
    tr = run.trajectory
    assert list(tr["epoch"].values) == [0, 3, 6, 7]
    noisy = replay_noise(sd, seed, X, epochs + 1)        # one pass per step, plus the final measured pass
    for row, (W1, W2, xt) in {0: (run.W1_init, run.W2_init, noisy[0]), -1: (run.W1, run.W2, noisy[-1])}.items():
        clean_out = relu(X @ W1.T) @ W2.T
        noisy_out = relu(xt @ W1.T) @ W2.T
        t = tr.isel(epoch=row)
        np.testing.assert_allclose(t["mapping"].values, np_mapping(clean_out, X, lam, V)[:3], rtol=1e-10)
        np.testing.assert_allclose(t["mapping_noisy"].values, np_mapping(noisy_out, X, lam, V)[:3], rtol=1e-10)
        assert float(t["loss"]) == pytest.approx(np.mean((noisy_out - X) ** 2), rel=1e-12)
        assert float(t["loss_clean"]) == pytest.approx(np.mean((clean_out - X) ** 2), rel=1e-12)
        assert float(t["norm_w1"]) == pytest.approx(np.linalg.norm(W1), rel=1e-12)
        assert float(t["norm_w2"]) == pytest.approx(np.linalg.norm(W2), rel=1e-12)
    assert np.abs(tr["mapping"] - tr["mapping_noisy"]).max() > 1e-4


def test_mapping_float32_close_to_float64(data):
    """Same initial weights in both dtypes (the noise streams differ by dtype, so noise 0 here)."""
    X, lam, V = data
    kw = dict(hidden=5, lr=0.8, epochs=20, weight_decay=0.01, init_std=0.3, seed=1, device="cpu", lam=lam, V=V)
    a, b = _train(X, dtype="float32", **kw), _train(X, dtype="float64", **kw)
    np.testing.assert_allclose(a.trajectory["mapping"], b.trajectory["mapping"], rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------
# (c) weight decay and noise take effect


def np_objective(W1, W2, xt, X, wd):
    return np.mean((relu(xt @ W1.T) @ W2.T - X) ** 2) + 0.5 * wd * (np.sum(W1**2) + np.sum(W2**2))


def fd_grad(f, W, h=1e-6):
    g = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += h
        Wm[idx] -= h
        g[idx] = (f(Wp) - f(Wm)) / (2 * h)
    return g


def test_one_step_is_sgd_on_the_objective_with_weight_decay():
    """The first step equals W − lr·∇[MSE(x̃) + wd/2‖W‖²] with ∇ from finite differences in numpy."""
    X = np.random.default_rng(3).random((15, 4))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    lr, sd, wd, seed = 0.7, 0.5, 0.05, 8
    run = _train(X, hidden=3, lr=lr, epochs=1, noise_std=sd, weight_decay=wd, init_std=0.5, seed=seed,
                   dtype="float64", device="cpu", lam=lam, V=V, k_modes=2)
    W1, W2 = run.W1_init, run.W2_init
    xt = replay_noise(sd, seed, X, 1)[0]
    g1 = fd_grad(lambda w: np_objective(w, W2, xt, X, wd), W1)
    g2 = fd_grad(lambda w: np_objective(W1, w, xt, X, wd), W2)
    np.testing.assert_allclose(run.W1, W1 - lr * g1, rtol=0, atol=1e-8)
    np.testing.assert_allclose(run.W2, W2 - lr * g2, rtol=0, atol=1e-8)
    # autograd of nl.objective (what the optimiser's step amounts to) agrees with the FD gradient
    t1, t2 = (torch.tensor(w, requires_grad=True) for w in (W1, W2))
    nl.objective(t1, t2, torch.as_tensor(xt), torch.as_tensor(X), weight_decay=wd).backward()
    np.testing.assert_allclose(t1.grad.numpy(), g1, rtol=0, atol=1e-8)
    np.testing.assert_allclose(t2.grad.numpy(), g2, rtol=0, atol=1e-8)
    assert np.abs(wd * W1).max() > 1e-3                        # the decay term is not negligible here


def test_noise_statistics_fresh_and_reproducible():
    sd, n, d = 1.5, 4000, 5
    x = torch.full((n, d), 0.25, dtype=torch.float64)
    src = nl.NoiseSource(sd, 11, n, d, dtype=torch.float64)
    a = (src.corrupt(x) - x).numpy().copy()
    b = (src.corrupt(x) - x).numpy().copy()
    for z in (a, b):
        assert abs(z.mean()) < 4 * sd / math.sqrt(z.size)
        assert z.var() == pytest.approx(sd**2, rel=0.05)        # noise_std is a std: variance σ² = 2.25
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05    # fresh each step
    again = nl.NoiseSource(sd, 11, n, d, dtype=torch.float64)
    np.testing.assert_array_equal((again.corrupt(x) - x).numpy(), a)
    other = nl.NoiseSource(sd, 12, n, d, dtype=torch.float64)
    assert np.abs((other.corrupt(x) - x).numpy() - a).max() > 1.0
    assert nl.NoiseSource(0.0, 11, n, d).corrupt(x) is x


def test_seeds_reproduce_and_recording_does_not_change_training(data):
    X, lam, V = data
    kw = dict(hidden=4, lr=0.8, epochs=6, noise_std=0.3, init_std=0.2, seed=3, dtype="float64", device="cpu",
              lam=lam, V=V, batch_size=40)
    a, b = _train(X, log_every=1, **kw), _train(X, log_every=6, **kw)
    np.testing.assert_array_equal(a.W1, b.W1)
    np.testing.assert_array_equal(a.trajectory["mapping"].sel(epoch=[0, 6]), b.trajectory["mapping"])
    c = _train(X, log_every=6, **{**kw, "seed": 4})
    assert np.abs(c.W1 - a.W1).max() > 1e-3


def test_divergence_is_reported(data):
    X, lam, V = data
    with pytest.raises(DivergenceError, match="eta_eff"):
        _train(X, hidden=4, activation="identity", lr=200.0, epochs=60, init_std=0.1, device="cpu",
                 lam=lam, V=V, log_every=5)


# ---------------------------------------------------------------------------------------
# (d) dataset structure


def test_trajectory_structure(data):
    X, lam, V = data
    run = _train(X, hidden=4, lr=0.5, epochs=23, noise_std=2.0, weight_decay=0.0045, init_std=1e-3,
                   device="cpu", lam=lam, V=V, k_modes=4, log_every=10)
    tr = run.trajectory
    assert dict(tr.sizes) == {"epoch": 4, "mode": 4}
    np.testing.assert_array_equal(tr["epoch"].values, log_epochs(23, 10))
    np.testing.assert_allclose(tr["lam"].values, lam[:4])
    assert tr["mapping"].dims == tr["mapping_noisy"].dims == ("epoch", "mode")
    for name in ("loss", "loss_clean", "norm_w1", "norm_w2"):
        assert tr[name].dims == ("epoch",)
    for name in list(tr.data_vars) + ["epoch", "mode", "lam"]:
        assert tr[name].attrs["long_name"] and "units" in tr[name].attrs
    for key, value in tr.attrs.items():
        assert type(value) in (str, int, float), key
    c = {name: tr[name].item() for name in ("noise_std", "weight_decay", "activation", "lr", "hidden_units")}
    assert c == {"noise_std": 2.0, "weight_decay": 0.0045, "activation": "relu", "lr": 0.5, "hidden_units": 4}
    assert "standard deviation" in tr.attrs["noise_convention"]
    assert run.W1.shape == (4, 7) and run.W2.shape == (7, 4) and run.W1.dtype == np.float32
    w = run.weights()
    assert "relu" in w["w1"].attrs["long_name"]
    np.testing.assert_array_equal(run.W1_init, training.init_weights(7, 4, init_std=1e-3, seed=0)[0].astype(np.float32))


def test_bad_arguments(data):
    X, lam, V = data
    with pytest.raises(ValueError, match="activation"):
        _train(X, hidden=2, activation="gelu", lr=0.1, epochs=1, device="cpu")
    with pytest.raises(ValueError, match="noise_std"):
        _train(X, hidden=2, lr=0.1, epochs=1, noise_std=-1.0, device="cpu")


# ---------------------------------------------------------------------------------------
# linear theory and half-times


def test_linear_theory_units_and_fixed_points():
    lam, d, wd, sd = np.array([38.0, 4.4, 3.7, 1.5]), 784, 0.0045, 2.0
    kw = dict(lr=0.9, d=d, init_std=1e-3, hidden=256)
    gamma = wd * d / 2                                           # 1.764: mode 3 (λ = 1.5) is never learned
    ae, wdae, dae = (nl.linear_theory(lam, 20000, noise_std=s, weight_decay=w, **kw)
                     for s, w in ((0, 0), (0, wd), (sd, 0)))
    np.testing.assert_allclose(ae[:, -1], 1.0, atol=1e-6)
    np.testing.assert_allclose(wdae[:, -1], np.maximum(1 - gamma / lam, 0), atol=1e-6)
    np.testing.assert_allclose(dae[:, -1], lam / (lam + sd**2), atol=1e-6)
    assert np.all(ae[:, 0] == 0)
    # growth from x0 = H s²/2 at rate (1 + η_eff λ)² per step while u ≪ 1
    eta = 2 * 0.9 / d
    np.testing.assert_allclose(ae[1:, 50] + 256e-6 / 2 * (1 - eta * lam[1:]) ** 100,
                               256e-6 / 2 * (1 + eta * lam[1:]) ** 100, rtol=1e-3)
    assert (ae.attrs["eps_theory"], dae.attrs["eps_theory"], wdae.attrs["gamma_theory"]) == (0.0, 4.0, gamma)


def test_linear_theory_predicts_identity_network_half_times():
    """Random-init linear nets: the expected-init per-mode theory gives their half-times (±10 %)."""
    rng = np.random.default_rng(0)
    d = 8
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    X = rng.standard_normal((400, d)) * np.sqrt([4.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.1, 0.1]) @ Q.T
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    lr, H, s = 0.08 * d / 2 / lam[0], 64, 1e-3
    ts = []
    for seed in range(3):
        tr = _train(X, hidden=H, activation="identity", lr=lr, epochs=600, init_std=s, seed=seed,
                      dtype="float64", device="cpu", lam=lam, V=V, k_modes=3, log_every=2).trajectory
        ts.append(nl.half_times(tr["mapping"]).values)
    th = nl.half_times(nl.linear_theory(lam[:3], tr["epoch"].values, lr=lr, noise_std=0, weight_decay=0, d=d,
                                        init_std=s, hidden=H)).values
    assert np.all(np.isfinite(th))
    np.testing.assert_allclose(np.mean(ts, axis=0), th, rtol=0.1)


def test_half_times_of_known_curves():
    epochs = np.arange(0, 101, 5)
    curves = np.stack([1 / (1 + np.exp(-(epochs - 40) / 5.0)),                 # half of ≈1 at epoch 40
                       0.6 / (1 + np.exp(-(epochs - 72) / 3.0)),                # half of ≈0.6 at 72 → 75
                       np.full(epochs.size, 1e-3)])                              # never learned
    da = xr.DataArray(np.stack([curves, curves[::-1]]), dims=("run", "mode", "epoch"),
                      coords={"epoch": epochs, "run": ["a", "b"], "lam": ("mode", [3.0, 2.0, 1.0])})
    t = nl.half_times(da)
    assert t.dims == ("run", "mode") and "lam" in t.coords
    expected = [40.0, 75.0, np.nan]
    np.testing.assert_array_equal(t.sel(run="a").values, expected)
    np.testing.assert_array_equal(t.sel(run="b").values, expected[::-1])


# ---------------------------------------------------------------------------------------
# jobs and figure


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, data):
    """Tiny Fig. 6 experiment run through train_job → aggregate_job → figure_job."""
    from daedyn import store
    from daedyn.jobs import nonlinear as jobs

    root = tmp_path_factory.mktemp("nl")
    X = np.random.default_rng(2).random((150, 10))
    ds = xr.Dataset({"x": (("sample", "feature"), X)},
                    coords={"sample": np.arange(150), "feature": np.arange(10)})
    store.write_dataset(ds, root / "data.nc", title="t", summary="t", provenance_attrs={})
    spec = spectrum.spectrum(ds["x"], 150)
    store.write_dataset(spec, root / "spec.nc", title="t", summary="t", provenance_attrs={})
    runs = {"ae": (0.0, 0.0), "wdae": (0.0, 0.02), "dae": (0.5, 0.0)}
    base = dict(experiment="tiny", dataset="tiny", n_samples=150, hidden=6, activation="relu", lr=1.0,
                epochs=300, log_every=10, init_std=1e-3, batch_size=None, shuffle=True, dtype="float32",
                device="cpu", k_modes=4)
    paths = []
    for name, (sd, wd) in runs.items():
        out = root / "runs" / name / "seed0.nc"
        jobs.train_job({**base, "seed": 0, "run": name, "noise_std": sd, "weight_decay": wd},
                       str(root / "data.nc"), str(root / "spec.nc"), str(out))
        paths.append(str(out))
    agg = {**base, "runs": {k: {"noise_std": v[0], "weight_decay": v[1]} for k, v in runs.items()}, "seeds": [0],
           "facet_by": None, "max_panels": 6}
    jobs.aggregate_job(agg, paths, str(root / "spec.nc"), str(root / "combined.nc"), str(root / "half.csv"))
    jobs.figure_job(agg, str(root / "combined.nc"), [str(root / "fig6.png")])
    return root, paths, X


def test_jobs_write_runs_combined_and_halftimes(experiment):
    from daedyn import store

    root, paths, X = experiment
    one = store.open_dataset(paths[2])
    assert one["mapping"].dims == ("run", "seed", "epoch", "mode")
    assert one["noise_std"].dims == ("run",) and one["noise_std"].item() == 0.5
    assert "standard deviation" in one["noise_std"].attrs["long_name"]
    assert one["w1"].shape == (1, 1, 6, 10)
    comb = store.open_dataset(root / "combined.nc")
    assert list(comb["run"].values) == ["ae", "wdae", "dae"]
    assert comb["mapping_theory"].sizes["run"] == 3 and "w1" not in comb
    # the theory in the combined file is linear_theory of the run's hyperparameters
    ref = nl.linear_theory(comb["lam"].values, comb["epoch"].values, lr=1.0, noise_std=0.5, weight_decay=0.0,
                           d=10, init_std=1e-3, hidden=6)
    np.testing.assert_allclose(comb["mapping_theory"].sel(run="dae").transpose("mode", "epoch"), ref)
    with open(root / "half.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 4
    row = next(r for r in rows if r["run"] == "ae" and r["mode"] == "0")
    assert float(row["t_half"]) == float(comb["t_half"].sel(run="ae", seed=0, mode=0))
    assert float(row["t_half_theory"]) == float(comb["t_half_theory"].sel(run="ae", mode=0))
    assert float(row["final"]) > 0.9                            # top mode of the AE learned
    assert (root / "fig6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_above_the_linear_stability_limit_is_flagged_in_halftimes_and_figure(experiment):
    """The guard only warns for nonlinear runs (the limit is the linear theory's): the tables and the figure
    must still say which run trained above it, as for linear runs."""
    from daedyn import store
    from daedyn.figures.nonlinear import plot_fig6
    from daedyn.jobs import nonlinear as jobs

    root, paths, _ = experiment
    fast = root / "runs" / "fast" / "seed0.nc"  # lr 2.5: 1.33 x the limit 1.88 of this spectrum, still trains
    params = {**store.config_of(store.open_dataset(paths[0])), "run": "fast", "lr": 2.5}
    jobs.train_job(params, str(root / "data.nc"), str(root / "spec.nc"), str(fast))
    agg = {"experiment": "tiny", "runs": ["ae", "fast"], "seeds": [0]}
    jobs.aggregate_job(agg, [paths[0], str(fast)], str(root / "spec.nc"), str(root / "fast.nc"),
                       str(root / "fast.csv"))
    with open(root / "fast.csv") as fh:
        flags = {(r["run"], r["above_stability_limit"]) for r in csv.DictReader(fh)}
    assert flags == {("ae", "0"), ("fast", "1")}
    title = plot_fig6(store.open_dataset(root / "fast.nc"), title="tiny")._suptitle.get_text()
    assert "fast: lr = 1.33 η_max (above the linear theory's stability limit)" in title and "ae: lr" not in title


def test_a_sweep_over_n_samples_compares_each_run_with_the_theory_of_its_own_spectrum(experiment):
    from daedyn import store
    from daedyn.jobs import nonlinear as jobs

    root, paths, X = experiment
    ds = xr.Dataset({"x": (("sample", "feature"), X)}, coords={"sample": np.arange(150), "feature": np.arange(10)})
    store.write_dataset(spectrum.spectrum(ds["x"], 100), root / "spec100.nc", title="t", summary="t",
                        provenance_attrs={})
    n100 = root / "runs" / "n100" / "seed0.nc"
    params = {**store.config_of(store.open_dataset(paths[0])), "run": "n100", "n_samples": 100}
    jobs.train_job(params, str(root / "data.nc"), str(root / "spec100.nc"), str(n100))
    jobs.aggregate_job({"experiment": "tiny", "runs": ["ae", "n100"], "seeds": [0]}, [paths[0], str(n100)],
                       str(root / "spec.nc"), str(root / "n.nc"), str(root / "n.csv"))
    comb = store.open_dataset(root / "n.nc")
    lam100 = store.open_dataset(root / "spec100.nc")["eigenvalue"].values[:4]
    ref = nl.linear_theory(lam100, comb["epoch"].values, lr=1.0, noise_std=0.0, weight_decay=0.0, d=10,
                           init_std=1e-3, hidden=6)
    np.testing.assert_allclose(comb["mapping_theory"].sel(run="n100").transpose("mode", "epoch"), ref)


def test_plot_fig6_has_panels_and_table(experiment):
    from matplotlib.figure import Figure

    from daedyn import store
    from daedyn.figures.nonlinear import plot_fig6, run_label

    root, _, _ = experiment
    fig = plot_fig6(store.open_dataset(root / "combined.nc"), title="tiny")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert "Fig. 6" in fig._suptitle.get_text() and "standard deviation" in fig._suptitle.get_text()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["AE", run_label(0.0, 0.02, 10), run_label(0.5, 0.0, 10)]
    assert "var σ² = 0.25" in labels[2]


# ---------------------------------------------------------------------------------------
# (e) CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data):
    X, lam, V = data
    kw = dict(hidden=4, lr=0.8, epochs=40, init_std=0.2, seed=1, dtype="float64", lam=lam, V=V,
              weight_decay=0.01)
    a, b = _train(X, device="cpu", **kw), _train(X, device="cuda", **kw)
    assert b.config.device == "cuda"
    np.testing.assert_allclose(a.trajectory["mapping"], b.trajectory["mapping"], rtol=0, atol=1e-10)
    c = _train(X, device="cuda", noise_std=0.5, **kw)                 # noise drawn on the device
    assert np.isfinite(c.trajectory["mapping_noisy"].values).all()
