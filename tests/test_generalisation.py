"""Tests of daedyn.generalisation: held-out errors against direct computations on data.

Every closed form is checked against something computed another way: the mean over held-out
samples of ½‖x − Wx‖² in pixel space, a Monte Carlo average over test noise, a gradient-descent
run carried out here in numpy, and a grid search over explicitly solved networks.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from threadpoolctl import threadpool_limits

from daedyn import data, generalisation as gen, linear, spectrum, store
from daedyn.training import Problem, init_weights
from daedyn.jobs import JobInfo
from daedyn.jobs.heldout import heldout_moment_job
from daedyn.jobs.spectrum import spectrum_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Small dense problems on a shared CPU: one BLAS thread avoids oversubscription stalls."""
    with threadpool_limits(1):
        yield


def gaussian(n, scales, seed):
    return np.random.default_rng(seed).standard_normal((n, scales.size)) * scales


@pytest.fixture(scope="module")
def problem():
    """Training and held-out samples of one Gaussian population (d = 24, N = 60, 300 held out)."""
    scales = np.linspace(2.0, 0.1, 24)
    X, Xt = gaussian(60, scales, 0), gaussian(300, scales, 1)
    spec = spectrum.spectrum(X)
    mom = gen.heldout_moment(Xt, spec, block_size=128)
    return X, Xt, spec, mom


def half_mse(X, W):
    """½ mean over rows of ‖x − Wx‖², directly in pixel space."""
    R = X - X @ W.T
    return 0.5 * np.mean(np.sum(R * R, axis=1))


def gd_datapass(X, W1, W2, *, lr, eps, steps):
    """Full-batch GD on ½ mean‖x − W₂W₁x‖² + ε/2‖W₂W₁‖² from the data, every state returned."""
    n = X.shape[0]
    states = [(W1.copy(), W2.copy())]
    for _ in range(steps):
        Hh = X @ W1.T
        E = X - Hh @ W2.T
        g1 = -(E @ W2).T @ X / n + eps * W2.T @ W2 @ W1
        g2 = -E.T @ Hh / n + eps * W2 @ W1 @ W1.T
        W1, W2 = W1 - lr * g1, W2 - lr * g2
        states.append((W1.copy(), W2.copy()))
    return states


# ---------------------------------------------------------------------------------------
# closed forms against the data


def test_errors_equal_the_empirical_held_out_mse_along_a_gd_run(problem):
    X, Xt, spec, mom = problem
    lam, V, C = spec["eigenvalue"].values, spec["eigenvector"].values, mom["test_moment"].values
    W1, W2 = init_weights(24, 5, init_std=0.3, seed=3)   # large: far from aligned
    states = gd_datapass(X, W1, W2, lr=0.1, eps=0.2, steps=40)
    sigma2 = 0.3
    A1 = np.stack([w1 @ V for w1, _ in states])
    B2 = np.stack([w2.T @ V for _, w2 in states])
    M = gen.eigenbasis_weights(A1, B2)
    recorded = gen.state_errors(*(torch.as_tensor(a) for a in (A1, B2, C)), [0.0, sigma2],
                                lam=torch.as_tensor(lam))
    off_diagonal = []
    for k, (w1, w2) in enumerate(states):
        W = w2 @ w1
        clean, train = half_mse(Xt, W), half_mse(X, W)
        noisy = clean + 0.5 * sigma2 * np.sum(W * W)          # E‖x − W(x+n)‖² = ‖(I−W)x‖² + σ²‖W‖²_F
        assert gen.heldout_error(M[k], C) == pytest.approx(clean, rel=0, abs=1e-10)
        assert gen.heldout_error(M[k], C, sigma2) == pytest.approx(noisy, rel=0, abs=1e-10)
        assert gen.train_error(M[k], lam) == pytest.approx(train, rel=0, abs=1e-10)
        assert gen.train_error(M[k], lam, 0.2) == pytest.approx(train + 0.1 * np.sum(W * W), rel=0, abs=1e-10)
        assert float(recorded["test_reconstruction"][k]) == pytest.approx(clean, rel=0, abs=1e-10)
        assert float(recorded["test_denoising"][k, 0]) == pytest.approx(clean, rel=0, abs=1e-10)
        assert float(recorded["test_denoising"][k, 1]) == pytest.approx(noisy, rel=0, abs=1e-10)
        assert float(recorded["train_error"][k]) == pytest.approx(train, rel=0, abs=1e-10)
        assert float(recorded["weight_norm_sq"][k]) == pytest.approx(np.sum(W * W), rel=1e-12)
        off_diagonal.append(np.linalg.norm(M[k] - np.diag(np.diag(M[k]))) / np.linalg.norm(M[k]))
    assert min(off_diagonal) > 0.1          # the run is genuinely non-aligned
    assert recorded["test_denoising"].shape == (len(states), 2)


def test_errors_of_the_exact_engine_weights(problem):
    """The project's own engine: the final weights of short float64 runs, rotated back to pixels."""
    X, Xt, spec, mom = problem
    lam, V, C = spec["eigenvalue"].values, spec["eigenvector"].values, mom["test_moment"].values
    for epochs in (1, 7, 60):
        run = linear.train_exact(lam, V, hidden=6, lr=0.1, epochs=epochs, eps=0.5, init_std=0.2, seed=1,
                                 dtype="float64", device="cpu", log_every=epochs)
        W = run.W2 @ run.W1
        M = gen.eigenbasis_weights(run.W1 @ V, run.W2.T @ V)
        assert gen.heldout_error(M, C, 0.7) == pytest.approx(half_mse(Xt, W) + 0.35 * np.sum(W * W), abs=1e-10)
        # the tracker's train error is the same quantity
        assert gen.train_error(M, lam) == pytest.approx(float(run.trajectory["loss_reconstruction"][-1]), abs=1e-10)


@pytest.mark.parametrize("engine", ["exact", "datapass", "sampled"])
def test_tracked_test_errors_equal_numpy_at_every_logged_epoch(problem, engine):
    """Every engine records the held-out errors of its current weights at each logged epoch.

    Checked against numpy in pixel space: a run stopped at a logged epoch t ends with the weights
    the full run had at t (same seed, same steps, same noise stream), and ½·mean‖x − Wx‖² over the
    held-out samples plus σ²/2‖W‖²_F must equal what the full run recorded at t.
    """
    X, Xt, spec, mom = problem
    lam, V, C = spec["eigenvalue"].values, spec["eigenvector"].values, mom["test_moment"].values
    sigma2 = [0.0, 0.25, 1.0]
    kw = dict(engine=engine, n_samples=X.shape[0], hidden=5, lr=0.05, eps=0.3, gamma=0.01, init_std=0.3, seed=2,
              dtype="float64", device="cpu", heldout="test", sigma2_test=sigma2,
              batch_size=16 if engine == "sampled" else None)
    full = linear.train(linear.LinearConfig.make(epochs=24, log_every=6, **kw), Problem(lam, V, X, C)).trajectory
    np.testing.assert_array_equal(full["sigma2_test"], sigma2)
    for t in full["epoch"].values:
        short = linear.train(linear.LinearConfig.make(epochs=int(t) if t else 1, log_every=max(int(t), 1), **kw),
                             Problem(lam, V, X, C))
        W = short.W2 @ short.W1 if t else short.W2_init @ short.W1_init
        clean = half_mse(Xt, W)
        np.testing.assert_allclose(short.trajectory["u"].sel(epoch=t), full["u"].sel(epoch=t), rtol=0, atol=1e-13)
        assert float(full["test_reconstruction"].sel(epoch=t)) == pytest.approx(clean, rel=0, abs=1e-10)
        np.testing.assert_allclose(full["test_denoising"].sel(epoch=t),
                                   clean + 0.5 * np.array(sigma2) * np.sum(W * W), rtol=0, atol=1e-10)
        assert float(full["loss_reconstruction"].sel(epoch=t)) == pytest.approx(half_mse(X, W), rel=0, abs=1e-10)
    # the errors move: a test that passed on a frozen network would prove little
    assert np.ptp(full["test_reconstruction"].values) > 0.1


def test_tracking_without_a_held_out_set_is_unchanged_and_checked(problem):
    X, _, spec, mom = problem
    lam, V, C = spec["eigenvalue"].values, spec["eigenvector"].values, mom["test_moment"].values
    kw = dict(hidden=5, lr=0.05, epochs=20, log_every=5, eps=0.3, init_std=0.3, dtype="float64", device="cpu")
    plain = linear.train_exact(lam, V, **kw)
    tracked = linear.train_exact(lam, V, C=C, heldout="test", sigma2_test=[0.5], **kw)
    assert "test_reconstruction" not in plain.trajectory and "heldout" not in plain.trajectory.coords
    assert tracked.trajectory["heldout"].item() == "test"
    for name, var in plain.trajectory.data_vars.items():          # tracking changes no other record
        np.testing.assert_array_equal(tracked.trajectory[name], var)
    with pytest.raises(ValueError, match="need the held-out moment"):
        linear.train_exact(lam, V, heldout="test", **kw)
    with pytest.raises(ValueError, match="need the held-out moment"):
        linear.train_exact(lam, V, sigma2_test=[0.5], **kw)
    with pytest.raises(ValueError, match=r"must be \(24, 24\)"):
        linear.train_exact(lam, V, C=C[:5, :5], heldout="test", **kw)
    with pytest.raises(ValueError, match="symmetric"):
        linear.train_exact(lam, V, C=C + np.triu(np.ones_like(C), 1), heldout="test", **kw)
    with pytest.raises(ValueError, match=r"sigma2_test\[1\] must be >= 0"):
        linear.LinearConfig.make(hidden=5, lr=0.05, epochs=20, heldout="test", sigma2_test=[0.5, -1])


def test_expected_noisy_error_by_monte_carlo(problem):
    """The identity behind the denoising error, checked by sampling test noise."""
    _, Xt, spec, mom = problem
    V, C = spec["eigenvector"].values, mom["test_moment"].values
    W1, W2 = init_weights(24, 5, init_std=0.4, seed=5)
    W = W2 @ W1
    sigma2, draws = 0.5, 400
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((draws,) + Xt.shape) * np.sqrt(sigma2)
    R = Xt[None] - (Xt[None] + noise) @ W.T
    per_draw = 0.5 * np.mean(np.sum(R * R, axis=2), axis=1)
    mc, se = per_draw.mean(), per_draw.std(ddof=1) / np.sqrt(draws)
    exact = gen.heldout_error(gen.eigenbasis_weights(W1 @ V, W2.T @ V), C, sigma2)
    assert abs(mc - exact) < 4 * se
    assert se < 0.01 * exact


def test_per_mode_formula_equals_the_matrix_formula_for_aligned_weights():
    rng = np.random.default_rng(2)
    d, k = 15, 9
    A = rng.standard_normal((d, d))
    C = A @ A.T / d                      # not diagonal: only its diagonal may enter
    lam = np.sort(rng.random(d))[::-1]
    u = rng.random(k)
    full = np.r_[u, np.zeros(d - k)]
    for s2 in (0.0, 0.4):
        per_mode = gen.mode_heldout_error(u, np.diag(C), s2)
        assert per_mode == pytest.approx(gen.heldout_error(np.diag(full), C, s2), abs=1e-12)
        # the usual per-sample form without the ½: tr Σ − Σ(2u − u²)c + σ²Σu²
        c = np.diag(C)
        assert 2 * per_mode == pytest.approx(np.trace(C) - np.sum((2 * full - full**2) * c) + s2 * np.sum(u**2),
                                             abs=1e-12)
    assert gen.mode_train_error(u, lam, 0.3) == pytest.approx(gen.train_error(np.diag(full), lam, 0.3), abs=1e-12)


def test_per_mode_trajectories_give_the_errors_of_an_aligned_gd_run(problem):
    """An aligned balanced start stays aligned: the per-mode theory is then exact at every step."""
    X, Xt, spec, mom = problem
    lam, V = spec["eigenvalue"].values, spec["eigenvector"].values
    hidden, u0, lr, eps, steps = 6, 1e-3, 0.1, 0.3, 80
    W1 = np.sqrt(u0) * V[:, :hidden].T
    W2 = np.sqrt(u0) * V[:, :hidden]
    states = gd_datapass(X, W1, W2, lr=lr, eps=eps, steps=steps)
    curves = gen.error_trajectories(steps, lam, mom["c"].values, lr=lr, eps=eps, sigma2_test=[0.0, 1.5],
                                    hidden=hidden, x0=u0, y0=0.0)
    measured = np.empty((2, steps + 1))
    for k, (w1, w2) in enumerate(states):
        W = w2 @ w1
        measured[:, k] = half_mse(Xt, W) + 0.5 * np.array([0.0, 1.5]) * np.sum(W * W)
        assert float(curves["train_error"][k]) == pytest.approx(half_mse(X, W), abs=1e-10)
        np.testing.assert_allclose(curves["u"][:, k], np.diag(V.T @ W @ V), rtol=0, atol=1e-12)
    np.testing.assert_allclose(curves["test_error"], measured, rtol=0, atol=1e-10)
    # the best stopping epoch: late without test noise (the error only flattens out, so ties at
    # rounding level decide the exact epoch), well inside the run with much of it
    stop = curves["stop_epoch"].values
    assert measured[0, stop[0]] - measured[0].min() < 1e-12 and stop[0] > 0.9 * steps
    assert stop[1] == np.argmin(measured[1]) and 0 < stop[1] < steps / 2


def test_state_errors_batches_and_float32(problem):
    _, _, spec, mom = problem
    C = torch.as_tensor(mom["test_moment"].values)
    g = torch.Generator().manual_seed(0)
    A1 = torch.randn(3, 5, 24, generator=g, dtype=torch.float64)
    B2 = torch.randn(3, 5, 24, generator=g, dtype=torch.float64)
    batch = gen.state_errors(A1, B2, C, 0.5)
    for k in range(3):
        one = gen.state_errors(A1[k], B2[k], C, 0.5)
        M = gen.eigenbasis_weights(A1[k].numpy(), B2[k].numpy())
        assert float(one["test_denoising"]) == pytest.approx(float(batch["test_denoising"][k]), rel=1e-14)
        assert float(one["test_denoising"]) == pytest.approx(gen.heldout_error(M, C.numpy(), 0.5), rel=1e-12)
    low = gen.state_errors(A1.float(), B2.float(), C.float(), [0.0, 0.5])
    assert low["test_denoising"].dtype == torch.float32
    np.testing.assert_allclose(low["test_denoising"][:, 1].double(), batch["test_denoising"], rtol=1e-5)
    with pytest.raises(ValueError, match="1-D"):
        gen.state_errors(A1, B2, C, [[0.5]])


# ---------------------------------------------------------------------------------------
# optimal noise


def test_optimal_noise_is_the_test_noise_for_accurate_eigenvectors():
    lam = 3.0 * 0.7 ** np.arange(30)
    s2 = np.array([0.0, 0.05, 0.3, 2.0])
    for hidden in (30, 8):
        np.testing.assert_allclose(gen.optimal_noise(lam, lam, s2, hidden), s2, rtol=1e-12, atol=0)
    # a larger held-out variance along the learned modes calls for less shrinkage, and vice versa
    assert gen.optimal_noise(lam, 1.2 * lam, 0.3, 8) < 0.3 < gen.optimal_noise(lam, 0.8 * lam, 0.3, 8)
    np.testing.assert_allclose(gen.wiener_u([1.0, 0.0], [1.0, 0.0]), [0.5, 1.0])
    with pytest.raises(ValueError, match="sigma2_test"):
        gen.optimal_noise(lam, lam, -1.0)


def test_optimal_noise_on_a_spiked_model_equals_a_grid_search():
    """d = N = 1000: ε* from the sample spectrum and the held-out variances cᵢ against a grid search
    over networks solved explicitly in pixel space, scored with the population second moment.

    The grid side never uses the per-mode formulas: the full-rank DAE is W = Σ̂(Σ̂+εI)⁻¹ = I − ε(Σ̂+εI)⁻¹
    from a Cholesky inverse in pixel space, and the H-unit one is P_H·W with P_H the projector on the
    top-H eigenvectors (LAPACK's subset solver), scored as ½tr[(I−W)Σ(I−W)ᵀ] + σ²/2‖W‖²_F.
    """
    d = n = 1000
    hidden = 100
    pop = np.ones(d)
    pop[:5] = [40.0, 20.0, 10.0, 5.0, 2.5]          # spikes on a unit bulk
    X = gaussian(n, np.sqrt(pop), 11)
    S = X.T @ X / n
    lam, V = spectrum.eigh_descending(S)
    c = np.einsum("ij,i,ij->j", V, pop, V)            # v̂ᵢᵀ Σ v̂ᵢ with the population Σ
    cases = [(d, 0.0), (d, 1.0), (hidden, 0.5)]
    predicted = {case: float(gen.optimal_noise(lam, c, case[1], case[0])) for case in cases}

    VH = sl.eigh(S, subset_by_index=[d - hidden, d - 1])[1].T      # (H, d)
    step = 0.1
    grid = np.arange(0.0, 1.7 + step / 2, step)
    scores = {case: [] for case in cases}
    for e in grid:
        if e == 0:
            inv = np.linalg.inv(S)
        else:
            L, _ = sl.lapack.dpotrf(S + e * np.eye(d), lower=1)
            inv, _ = sl.lapack.dpotri(L, lower=1)
            inv = np.tril(inv) + np.tril(inv, -1).T
        W = np.eye(d) - e * inv
        for h, s2 in cases:
            if h == d:
                E = e * inv                                         # I − W
                scores[(h, s2)].append(0.5 * np.sum(E * E * pop) + 0.5 * s2 * np.sum(W * W))
            else:
                B = VH @ W                                          # W_H = V_Hᵀ B
                EH = np.eye(d) - VH.T @ B
                scores[(h, s2)].append(0.5 * np.sum(EH * EH * pop) + 0.5 * s2 * np.sum(B * B))
    for case in cases:
        best = grid[int(np.argmin(scores[case]))]
        assert abs(predicted[case] - best) < step, (case, predicted[case], best)
    assert predicted[(d, 0.0)] == 0.0
    # finite N moves ε* far from σ²_test here: the full-rank net wants less noise, the narrow one more
    assert predicted[(d, 1.0)] < 0.9 and predicted[(hidden, 0.5)] > 1.2


# ---------------------------------------------------------------------------------------
# the held-out moment job


def _write(ds, path):
    return store.write_dataset(ds, path, title="t", summary="s", provenance_attrs={})


@pytest.mark.parametrize("center", [False, True])
def test_heldout_moment_job_equals_numpy(tmp_path, center):
    lam = data.spectrum_values("power_law", 10, scale=3.0)
    train = data.synthetic(300, 10, lam, seed=1, exact=False)
    test = data.synthetic(150, 10, lam, seed=2, exact=False) + 0.1    # a shifted held-out set
    train_path, test_path = _write(train, tmp_path / "train.nc"), _write(test, tmp_path / "test.nc")
    spec_path, out = tmp_path / "spec.nc", tmp_path / "moment.nc"
    spectrum_job({"dataset": "train", "n_samples": 200, "center": center}, str(train_path), str(spec_path))
    params = {"dataset": "train", "n_samples": 200, "testset": "test", "block_size": 64}
    heldout_moment_job(params, str(spec_path), str(test_path), str(out), JobInfo("heldout_moment"))
    result, spec = store.open_dataset(out), store.open_dataset(spec_path)
    V = spec["eigenvector"].values
    x, mu = test["x"].values, train["x"].values[:200].mean(axis=0)
    if center:
        x = x - mu
    reference = V.T @ (x.T @ x / 150) @ V
    np.testing.assert_allclose(result["test_moment"].values, reference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["c"].values, np.diag(reference), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result["eigenvalue"].values, spec["eigenvalue"].values)
    assert result.attrs["n_test"] == 150 and result.attrs["n_samples"] == 200
    assert result.attrs["trace_test"] == pytest.approx(np.trace(reference), rel=1e-12)
    assert result.attrs["snakemake_rule"] == "heldout_moment"
    assert store.config_of(result) == params


def test_heldout_moment_of_the_training_samples_is_diagonal():
    lam = data.spectrum_values("exponential", 12, scale=2.0, decay=0.6)
    x = data.synthetic(400, 12, lam, seed=3)["x"].values
    spec = spectrum.spectrum(x)
    mom = gen.heldout_moment(x, spec)
    np.testing.assert_allclose(mom["test_moment"].values, np.diag(spec["eigenvalue"].values), atol=1e-12)
    with pytest.raises(ValueError, match="12 features but the training spectrum has"):
        gen.heldout_moment(np.zeros((5, 12)), spectrum.spectrum(x[:, :6]))


@pytest.mark.workflow
def test_heldout_moment_rule_end_to_end(tmp_path):
    from conftest import run_snakemake

    syn = {"n_samples": 300, "dim": 8, "spectrum": "exponential", "scale": 2.0, "decay": 0.7, "exact": False}
    config = {"data": {"download": False}, "spectra": [],
              "datasets": {"syn": {"source": "synthetic", "synthetic": {**syn, "seed": 1}},
                           "syn_test": {"source": "synthetic", "synthetic": {**syn, "seed": 2}}}}
    target = "results/spectra/syn_n200_test_syn_test.nc"
    run_snakemake(tmp_path, config, "-c1", target)
    result = store.open_dataset(tmp_path / target)
    spec = store.open_dataset(tmp_path / "results/spectra/syn_n200.nc")
    x = store.open_dataset(tmp_path / "results/data/syn_test.nc")["x"].values
    V = spec["eigenvector"].values
    np.testing.assert_allclose(result["test_moment"].values, V.T @ (x.T @ x / 300) @ V, rtol=0, atol=1e-12)
    assert result.attrs["snakemake_rule"] == "heldout_moment"
    assert store.config_of(result) == {"dataset": "syn", "n_samples": 200, "testset": "syn_test"}
    assert (tmp_path / "logs/spectra/syn_n200_test_syn_test.log").read_text().count("finished") == 1
