"""Tests of daedyn.beyond against independent references: brute-force GD, train_sampled, lstsq."""

import dataclasses

import numpy as np
import pytest

from daedyn import beyond, data, linear, spectrum, theory, training
from daedyn.runconfig import LinearConfig, LrNormalisedConfig, SampledConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------
# learning-rate-normalised comparison
# ------------------------------------------------------------------------------------------


def test_plan_rates_gammas_and_errors():
    lam = np.array([3.0, 1.0, 0.4, 0.1])
    plan = beyond.plan_lr_normalised(lam, eps=0.5, fractions=[0.25, 0.9], matched_modes=[1, 2], gammas=[0.05],
                                     hidden=3, x0=1e-6, epoch_budget=1250)
    assert [r.name for r in plan] == ["dae_f0.25", "wdae_k1_f0.25", "wdae_k2_f0.25", "wdae_g0.05_f0.25",
                                      "dae_f0.9", "wdae_k1_f0.9", "wdae_k2_f0.9", "wdae_g0.05_f0.9"]
    for r in plan:
        assert r.lr == pytest.approx(r.fraction * theory.stability_limit(lam, r.eps, r.gamma, 3), rel=1e-14)
        assert r.epochs <= np.ceil(1250 / r.fraction)
        assert r.baseline == f"dae_f{r.fraction:g}"
        if r.matched_mode >= 0:  # equal plateaus on the matched mode
            k = r.matched_mode
            assert theory.fixed_point(lam[k], 0.0, r.gamma) == pytest.approx(theory.fixed_point(lam[k], 0.5))
    assert plan[0].eta_max == pytest.approx(1 / 3.0)  # the DAE limit is 1/λ₁ whatever ε
    # epochs: enough for the slowest compared mode (modes 0, 1, 2) to reach 99 % of u*
    for r in plan:
        steps = theory.steps_to_fraction(0.99, lam[:3], r.eps, r.gamma, r.lr, 1e-6, exact=True)
        assert np.nanmax(steps[np.isfinite(steps)]) <= r.epochs
    with pytest.raises(ValueError, match="fractions"):
        beyond.plan_lr_normalised(lam, eps=0.5, fractions=[1.0])
    with pytest.raises(ValueError, match="matched_modes"):
        beyond.plan_lr_normalised(lam, eps=0.5, fractions=[0.5], matched_modes=[3], hidden=3)
    with pytest.raises(ValueError, match="gammas"):
        beyond.plan_lr_normalised(lam, eps=0.5, fractions=[0.5], gammas=[3.0])
    with pytest.raises(ValueError, match="duplicate"):
        beyond.plan_lr_normalised(lam, eps=0.5, fractions=[0.5], matched_modes=[1, 1])


def test_one_mode_plan_gives_identical_maps():
    """A one-mode network: the planned DAE(ε) and WDAE(γ of equal plateau) runs are the same map."""
    for lam, eps in [(1.0, 0.3), (2.5, 1.8), (0.5, 0.2)]:
        for f in (0.25, 0.5, 0.9):
            dae, wdae = beyond.plan_lr_normalised([lam], eps=eps, fractions=[f], matched_modes=[0], hidden=1)
            assert wdae.lr == pytest.approx(theory.matched_wdae_lr(dae.lr, lam, eps), rel=1e-12)
            ud = theory.balanced_map(800, lam, eps, 0.0, dae.lr, 1e-6)
            uw = theory.balanced_map(800, lam, 0.0, wdae.gamma, wdae.lr, 1e-6)
            assert np.max(np.abs(ud - uw)) <= 1e-12


@pytest.fixture(scope="module")
def two_modes():
    """DAE vs WDAE on a 2-mode spectrum, trained by the exact engine in float64, every step recorded."""
    lam, V = np.array([2.0, 0.5]), np.linalg.qr(np.random.default_rng(3).standard_normal((2, 2)))[0]
    x0, y0 = beyond.initial_mode_state(2, 3, V, [0, 1], init_std=1e-3, seed=0)
    config = _lr_config(fractions=[0.5, 0.9], matched_modes=[1], gammas=[0.1, 0.6])
    plan = beyond.lr_normalised_plan(config, lam, V)
    assert plan == beyond.plan_lr_normalised(lam, eps=0.5, fractions=[0.5, 0.9], matched_modes=[1], gammas=[0.1, 0.6],
                                             hidden=3, modes=[0, 1], x0=x0, y0=y0, epoch_budget=config.epoch_budget)
    ds = beyond.run_lr_normalised(config, lam, V)
    return plan, ds, beyond.lr_normalised_comparison(ds)


def _lr_config(**kw):
    """The two-mode comparison: H = 3, ε = 0.5, float64, every step recorded."""
    return LrNormalisedConfig.make(**{"hidden": 3, "eps": 0.5, "modes": [0, 1], "init_std": 1e-3, "seed": 0,
                                      "dtype": "float64", "device": "cpu", "log_every": 1, **kw})


def test_measured_step_ratio_matches_prediction(two_modes):
    plan, ds, comp = two_modes
    ok = comp["compared"]
    # γ = 0.6 > λ₂ = 0.5: the WDAE never learns mode 1, so there is no plateau to compare
    assert not ok.sel(pair="wdae_g0.6_f0.5", mode=1) and ok.sel(pair="wdae_g0.6_f0.5", mode=0)
    assert int(ok.sum()) == 2 * 3 - 1 + 2 * 3 - 1
    for q in (50, 90):
        for model in ("dae", "wdae"):
            meas, pred = comp[f"t{q}_{model}_measured"], comp[f"t{q}_{model}_predicted"]
            assert float(np.abs(meas - pred).where(ok).max()) <= 2.0
        # the measured ratio, in steps of the WDAE run, is the predicted one
        gap = np.abs(comp[f"ratio{q}_measured"] - comp[f"ratio{q}_predicted"]) * comp[f"t{q}_dae_measured"]
        assert float(gap.where(ok).max()) <= 2.0
    # the top mode is learned at the same pace, mode 1 more slowly with decay, as the curve says
    r = comp["ratio90_measured"]
    assert np.all(np.abs(r.sel(mode=0) - 1) < 0.03)
    assert np.all(r.sel(mode=1).where(ok.sel(mode=1), 2.0) > 1.15)
    assert np.allclose(r.sel(mode=1).where(ok.sel(mode=1), drop=True),
                       comp["ratio_curve"].sel(mode=1).where(ok.sel(mode=1), drop=True), rtol=0.05)


def test_step_counts_against_brute_force_gd(two_modes):
    """The measured crossing is the first step of full-matrix GD (written here) above q × its last value."""
    plan, ds, comp = two_modes
    lam = np.array([2.0, 0.5])
    V = np.linalg.qr(np.random.default_rng(3).standard_normal((2, 2)))[0]
    Sigma = V @ np.diag(lam) @ V.T
    W1_0, W2_0 = training.init_weights(2, 3, init_std=1e-3, seed=0)
    for r in plan[:3]:
        W1, W2 = W1_0.copy(), W2_0.copy()
        us = []
        for _ in range(r.epochs + 1):
            us.append(np.diag(V.T @ W2 @ W1 @ V))
            M = Sigma - W2 @ W1 @ (Sigma + r.eps * np.eye(2))
            W1, W2 = W1 + r.lr * (W2.T @ M - r.gamma * W1), W2 + r.lr * (M @ W1.T - r.gamma * W2)
        us = np.array(us)
        first = np.argmax(us >= 0.9 * us[-1], axis=0)  # first integer step at or above 90 %
        if r.model == "DAE":  # a DAE run is every pair's baseline: take the first pair
            t90 = comp["t90_dae_measured"].sel(pair=comp["pair"][comp["baseline"] == r.name][0])
        else:
            t90 = comp["t90_wdae_measured"].sel(pair=r.name)
        assert np.all(np.ceil(t90.values) == first)


def test_crossings_use_each_runs_own_records(two_modes):
    """Runs of different lengths share a union epoch grid padded with NaN; each crossing is still
    interpolated between that run's own neighbouring records."""
    plan, _, _ = two_modes
    lam, V = np.array([2.0, 0.5]), np.linalg.qr(np.random.default_rng(3).standard_normal((2, 2)))[0]
    config = _lr_config(fractions=[0.5], matched_modes=[1], log_every=4)
    assert [r.name for r in beyond.lr_normalised_plan(config, lam, V)] == [r.name for r in plan[:2]]
    ds = beyond.run_lr_normalised(config, lam, V)
    expected = {}
    for run in ("dae_f0.5", "wdae_k1_f0.5"):
        u = ds["u"].sel(run=run).dropna("epoch")
        t, v = u["epoch"].values, u.values
        level = 0.5 * v[-1]
        i = np.argmax(v >= level, axis=0)
        expected[run] = t[i - 1] + (level - v[i - 1, [0, 1]]) / (v[i, [0, 1]] - v[i - 1, [0, 1]]) * (t[i] - t[i - 1])
    # another run's record (a NaN row for these two) right before every crossing
    extra = np.concatenate([np.floor(e) - 1 for e in expected.values()]).astype(int)
    padded = ds.reindex(epoch=np.union1d(ds["epoch"].values, extra))
    for grid in (ds, padded):
        comp = beyond.lr_normalised_comparison(grid)
        assert np.allclose(comp["t50_dae_measured"].sel(pair="wdae_k1_f0.5"), expected["dae_f0.5"], rtol=1e-12)
        assert np.allclose(comp["t50_wdae_measured"].sel(pair="wdae_k1_f0.5"), expected["wdae_k1_f0.5"], rtol=1e-12)


def test_rows_claims_and_figure(two_modes, tmp_path):
    from daedyn.figures import style
    from daedyn.figures.beyond import plot_lr_normalised

    _, _, comp = two_modes
    rows = beyond.lr_normalised_rows(comp)
    assert len(rows) == comp.sizes["pair"] * comp.sizes["mode"]
    assert {"t50_dae_measured", "t90_wdae_predicted", "ratio90_measured", "ratio_curve"} <= set(rows[0])
    claims = beyond.lr_normalised_claims(comp, "synthetic")
    assert [c["verdict"] for c in claims] == ["confirmed"] * 3
    assert "mode 1 1.7" in claims[2]["measured"]  # γ of mode 1's plateau: about 1.7× the steps
    # a wrong measurement is caught: swap the models' measured times
    bad = comp.copy()
    bad["t90_wdae_measured"], bad["t90_dae_measured"] = comp["t90_dae_measured"], comp["t90_wdae_measured"]
    bad["ratio90_measured"] = 1 / comp["ratio90_measured"]
    verdicts = [c["verdict"] for c in beyond.lr_normalised_claims(bad)]
    assert verdicts[1] != "confirmed" and verdicts[2] == "refuted"
    fig = plot_lr_normalised(comp, title="synthetic")
    assert len(fig.axes) == 2
    written = style.save(fig, tmp_path / "lr")
    assert all(p.stat().st_size > 1000 for p in written)


# ------------------------------------------------------------------------------------------
# sampled vs marginalised noise
# ------------------------------------------------------------------------------------------


def _synthetic(n, lam, seed=1):
    X = data.matrix(data.synthetic(n, len(lam), np.asarray(lam, float), seed=seed))
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    return X, lam, V


def _sampled(X, **kw) -> LinearConfig:
    """A sampled-noise linear run configuration in float64 on the CPU."""
    return LinearConfig.make(**{"engine": "sampled", "n_samples": X.shape[0], "dtype": "float64", "device": "cpu",
                                **kw})


@pytest.mark.parametrize("batch_size", [None, 16, 10])
def test_batched_engine_reproduces_train_sampled(batch_size):
    X, lam, V = _synthetic(64, [3, 2, 1, 0.5, 0.25, 0.1])
    seeds = [0, 3, 5]
    config = _sampled(X, hidden=4, lr=0.05, epochs=10, eps=0.3, gamma=0.01, batch_size=batch_size, init_std=0.1,
                      log_every=5)
    run = beyond.train_seed_batch(X, lam, V, config, seeds=seeds, modes=range(6))
    u = run.trajectory["u"]
    assert list(u["epoch"].values) == [0, 5, 10]
    for j, s in enumerate(seeds):
        ref = linear.train_sampled(X, dataclasses.replace(config, seed=s), lam=lam, V=V)
        assert np.max(np.abs(ref.trajectory["u"].values - u.sel(seed=s).values)) <= 1e-12
        assert np.max(np.abs(ref.W1 - run.W1[j])) <= 1e-12
        assert np.max(np.abs(ref.W2 - run.W2[j])) <= 1e-12
        assert np.allclose(ref.trajectory["loss"].values, run.trajectory["loss"].sel(seed=s).values, rtol=1e-10)
    assert int(run.trajectory["n_steps"]) == 10 * (1 if batch_size is None else -(-64 // batch_size))


@pytest.mark.parametrize("make", ["batched", "fixed"])
def test_interrupted_run_resumes_bit_identically(make, tmp_path, monkeypatch):
    """A run killed mid-way resumes from the driver's checkpoint (weights, records, generators) and
    ends exactly like an uninterrupted run."""
    X, lam, V = _synthetic(40, [2, 1, 0.5])
    engine = beyond.SeedBatchSampledEngine if make == "batched" else beyond.FixedCopyEngine

    def train(checkpoint=None):
        if make == "batched":
            config = _sampled(X, hidden=2, lr=0.05, epochs=9, eps=0.3, batch_size=8, init_std=0.1, log_every=2)
            return beyond.train_seed_batch(X, lam, V, config, seeds=[1, 2], modes=[0, 1], checkpoint=checkpoint)
        config = _sampled(X, engine="datapass", hidden=2, lr=0.05, epochs=9, eps=0.3, batch_size=8, init_std=0.1,
                          log_every=2, seed=3)
        return beyond.train_fixed_copy(X, lam, V, config, checkpoint=checkpoint)

    whole = train()
    step = engine.step

    def killed_at_6(self, epoch):
        if epoch == 6:
            raise KeyboardInterrupt
        step(self, epoch)

    monkeypatch.setattr(engine, "step", killed_at_6)
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(training.Checkpoint(path, 4))
    assert path.exists()
    monkeypatch.setattr(engine, "step", step)
    resumed = train(training.Checkpoint(path, 4))
    assert resumed.resumed_from == [4] and not path.exists()
    for name in whole.trajectory.data_vars:
        np.testing.assert_array_equal(resumed.trajectory[name].values, whole.trajectory[name].values)
    np.testing.assert_array_equal(resumed.W1, whole.W1)


def test_mean_over_200_seeds_follows_marginalised_recurrence():
    X, lam, V = _synthetic(256, [1.0, 0.6, 0.35, 0.2])
    H, eps, lr, steps = 4, 0.3, 0.25, 120
    W1, W2 = training.init_weights(4, H, init_std=0.05, seed=7)
    ref = linear.train_exact(lam, V, hidden=H, lr=lr, epochs=steps, eps=eps, W1=W1, W2=W2, log_every=1,
                             dtype="float64", device="cpu")
    config = _sampled(X, hidden=H, lr=lr, epochs=steps, eps=eps, log_every=10)
    u = beyond.train_seed_batch(X, lam, V, config, seeds=range(200), modes=range(4), W1=W1, W2=W2).trajectory["u"]
    cmp = beyond.mean_vs_marginalised(u, ref.trajectory["u"].sel(epoch=u["epoch"]).drop_vars("lam"))
    z = cmp["z"].isel(epoch=slice(1, None))  # epoch 0: no noise yet, se = 0
    assert float(np.abs(z).max()) <= 3.0
    assert float(cmp["se"].isel(epoch=-1).min()) > 0  # the noise does spread the seeds
    # the comparison has power: a reference 5 standard errors off fails it
    shifted = ref.trajectory["u"].sel(epoch=u["epoch"]).drop_vars("lam") + 5 * cmp["se"]
    assert float(np.abs(beyond.mean_vs_marginalised(u, shifted)["z"]).isel(epoch=slice(1, None)).max()) > 3
    # learning actually happened: the modes went from near 0 to near u*
    assert np.all(cmp["mean"].isel(epoch=-1) > 0.8 * theory.fixed_point(lam, eps))


def _hadamard(n, lam, seed=1):
    """Data whose eigen-coordinates are ±√λᵢ (Hadamard columns): XᵀX/N = VΛVᵀ exactly and xᵢ² = λᵢ for
    every sample, so the minibatch gradient along a mode carries only the input-noise part."""
    from scipy.linalg import hadamard

    lam = np.asarray(lam, float)
    V = np.linalg.qr(np.random.default_rng(seed).standard_normal((lam.size, lam.size)))[0]
    X = hadamard(n)[:, 1:lam.size + 1] * np.sqrt(lam) @ V.T
    return X, lam, V


def _stationary(X, lam, V, lr, batch_size, seeds=200, window=15.0):
    """Variance over seeds of u near the minimum, and its first-order prediction (4 modes, H = 4)."""
    H, eps = 4, 0.3
    W1, W2 = beyond.balanced_minimum(lam, V, eps=eps, hidden=H)
    n = X.shape[0]
    spe = -(-n // (n if batch_size is None else batch_size))
    tau = 1 / (2 * lr * lam[-1])
    config = _sampled(X, hidden=H, lr=lr, epochs=int(np.ceil((3 + window) * tau / spe)), eps=eps,
                      log_every=max(1, int(tau // (2 * spe))), batch_size=batch_size)
    run = beyond.train_seed_batch(X, lam, V, config, seeds=range(seeds), modes=range(4), W1=W1, W2=W2)
    st = beyond.stationary_variance(run.trajectory["u"], start=3 * tau / spe)
    pred = beyond.predicted_stationary_variance(X, lam, V, eps=eps, lr=lr, batch_size=batch_size, modes=range(4))
    return st["variance"].values, pred


def test_stationary_variance_scales_as_eta_over_b():
    X, lam, V = _hadamard(256, [1.0, 0.9, 0.8, 0.7])
    lrs = [0.01, 0.02, 0.04, 0.08]
    res = [_stationary(X, lam, V, lr, 16) for lr in lrs]
    slope = beyond.loglog_slope(lrs, np.array([r[0] for r in res]))
    assert np.all(np.abs(slope - 1) <= 0.1), slope
    bs = [4, 8, 16, 32]
    res += [_stationary(X, lam, V, 0.04, b) for b in bs]
    slope = beyond.loglog_slope(bs, np.array([r[0] for r in res[4:]]))
    assert np.all(np.abs(slope + 1) <= 0.1), slope
    # the first-order prediction gets the size right too
    ratio = np.array([r[0] / r[1] for r in res])
    assert np.all(np.abs(ratio - 1) <= 0.15), ratio


def test_reshuffled_minibatches_suppress_the_data_noise():
    """With Gaussian data the per-sample gradient also varies over the data; one pass per epoch without
    replacement cancels that part when a mode relaxes over many epochs, as the prediction says."""
    X, lam, V = _synthetic(512, [1.0, 0.9, 0.8, 0.7])
    var, pred = _stationary(X, lam, V, 0.01, 32, seeds=100)
    assert np.all(np.abs(var / pred - 1) <= 0.15), var / pred
    # an i.i.d.-minibatch prediction (data part not cancelled) is clearly too large
    iid = beyond.predicted_stationary_variance(X, lam, V, eps=0.3, lr=0.01, batch_size=32, modes=range(4),
                                               reshuffle=False)
    assert np.all(var / iid < 0.8), var / iid


@pytest.mark.parametrize("hidden", [4, 2])
def test_fixed_copy_engine_converges_to_empirical_minimiser(hidden):
    X, lam, V = _synthetic(60, [1.5, 1.0, 0.7, 0.5])
    eps = 0.2
    config = _sampled(X, engine="datapass", hidden=hidden, lr=0.4, epochs=4000, log_every=4000, eps=eps,
                      init_std=0.3, seed=4)
    engine = beyond.FixedCopyEngine(config, X, lam, V)
    run = training.run_engine(engine, linear.Run)
    Xt = engine.Xt.numpy()
    W = run.W2 @ run.W1
    # independent reference: least squares X ≈ X̃ Wᵀ (H ≥ d) ...
    W_ls = np.linalg.lstsq(Xt, X, rcond=None)[0].T
    W_star = beyond.fixed_copy_minimiser(X, Xt, hidden)
    if hidden >= 4:
        assert np.max(np.abs(W_star - W_ls)) <= 1e-12
    # ... and, any rank, no nearby rank-H matrix A·B fits the copy better (W_star is the minimum)
    loss = lambda M: 0.5 * np.mean(np.sum((X - Xt @ M.T) ** 2, axis=1))  # noqa: E731
    rng = np.random.default_rng(0)
    U, s, Vt = np.linalg.svd(W_star)
    A, B = U[:, :hidden] * s[:hidden], Vt[:hidden]
    for _ in range(50):
        P = (A + 1e-3 * rng.standard_normal(A.shape)) @ (B + 1e-3 * rng.standard_normal(B.shape))
        assert loss(P) > loss(W_star)
    assert np.max(np.abs(W - W_star)) <= 1e-8
    # it is biased: the copy's minimiser is not the marginalised Σ(Σ+εI)⁻¹ (H ≥ d)
    if hidden >= 4:
        Sigma = X.T @ X / X.shape[0]
        assert np.max(np.abs(W_star - Sigma @ np.linalg.inv(Sigma + eps * np.eye(4)))) > 0.01
    assert run.trajectory.sizes["epoch"] == 2
    plateaus = beyond.fixed_copy_plateaus(X, V, eps=eps, seeds=[4], hidden=hidden)
    assert np.allclose(plateaus[0], np.diag(V.T @ W_star @ V), atol=1e-12)
    with pytest.raises(ValueError, match="fixed data"):
        beyond.train_fixed_copy(X, lam, V, dataclasses.replace(config, engine="sampled"))


def _small_sampled_config(**kw):
    return SampledConfig.make(**{"hidden": 3, "eps": 0.3, "modes": [0, 1], "seeds": 20, "steps": 200,
                                 "batches": [None, 64], "records": 20, "init_std": 0.05, "var_fractions": [0.05, 0.1],
                                 "var_batch": 16, "window": 5.0, "copies": 8, "trained_copies": 1,
                                 "dtype": "float64", "device": "cpu", **kw})


def test_sampled_summary_rows_claims_and_figure(tmp_path):
    from daedyn.figures import style
    from daedyn.figures.beyond import plot_sampled_vs_marginalised

    X, lam, V = _synthetic(256, [1.0, 0.6, 0.35, 0.2])
    config = _small_sampled_config()
    out = beyond.sampled_summary(X, lam, V, config)
    assert out.sizes == {"mode": 2, "step": out.sizes["step"], "batch": 2, "lr": 2, "copy": 8, "trained_copy": 1}
    assert list(out["batch"].values) == [256, 64]
    assert np.all(out["var_batch"].sel(batch=64) > out["var_batch"].sel(batch=256))
    # the trained copy ends at its own closed-form minimiser, not at u*
    assert np.allclose(out["fixed_trained"], out["fixed_closed_form"], atol=1e-3)
    rows = beyond.sampled_rows(out)
    assert {r["quantity"] for r in rows} == {"max_abs_z", "max_rel_diff", "variance_vs_batch", "variance_vs_lr",
                                             "slope_vs_lr", "slope_vs_batch", "fixed_copy_bias", "fixed_copy_rms"}
    claims = beyond.sampled_claims(out, "synthetic")
    assert len(claims) == 4 and all(c["verdict"] in ("confirmed", "qualified", "refuted") for c in claims)
    fig = plot_sampled_vs_marginalised(out, title="synthetic")
    assert len(fig.axes) == 5
    assert style.save(fig, tmp_path / "svm.png")[0].stat().st_size > 1000
    with pytest.raises(ValueError, match="plateau"):
        beyond.sampled_summary(X, lam, V, dataclasses.replace(config, seeds=2, steps=5))


def test_sampled_parts_need_their_keys_and_a_learnable_mode(monkeypatch):
    X, lam, V = _synthetic(64, [1.0, 0.6, 0.35, 0.2])
    config = _small_sampled_config()
    part = SampledConfig.from_params({k: v for k, v in config.to_dict().items() if k not in ("copies", "steps")})
    assert part.copies is None and part.fraction == config.fraction
    with pytest.raises(ValueError, match="needs \\['steps', 'copies'\\]"):
        beyond.fixed_copies(X, lam, V, part)
    with pytest.raises(ValueError, match="min\\(hidden, dim\\) = 1"):
        beyond.sampled_trajectories(X, lam, V, dataclasses.replace(config, dim=1))
    # too few steps for a stationary phase: the trajectory part stops before it trains (the summary
    # would otherwise stop only after every part has trained)
    trained = []
    monkeypatch.setattr(beyond, "train_seed_batch", lambda *a, **k: trained.append(1))
    with pytest.raises(ValueError, match="not reached its plateau.*within steps = 5"):
        beyond.sampled_trajectories(X, lam, V, dataclasses.replace(config, steps=5))
    with pytest.raises(ValueError, match="stationary phase starts at step .* raise steps"):
        beyond.sampled_trajectories(X, lam, V, dataclasses.replace(config, burn_in=1e4))
    assert not trained


def test_run_configurations_take_defaults_from_the_schema_and_name_bad_values():
    from daedyn import runconfig

    props = runconfig.schema()["$defs"]["lr_normalised_experiment"]["properties"]
    config = LrNormalisedConfig.make(hidden=4, eps=0.5)
    assert config.fractions == tuple(props["fractions"]["default"]) and config.seed == props["seeds"]["default"][0]
    assert config.epoch_budget == props["epoch_budget"]["default"]
    with pytest.raises(ValueError, match="lr_normalised run exp/dae_f0.5: eps must be > 0"):
        LrNormalisedConfig.make(hidden=4, eps=0.0, experiment="exp", run="dae_f0.5")
    props = runconfig.schema()["$defs"]["sampled_experiment"]["properties"]
    config = SampledConfig.make(hidden=4, eps=0.5)
    assert config.seeds == props["seeds"]["default"] and config.batches == tuple(props["batches"]["default"])
    with pytest.raises(ValueError, match="sampled run exp/variance: seeds must be >= 2"):
        SampledConfig.make(hidden=4, eps=0.5, seeds=1, experiment="exp", run="variance")
