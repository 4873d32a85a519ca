"""Tests of daedyn.nonlinear_theory against independent computations: numpy Monte Carlo of every Gaussian
average, scipy's orthant probabilities, an independent implementation of the noise-free (σ = 0) equations in
the form of Refinetti & Goldt (ICML 2022), scipy's solve_ivp, and online SGD at D = 500."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import erf
from scipy.stats import multivariate_normal

from daedyn import nonlinear_averages as avg, nonlinear_online as online, nonlinear_theory as nt
from daedyn import training
from test_depth import interrupted_and_resumed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(**kw) -> nt.NonlinearTheoryConfig:
    return nt.NonlinearTheoryConfig.make(**kw)


def _random_order(K: int, P: int, D: int = 400, seed: int = 1, dec: float = 0.8, tied: bool = False) -> nt.Order:
    """The order parameters of random finite-D weights (so every covariance they give is valid)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((K, D))
    W[:, :P] += math.sqrt(D) * 0.5 * rng.standard_normal((K, P))
    A = W.T / math.sqrt(D) if tied else dec * rng.standard_normal((D, K)) / math.sqrt(D)
    return nt.order_from_weights(W, A, P)


# ---------------------------------------------------------------------------------------------
# averages


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_every_average_matches_monte_carlo(activation):
    """Each average of the ODEs against a numpy Monte Carlo over the jointly Gaussian fields (K = 4, so
    the ReLU four-unit orthant probabilities are in it), within five standard errors."""
    K, P = 4, 2
    C = nt.field_covariance(_random_order(K, P), np.array([3.0, 1.5]), 1.0, 0.7)
    rng = np.random.default_rng(7)
    N = 100_000
    z = rng.standard_normal((N, C.shape[0])) @ np.linalg.cholesky(C + 1e-12 * np.eye(C.shape[0])).T
    h, y = z[:, :K], z[:, 2 * K:3 * K]
    if activation == "erf":
        g, gp = erf(h / math.sqrt(2)), math.sqrt(2 / math.pi) * np.exp(-h * h / 2)
    else:
        g, gp = np.maximum(h, 0.0), (h > 0).astype(float)
    samples = {
        "GG": np.einsum("pk,pm->pkm", g, g), "LG": np.einsum("pu,pm->pum", z, g),
        "PY": np.einsum("pk,pk,pu->pku", gp, y, z), "PLG": np.einsum("pk,pu,pm->pkum", gp, z, g),
        "PGG": np.einsum("pk,pm,pn->pkmn", gp, g, g), "PPYY": np.einsum("pk,pl,pk,pl->pkl", gp, gp, y, y),
        "PPYG": np.einsum("pk,pl,pk,pn->pkln", gp, gp, y, g),
    }
    theory = avg.averages(C, K, activation)
    for name, s in samples.items():
        mean, se = s.mean(0), s.std(0) / math.sqrt(N)
        assert np.all(np.abs(theory[name] - mean) <= 5 * se + 1e-12), name
    # the four-point average, in chunks (N x K^4 doubles)
    total, square = 0.0, 0.0
    for part in np.array_split(np.arange(N), 8):
        s = np.einsum("pk,pl,pm,pn->pklmn", gp[part], gp[part], g[part], g[part])
        total, square = total + s.sum(0), square + (s * s).sum(0)
    mean = total / N
    se = np.sqrt(np.maximum(square / N - mean ** 2, 0) / N)
    assert np.all(np.abs(theory["PPGG"] - mean) <= 5 * se + 1e-12)


def test_orthant_probabilities_exact_cases_and_scipy():
    """P(h > 0) of four units: 1/5 for equal correlations 1/2, a product for independent pairs, and
    scipy's multivariate normal CDF (Genz) for random covariances; three units against Plackett's formula."""
    equal = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    assert abs(avg.orthant(equal) - 0.2) < 1e-13
    pairs = np.zeros((4, 4))
    pairs[:2, :2] = [[1.0, 0.6], [0.6, 1.0]]
    pairs[2:, 2:] = [[2.0, -0.9], [-0.9, 1.0]]
    p2 = lambda r: 0.25 + math.asin(r) / (2 * math.pi)  # noqa: E731
    assert abs(avg.orthant(pairs) - p2(0.6) * p2(-0.9 / math.sqrt(2))) < 1e-13
    rng = np.random.default_rng(3)
    for _ in range(3):
        a = rng.standard_normal((4, 6))
        C = a @ a.T
        ref = multivariate_normal(np.zeros(4), C, abseps=1e-9, releps=1e-9, maxpts=10 ** 6).cdf(np.zeros(4))
        assert abs(avg.orthant(C) - ref) < 1e-6
        assert abs(avg.orthant(C) - avg.orthant(C, nodes=400)) < 1e-8
        C3 = C[:3, :3]
        ref3 = multivariate_normal(np.zeros(3), C3, abseps=1e-9, releps=1e-9, maxpts=10 ** 6).cdf(np.zeros(3))
        assert abs(avg.orthant(C3) - ref3) < 1e-6


# ---------------------------------------------------------------------------------------------
# σ = 0: the noise-free equations, written independently


def _gauss_hermite(cov, n=96):
    """Nodes h (p, K) and weights (p,) of a tensor Gauss–Hermite rule for N(0, cov)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    K = cov.shape[0]
    grids = np.meshgrid(*([x] * K), indexing="ij")
    z = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.prod(np.stack(np.meshgrid(*([w] * K), indexing="ij")).reshape(K, -1), axis=0)
    return z @ np.linalg.cholesky(cov).T, weights


def noise_free_equations(op: nt.Order, lam, b, eta, gamma, activation):
    """d(Q, M, T, S, R)/dt of the plain autoencoder (σ = 0) in the form of Refinetti & Goldt (ICML 2022):
    the encoder moves along Ω a_k and Ω w_m, the decoder along Ω w_k and a_m, with coefficients that are
    expected derivatives (Stein's lemma), α_k = E g'(λ_k), E g'_k g'_m, E e_k g''_k, E g_k g_m, over the
    Ω-weighted overlaps Q1 = W Ω Wᵀ/D, R1 = Aᵀ Ω Wᵀ/√D, T1 = Aᵀ Ω A. Returned as (first-order, second-order)
    parts: η times the first, η² times the second. Averages: erf by Gauss–Hermite quadrature over the
    preactivations (the decoder fields y enter linearly, y = B λ + residual), ReLU in closed form."""
    Q, M, T, S, R = op.Q, op.M, op.T, op.S, op.R
    K = Q.shape[0]
    L = np.diag(lam)
    Q1, R1, T1 = b * Q + M @ L @ M.T, b * R + S @ L @ M.T, b * T + S @ L @ S.T
    B = R1 @ np.linalg.inv(Q1)                      # E[y | λ] = B λ
    Cres = T1 - B @ R1.T
    if activation == "erf":
        h, w = _gauss_hermite(Q1)
        g = erf(h / math.sqrt(2))
        gp = math.sqrt(2 / math.pi) * np.exp(-h * h / 2)
        gpp = -h * gp
        E = lambda f: np.tensordot(w, f, axes=1)  # noqa: E731
        alpha = E(gp)
        Gp = E(gp[:, :, None] * gp[:, None, :])
        GG = E(g[:, :, None] * g[:, None, :])
        yh = h @ B.T                                 # E[y | λ]
        egg = np.array([E(yh[:, k] * gpp[:, k]) - sum(T[k, m] * E(g[:, m] * gpp[:, k]) for m in range(K))
                        for k in range(K)])          # E[e_k g''_k]
        e = yh - g @ T.T                             # e_k up to the residual of y (mean zero, independent of λ)
        second_ee = E(e[:, :, None] * e[:, None, :] * gp[:, :, None] * gp[:, None, :]) + Cres * Gp
        second_ge = E(g[:, :, None] * (e * gp)[:, None, :])
    else:
        d = np.sqrt(np.diag(Q1))
        rho = np.clip(Q1 / np.outer(d, d), -1, 1)
        theta = np.arccos(rho)
        alpha = np.full(K, 0.5)
        Gp = (np.pi - theta) / (2 * np.pi)
        GG = np.outer(d, d) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * rho)
        # E[e_k δ(λ_k)] = p_k(0) E[e_k | λ_k = 0]: y_k has conditional mean 0, relu(λ_k) = 0, and
        # relu(λ_m) has conditional mean sqrt(var(λ_m | λ_k = 0) / 2π)
        cond = np.diag(Q1)[None, :] - Q1 ** 2 / np.diag(Q1)[:, None]
        egg = np.array([-sum(T[k, m] * math.sqrt(max(cond[k, m], 0) / (2 * np.pi)) for m in range(K) if m != k)
                        / math.sqrt(2 * np.pi * Q1[k, k]) for k in range(K)])
        second_ee = second_ge = None
    beta = -T * Gp + np.diag(egg)                    # encoder: Σ_m β_km Ω w_m / √D
    lamb = b + np.asarray(lam)
    dQ = alpha[:, None] * R1 + beta @ Q1
    first = nt.Order(
        dQ + dQ.T - 2 * gamma * Q,
        lamb * (alpha[:, None] * S + beta @ M) - gamma * M,
        (alpha[:, None] * R1.T - GG @ T) + (alpha[:, None] * R1.T - GG @ T).T - 2 * gamma * T,
        alpha[:, None] * lamb * M - GG @ S - gamma * S,
        alpha[:, None] * Q1 - GG @ R + alpha[None, :] * T1 + R1 @ beta.T - 2 * gamma * R,
    )
    if second_ee is None:
        return first, None
    zero = np.zeros_like
    second = nt.Order(b * second_ee, zero(M), b * GG, zero(S), b * second_ge)
    return first, second


def _split_orders(f, eta1=0.3, eta2=0.7):
    """(first, second) with f(η) = η·first + η²·second."""
    a, c = f(eta1).scale(1 / eta1), f(eta2).scale(1 / eta2)
    second = (c - a).scale(1 / (eta2 - eta1))
    return a - second.scale(eta1), second


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_noise_free_odes_equal_the_published_equations(activation):
    """At σ = 0 every first-order term of the ODEs equals the noise-free equations of Refinetti & Goldt to
    1e-10, and every second-order (η²) term the same average computed by quadrature (erf; ReLU's are the
    Monte Carlo test's)."""
    K, P = 3, 2
    lam, b, gamma = np.array([3.0, 1.5]), 1.2, 0.1
    op = _random_order(K, P)
    ours = _split_orders(lambda eta: nt.rhs(op, lam, b, 0.0, eta, gamma, activation=activation))
    first, second = noise_free_equations(op, lam, b, 1.0, gamma, activation)
    for name in nt.ORDER:
        assert np.max(np.abs(getattr(ours[0], name) - getattr(first, name))) < 1e-10, (name, "first order")
        if second is not None:
            assert np.max(np.abs(getattr(ours[1], name) - getattr(second, name))) < 1e-10, (name, "second order")


def test_noise_enters_only_through_the_field_covariance():
    """σ² > 0 changes the ODEs (the preactivations see noise, the targets do not) and σ² = 0 gives the
    plain autoencoder: h = h⁰, ỹ = y, s = t in the covariance."""
    K, P = 3, 2
    op = _random_order(K, P)
    C = nt.field_covariance(op, np.array([3.0, 1.5]), 1.0, 0.0)
    f = nt.field_slices(K, P)
    for a, c in (("h", "h0"), ("y", "yt"), ("s", "t")):
        assert np.allclose(C[f[a], :], C[f[c], :], rtol=0, atol=1e-14)
    noisy = nt.rhs(op, np.array([3.0, 1.5]), 1.0, 0.5, 0.5, 0.0, activation="erf")
    clean = nt.rhs(op, np.array([3.0, 1.5]), 1.0, 0.0, 0.5, 0.0, activation="erf")
    assert np.max(np.abs(noisy.Q - clean.Q)) > 1e-3


# ---------------------------------------------------------------------------------------------
# the integrator


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_rk4_agrees_with_solve_ivp_and_a_finer_step_to_1e_6(activation):
    """The RK4 solution at the default step against half that step and against scipy's DOP853 at
    rtol = atol = 1e-12."""
    K, P = 4, 2
    lam, b = np.array([4.0, 2.0]), 1.0
    op0 = _random_order(K, P, dec=0.3)
    times = [0.0, 1.0, 2.0]
    kw = dict(activation=activation, tied=False)
    rk4 = nt.integrate(op0, times, lam, b, 0.5, 0.5, 0.05, dt=0.01, **kw)

    def f(t, v):
        return nt.rhs(nt.Order.unflat(v, K, P), lam, b, 0.5, 0.5, 0.05, **kw).flat()

    ref = solve_ivp(f, (0.0, 2.0), op0.flat(), method="DOP853", rtol=1e-12, atol=1e-12, t_eval=times)
    assert ref.success
    ours = np.stack([o.flat() for o in rk4])
    assert np.max(np.abs(ours - ref.y.T)) < 1e-6
    finer = np.stack([o.flat() for o in nt.integrate(op0, times, lam, b, 0.5, 0.5, 0.05, dt=0.005, **kw)])
    assert np.max(np.abs(ours - finer)) < 1e-6


# ---------------------------------------------------------------------------------------------
# theory against online SGD


def _deviation(sim, th, name, D):
    """Worst over conditions and times of the root-mean-square over seeds of SGD − theory, times √D."""
    d = sim[name] - th["theory_" + name]
    return float(np.sqrt((d ** 2).mean("seed")).max()) * math.sqrt(D)


def _theory_beside(run):
    sim = run.dataset()
    op0 = nt.Order(*(sim[n].isel(noise_var=0, lr=0, seed=0, t=0).values for n in nt.ORDER))
    return sim, nt.order_dataset(run.config, sim["t"].values, nt.theory(run.config, sim["t"].values, op0),
                                 prefix="theory_", seed_dim=False)


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_theory_follows_online_sgd_at_d_500(activation):
    """D = 500, K = 3, 20 seeds, σ² ∈ {0, 0.5, 1}: the root-mean-square over seeds of SGD − theory of both
    errors and of the overlaps M stays below 3/√D at every recorded time (the paper-size claim checks K = 8
    and longer training)."""
    D = 500
    config = _config(activation=activation, dim=D, hidden=3, seeds=20, time=1.5, record_every=0.25,
                     noise_var=[0.0, 0.5, 1.0], lr=[0.5])
    sim, th = _theory_beside(online.train(config))
    assert sim.sizes["seed"] == 20 and sim["t"].values[-1] == pytest.approx(1.5)
    for name in ("err_denoise", "err_recon", "M"):
        assert _deviation(sim, th, name, D) < 3, name
    # the errors do move: the network learns
    assert float(th["theory_err_denoise"].isel(t=-1).max()) < float(th["theory_err_denoise"].isel(t=0).min())


def test_tied_weights_and_weight_decay_follow_online_sgd():
    D = 400
    config = _config(activation="erf", dim=D, hidden=2, seeds=10, time=1.0, record_every=0.25, noise_var=[0.5],
                     lr=[0.5], tied=True, weight_decay=0.3)
    sim, th = _theory_beside(online.train(config))
    assert np.allclose(sim["T"], sim["Q"]) and np.allclose(sim["S"], sim["M"])
    for name in ("err_denoise", "M", "Q"):
        assert _deviation(sim, th, name, D) < 3, name


# ---------------------------------------------------------------------------------------------
# data made spiked, the data engine, resuming


def test_spiked_data_has_exactly_the_spiked_covariance():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3000, 12)) * np.linspace(2.0, 0.3, 12) + 0.5
    lam, V = np.linalg.eigh(X.T @ X / len(X))
    Y, spikes, facts = online.spiked_data(X, lam[::-1], V[:, ::-1], dim=8, n_spikes=2, bulk=1.5)
    cov = Y.T @ Y / len(Y)
    assert np.allclose(Y.mean(0), 0, atol=1e-12)
    assert np.allclose(cov, 1.5 * np.eye(8) + np.diag(np.r_[spikes, np.zeros(6)]), atol=1e-10)
    top = np.linalg.eigvalsh(np.cov(X.T, bias=True))[::-1]
    assert np.allclose(spikes, 1.5 * (top[:2] / top[2:8].mean() - 1))
    assert facts["bulk_mean_variance"] == pytest.approx(top[2:8].mean())


def _data_config(**kw):
    return _config(activation="erf", source="data", dataset="toy", n_samples=600, dim=20, hidden=2, spikes=None,
                   data_spikes=2, seeds=3, time=1.2, record_every=0.1, noise_var=[0.0, 0.5], lr=[0.3],
                   eval_samples=100, **kw)


def test_data_engine_measures_its_errors_and_resumes_bit_identically(tmp_path, monkeypatch):
    """On Gaussian data the measured errors agree with the order parameters' Gaussian errors (within the
    evaluation rows' sampling error), and a data run resumes from its checkpoint to the same result."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((600, 20))
    lam, V = np.linalg.eigh(X.T @ X / 600)
    Y, spikes, _ = online.spiked_data(X, lam[::-1], V[:, ::-1], dim=20, n_spikes=2)
    config = _data_config().with_spikes(spikes)
    reference = online.train(config, X=Y)
    traj = reference.trajectory
    assert traj.sizes["t"] == 13 and int(traj["n_steps"]) == 24
    gap = np.abs(traj["err_denoise_data"] - traj["err_denoise"]).max()
    assert np.isfinite(traj["err_denoise_data"]).all() and float(gap) < 0.25
    resumed = interrupted_and_resumed(lambda ckpt: online.train(config, X=Y, checkpoint=ckpt), tmp_path / "run.ckpt",
                                      every=4, killed_at=8, monkeypatch=monkeypatch)
    assert resumed.resumed_from == [8]
    for name in traj.data_vars:
        assert np.array_equal(resumed.trajectory[name].values, traj[name].values, equal_nan=True), name
    assert np.array_equal(resumed.W1, reference.W1)


def test_configuration_checks():
    with pytest.raises(ValueError, match="need hidden <= dim"):
        _config(dim=3, hidden=4)
    with pytest.raises(ValueError, match="data_spikes"):
        _config(source="data", spikes=None, data_spikes=None)
    with pytest.raises(ValueError, match="spike variances must be set"):
        online.OnlineEngine(_data_config(), X=np.zeros((600, 20)))
    config = _config(dim=50, time=1.0, record_every=0.1)
    assert (config.block, config.epochs) == (5, 10) and config.conditions == [(0.0, 0.5), (0.5, 0.5), (1.0, 0.5)]
    assert training.log_epochs(config.epochs, config.log_every).size == 11
