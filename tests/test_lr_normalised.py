"""Tests of daedyn.lr_normalised against independent references: brute-force GD, the exact per-mode maps."""

import numpy as np
import pytest

from daedyn import lr_normalised, theory, training
from daedyn.runconfig import LrNormalisedConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------
# learning-rate-normalised comparison
# ------------------------------------------------------------------------------------------


def test_plan_rates_gammas_and_errors():
    lam = np.array([3.0, 1.0, 0.4, 0.1])
    plan = lr_normalised.plan_lr_normalised(lam, eps=0.5, fractions=[0.25, 0.9], matched_modes=[1, 2], gammas=[0.05],
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
        lr_normalised.plan_lr_normalised(lam, eps=0.5, fractions=[1.0])
    with pytest.raises(ValueError, match="matched_modes"):
        lr_normalised.plan_lr_normalised(lam, eps=0.5, fractions=[0.5], matched_modes=[3], hidden=3)
    with pytest.raises(ValueError, match="gammas"):
        lr_normalised.plan_lr_normalised(lam, eps=0.5, fractions=[0.5], gammas=[3.0])
    with pytest.raises(ValueError, match="duplicate"):
        lr_normalised.plan_lr_normalised(lam, eps=0.5, fractions=[0.5], matched_modes=[1, 1])


def test_one_mode_plan_gives_identical_maps():
    """A one-mode network: the planned DAE(ε) and WDAE(γ of equal plateau) runs are the same map."""
    for lam, eps in [(1.0, 0.3), (2.5, 1.8), (0.5, 0.2)]:
        for f in (0.25, 0.5, 0.9):
            dae, wdae = lr_normalised.plan_lr_normalised([lam], eps=eps, fractions=[f], matched_modes=[0], hidden=1)
            assert wdae.lr == pytest.approx(theory.matched_wdae_lr(dae.lr, lam, eps), rel=1e-12)
            ud = theory.balanced_map(800, lam, eps, 0.0, dae.lr, 1e-6)
            uw = theory.balanced_map(800, lam, 0.0, wdae.gamma, wdae.lr, 1e-6)
            assert np.max(np.abs(ud - uw)) <= 1e-12


@pytest.fixture(scope="module")
def two_modes():
    """DAE vs WDAE on a 2-mode spectrum, trained by the exact engine in float64, every step recorded."""
    lam, V = np.array([2.0, 0.5]), np.linalg.qr(np.random.default_rng(3).standard_normal((2, 2)))[0]
    x0, y0 = lr_normalised.initial_mode_state(2, 3, V, [0, 1], init_std=1e-3, seed=0)
    config = _lr_config(fractions=[0.5, 0.9], matched_modes=[1], gammas=[0.1, 0.6])
    plan = lr_normalised.lr_normalised_plan(config, lam, V)
    assert plan == lr_normalised.plan_lr_normalised(lam, eps=0.5, fractions=[0.5, 0.9], matched_modes=[1],
                                                    gammas=[0.1, 0.6], hidden=3, modes=[0, 1], x0=x0, y0=y0,
                                                    epoch_budget=config.epoch_budget)
    ds = lr_normalised.run_lr_normalised(config, training.Problem(lam, V))
    return plan, ds, lr_normalised.lr_normalised_comparison(ds)


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
    # the top mode is learned at the same pace (to a step), mode 1 more slowly with decay, as the curve says
    r = comp["ratio90_measured"]
    assert np.all(np.abs(comp["t90_wdae_measured"] - comp["t90_dae_measured"]).sel(mode=0) <= 1)
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
        assert np.all(t90.values == first)  # per-step resolution: the very step


def test_sparse_records_give_the_steps_of_every_step_records(two_modes):
    """Records every 7 steps, on a union epoch grid padded with NaN (runs of different lengths):
    the step counts are those of the same runs recorded at every step, measured and predicted."""
    plan, _, dense = two_modes
    lam, V = np.array([2.0, 0.5]), np.linalg.qr(np.random.default_rng(3).standard_normal((2, 2)))[0]
    config = _lr_config(fractions=[0.5], matched_modes=[1], log_every=7)
    assert [r.name for r in lr_normalised.lr_normalised_plan(config, lam, V)] == [r.name for r in plan[:2]]
    ds = lr_normalised.run_lr_normalised(config, training.Problem(lam, V))
    padded = ds.reindex(epoch=np.union1d(ds["epoch"].values, [3, 11, 26]))  # other runs' records: NaN rows here
    steps = np.concatenate([dense[n].sel(pair="wdae_k1_f0.5").values for n in ("t50_dae_measured", "t90_wdae_measured")])
    assert np.isin(steps, ds["epoch"].values).sum() < steps.size  # crossings between records
    for grid in (ds, padded):
        comp = lr_normalised.lr_normalised_comparison(grid)
        for name in ("t50_dae_measured", "t90_wdae_measured", "t50_wdae_predicted", "t90_dae_predicted"):
            np.testing.assert_array_equal(comp[name].sel(pair="wdae_k1_f0.5"), dense[name].sel(pair="wdae_k1_f0.5"))


def test_modes_without_a_plateau_have_no_step_count_and_say_why(two_modes):
    """γ = 0.6 > λ₂: never learned; a run cut before its plateau: not reached. No 0 steps, no 0 ratio."""
    _, ds, comp = two_modes
    never = comp.sel(pair="wdae_g0.6_f0.5", mode=1)
    assert int(never["status_wdae"]) == 1 and int(never["status_dae"]) == 0 and not never["compared"]
    for q in (50, 90):
        assert np.isnan(never[f"t{q}_wdae_measured"]) and np.isnan(never[f"t{q}_wdae_predicted"])
        assert np.isnan(never[f"ratio{q}_measured"]) and np.isnan(never[f"ratio{q}_predicted"])
        assert np.isfinite(never[f"t{q}_dae_measured"])  # the DAE learns it
    # cut every run at 40 % of the DAE's steps to 90 % on mode 1: mode 1 has no plateau yet
    cut = int(0.4 * float(comp["t90_dae_measured"].sel(mode=1).min()))
    short = lr_normalised.lr_normalised_comparison(ds.sel(epoch=slice(0, cut)))
    assert (short["status_dae"].sel(mode=1) == 2).all() and not short["compared"].sel(mode=1).any()
    assert short["t90_dae_measured"].sel(mode=1).isnull().all() and short["ratio90_measured"].sel(mode=1).isnull().all()
    rows = [r for r in lr_normalised.lr_normalised_rows(comp) if r["wdae_run"] == "wdae_g0.6_f0.5" and r["mode"] == 1]
    assert rows[0]["status_wdae"] == "never learned" and np.isnan(rows[0]["t90_wdae_measured"])
    assert short["status_dae"].attrs["long_name"].endswith("0 plateau reached, 1 never learned, "
                                                           "2 not reached within the run")


def test_rows_claims_and_figure(two_modes, tmp_path):
    from daedyn.figures import style
    from daedyn.figures.lr_normalised import plot_lr_normalised

    _, _, comp = two_modes
    rows = lr_normalised.lr_normalised_rows(comp)
    assert len(rows) == comp.sizes["pair"] * comp.sizes["mode"]
    assert {"t50_dae_measured", "t90_wdae_predicted", "ratio90_measured", "ratio_curve"} <= set(rows[0])
    claims = lr_normalised.lr_normalised_claims(comp, "synthetic")
    assert [c["verdict"] for c in claims] == ["confirmed"] * 3
    assert "mode 1 1.7" in claims[2]["measured"]  # γ of mode 1's plateau: about 1.7× the steps
    # a wrong measurement is caught: swap the models' measured times
    bad = comp.copy()
    bad["t90_wdae_measured"], bad["t90_dae_measured"] = comp["t90_dae_measured"], comp["t90_wdae_measured"]
    bad["ratio90_measured"] = 1 / comp["ratio90_measured"]
    verdicts = [c["verdict"] for c in lr_normalised.lr_normalised_claims(bad)]
    assert verdicts[1] != "confirmed" and verdicts[2] == "refuted"
    fig = plot_lr_normalised(comp, title="synthetic")
    assert len(fig.axes) == 2 * 3  # one row per γ (matched mode 1, 0.1, 0.6), one column per level
    # the never-learned mode is named in the γ = 0.6 row, not drawn as a ratio of 0
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("mode 1: WDAE never learned" in t for t in texts) == 2
    written = style.save(fig, tmp_path / "lr")
    assert all(p.stat().st_size > 1000 for p in written)
