"""Tests of daedyn.sampled and daedyn.sampled_engines against independent references: train_sampled, lstsq."""

import dataclasses

import numpy as np
import pytest
import torch

from daedyn import data, linear, sampled, sampled_analysis, sampled_engines, spectrum, theory, training
from daedyn.runconfig import LinearConfig, LrNormalisedConfig, SampledConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    run = sampled_engines.train_seed_batch(config, training.Problem(lam, V, X), seeds=seeds, modes=range(6))
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
    engine = sampled_engines.SeedBatchSampledEngine if make == "batched" else sampled_engines.FixedCopyEngine

    def train(checkpoint=None):
        if make == "batched":
            config = _sampled(X, hidden=2, lr=0.05, epochs=9, eps=0.3, batch_size=8, init_std=0.1, log_every=2)
            return sampled_engines.train_seed_batch(config, training.Problem(lam, V, X), seeds=[1, 2], modes=[0, 1],
                                                    checkpoint=checkpoint)
        config = _sampled(X, engine="datapass", hidden=2, lr=0.05, epochs=9, eps=0.3, batch_size=8, init_std=0.1,
                          log_every=2, seed=3)
        return sampled_engines.train_fixed_copy(config, training.Problem(lam, V, X), checkpoint=checkpoint)

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
    assert resumed.resumed_from == [4] and torch.load(path, weights_only=True)["epoch"] == 9  # the final state
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
    u = sampled_engines.train_seed_batch(config, training.Problem(lam, V, X), seeds=range(200), modes=range(4), W1=W1,
                                         W2=W2).trajectory["u"]
    cmp = sampled.mean_vs_marginalised(u, ref.trajectory["u"].sel(epoch=u["epoch"]).drop_vars("lam"))
    z = cmp["z"].isel(epoch=slice(1, None))  # epoch 0: no noise yet, se = 0
    assert float(np.abs(z).max()) <= 3.0
    assert float(cmp["se"].isel(epoch=-1).min()) > 0  # the noise does spread the seeds
    # the comparison has power: a reference 5 standard errors off fails it
    shifted = ref.trajectory["u"].sel(epoch=u["epoch"]).drop_vars("lam") + 5 * cmp["se"]
    assert float(np.abs(sampled.mean_vs_marginalised(u, shifted)["z"]).isel(epoch=slice(1, None)).max()) > 3
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
    W1, W2 = sampled.balanced_minimum(lam, V, eps=eps, hidden=H)
    n = X.shape[0]
    spe = -(-n // (n if batch_size is None else batch_size))
    tau = 1 / (2 * lr * lam[-1])
    config = _sampled(X, hidden=H, lr=lr, epochs=int(np.ceil((3 + window) * tau / spe)), eps=eps,
                      log_every=max(1, int(tau // (2 * spe))), batch_size=batch_size)
    run = sampled_engines.train_seed_batch(config, training.Problem(lam, V, X), seeds=range(seeds), modes=range(4),
                                           W1=W1, W2=W2)
    st = sampled.stationary_variance(run.trajectory["u"], start=3 * tau / spe)
    pred = sampled.predicted_stationary_variance(X, lam, V, eps=eps, lr=lr, batch_size=batch_size, modes=range(4))
    return st["variance"].values, pred


def test_stationary_variance_scales_as_eta_over_b():
    X, lam, V = _hadamard(256, [1.0, 0.9, 0.8, 0.7])
    lrs = [0.01, 0.02, 0.04, 0.08]
    res = [_stationary(X, lam, V, lr, 16) for lr in lrs]
    slope = sampled.loglog_slope(lrs, np.array([r[0] for r in res]))
    assert np.all(np.abs(slope - 1) <= 0.1), slope
    bs = [4, 8, 16, 32]
    res += [_stationary(X, lam, V, 0.04, b) for b in bs]
    slope = sampled.loglog_slope(bs, np.array([r[0] for r in res[4:]]))
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
    iid = sampled.predicted_stationary_variance(X, lam, V, eps=0.3, lr=0.01, batch_size=32, modes=range(4),
                                                reshuffle=False)
    assert np.all(var / iid < 0.8), var / iid


@pytest.mark.parametrize("hidden", [4, 2])
def test_fixed_copy_engine_converges_to_empirical_minimiser(hidden):
    X, lam, V = _synthetic(60, [1.5, 1.0, 0.7, 0.5])
    eps = 0.2
    config = _sampled(X, engine="datapass", hidden=hidden, lr=0.4, epochs=4000, log_every=4000, eps=eps,
                      init_std=0.3, seed=4)
    engine = sampled_engines.FixedCopyEngine(config, X, lam, V)
    run = training.run_engine(engine, linear.Run)
    Xt = engine.Xt.numpy()
    W = run.W2 @ run.W1
    # independent reference: least squares X ≈ X̃ Wᵀ (H ≥ d) ...
    W_ls = np.linalg.lstsq(Xt, X, rcond=None)[0].T
    W_star = sampled.fixed_copy_minimiser(X, Xt, hidden)
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
    plateaus = sampled.fixed_copy_plateaus(X, V, eps=eps, seeds=[4], hidden=hidden)
    assert np.allclose(plateaus[0], np.diag(V.T @ W_star @ V), atol=1e-12)
    with pytest.raises(ValueError, match="fixed data"):
        sampled_engines.train_fixed_copy(dataclasses.replace(config, engine="sampled"), training.Problem(lam, V, X))


def _small_sampled_config(**kw):
    return SampledConfig.make(**{"hidden": 3, "eps": 0.3, "modes": [0, 1], "seeds": 20, "steps": 200,
                                 "batches": [None, 64], "records": 20, "init_std": 0.05, "var_fractions": [0.05, 0.1],
                                 "var_batch": 16, "window": 5.0, "copies": 8, "trained_copies": 1,
                                 "dtype": "float64", "device": "cpu", **kw})


def test_sampled_summary_rows_claims_and_figure(tmp_path):
    from daedyn.figures import style
    from daedyn.figures.sampled import plot_sampled_vs_marginalised

    X, lam, V = _synthetic(256, [1.0, 0.6, 0.35, 0.2])
    config = _small_sampled_config()
    out = sampled_analysis.sampled_summary(config, training.Problem(lam, V, X))
    assert out.sizes == {"mode": 2, "step": out.sizes["step"], "batch": 2, "lr": 2, "copy": 8, "trained_copy": 1}
    assert list(out["batch"].values) == [256, 64]
    assert np.all(out["var_batch"].sel(batch=64) > out["var_batch"].sel(batch=256))
    # the trained copy ends at its own closed-form minimiser, not at u*
    assert np.allclose(out["fixed_trained"], out["fixed_closed_form"], atol=1e-3)
    rows = sampled_analysis.sampled_rows(out)
    assert {r["quantity"] for r in rows} == {"max_abs_z", "max_rel_diff", "variance_vs_batch", "variance_vs_lr",
                                             "slope_vs_lr", "slope_vs_batch", "fixed_copy_bias", "fixed_copy_rms"}
    claims = sampled_analysis.sampled_claims(out, "synthetic")
    assert len(claims) == 4 and all(c["verdict"] in ("confirmed", "qualified", "refuted") for c in claims)
    from scipy.stats import norm
    for b in (256, 64):                                   # Bonferroni over the batch size's finite z
        n = int(np.isfinite(out["z"].sel(batch=b)).sum())
        assert float(out["z_threshold"].sel(batch=b)) == pytest.approx(norm.isf(0.05 / 2 / n), rel=1e-12)
    assert f"threshold {float(out['z_threshold'].sel(batch=64)):.2f}" in claims[0]["measured"]
    assert "<= 0.2 x the rms" in claims[3]["expected"]
    fig = plot_sampled_vs_marginalised(out, title="synthetic")
    assert len(fig.axes) == 6 and all(ax.has_data() for ax in fig.axes)   # no empty panel
    lines = fig.axes[0].get_lines()
    refs = [out["reference"].sel(mode=m).values for m in out["mode"].values]
    ref = [ln for ln in lines if any(len(ln.get_ydata()) == r.size and np.allclose(ln.get_ydata(), r) for r in refs)]
    means = [ln for ln in lines if ln not in ref]
    assert len(ref) == len(refs)
    assert ref and min(ln.get_zorder() for ln in ref) > max(ln.get_zorder() for ln in means)   # drawn on top
    assert "marginalised recurrence (on top)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    zmax = np.abs(out["z"].sel(batch=64)).max("mode").values
    assert any(len(ln.get_ydata()) == np.isfinite(zmax).sum() and np.allclose(ln.get_ydata(), zmax[np.isfinite(zmax)])
               for ln in fig.axes[5].get_lines())
    assert style.save(fig, tmp_path / "svm.png")[0].stat().st_size > 1000
    with pytest.raises(ValueError, match="plateau"):
        sampled_analysis.sampled_summary(dataclasses.replace(config, seeds=2, steps=5), training.Problem(lam, V, X))


def _summary(seed=0):
    """A hand-made summary of the sampled experiment: N = 200, batch sizes N, 50, 10, modes 0, 1, 3."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    modes, batch, steps = [0, 1, 3], [200, 50, 10], np.arange(0, 100, 10)
    z = rng.uniform(-1.5, 1.5, (3, steps.size, 3))
    z[:, 0] = np.nan                                       # the start: no standard error
    return xr.Dataset(
        {"z": (("batch", "step", "mode"), z), "diff": (("batch", "step", "mode"), 1e-3 * z),
         "u_star": ("mode", [0.8, 0.6, 0.4]), "slope_lr": ("mode", [1.02, 0.93, 1.05]),
         "slope_lr_predicted": ("mode", [1.03, 0.99, 0.98]), "slope_batch": ("mode", [-1.0, -1.04, -0.97]),
         "slope_batch_predicted": ("mode", [-1.0, -1.0, -1.0]),
         "bias": (("copy", "mode"), rng.normal(0, 0.01, (20, 3))),
         "fixed_closed_form": (("trained_copy", "mode"), rng.normal(0.5, 0.1, (2, 3)))},
        coords={"batch": batch, "step": steps, "mode": modes, "lr": [0.01, 0.02], "copy": np.arange(20),
                "trained_copy": [0, 1]},
        attrs={"n_samples": 200, "seeds": 50, "fraction": 0.5, "eta_max": 0.2, "var_batch": 10})


def test_sampled_claims_state_tolerance_and_the_worst_case_they_judged():
    """tolerance and judged_on checked against the summary: the batch size, step and mode of the largest |z|
    over its threshold, the mode of the slope furthest from ±1, the mode of the worst trained copy."""
    out = _summary()
    out["z"].loc[dict(batch=50, step=40, mode=1)] = -2.9           # under its threshold, but the largest z
    out["fixed_trained"] = out["fixed_closed_form"] + 1e-4
    out["fixed_trained"].loc[dict(trained_copy=1, mode=3)] += 4e-4
    mean, lr, batch, fixed = sampled_analysis.sampled_claims(out)
    thresholds = [sampled_analysis.z_threshold(out["z"].sel(batch=b).values) for b in (200, 50, 10)]
    assert thresholds[0] == thresholds[1] == thresholds[2] > 2.9   # 27 finite points each
    assert mean["tolerance"] == ("|z| <= the Bonferroni threshold of its batch size ("
                                 + ", ".join(f"{t:.2f}" for t in thresholds) + " for B = N, 50, 10)")
    assert mean["judged_on"] == f"worst of 3 batch sizes: B = 50, max |z| {2.9 / thresholds[1]:.2f} x its " \
                                "threshold, at step 40, mode 1"
    assert mean["verdict"] == "confirmed"
    out["z"].loc[dict(batch=10, step=90, mode=0)] = 5.0               # now B = 10 is off: qualified, and named
    mean = sampled_analysis.sampled_claims(out)[0]
    assert mean["verdict"] == "qualified" and "B = 10, max |z| " in mean["judged_on"]
    assert mean["judged_on"].endswith("at step 90, mode 0")
    assert lr["judged_on"] == ("worst of 3 modes: mode 1, slope +0.93 (0.07 off +1); largest gap to the "
                               "prediction 0.07, mode 3")
    assert batch["judged_on"].startswith("worst of 3 modes: mode 1, slope -1.04")
    assert lr["tolerance"].startswith("|slope - (+1)| <= 0.1") and lr["verdict"] == "confirmed"
    rms = np.sqrt((out["bias"] ** 2).mean("copy").values)
    gap = np.array([1e-4, 1e-4, 5e-4])
    w = int(np.argmax(gap / rms))
    assert w == 2 and fixed["judged_on"] == (f"worst of 3 modes: mode 3, largest gap over 2 trained copies "
                                             f"{gap[w]:.1e} = {gap[w] / rms[w]:.2g} x the rms")
    assert fixed["verdict"] == ("confirmed" if gap[w] / rms[w] <= 0.2 else "qualified")
    untrained = sampled_analysis.sampled_claims(out.drop_vars(["fixed_trained", "fixed_closed_form"]))[3]
    assert untrained["verdict"] == "qualified" and untrained["judged_on"].startswith("no trained copies")


def test_sampled_parts_need_their_keys_and_a_learnable_mode(monkeypatch):
    X, lam, V = _synthetic(64, [1.0, 0.6, 0.35, 0.2])
    config = _small_sampled_config()
    part = SampledConfig.from_params({k: v for k, v in config.to_dict().items() if k not in ("copies", "steps")})
    assert part.copies is None and part.fraction == config.fraction
    with pytest.raises(ValueError, match="needs \\['steps', 'copies'\\]"):
        sampled.fixed_copies(part, training.Problem(lam, V, X))
    with pytest.raises(ValueError, match="min\\(hidden, dim\\) = 1"):
        sampled.sampled_trajectories(dataclasses.replace(config, dim=1), training.Problem(lam, V, X))
    # too few steps for a stationary phase: the trajectory part stops before it trains (the summary
    # would otherwise stop only after every part has trained)
    trained = []
    monkeypatch.setattr(sampled, "train_seed_batch", lambda *a, **k: trained.append(1))
    with pytest.raises(ValueError, match="not reached its plateau.*within steps = 5"):
        sampled.sampled_trajectories(dataclasses.replace(config, steps=5), training.Problem(lam, V, X))
    with pytest.raises(ValueError, match="stationary phase starts at step .* raise steps"):
        sampled.sampled_trajectories(dataclasses.replace(config, burn_in=1e4), training.Problem(lam, V, X))
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
