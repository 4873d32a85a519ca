"""Tests of daedyn.theory against independent computations (ODE solves, brute-force GD, autograd)."""

import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.stats import ortho_group

from daedyn import theory as th


def _orth(n, seed):
    return ortho_group.rvs(n, random_state=seed) if n > 1 else np.ones((1, 1))


# ------------------------------------------------------------------------------------------
# balanced closed form
# ------------------------------------------------------------------------------------------


def test_balanced_u_matches_ode():
    """E7b vs solve_ivp of τu̇ = 2u(a − bu), over a grid that includes λ < γ, λ = γ and u0 > u*."""
    grid = np.array(
        list(
            itertools.product(
                [0.05, 0.5, 1.0, 3.0],  # λ
                [0.0, 0.5, 2.0],  # ε
                [0.0, 0.3, 0.5, 1.0],  # γ (0.5 = λ for one λ, 1.0 > λ for several)
                [1e-6, 1e-2, 0.4, 2.0],  # u0
            )
        )
    ).T
    lam, eps, gamma, u0 = grid
    lr = 0.01
    t = np.linspace(0.0, 3000.0, 61)
    a, b = lam - gamma, lam + eps

    # integrate log u for uniform relative accuracy over many decades
    def rhs(_t, z):
        return 2.0 * lr * (a - b * np.exp(z))

    sol = solve_ivp(rhs, (0, t[-1]), np.log(u0), t_eval=t, method="DOP853", rtol=1e-12, atol=1e-13)
    ref = np.exp(sol.y)  # (combos, times)
    got = th.balanced_u(t[None, :], lam[:, None], eps[:, None], gamma[:, None], lr, u0[:, None])
    assert np.max(np.abs(got - ref)) <= 1e-8
    assert np.any(lam == gamma) and np.any(lam < gamma)


def test_balanced_u_no_overflow_and_limits():
    lam = np.array([1e-3, 0.2, 1.0, 50.0, 1e4])[:, None, None]
    gamma = np.array([0.0, 0.2, 1e4 + 1.0])[None, :, None]  # includes λ = γ and λ < γ
    t = np.array([0.0, 1.0, 1e3, 1e5, 1e7])[None, None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (overflow / invalid) may escape
        u = th.balanced_u(t, lam, 0.3, gamma, 1.0, 1e-6)
    assert u.shape == (5, 3, 5)
    assert np.all(np.isfinite(u))
    assert np.allclose(u[..., 0], 1e-6, rtol=1e-14)
    ustar = th.fixed_point(lam[..., 0], 0.3, gamma[..., 0])
    learned = lam[..., 0] * np.ones_like(gamma[..., 0]) > gamma[..., 0] + 1e-2
    assert np.allclose(u[..., -1][learned], ustar[learned], rtol=1e-12)
    # decaying modes (λ < γ) approach 0; λ = γ decays algebraically as u0/(1 + 2b u0 t)
    assert u[4, 2, -1] == 0.0 or u[4, 2, -1] < 1e-300
    assert np.isclose(
        th.balanced_u(1e7, 0.2, 0.3, 0.2, 1.0, 1e-6), 1e-6 / (1 + 2 * 0.5 * 1e-6 * 1e7), rtol=1e-13
    )
    # very large λ t / τ with the a < 0 branch and tiny a of both signs stays finite and continuous
    for a in [1e-12, -1e-12]:
        v = th.balanced_u(1e7, 1.0 + a, 0.0, 1.0, 1.0, 1e-6)
        assert np.isclose(v, 1e-6 / (1 + 2 * (1 + a) * 1e-6 * 1e7), rtol=1e-6)
    with pytest.raises(ValueError):
        th.balanced_u(1.0, 1.0, u0=-1e-3)


# ------------------------------------------------------------------------------------------
# discrete maps
# ------------------------------------------------------------------------------------------


def _scalar_gd(steps, lam, eps, gamma, lr, w1, w2):
    """Plain GD on ℓ = λ/2 (1 − w1 w2)² + ε/2 (w1 w2)² + γ/2 (w1² + w2²), gradients by hand."""
    out = [(w1, w2)]
    for _ in range(steps):
        g1 = -lam * (1 - w1 * w2) * w2 + eps * w1 * w2 * w2 + gamma * w1
        g2 = -lam * (1 - w1 * w2) * w1 + eps * w1 * w1 * w2 + gamma * w2
        w1, w2 = w1 - lr * g1, w2 - lr * g2
        out.append((w1, w2))
    return np.array(out).T


def test_mode_map_equals_scalar_gd():
    rng = np.random.default_rng(1)
    cases = [
        (1.0, 0.0, 0.0, 0.01, 0.5, -1.5),
        (1.0, 5.0, 0.0, 0.01, -2.0, 1.9),
        (3.0, 0.5, 0.1, 0.1, 1e-3, 1e-3),
        (0.2, 0.0, 0.5, 0.05, 1.2, 0.7),
    ]
    cases += [
        tuple(x)
        for x in np.column_stack(
            [
                rng.uniform(0.1, 3, 6),
                rng.uniform(0, 2, 6),
                rng.uniform(0, 0.5, 6),
                rng.uniform(1e-3, 0.1, 6),
                rng.uniform(-2, 2, 6),
                rng.uniform(-2, 2, 6),
            ]
        )
    ]
    lam, eps, gamma, lr, w1, w2 = map(np.array, zip(*cases))
    W1, W2 = th.mode_map(300, lam, eps, gamma, lr, w1, w2)
    assert W1.shape == (len(cases), 301)
    for i, c in enumerate(cases):
        ref = _scalar_gd(300, *c)
        assert np.max(np.abs(W1[i] - ref[0])) <= 1e-12
        assert np.max(np.abs(W2[i] - ref[1])) <= 1e-12


def test_full_matrix_gd_equals_balanced_map():
    """Aligned balanced start, d = 6, H = 4: matrix GD on E2 gives u_i = balanced_map per mode."""
    d, H, steps, lr = 6, 4, 400, 0.05
    rng = np.random.default_rng(2)
    V, R = _orth(d, 3), _orth(H, 4)
    lam = np.sort(rng.uniform(0.2, 3.0, d))[::-1]
    Sigma = V @ np.diag(lam) @ V.T
    w = rng.uniform(0.01, 0.3, H)
    D = np.zeros((H, d))
    D[np.arange(H), np.arange(H)] = w
    for eps, gamma in [(0.0, 0.0), (0.7, 0.0), (0.0, 0.4), (0.3, 0.2)]:
        W1, W2 = R @ D @ V.T, V @ D.T @ R.T
        C = Sigma + eps * np.eye(d)
        us = [np.diag(V.T @ W2 @ W1 @ V)]
        for _ in range(steps):
            M = Sigma - W2 @ W1 @ C
            W1, W2 = W1 - lr * (-W2.T @ M + gamma * W1), W2 - lr * (-M @ W1.T + gamma * W2)
            us.append(np.diag(V.T @ W2 @ W1 @ V))
        us = np.array(us).T  # (d, steps+1)
        ref = th.balanced_map(steps, lam[:H], eps, gamma, lr, w**2)
        assert np.max(np.abs(us[:H] - ref)) <= 1e-12
        assert np.max(np.abs(us[H:])) <= 1e-12  # unrepresented modes stay 0


def test_period_two_above_eta_max():
    lam, eps, gamma = 3.0, 0.5, 0.0
    emax = th.eta_max_mode(lam, eps, gamma)
    ustar = th.fixed_point(lam, eps, gamma)
    u_ok = th.balanced_map(3000, lam, eps, gamma, 0.99 * emax, 1e-6)
    assert abs(u_ok[-1] - ustar) < 1e-12
    u_bad = th.balanced_map(3000, lam, eps, gamma, 1.01 * emax, 1e-6)
    tail = u_bad[-10:]
    assert np.all(np.abs(np.diff(tail)) > 1e-2)  # alternates
    assert np.allclose(tail[2:], tail[:-2], atol=1e-10)  # with period 2
    assert min(tail[-1], tail[-2]) < ustar < max(tail[-1], tail[-2])
    # known example: converges at η = 0.33, 2-cycle between ≈0.818 and ≈0.895 at η = 0.334
    assert abs(th.balanced_map(20000, lam, eps, 0.0, 0.33)[-1] - ustar) < 1e-9
    cyc = th.balanced_map(20000, lam, eps, 0.0, 0.334)[-2:]
    assert np.allclose(np.sort(cyc), [0.818, 0.895], atol=1e-3)
    # weight decay: the limit is 1/(λ−γ), inf for λ ≤ γ
    assert th.eta_max_mode(1.0, 0.0, 0.25) == pytest.approx(1 / 0.75)
    assert np.isinf(th.eta_max_mode(0.2, 0.0, 0.25))


def test_dae_equals_matched_wdae_map():
    lam = np.array([0.1, 0.5, 1.0, 2.5, 3.0])[:, None]
    eps = np.array([0.2, 1.0, 1.8, 5.0])[None, :]
    lr = 0.2 / (lam + eps)  # well inside both stability limits
    gamma = th.noise_to_decay(lam, eps)
    dae = th.balanced_map(500, lam, eps, 0.0, lr, 1e-4)
    wdae = th.balanced_map(500, lam, 0.0, gamma, th.matched_wdae_lr(lr, lam, eps), 1e-4)
    assert np.max(np.abs(dae - wdae)) <= 1e-12
    # the matched rate is the same fraction of each model's own per-mode limit: at equal fractions of
    # 1/λ (noise) and 1/(λ−γ) (decay) the two are step-for-step identical
    for f in (0.25, 0.5, 0.9):
        lr_f = f * th.eta_max_mode(lam, eps, 0.0)
        assert np.allclose(th.matched_wdae_lr(lr_f, lam, eps), f * th.eta_max_mode(lam, 0.0, gamma), rtol=1e-12)
        dae_f = th.balanced_map(500, lam, eps, 0.0, lr_f, 1e-4)
        wdae_f = th.balanced_map(500, lam, 0.0, gamma, f * th.eta_max_mode(lam, 0.0, gamma), 1e-4)
        assert np.max(np.abs(dae_f - wdae_f)) <= 1e-12
    assert np.allclose(th.fixed_point(lam, eps), th.fixed_point(lam, 0.0, gamma), rtol=0, atol=1e-12)
    assert np.allclose(th.decay_to_noise(lam, gamma), eps, rtol=1e-12)
    # continuous time, same η: u_WDAE(t) = u_DAE(t / (1 + ε/λ)) (E10c)
    t = np.linspace(0, 5e4, 11)[:, None, None]
    assert np.allclose(
        th.balanced_u(t, lam, 0.0, gamma, 1e-3),
        th.balanced_u(t / (1 + eps / lam), lam, eps, 0.0, 1e-3),
        rtol=0,
        atol=1e-12,
    )


# ------------------------------------------------------------------------------------------
# unbalanced solutions
# ------------------------------------------------------------------------------------------


def _e5_ode(t, lam, eps, gamma, lr, w1, w2):
    def rhs(_t, w):
        r = lam - (lam + eps) * w[0] * w[1]
        return [lr * (w[1] * r - gamma * w[0]), lr * (w[0] * r - gamma * w[1])]

    sol = solve_ivp(rhs, (0, t[-1]), [w1, w2], t_eval=t, method="LSODA", rtol=1e-12, atol=1e-14)
    return sol.y[0] * sol.y[1]


def _e11_paper(t, lam, eps, lr, w1, w2):
    """E11 as the authors' notebook writes it (artanh form), valid for c0 > 0."""
    c0 = abs(w2**2 - w1**2)
    T0 = np.tanh(np.arcsinh(2 * w1 * w2 / c0) / 2)
    kap = 1 + eps / lam
    g = np.sqrt(c0**2 * kap**2 + 4)
    Tp, Tm = (-kap * c0 + g) / 2, (-kap * c0 - g) / 2
    E = np.exp(-g * lam * t * lr)
    T = (Tp * (T0 - Tm) - Tm * (T0 - Tp) * E) / ((T0 - Tm) - (T0 - Tp) * E)
    return c0 * T / (1 - T**2)


def test_hyperbolic_u_matches_ode_random_starts():
    rng = np.random.default_rng(5)
    t = np.linspace(0, 200, 101)
    worst = 0.0
    for i, (w1, w2) in enumerate(rng.uniform(-2, 2, (100, 2))):
        eps = [0.0, 1.0, 5.0][i % 3]
        u = th.hyperbolic_u(t, 1.0, eps, 0.01, w1, w2)
        worst = max(worst, np.max(np.abs(u - _e5_ode(t, 1.0, eps, 0.0, 0.01, w1, w2))))
        assert np.max(np.abs(u - _e11_paper(t, 1.0, eps, 0.01, w1, w2))) < 1e-9
    assert worst <= 1e-6


def test_hyperbolic_u_degenerate_starts():
    t = np.linspace(0, 2000, 41)
    lam, eps, lr = 2.0, 0.5, 0.01
    # balanced: identical to E7b
    assert np.allclose(
        th.hyperbolic_u(t, lam, eps, lr, 0.3, 0.3),
        th.balanced_u(t, lam, eps, 0, lr, 0.09),
        rtol=1e-13,
        atol=0,
    )
    # nearly balanced (c0 ~ 1e-12) stays accurate: compare with the ODE
    w1, w2 = 0.3, 0.3 + 1e-12
    assert (
        np.max(np.abs(th.hyperbolic_u(t, lam, eps, lr, w1, w2) - _e5_ode(t, lam, eps, 0, lr, w1, w2))) < 1e-8
    )
    # anti-balanced (w2 = −w1): u < 0 decays to 0 and never crosses (E5 keeps w2 = −w1)
    u = th.hyperbolic_u(t, lam, eps, lr, 0.5, -0.5)
    assert np.max(np.abs(u - _e5_ode(t, lam, eps, 0, lr, 0.5, -0.5))) < 1e-10
    assert np.all(u < 0) and abs(u[-1]) < 1e-6
    # huge time: finite and at the fixed point
    assert np.isclose(th.hyperbolic_u(1e9, lam, eps, lr, -1.7, 0.2), lam / (lam + eps), rtol=1e-14)


def test_unbalanced_u_weight_decay():
    lam, eps, gamma, lr, w1, w2 = 1.0, 0.3, 0.1, 0.01, 1.8, -0.4
    t = np.linspace(0, 3000, 151)
    W1, W2, u = th.unbalanced_u(t, lam, eps, gamma, lr, w1, w2)
    # independent: the E18 reduced form τu̇ = sqrt(c(t)² + 4u²)(λ − ξu) − 2γu, c(t) = c0 e^{−2γt/τ}, Radau
    c0 = w1**2 - w2**2

    def rhs(s, y):
        c = c0 * np.exp(-2 * gamma * s * lr)
        return [lr * (np.sqrt(c * c + 4 * y[0] ** 2) * (lam - (lam + eps) * y[0]) - 2 * gamma * y[0])]

    ref = solve_ivp(rhs, (0, t[-1]), [w1 * w2], t_eval=t, method="Radau", rtol=1e-12, atol=1e-14).y[0]
    assert np.max(np.abs(u - ref)) <= 1e-8
    assert np.max(np.abs((W1**2 - W2**2) - c0 * np.exp(-2 * gamma * t * lr))) <= 1e-9
    assert abs(u[-1] - th.fixed_point(lam, eps, gamma)) < 1e-3
    # γ = 0: agrees with the closed form; unsorted t and broadcast parameters are handled
    ts = np.array([500.0, 0.0, 100.0])
    _, _, u0 = th.unbalanced_u(ts, np.array([1.0, 2.0]), 0.5, 0.0, 0.01, -1.2, 0.9)
    assert u0.shape == (2, 3)
    for i, lm in enumerate([1.0, 2.0]):
        assert np.allclose(u0[i], th.hyperbolic_u(ts, lm, 0.5, 0.01, -1.2, 0.9), rtol=0, atol=1e-10)


def test_vector_mode_map():
    lam, eps, gamma = np.array([0.5, 1.0, 3.0]), 0.4, 0.1
    lr = 0.2 / lam
    # aligned balanced start reduces to balanced_map
    assert (
        np.max(
            np.abs(
                th.vector_mode_map(300, lam, eps, gamma, lr, 1e-5, 0.0)
                - th.balanced_map(300, lam, eps, gamma, lr, 1e-5)
            )
        )
        <= 1e-15
    )
    # H = 1 (scalar network): identical to mode_map for unbalanced, sign-flipped starts
    w1, w2 = np.array([1.5, -0.7, 0.2]), np.array([-0.3, 1.1, 0.2])
    W1, W2 = th.mode_map(300, lam, eps, gamma, lr, w1, w2)
    u = th.vector_mode_map(300, lam, eps, gamma, lr, (w1 + w2) ** 2 / 4, (w1 - w2) ** 2 / 4)
    assert np.max(np.abs(u - W1 * W2)) <= 1e-12
    # H = 5 vectors: brute-force GD on the per-mode 2-vector loss
    a, b = np.random.default_rng(7).normal(0, 0.3, (2, 5))
    lm, et = 2.0, 0.05
    ref = [a @ b]
    for _ in range(200):
        r = lm - (lm + eps) * (a @ b)
        a, b = a + et * (b * r - gamma * a), b + et * (a * r - gamma * b)
        ref.append(a @ b)
    a, b = np.random.default_rng(7).normal(0, 0.3, (2, 5))
    u = th.vector_mode_map(200, lm, eps, gamma, et, np.sum((a + b) ** 2) / 4, np.sum((a - b) ** 2) / 4)
    assert np.max(np.abs(u - np.array(ref))) <= 1e-12


def test_mode_state_from_weights():
    rng = np.random.default_rng(8)
    d, H = 7, 3
    W1, W2, V = rng.normal(size=(H, d)), rng.normal(size=(d, H)), _orth(d, 9)[:, :4]
    x0, y0 = th.mode_state_from_weights(W1, W2, V)
    assert x0.shape == (4,) and np.all(x0 >= 0) and np.all(y0 >= 0)
    assert np.allclose(x0 - y0, np.diag(V.T @ W2 @ W1 @ V), rtol=1e-12, atol=1e-12)
    # 16 x0 y0 = (‖a‖² − ‖b‖²)² + 4(‖a‖²‖b‖² − (a·b)²): the conserved quantity of the vector mode
    i = 2
    a, b = W1 @ V[:, i], W2.T @ V[:, i]
    assert np.isclose(
        16 * x0[i] * y0[i], (a @ a - b @ b) ** 2 + 4 * ((a @ a) * (b @ b) - (a @ b) ** 2), rtol=1e-12
    )


# ------------------------------------------------------------------------------------------
# network stability limit
# ------------------------------------------------------------------------------------------


def _aligned_minimum(lam, eps, gamma, H, seed=0):
    """The loss E2 of the full network as a function of the flat weights (W₁, W₂), and the weights of a
    randomly rotated aligned balanced minimum; checks that they are a critical point."""
    d = lam.size
    V, R = _orth(d, seed + 10), _orth(H, seed + 11)
    p = min(H, d)
    D = np.zeros((H, d))
    D[np.arange(p), np.arange(p)] = np.sqrt(th.fixed_point(lam[:p], eps, gamma))
    W1, W2 = R @ D @ V.T, V @ D.T @ R.T
    S = torch.tensor(V @ np.diag(lam) @ V.T)
    I = torch.eye(d, dtype=torch.float64)

    def loss(theta):
        A, B = theta[: H * d].reshape(H, d), theta[H * d :].reshape(d, H)
        E = I - B @ A
        return (
            0.5 * torch.trace(E @ S @ E.T)
            + 0.5 * eps * torch.sum((B @ A) ** 2)
            + 0.5 * gamma * (torch.sum(A**2) + torch.sum(B**2))
        )

    theta = torch.tensor(np.concatenate([W1.ravel(), W2.ravel()]))
    theta_g = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(theta_g), theta_g)
    assert g.abs().max() < 1e-12  # it is a critical point
    return loss, theta


def _dense_hessian_top(lam, eps, gamma, H, seed=0):
    """Top eigenvalue of the autograd Hessian of E2 at a randomly rotated aligned balanced minimum."""
    loss, theta = _aligned_minimum(lam, eps, gamma, H, seed)
    Hm = torch.autograd.functional.hessian(loss, theta).numpy()
    return np.linalg.eigvalsh((Hm + Hm.T) / 2)[-1]


def _lanczos_hessian_top(lam, eps, gamma, H, seed=0):
    """The same top eigenvalue by Lanczos (scipy eigsh) on Hessian-vector products of the full loss
    (double backward through autograd); the Hessian is never formed."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    loss, theta = _aligned_minimum(lam, eps, gamma, H, seed)
    theta = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(theta), theta, create_graph=True)

    def hvp(v):
        (hv,) = torch.autograd.grad(g, theta, torch.as_tensor(np.ravel(v)), retain_graph=True)
        return hv.numpy()

    op = LinearOperator((theta.numel(),) * 2, matvec=hvp, dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", tol=1e-14, v0=np.ones(theta.numel()))[0][0])


@pytest.mark.parametrize("H", [3, 5, 7])
def test_stability_limit_vs_dense_hessian(H):
    rng = np.random.default_rng(H)
    lam = np.sort(rng.uniform(0.05, 3.0, 5))[::-1]
    for eps, gamma in [(0.0, 0.3), (0.0, 1.0), (0.4, 0.2), (0.7, 0.0)]:  # γ = 1 leaves some λ ≤ γ
        ref = _dense_hessian_top(lam, eps, gamma, H)
        assert abs(th.hessian_top_eigenvalue(lam, eps, gamma, H) - ref) <= 1e-9
        assert abs(th.stability_limit(rng.permutation(lam), eps, gamma, hidden=H) - 2 / ref) <= 1e-6


def test_stability_limit_dae_and_paper_example():
    rng = np.random.default_rng(3)
    lam = np.sort(rng.uniform(0.01, 3.0, 40))[::-1]
    lam[0] = 3.0
    for eps in [0.4, 1.5]:
        for H in [10, 40]:
            assert th.stability_limit(lam, eps, 0.0, hidden=H) == pytest.approx(1 / 3.0, rel=1e-12)
    # known example (E16): top eigenvalue 5.855 (vs 2(λ1−γ) = 5.8) at λ1 = 3, γ = 0.1 (second mode λ = 2)
    top = th.hessian_top_eigenvalue([3.0, 2.0, 1.0], 0.0, 0.1)
    assert round(top, 3) == 5.855
    assert th.stability_limit([3.0, 2.0, 1.0], 0.0, 0.1) < th.eta_max_mode(3.0, 0.0, 0.1)


@pytest.mark.parametrize(
    "lam, eps, gamma, H, own_mode_limit",
    [
        ([3.0, 2.0, 1.0, 0.5, 0.2, 0.1], 0.0, 0.0, 4, True),  # AE
        ([3.0, 2.0, 1.0, 0.5, 0.2, 0.1], 0.6, 0.0, 8, True),  # DAE, H > d
        ([6.0, 1.5, 1.0, 0.5, 0.2, 0.1], 0.3, 0.2, 4, True),  # WDAE, λ₁ far above λ₂: exactly 1/(λ₁ − γ)
        ([3.0, 2.0, 1.0, 0.5, 0.2, 0.1], 0.0, 0.1, 4, False),  # WDAE, λ₂ near λ₁: a cross-mode block curves more
        ([3.0, 2.8, 1.0, 0.5, 0.2, 0.1], 0.2, 1.2, 3, False),  # WDAE, γ a sizeable fraction of λ₁
    ],
)
def test_stability_limit_is_two_over_the_lanczos_top_hessian_eigenvalue(lam, eps, gamma, H, own_mode_limit):
    """η_max = 2/h_max, h_max the top eigenvalue of the Hessian of the full loss E2 at the fixed point:
    full-batch GD, w ← w − η∇L, is linearly stable there iff η < 2/h_max. For the AE and DAE this is
    1/λ₁; for the WDAE it is at most 1/(λ₁ − γ), and equal to it only when the top mode curves most."""
    lam = np.asarray(lam)
    top = _lanczos_hessian_top(lam, eps, gamma, H, seed=H)
    limit = th.stability_limit(lam, eps, gamma, hidden=H)
    assert limit == pytest.approx(2.0 / top, rel=1e-8)
    if gamma == 0:
        assert limit == pytest.approx(1.0 / lam[0], rel=1e-8)
    else:
        assert limit <= 1.0 / (lam[0] - gamma) * (1 + 1e-12)
        assert (limit == pytest.approx(1.0 / (lam[0] - gamma), rel=1e-8)) == own_mode_limit


def test_stability_limit_mnist_size_is_fast():
    import time

    lam = np.geomspace(50.0, 1e-4, 784)
    t0 = time.perf_counter()
    e = th.stability_limit(lam, 0.0, 0.5, hidden=256)
    assert time.perf_counter() - t0 < 3.0
    assert 0 < e <= 1 / (50.0 - 0.5) * (1 + 1e-12)


# ------------------------------------------------------------------------------------------
# learning times
# ------------------------------------------------------------------------------------------


def _brute_steps(f, lam, eps, gamma, lr, u0, cap=10**6):
    a, b = lam - gamma, lam + eps
    target = f * a / b
    u, k = u0, 0
    while u < target:
        u = u * (1 + lr * (a - b * u)) ** 2
        k += 1
        if k > cap:
            return np.inf
    return k


def test_steps_to_fraction_exact_and_continuous():
    cases = list(
        itertools.product(
            [0.5, 3.0],
            [(0.0, 0.0), (0.5, 0.0), (0.0, 0.2), (1.0, 0.1)],
            [0.01, 0.05, 0.1],
            [0.5, 0.9, 0.99],
            [1e-6, 1e-3],
        )
    )
    for lam, (eps, gamma), frac, f, u0 in cases:
        lr = frac * th.eta_max_mode(lam, eps, gamma)
        k = th.steps_to_fraction(f, lam, eps, gamma, lr, u0, exact=True)
        assert k == _brute_steps(f, lam, eps, gamma, lr, u0)
        tf = th.steps_to_fraction(f, lam, eps, gamma, lr, u0)
        tc = th.steps_to_fraction(f, lam, eps, gamma, lr, u0, discrete_correction=True)
        # the corrected prediction brackets the first-passage step: k - 1 < tc ≲ k
        assert k - 1 - 0.1 < tc < k + 0.1
        # E19: plain E10b within 2 steps when ln(u_f/u0)/4 is small (u0 = 1e-3, f = 0.9) ...
        if u0 == 1e-3 and f == 0.9:
            assert abs(tf - k) <= 2
        # ... in general E10b lags by ≈ ln(u_f/u0)/4 + ln((a − b u_f)/(a − b u0))/2 steps
        assert abs((k - tf) - (tc - tf)) < 1.1
    # the offset does not vanish as η → 0 (u0 = 1e-6, f = 0.5: ≈ 3.3 steps)
    lr = 1e-3 / 3.0
    gap = th.steps_to_fraction(0.5, 3.0, 0, 0, lr, 1e-6, exact=True) - th.steps_to_fraction(
        0.5, 3.0, 0, 0, lr, 1e-6
    )
    assert 2.5 < gap < 4.5
    # continuous time equals the time at which balanced_u hits f·u*
    tf = th.steps_to_fraction(0.7, 1.3, 0.4, 0.2, 0.01, 1e-5)
    assert th.balanced_u(tf, 1.3, 0.4, 0.2, 0.01, 1e-5) == pytest.approx(
        0.7 * th.fixed_point(1.3, 0.4, 0.2), rel=1e-12
    )
    # never learned, already there, not reached within the cap
    assert np.isinf(th.steps_to_fraction(0.5, 0.2, 0.0, 0.3, 0.1, 1e-6))
    assert np.isinf(th.steps_to_fraction(0.5, 0.2, 0.0, 0.3, 0.1, 1e-6, exact=True))
    assert th.steps_to_fraction(0.5, 1.0, 0.0, 0.0, 0.1, 0.8, exact=True) == 0
    assert th.steps_to_fraction(0.5, 1.0, 0.0, 0.0, 0.1, 0.8) == 0
    assert np.isinf(th.steps_to_fraction(0.9, 1.0, 0.0, 0.0, 1e-4, 1e-6, exact=True, max_steps=100))
    # vectorised
    ks = th.steps_to_fraction(0.9, np.array([3.0, 1.0, 0.1]), 0.0, 0.2, 0.01, 1e-6, exact=True)
    assert ks[0] == _brute_steps(0.9, 3.0, 0, 0.2, 0.01, 1e-6) and ks[1] == _brute_steps(
        0.9, 1.0, 0, 0.2, 0.01, 1e-6
    )
    assert np.isinf(ks[2])


def test_paper_half_times():
    """Half-time table (claim 6) (u0 = 1e-6, τ = 1000) from E10b and by root-finding E7b."""
    for lam, eps, ae, dae, wdae in [(1.0, 1.0, 6908, 6561, 13122), (0.5, 1.8, 13816, 12289, 56531)]:
        gamma = th.noise_to_decay(lam, eps)
        got = [
            th.steps_to_fraction(0.5, lam, 0, 0, 1e-3),
            th.steps_to_fraction(0.5, lam, eps, 0, 1e-3),
            th.steps_to_fraction(0.5, lam, 0, gamma, 1e-3),
        ]
        assert np.allclose(got, [ae, dae, wdae], atol=0.5)


# ------------------------------------------------------------------------------------------
# learning rates, conventions, xarray
# ------------------------------------------------------------------------------------------


def _per_mode_hessian_at_one(lam, eps, gamma, h=1e-4):
    def ell(w):
        u = w[0] * w[1]
        return lam / 2 * (1 - u) ** 2 + eps / 2 * u**2 + gamma / 2 * (w[0] ** 2 + w[1] ** 2)

    Hm = np.zeros((2, 2))
    e = np.eye(2) * h
    w = np.ones(2)
    for i in range(2):
        for j in range(2):
            Hm[i, j] = (
                ell(w + e[i] + e[j]) - ell(w + e[i] - e[j]) - ell(w - e[i] + e[j]) + ell(w - e[i] - e[j])
            ) / (4 * h * h)
    return np.linalg.eigvalsh(Hm)[-1]


def test_learning_rate_formulas():
    for lam, eps in [(1.0, 0.5), (2.5, 3.0)]:
        gamma = th.noise_to_decay(lam, eps)
        assert th.optimal_lr_dae(lam, eps) == pytest.approx(
            1 / _per_mode_hessian_at_one(lam, eps, 0.0), rel=1e-6
        )
        assert th.optimal_lr_wdae(lam, gamma) == pytest.approx(
            1 / _per_mode_hessian_at_one(lam, 0.0, gamma), rel=1e-6
        )
        # E13: ratio equals u*_DAE, and the notebook WDAE rate is slower by (2λ+2γ)/(2λ+γ)
        assert th.optimal_lr_dae(lam, eps) / th.optimal_lr_wdae(lam, gamma) == pytest.approx(
            lam / (lam + eps)
        )
        assert th.optimal_lr_wdae(lam, gamma) / th.notebook_lr_wdae(lam, gamma) == pytest.approx(
            (2 * lam + 2 * gamma) / (2 * lam + gamma)
        )
        # key identity: DAE at c·η*_DAE and WDAE at c·η*_WDAE follow identical continuous trajectories
        t = np.linspace(0, 2e4, 21)
        assert np.allclose(
            th.balanced_u(t, lam, eps, 0, 0.005 * th.optimal_lr_dae(lam, eps)),
            th.balanced_u(t, lam, 0, gamma, 0.005 * th.optimal_lr_wdae(lam, gamma)),
            atol=1e-12,
        )


def test_n_scaled_convention():
    n, lam, eps, gamma, lr = 50000, 0.7, 0.5, 0.1, 0.01
    lam_s, eps_s, gamma_s, tau_s = th.to_n_scaled(n, lam, eps, gamma, lr)
    assert np.allclose(th.from_n_scaled(n, lam_s, eps_s, gamma_s, tau_s), (lam, eps, gamma, lr), rtol=1e-15)
    # dynamics.py formula in N-scaled units (first form of E7b) gives the same curve
    t = np.linspace(0, 5000, 11)
    a_s, b_s, u0 = lam_s - gamma_s, lam_s + eps_s, 1e-6
    e = np.exp(2 * a_s * t / tau_s)
    u_s = a_s * e / (b_s * (e - 1) + a_s / u0)
    assert np.allclose(th.balanced_u(t, lam, eps, gamma, lr, u0), u_s, rtol=1e-12, atol=0)


def test_mode_curves():
    lam = np.array([3.0, 1.0, 0.2])
    da = th.mode_curves(lam, np.arange(0, 501, 50), eps=0.5, gamma=0.3, lr=0.05, u0=1e-4)
    assert da.dims == ("mode", "epoch") and da.shape == (3, 11)
    assert list(da.mode.values) == [0, 1, 2] and np.array_equal(da.lam.values, lam)
    assert da.attrs == {"method": "closed", "eps": 0.5, "gamma": 0.3, "lr": 0.05, "u0": 1e-4}
    assert all(isinstance(v, (str, int, float)) for v in da.attrs.values())
    assert np.allclose(
        da.sel(mode=1).values, th.balanced_u(da.epoch.values, 1.0, 0.5, 0.3, 0.05, 1e-4), atol=0
    )
    dm = th.mode_curves(lam, np.array([0, 7, 100]), eps=0.5, gamma=0.3, lr=0.05, u0=1e-4, method="map")
    assert dm.attrs["method"] == "map"
    assert np.array_equal(dm.values, th.balanced_map(100, lam, 0.5, 0.3, 0.05, 1e-4)[:, [0, 7, 100]])
    with pytest.raises(ValueError):
        th.mode_curves(lam, np.array([0.5, 1.0]), method="map")
    # per-mode ε goes to a coord, its attr to JSON
    dp = th.mode_curves(lam, [0, 10], eps=np.array([0.1, 0.2, 0.3]))
    assert np.allclose(dp.eps.values, [0.1, 0.2, 0.3]) and isinstance(dp.attrs["eps"], str)
