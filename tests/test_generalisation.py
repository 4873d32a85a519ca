"""Tests of daedyn.generalisation and daedyn.generalisation_analysis: held-out errors against direct
computations on data.

Every closed form is checked against something computed another way: the mean over held-out
samples of ½‖x − Wx‖² in pixel space, a Monte Carlo average over test noise, a gradient-descent
run carried out here in numpy, and a grid search over explicitly solved networks.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch
import xarray as xr
from threadpoolctl import threadpool_limits

from daedyn import data, generalisation as gen, generalisation_analysis as gan, linear, spectrum, store
from daedyn.training import init_weights
from daedyn.claims import COLUMNS, VERDICTS
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
    full = linear.train(linear.LinearConfig.make(epochs=24, log_every=6, **kw), lam, V, X, C=C).trajectory
    np.testing.assert_array_equal(full["sigma2_test"], sigma2)
    for t in full["epoch"].values:
        short = linear.train(linear.LinearConfig.make(epochs=int(t) if t else 1, log_every=max(int(t), 1), **kw),
                             lam, V, X, C=C)
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


# ---------------------------------------------------------------------------------------
# the experiment: combine, theory, metrics, claims, figure


def _tracked_run(lam, V, C, *, n, eps, hidden, lr, epochs, log_every, sigma2, W1, W2):
    """One run of the project's exact engine (float64) with the held-out errors tracked: a run file."""
    config = linear.LinearConfig.make(engine="exact", heldout="test", sigma2_test=[float(v) for v in sigma2],
                                      n_samples=n, eps=eps, hidden=hidden, lr=lr, epochs=epochs,
                                      log_every=log_every, dtype="float64", device="cpu")
    return linear.train_exact(lam, V, config, C=C, W1=W1, W2=W2).dataset()


def _experiment(ns, X, Xt, *, hidden=8, eps_grid=(0.0, 0.15, 0.3, 0.6), sigma2=(0.0, 0.3), init=None):
    """Runs over (N, ε) of one seed, combined with theory; ``init(V)`` gives the initial weights."""
    spectra, moments, runs = {}, {}, []
    for n in ns:
        spectra[n] = spectrum.spectrum(X, n)
        moments[n] = gen.heldout_moment(Xt, spectra[n])
        lam, V = spectra[n]["eigenvalue"].values, spectra[n]["eigenvector"].values
        W1, W2 = init(V) if init else init_weights(lam.size, hidden, init_std=1e-3, seed=0)
        for eps in eps_grid:
            runs.append(_tracked_run(lam, V, moments[n]["test_moment"].values, n=n, eps=eps, hidden=hidden,
                                     lr=0.1, epochs=300, log_every=5, sigma2=np.asarray(sigma2), W1=W1, W2=W2))
    combined, w1, w2 = gan.combine_runs(runs)
    return gan.add_theory(combined, spectra, moments, w1, w2), runs, spectra, moments


POPULATION = np.sqrt(3.0 * 0.75 ** np.arange(16))


@pytest.fixture(scope="module")
def experiment():
    """Two training-set sizes of a d = 16 population, four training noises, small random weights."""
    X, Xt = gaussian(400, POPULATION, 20), gaussian(500, POPULATION, 21)
    return _experiment((24, 400), X, Xt)


def test_theory_of_the_experiment_is_exact_for_aligned_runs():
    """From an aligned balanced start every mode evolves alone, so the per-mode errors that
    add_theory assembles must equal the recorded ones at every epoch, N, ε and σ²_test."""
    X, Xt = gaussian(300, POPULATION, 30), gaussian(200, POPULATION, 31)
    hidden, u0 = 6, 1e-4

    def aligned(V):
        return np.sqrt(u0) * V[:, :hidden].T, np.sqrt(u0) * V[:, :hidden]

    ds, *_ = _experiment((300,), X, Xt, hidden=hidden, init=aligned)
    for name in ("test_denoising", "test_reconstruction", "train_error"):
        np.testing.assert_allclose(ds[f"{name}_theory"], ds[name], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ds["u_theory"].transpose(*ds["u"].dims), ds["u"], rtol=0, atol=1e-12)


def test_combine_runs_checks_the_grid(experiment):
    ds, runs, _, _ = experiment
    assert dict(ds["u"].sizes) == {"n_samples": 2, "eps": 4, "epoch": 61, "mode": 16}
    assert ds["test_denoising"].dims == ("n_samples", "eps", "epoch", "sigma2_test")
    one = runs[5]
    np.testing.assert_array_equal(ds["test_denoising"].sel(n_samples=400, eps=0.15), one["test_denoising"][0, 0])
    # several runs in one dataset (one training job per N) combine the same way
    per_n = [xr.concat(runs[k:k + 4], dim="run", data_vars="minimal", coords="minimal", compat="identical")
             for k in (0, 4)]
    stacked, *_ = gan.combine_runs(per_n)
    measured = ds[list(stacked.data_vars)]
    xr.testing.assert_identical(stacked, measured.drop_vars([v for v in measured.coords if v not in stacked.coords]))
    with pytest.raises(ValueError, match="missing"):
        gan.combine_runs(runs[:-1])
    with pytest.raises(ValueError, match="duplicate"):
        gan.combine_runs(runs + runs[:1])
    other = runs[1].copy(deep=True)
    other["w1_init"] = other["w1_init"] * 2
    with pytest.raises(ValueError, match="other weights"):
        gan.combine_runs([runs[0], other] + runs[2:])


def test_theory_of_the_experiment(experiment):
    ds, _, spectra, moments = experiment
    for n in (24, 400):
        one = ds.sel(n_samples=n)
        lam, c = spectra[n]["eigenvalue"].values, moments[n]["c"].values
        np.testing.assert_allclose(one["eps_star"], gen.optimal_noise(lam, c, ds["sigma2_test"].values, 8))
        # the per-mode map starts from each mode's actual u (modes past H count as unlearned)
        u0 = one["u"].isel(epoch=0).values[:, :8]
        np.testing.assert_allclose(one["u_theory"].isel(epoch=0).values[:, :8], u0, rtol=1e-10, atol=1e-15)
        assert np.all(one["u_theory"].values[..., 8:] == 0)
        final = one["test_denoising"].isel(epoch=-1).values                      # (eps, sigma2)
        np.testing.assert_array_equal(one["eps_star_grid"], ds["eps"].values[np.argmin(final, axis=0)])
    # from small random weights the per-mode theory is close, though the modes of a narrow network
    # compete for hidden units, which delays the ones being learned (the theory runs ahead)
    rel = (ds["test_denoising_theory"] - ds["test_denoising"]) / ds["test_denoising"]
    assert float(abs(rel).max()) < 0.25
    assert float(abs(rel).isel(epoch=-1).max()) < 0.05
    # without test noise the best noise is none; with it, a positive one
    assert np.all(ds["eps_star"].sel(sigma2_test=0.0) == 0)
    assert np.all(ds["eps_star_final_theory"].sel(sigma2_test=0.3) > 0)


def test_metrics_rows_against_numpy(experiment):
    ds, *_ = experiment
    rows = gan.metrics(ds)
    assert len(rows) == 2 * 4 * 2
    epochs = ds["epoch"].values
    for row in rows:
        one = ds.sel(n_samples=row["n_samples"], eps=row["eps"], sigma2_test=row["sigma2_test"])
        meas, th = one["test_denoising"].values, one["test_denoising_theory"].values
        assert row["stop_epoch"] == epochs[np.argmin(meas)]
        assert row["test_error_at_stop"] == meas.min()
        assert row["max_abs_err_theory"] == np.abs(th - meas).max()
        assert row["test_error_final"] == meas[-1]
        assert row["stopping_gain"] == pytest.approx(meas[-1] - meas.min())
    opt = gan.optimal_noise_rows(ds)
    assert len(opt) == 4
    for row in opt:
        final = ds["test_denoising"].sel(n_samples=row["n_samples"], sigma2_test=row["sigma2_test"]).isel(epoch=-1)
        assert row["test_error_best_grid"] == float(final.min())
        assert row["grid_below"] <= row["eps_star_grid"] <= row["grid_above"]


def test_parabola_refinement_recovers_a_quadratic_minimum():
    x = np.array([0.0, 0.125, 0.25, 0.5, 1.0, 2.0])
    y = np.r_[10.0, (np.log(x[1:]) - np.log(0.4)) ** 2]
    assert gan._parabola_min(x, y) == pytest.approx(0.4, rel=1e-12)
    assert gan._parabola_min(x, x) == 0.0                  # minimum at the end of the grid


def test_claims_rows(experiment):
    ds, *_ = experiment
    rows = gan.claims(ds)
    ids = [r["claim"] for r in rows]
    assert ids == ["no-noise-shrinkage", "theory-vs-measured", "eps-star-vs-test-noise", "eps-star-grid-search",
                   "early-stopping", "generalisation-gap"]
    for r in rows:
        assert tuple(r) == COLUMNS and r["verdict"] in VERDICTS and r["measured"]
    by_id = {r["claim"]: r for r in rows}
    assert by_id["no-noise-shrinkage"]["verdict"] == "confirmed"
    gap = float((abs(ds["test_denoising_theory"] - ds["test_denoising"]) / ds["test_denoising"]).max())
    assert f"held-out {gap:.3g}" in by_id["theory-vs-measured"]["measured"]
    star = float(ds["eps_star"].sel(n_samples=24, sigma2_test=0.3))
    assert f"{star:.4g}" in by_id["eps-star-vs-test-noise"]["measured"]
    # a network that got better with more noise at σ²_test = 0 refutes the first claim
    bad = ds.copy(deep=True)
    bad["test_reconstruction"].loc[dict(n_samples=400, eps=0.6)] = 0.0
    assert {r["claim"]: r for r in gan.claims(bad)}["no-noise-shrinkage"]["verdict"] == "refuted"
    # a theory that matches is confirmed, one that misses by 10 % refuted
    exact = ds.copy(deep=True)
    for name in ("test_denoising", "train_error"):
        exact[f"{name}_theory"] = exact[name] * (1 + 1e-3)
    assert {r["claim"]: r for r in gan.claims(exact)}["theory-vs-measured"]["verdict"] == "confirmed"
    exact["test_denoising_theory"] = exact["test_denoising"] * 1.1
    assert {r["claim"]: r for r in gan.claims(exact)}["theory-vs-measured"]["verdict"] == "refuted"


def test_figure_renders(experiment, tmp_path):
    from daedyn.figures.generalisation import plot_generalisation
    from daedyn.figures.style import save

    ds, *_ = experiment
    fig = plot_generalisation(ds, title="tiny")
    assert len(fig.axes) == 2 * 2 + 2          # (σ²_test rows × N columns) + the two ε* panels
    (path,) = save(fig, [tmp_path / "gen.png"])
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 50_000


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


def test_aggregate_and_figure_jobs(experiment, tmp_path):
    import csv

    from daedyn.jobs.generalisation import aggregate_job, figure_job

    ds, runs, spectra, moments = experiment
    run_paths = [str(_write(r, tmp_path / f"run{k}.nc")) for k, r in enumerate(runs)]
    spec_paths = {n: str(_write(s, tmp_path / f"spec{n}.nc")) for n, s in spectra.items()}
    mom_paths = {n: str(_write(m, tmp_path / f"mom{n}.nc")) for n, m in moments.items()}
    outputs = {k: str(tmp_path / f"{k}.{ext}") for k, ext in
               (("combined", "nc"), ("metrics", "csv"), ("optimal_noise", "csv"), ("claims", "csv"))}
    params = {"experiment": "tiny"}
    with pytest.raises(ValueError, match=r"N = \[400\]"):
        aggregate_job(params, run_paths, {24: spec_paths[24]}, mom_paths, outputs)
    aggregate_job(params, run_paths, spec_paths, mom_paths, outputs, JobInfo("generalisation_aggregate"))
    combined = store.open_dataset(outputs["combined"])
    np.testing.assert_allclose(combined["eps_star"], ds["eps_star"], rtol=1e-14)
    np.testing.assert_allclose(combined["test_denoising_theory"], ds["test_denoising_theory"], rtol=1e-14)
    with open(outputs["metrics"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["test_error_final"]) for r in rows] == [r["test_error_final"] for r in gan.metrics(ds)]
    with open(outputs["claims"]) as fh:
        claim_rows = list(csv.DictReader(fh))
    assert tuple(claim_rows[0]) == COLUMNS
    assert [r["claim"] for r in claim_rows] == [f"tiny/{r['claim']}" for r in gan.claims(ds)]
    with open(outputs["optimal_noise"]) as fh:
        assert len(list(csv.DictReader(fh))) == 4
    figure_job(params, outputs["combined"], [str(tmp_path / "fig.png")])
    assert (tmp_path / "fig.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.workflow
def test_generalisation_experiment_end_to_end(tmp_path):
    """A tiny experiment on synthetic data, a second synthetic set of the same population as the
    held-out split: held-out moments, training with tracked test errors, aggregation, figure, claims;
    then which jobs an edit of the analysis or of the held-out formulas reruns (in a copy of the
    workflow, whose sources the test may edit)."""
    import csv
    import shutil

    from conftest import REPO, dry_run_jobs, load_yaml, run_snakemake
    from test_reruns import edit, snakemake, write_config

    syn = {"n_samples": 400, "dim": 10, "spectrum": "exponential", "scale": 2.0, "decay": 0.7, "exact": False}
    exp = {"dataset": "syn", "heldout": "syn_test", "n_samples": [40, 400], "eps": [0.0, 0.5],
           "sigma2_test": [0.0, 0.3], "hidden": 4, "lr": 0.1, "epochs": 150, "log_every": 10, "dtype": "float64"}
    config = {"data": {"download": False}, "spectra": [],
              "datasets": {"syn": {"source": "synthetic", "synthetic": {**syn, "seed": 1}},
                           "syn_test": {"source": "synthetic", "synthetic": {**syn, "seed": 2}}},
              "generalisation_experiments": {"gtiny": exp},
              # a plain linear experiment can track the same held-out errors
              "linear_experiments": {"lheld": {
                  "dataset": "syn", "n_samples": 40, "hidden": 4, "lr": 0.1, "epochs": 150, "log_every": 10,
                  "dtype": "float64", "modes": [0, 1], "heldout": "syn_test", "sigma2_test": [0.3],
                  "runs": {"dae": {"eps": 0.5}}}}}
    # the default config's experiments off: their claims would join results/claims/beyond.csv
    for kind, experiments in load_yaml(REPO / "config.yaml").items():
        if kind.endswith("_experiments"):
            for name in experiments:
                config.setdefault(kind, {}).setdefault(name, {"enabled": False})
    targets = ["results/figures/gtiny.png", "results/gtiny/metrics.csv", "results/claims/beyond.csv",
               "results/runs/lheld/dae/seed0.nc"]
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Snakefile", "config.yaml", "requirements.lock"):
        shutil.copy(REPO / name, repo / name)
    for name in ("workflow", "src"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_config(tmp_path, config)
    snakemake(repo, tmp_path, "-c2", *targets)

    # one job per N trains every ε, into one file with the runs along `run`
    assert sorted(p.parent.name for p in (tmp_path / "results/runs/gtiny").glob("*/seed0.nc")) == ["n40", "n400"]
    runs = store.open_dataset(tmp_path / "results/runs/gtiny/n40/seed0.nc")
    assert runs["run"].values.tolist() == ["n40_eps0p0", "n40_eps0p5"] and runs["eps"].values.tolist() == [0, 0.5]
    assert runs["heldout"].values.tolist() == ["syn_test"] * 2 and runs["n_samples"].values.tolist() == [40, 40]
    assert runs.attrs["snakemake_rule"] == "generalisation_train" and set(runs["engine"].values) == {"exact"}
    # the recorded held-out errors are those of each run's final weights on the held-out samples
    x_test = store.open_dataset(tmp_path / "results/data/syn_test.nc")["x"].values
    for k in range(2):
        W = runs["w2"].values[k, 0] @ runs["w1"].values[k, 0]
        clean = 0.5 * np.mean(np.sum((x_test - x_test @ W.T) ** 2, axis=1))
        assert float(runs["test_reconstruction"][k, 0, -1]) == pytest.approx(clean, rel=0, abs=1e-10)
        assert float(runs["test_denoising"][k, 0, -1, 1]) == pytest.approx(clean + 0.15 * np.sum(W * W), abs=1e-10)
    # the runs of one job equal runs trained alone (same seed: the same initial weights)
    spec = store.open_dataset(tmp_path / "results/spectra/syn_n40.nc")
    C = store.open_dataset(tmp_path / "results/spectra/syn_n40_test_syn_test.nc")["test_moment"].values
    alone = linear.train_exact(spec["eigenvalue"].values, spec["eigenvector"].values, C=C, heldout="syn_test",
                               sigma2_test=[0.0, 0.3], eps=0.5, hidden=4, lr=0.1, epochs=150, log_every=10,
                               dtype="float64", device="cpu")
    np.testing.assert_array_equal(alone.trajectory["test_denoising"], runs["test_denoising"][1, 0])
    lheld = store.open_dataset(tmp_path / "results/runs/lheld/dae/seed0.nc")
    assert lheld.attrs["snakemake_rule"] == "linear_train" and lheld["heldout"].values.tolist() == ["syn_test"]
    np.testing.assert_array_equal(lheld["test_reconstruction"][0, 0], runs["test_reconstruction"][1, 0])
    np.testing.assert_array_equal(lheld["test_denoising"][0, 0, :, 0], runs["test_denoising"][1, 0, :, 1])

    combined = store.open_dataset(tmp_path / "results/gtiny/combined.nc")
    assert dict(combined["test_denoising"].sizes) == {"n_samples": 2, "eps": 2, "epoch": 16, "sigma2_test": 2}
    assert {"test_denoising_theory", "eps_star", "eps_star_measured"} <= set(combined.data_vars)
    with open(tmp_path / "results/gtiny/metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 2 * 2
    with open(tmp_path / "results/gtiny/optimal_noise.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 2
    with open(tmp_path / "results/claims/beyond.csv") as fh:
        beyond = list(csv.DictReader(fh))
    with open(tmp_path / "results/gtiny/claims.csv") as fh:
        own = list(csv.DictReader(fh))
    assert [r["claim"] for r in own] == [r["claim"] for r in beyond][: len(own)]
    assert "gtiny/no-noise-shrinkage" in {r["claim"] for r in own}
    for ext in ("png", "pdf"):
        assert (tmp_path / f"results/figures/gtiny.{ext}").stat().st_size > 20_000
    assert (tmp_path / "logs/aggregate/gtiny.log").read_text().count("finished") == 1

    # every stored variable has a long_name and a row in docs/python.md; CF without high findings
    from test_netcdf_compliance import cf_findings, documented_variables

    for rel in ("results/runs/gtiny/n40/seed0.nc", "results/gtiny/combined.nc",
                "results/spectra/syn_n40_test_syn_test.nc"):
        ds = store.open_dataset(tmp_path / rel)
        assert [n for n, v in ds.variables.items() if not v.attrs.get("long_name")] == [], rel
        assert sorted(set(ds.variables) - documented_variables()) == [], rel
        assert cf_findings(tmp_path / rel, tmp_path)["high"] == [], rel

    # the analysis (theory, metrics, claims) is not an input of training: editing it retrains nothing
    def planned_rules():
        return {rule for rule, _ in dry_run_jobs(snakemake(repo, tmp_path, "-n", *targets))}

    for module in ("generalisation", "generalisation_analysis"):
        edit(repo / f"src/daedyn/{module}.py")
        assert planned_rules() == {"generalisation_aggregate", "generalisation_figure", "beyond_claims"}, module
    edit(repo / "src/daedyn/heldout.py")        # the formulas the moments and the trackers use
    assert {"heldout_moment", "generalisation_train", "linear_train"} <= planned_rules()

    # configuration mistakes stop the run before any job, naming the key
    for bad, key in (({"heldout": "nope"}, "linear_experiments.lheld.heldout"),
                     ({"heldout": None}, "linear_experiments.lheld.sigma2_test")):
        wrong = {**config, "linear_experiments": {"lheld": {**config["linear_experiments"]["lheld"], **bad}}}
        proc = run_snakemake(tmp_path / "bad", wrong, "-n", check=False)
        assert proc.returncode != 0 and key in proc.stdout + proc.stderr, key


@pytest.mark.workflow
def test_default_config_plans_the_generalisation_experiment(tmp_path):
    from conftest import REPO, dry_run_jobs, load_yaml, run_snakemake

    exp = load_yaml(REPO / "config.yaml")["generalisation_experiments"]["generalisation_mnist"]
    assert not exp.get("paper", False) and exp.get("enabled", True)
    out = run_snakemake(tmp_path, None, "-n").stdout
    jobs = dry_run_jobs(out)
    train = {w for rule, w in jobs if rule == "generalisation_train"}
    assert train == {f"gen_experiment=generalisation_mnist, n={n}, seed=0" for n in exp["n_samples"]}
    assert len(exp["n_samples"]) * len(exp["eps"]) == 24     # runs: one job per N trains every ε
    moments = {w for rule, w in jobs if rule == "heldout_moment"}
    assert moments == {f"dataset=mnist, n={n}, testset=mnist_test" for n in exp["n_samples"]}
    for rule in ("generalisation_aggregate", "generalisation_figure", "beyond_claims"):
        assert any(r == rule for r, _ in jobs), rule
    assert "results/generalisation_mnist/claims.csv" in out and "results/figures/generalisation_mnist.png" in out
    # the paper-scale grids wait for `snakemake paper`
    assert "generalisation_mnist_paper" not in out and "fashion" not in out
    paper = run_snakemake(tmp_path, None, "-n", "paper").stdout
    assert "results/figures/generalisation_mnist_paper.png" in paper
    assert "results/figures/generalisation_fashion_mnist.png" in paper
