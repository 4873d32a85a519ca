"""Tests of daedyn.linear: engines against independent numpy computations."""

import math
import re

import numpy as np
import pytest
import torch

from daedyn import spectrum, theory
from daedyn.linear import train_datapass, train_exact, train_sampled
from daedyn.training import DivergenceError, hms, init_weights, log_epochs

CONDITIONS = {"ae": (0.0, 0.0), "dae": (0.4, 0.0), "wdae": (0.0, 0.15), "both": (0.3, 0.1)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    """Small non-negative data set (N=200, d=12) and its uncentred spectrum."""
    X = np.random.default_rng(0).random((200, 12))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    return X, lam, V


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b))


def random_orthogonal(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ---------------------------------------------------------------------------------------
# exact engine vs data pass


def test_spectrum_is_the_uncentred_second_moment(data):
    X, lam, V = data
    sigma = X.T @ X / len(X)
    np.testing.assert_allclose(V @ np.diag(lam) @ V.T, sigma, atol=1e-12)
    assert np.all(np.diff(lam) <= 0)


@pytest.mark.parametrize("cond", CONDITIONS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
def test_exact_matches_datapass(data, cond, dtype, tol):
    X, lam, V = data
    eps, gamma = CONDITIONS[cond]
    kw = dict(hidden=5, lr=0.1, epochs=200, eps=eps, gamma=gamma, init_std=0.1, seed=3,
              dtype=dtype, device="cpu", log_every=10)
    a, b = train_exact(lam, V, **kw), train_datapass(X, **kw)
    ta, tb = a.trajectory, b.trajectory
    # the trajectory must actually move, or agreement would be trivial
    assert rel(ta.u.isel(epoch=-1), ta.u.isel(epoch=0)) > 1.0
    for e in range(ta.sizes["epoch"]):
        assert rel(ta.u[e], tb.u[e]) <= tol
        assert rel(ta.singular_values[e], tb.singular_values[e]) <= tol
    assert rel(ta.loss, tb.loss) <= tol
    assert rel(a.W1, b.W1) <= tol and rel(a.W2, b.W2) <= tol
    np.testing.assert_array_equal(a.W1_init, b.W1_init)


def test_datapass_gradient_step_matches_numpy(data):
    """One data-pass step equals a numpy step on E2 written with the d×d matrix M (E3)."""
    X, lam, V = data
    eps, gamma, lr = 0.3, 0.1, 0.05
    W1, W2 = init_weights(12, 5, init_std=0.2, seed=9)
    run = train_datapass(X, hidden=5, lr=lr, epochs=1, eps=eps, gamma=gamma, W1=W1, W2=W2,
                         dtype="float64", device="cpu")
    sigma = X.T @ X / len(X)
    M = sigma - W2 @ W1 @ (sigma + eps * np.eye(12))
    np.testing.assert_allclose(run.W1, W1 + lr * (W2.T @ M - gamma * W1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(run.W2, W2 + lr * (M @ W1.T - gamma * W2), rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------
# aligned balanced start: per-mode recurrence E14


@pytest.mark.parametrize("eps,gamma", [(0.0, 0.0), (0.4, 0.0), (0.0, 0.1), (0.4, 0.1)])
def test_aligned_balanced_start_follows_per_mode_map(eps, gamma):
    lam = np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.2])
    d, H, lr, epochs = 6, 4, 0.1, 300
    V, R = random_orthogonal(d, 1), random_orthogonal(H, 2)
    u0 = np.array([1e-3, 0.02, 0.5, 1.2])          # below and above the fixed points
    w = np.sqrt(u0)
    W1 = R @ np.diag(w) @ V[:, :H].T
    W2 = V[:, :H] @ np.diag(w) @ R.T
    run = train_exact(lam, V, hidden=H, lr=lr, epochs=epochs, eps=eps, gamma=gamma, W1=W1, W2=W2,
                      dtype="float64", device="cpu", log_every=1)
    u = run.trajectory.u.values
    # balanced per-mode recurrence, written out with a loop over steps
    ref = np.zeros((epochs + 1, d))
    ref[0, :H] = u0
    for k in range(epochs):
        ref[k + 1] = ref[k] * (1 + lr * (lam - gamma - (lam + eps) * ref[k])) ** 2
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-10)
    assert np.abs(ref[-1, :H] - ref[0, :H]).min() > 1e-2      # every mode moved


# ---------------------------------------------------------------------------------------
# sampled noise


def _sampled_mean(X, seeds, **kw):
    us = np.stack([train_sampled(X, seed=s, **kw).trajectory.u.values for s in seeds])
    return us.mean(0), us.std(0, ddof=1) / math.sqrt(len(seeds))


@pytest.fixture(scope="module")
def small():
    X = np.random.default_rng(5).random((40, 6))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    W1, W2 = init_weights(6, 4, init_std=0.3, seed=11)
    return X, lam, V, W1, W2


def test_sampled_full_batch_mean_matches_marginalised(small):
    X, lam, V, W1, W2 = small
    kw = dict(hidden=4, lr=0.05, epochs=60, eps=0.3, W1=W1, W2=W2, dtype="float64",
              device="cpu", log_every=5)
    mean, se = _sampled_mean(X, range(60), **kw)
    ref = train_exact(lam, V, **kw).trajectory.u.values
    assert np.all(se[1:] > 0)
    z = np.abs(mean - ref)[1:] / se[1:]
    assert z.max() < 4.0
    # power: the noiseless trajectory is many standard errors away
    ref_ae = train_exact(lam, V, **{**kw, "eps": 0.0}).trajectory.u.values
    assert (np.abs(mean - ref_ae)[-1] / se[-1]).max() > 20


def _minibatch_marginalised(X, W1, W2, lr, epochs, eps, gamma, B, V):
    """numpy: GD on the marginalised loss of each minibatch in order, u logged per epoch."""
    us = [np.diag(V.T @ W2 @ W1 @ V)]
    d = X.shape[1]
    for _ in range(epochs):
        for start in range(0, len(X), B):
            xb = X[start:start + B]
            S = xb.T @ xb / len(xb)
            M = S - W2 @ W1 @ (S + eps * np.eye(d))
            W1, W2 = W1 + lr * (W2.T @ M - gamma * W1), W2 + lr * (M @ W1.T - gamma * W2)
        us.append(np.diag(V.T @ W2 @ W1 @ V))
    return np.array(us)


def test_sampled_minibatch_mean_matches_marginalised(small):
    X, lam, V, W1, W2 = small
    kw = dict(hidden=4, lr=0.04, epochs=25, eps=0.3, gamma=0.05, batch_size=10, shuffle=False,
              W1=W1, W2=W2, dtype="float64", device="cpu", log_every=1)
    mean, se = _sampled_mean(X, range(60), **kw)
    ref = _minibatch_marginalised(X, W1, W2, 0.04, 25, 0.3, 0.05, 10, V)
    z = np.abs(mean - ref)[1:] / se[1:]
    assert z.max() < 4.0
    # without noise the sampled engine is exactly minibatch GD
    run = train_sampled(X, **{**kw, "eps": 0.0})
    np.testing.assert_allclose(run.trajectory.u.values,
                               _minibatch_marginalised(X, W1, W2, 0.04, 25, 0.0, 0.05, 10, V),
                               rtol=0, atol=1e-12)


def test_sampled_without_noise_equals_datapass(data):
    X, lam, V = data
    kw = dict(hidden=5, lr=0.1, epochs=50, gamma=0.1, init_std=0.1, seed=4, dtype="float64",
              device="cpu")
    a = train_sampled(X, eps=0.0, **kw)
    b = train_datapass(X, eps=0.0, **kw)
    assert rel(a.W1, b.W1) < 1e-12 and rel(a.W2, b.W2) < 1e-12


def test_sampled_seeding(small):
    X, lam, V, W1, W2 = small
    kw = dict(hidden=4, lr=0.05, epochs=5, eps=0.3, batch_size=7, dtype="float64", device="cpu")
    a, b, c = (train_sampled(X, seed=s, **kw) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.W1, b.W1)
    assert rel(a.W1, c.W1) > 1e-3
    assert int(a.trajectory["n_steps"]) == 5 * 6      # ceil(40 / 7) = 6 steps per epoch


# ---------------------------------------------------------------------------------------
# fixed points and divergence


def _aligned_spectrum(lam, seed=0):
    return np.asarray(lam, dtype=float), random_orthogonal(len(lam), seed)


def test_dae_fixed_point():
    lam, V = _aligned_spectrum([3.0, 2.0, 1.5, 1.0, 0.7, 0.4])
    eps = 0.5
    u = train_exact(lam, V, hidden=6, lr=0.1, epochs=3000, eps=eps, init_std=0.1,
                    dtype="float64", device="cpu", log_every=3000).trajectory.u.values[-1]
    np.testing.assert_allclose(u, lam / (lam + eps), atol=1e-3)
    # a bottleneck learns the top-H modes to the same fixed points
    u = train_exact(lam, V, hidden=3, lr=0.1, epochs=3000, eps=eps, init_std=0.1,
                    dtype="float64", device="cpu", log_every=3000).trajectory.u.values[-1]
    np.testing.assert_allclose(u[:3], lam[:3] / (lam[:3] + eps), atol=1e-3)


def test_wdae_fixed_point():
    lam, V = _aligned_spectrum([3.0, 2.0, 1.5, 1.0, 0.7, 0.2])
    gamma = 0.3
    run = train_exact(lam, V, hidden=6, lr=0.1, epochs=3000, gamma=gamma, init_std=0.1,
                      dtype="float64", device="cpu", log_every=3000)
    u = run.trajectory.u.values[-1]
    np.testing.assert_allclose(u, np.maximum(0.0, 1 - gamma / lam), atol=1e-3)
    # weight decay drives the factors to balance (E12)
    assert run.trajectory.balancedness.values[-1] < 1e-3


def test_divergence_raises_with_eta_max(data):
    X, lam, V = data
    limit = theory.stability_limit(lam, 0.2, 0.0, 5)
    assert limit == pytest.approx(1 / lam[0])
    with pytest.raises(DivergenceError, match=f"eta_max={limit:.6g}") as info:
        train_exact(lam, V, hidden=5, lr=2.5 * limit, epochs=2000, eps=0.2, init_std=0.1,
                    dtype="float64", device="cpu", allow_unstable=True)
    assert f"eta={2.5 * limit:g}" in str(info.value)
    with pytest.raises(DivergenceError, match="eta_max="):
        train_datapass(X, hidden=5, lr=2.5 * limit, epochs=2000, eps=0.2, init_std=0.1,
                       dtype="float64", device="cpu", allow_unstable=True)
    # just below the limit the same run converges
    run = train_exact(lam, V, hidden=5, lr=0.9 * limit, epochs=300, eps=0.2, init_std=0.1,
                      dtype="float64", device="cpu")
    assert np.isfinite(run.trajectory.loss.values).all()


# ---------------------------------------------------------------------------------------
# tracking


@pytest.mark.parametrize("engine", ["exact", "datapass", "sampled"])
def test_tracking_against_numpy(data, engine):
    X, lam, V = data
    eps, gamma, H = 0.3, 0.1, 5
    kw = dict(hidden=H, lr=0.1, epochs=37, eps=eps, gamma=gamma, init_std=0.2, seed=7,
              dtype="float64", device="cpu", log_every=10)
    run = {"exact": lambda: train_exact(lam, V, **kw),
           "datapass": lambda: train_datapass(X, lam=lam, V=V, **kw),
           "sampled": lambda: train_sampled(X, lam=lam, V=V, batch_size=50, **kw)}[engine]()
    ds = run.trajectory
    np.testing.assert_array_equal(ds.epoch.values, [0, 10, 20, 30, 37])
    assert ds.sizes["sv"] == H and ds.sizes["mode"] == 12
    for e, (W1, W2) in [(0, (run.W1_init, run.W2_init)), (-1, (run.W1, run.W2))]:
        W = W2 @ W1
        t = ds.isel(epoch=e)
        u = np.array([V[:, i] @ W @ V[:, i] for i in range(12)])
        np.testing.assert_allclose(t.u.values, u, rtol=0, atol=1e-13)
        np.testing.assert_allclose(t.singular_values.values, np.linalg.svd(W)[1][:H],
                                   rtol=0, atol=1e-13)
        resid = X - X @ W.T
        rec = 0.5 * np.mean(np.sum(resid**2, axis=1))
        np.testing.assert_allclose(t.loss_reconstruction.values, rec, rtol=1e-12)
        np.testing.assert_allclose(t.loss_noise.values, 0.5 * eps * np.sum(W**2), rtol=1e-12)
        decay = 0.5 * gamma * (np.sum(W1**2) + np.sum(W2**2))
        np.testing.assert_allclose(t.loss_decay.values, decay, rtol=1e-12)
        total = rec + 0.5 * eps * np.sum(W**2) + decay
        np.testing.assert_allclose(t.loss.values, total, rtol=1e-12)
        np.testing.assert_allclose(t.norm_w1.values, np.linalg.norm(W1), rtol=1e-12)
        np.testing.assert_allclose(t.norm_w2.values, np.linalg.norm(W2), rtol=1e-12)
        np.testing.assert_allclose(t.balancedness.values, np.linalg.norm(W1 @ W1.T - W2.T @ W2),
                                   rtol=1e-10)
    for name, value in ds.attrs.items():
        assert type(value) in (str, int, float), name
    for name in ds.data_vars:
        assert ds[name].attrs["long_name"] and ds[name].attrs["units"]
    assert ds["engine"].item() == engine
    assert ds.u.attrs["units"] == "1"
    w = run.weights()
    assert w.w1.dims == ("hidden", "feature") and w.w2.dims == ("feature", "hidden")
    np.testing.assert_array_equal(w.w1_init.values, run.W1_init)


def test_singular_values_when_hidden_exceeds_d(data):
    X, lam, V = data
    run = train_exact(lam, V, hidden=20, lr=0.1, epochs=5, init_std=0.1, dtype="float64",
                      device="cpu")
    sv = run.trajectory.singular_values.values[-1]
    assert sv.shape == (12,)
    np.testing.assert_allclose(sv, np.linalg.svd(run.W2 @ run.W1)[1], rtol=0, atol=1e-13)


def test_init_convention():
    W1, W2 = init_weights(7, 3, init_std=0.5, seed=42)
    g = torch.Generator().manual_seed(42)
    f64 = torch.float64
    np.testing.assert_array_equal(W1, 0.5 * torch.randn(3, 7, generator=g, dtype=f64).numpy())
    np.testing.assert_array_equal(W2, 0.5 * torch.randn(7, 3, generator=g, dtype=f64).numpy())
    lam, V = _aligned_spectrum([2.0] * 7)
    run = train_exact(lam, V, hidden=3, lr=0.1, epochs=1, init_std=0.5, seed=42, device="cpu")
    np.testing.assert_allclose(run.W1_init, W1, rtol=1e-6)
    assert list(run.trajectory["epoch"].values) == [0, 1]


def test_rejects_non_orthogonal_basis():
    lam, V = _aligned_spectrum([2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="orthonormal"):
        train_exact(lam, 2 * V, hidden=2, lr=0.1, epochs=1, device="cpu")


def test_progress_lines_in_the_log_and_no_bar_off_a_terminal(capsys, caplog):
    lam, V = _aligned_spectrum([2.0, 1.0, 0.5])
    with caplog.at_level("INFO", logger="daedyn.training"):
        train_exact(lam, V, hidden=2, lr=0.1, epochs=200, device="cpu", progress=True)
    lines = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
    assert len(lines) == 10                                   # every 10 % of the run
    assert "epoch 20/200 (10%), loss" in lines[0] and "elapsed" in lines[0]
    assert "epoch 200/200 (100%)" in lines[-1]
    assert re.search(r"elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d", lines[0]), lines[0]  # h:mm:ss
    assert "epoch/s" not in capsys.readouterr().err           # stderr is not a terminal: no tqdm bar


def test_durations_read_as_hours_minutes_seconds():
    assert [hms(s) for s in (0, 59.6, 61, 3600, 36000 + 62)] == ["0:00:00", "0:01:00", "0:01:01", "1:00:00", "10:01:02"]
    assert hms(math.nan) == "?"


def test_log_epochs():
    np.testing.assert_array_equal(log_epochs(25, 10), [0, 10, 20, 25])
    np.testing.assert_array_equal(log_epochs(20, 10), [0, 10, 20])
    np.testing.assert_array_equal(log_epochs(0, 10), [0])


# ---------------------------------------------------------------------------------------
# CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("engine", ["exact", "datapass"])
def test_cuda_matches_cpu(data, engine):
    X, lam, V = data
    kw = dict(hidden=5, lr=0.1, epochs=100, eps=0.3, gamma=0.1, init_std=0.1, seed=3,
              dtype="float64", log_every=10)
    f = {"exact": lambda dev: train_exact(lam, V, device=dev, **kw),
         "datapass": lambda dev: train_datapass(X, device=dev, **kw)}[engine]
    a, b = f("cpu"), f("cuda")
    assert b.config.device == "cuda"
    assert rel(a.trajectory.u, b.trajectory.u) < 1e-10
    assert rel(a.trajectory.singular_values, b.trajectory.singular_values) < 1e-10
    assert rel(a.W1, b.W1) < 1e-10


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sampled_mean_matches_marginalised(small):
    X, lam, V, W1, W2 = small
    kw = dict(hidden=4, lr=0.05, epochs=40, eps=0.3, W1=W1, W2=W2, dtype="float64", log_every=5)
    mean, se = _sampled_mean(X, range(50), device="cuda", **kw)
    ref = train_exact(lam, V, device="cpu", **kw).trajectory.u.values
    assert (np.abs(mean - ref)[1:] / se[1:]).max() < 4.0
