"""Aggregation of linear runs: combining, per-mode theory in run coordinates, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from daedyn import analysis, data, linear, spectrum, theory


@pytest.fixture(scope="module")
def problem():
    lam = data.spectrum_values("exponential", 10, scale=3.0, decay=0.6)
    ds = data.synthetic(200, 10, lam, seed=2)
    sp = spectrum.spectrum(ds["x"])
    return sp["eigenvalue"].values, sp["eigenvector"].values


def run_file(lam, V, run, seed, eps, gamma, epochs=300):
    result = linear.train_exact(lam, V, hidden=100, lr=0.05, epochs=epochs, eps=eps, gamma=gamma, seed=seed,
                                init_std=1e-3, dtype="float64", device="cpu", log_every=10, run=run)
    return result.dataset().drop_vars(["w1", "w2"])  # as the aggregation loads a run file


@pytest.fixture(scope="module")
def combined(problem):
    lam, V = problem
    runs = [run_file(lam, V, r, s, e, g) for r, e, g in (("ae", 0.0, 0.0), ("dae", 0.5, 0.0), ("wdae", 0.0, 0.4))
            for s in (0, 1)]
    return analysis.add_theory(analysis.combine_runs(runs, ["ae", "dae", "wdae"], [0, 1]), lam, V)


def test_combine_rejects_missing_and_duplicate_runs(problem):
    lam, V = problem
    a = run_file(lam, V, "ae", 0, 0.0, 0.0, epochs=20)
    b = run_file(lam, V, "dae", 0, 0.5, 0.0, epochs=20)
    with pytest.raises(ValueError, match=r"missing \[\('ae', 1\), \('dae', 1\)\]"):
        analysis.combine_runs([a, b], ["ae", "dae"], [0, 1])
    with pytest.raises(ValueError, match="duplicate"):
        analysis.combine_runs([a, a, b], ["ae", "dae"], [0])
    both = analysis.combine_runs([b, a], ["ae", "dae"], [0])
    assert both["run"].values.tolist() == ["ae", "dae"]
    xr.testing.assert_equal(both["u"].sel(run="dae", seed=0), b["u"].sel(run="dae", seed=0))


def test_theory_matches_its_own_recurrence_at_recorded_epochs(combined, problem):
    lam, V = problem
    one = combined.sel(run="wdae", seed=1)
    x0, y0 = theory.mode_state_from_weights(one["w1_init"].values, one["w2_init"].values, V)
    direct = theory.vector_mode_map(300, lam, 0.0, 0.4, 0.05, x0=x0, y0=y0)
    np.testing.assert_allclose(one["u_theory"].transpose("mode", "epoch").values,
                               direct[:, one["epoch"].values], rtol=0, atol=1e-15)
    u0 = np.linalg.svd(one["w2_init"].values @ one["w1_init"].values, compute_uv=False)[:100].sum() / lam.size
    assert float(one["u0_paper"]) == pytest.approx(u0, rel=1e-10)
    np.testing.assert_allclose(one["u_star"].values, theory.fixed_point(lam, 0.0, 0.4))


def test_per_mode_theory_tracks_training(combined):
    # small random init and many hidden units (nearly orthogonal per-mode weight vectors): the
    # decoupled theory from the actual initial weights is close (E15); with H ~ d it is not
    learned = combined.sel(mode=slice(0, 5))
    assert float(abs(learned["u_theory"] - learned["u"]).max()) < 0.02


def test_metrics(combined):
    rows = analysis.metrics(combined, [0, 2, 4])
    assert len(rows) == 3 * 2 * 3 + 3 * 3  # per run, seed and mode; then per run and mode
    rows = [r for r in rows if r["seed"] != "all"]
    row = next(r for r in rows if r["run"] == "dae" and r["seed"] == 1 and r["mode"] == 2)
    one = combined.sel(run="dae", seed=1, mode=2)
    u, ustar = one["u"].values, float(one["u_star"])
    assert row["max_abs_err_theory"] == pytest.approx(float(abs(one["u_theory"] - one["u"]).max()))
    assert row["max_rel_err_theory"] == pytest.approx(row["max_abs_err_theory"] / ustar)
    # per-step resolution: within the recording interval that first shows the crossing
    first = one["epoch"].values[np.argmax(u >= 0.5 * ustar)]
    assert first - 10 < row["t50_measured"] <= first and row["t50_measured"] == int(row["t50_measured"])
    assert row["t_resolution"] == 1
    assert abs(row["t50_predicted"] - row["t50_measured"]) <= 2
    lam = combined["lam"].values
    assert row["eta_max"] == pytest.approx(1 / lam.max(), rel=1e-9)  # DAE: 1/lambda_1 whatever eps
    assert row["lr_over_eta_max"] == pytest.approx(0.05 * lam.max(), rel=1e-9)
    never = next(r for r in rows if r["run"] == "wdae" and r["mode"] == 4)  # lam_4 = 0.39 < gamma = 0.4
    assert never["u_star"] == 0 and np.isnan(never["t50_measured"]) and np.isnan(never["max_rel_err_theory"])


def test_plateaus_are_checked_against_the_paper(combined):
    final = combined["u"].isel(epoch=-1).sel(seed=0)
    good = [float(final.sel(run="dae", mode=m)) + 0.04 for m in (0, 2)]
    bad = [float(final.sel(run="wdae", mode=0)) - 0.06, float(final.sel(run="wdae", mode=2))]
    rows = analysis.metrics(combined, [0, 2], {"dae": good, "wdae": bad})
    verdicts = {(r["run"], r["seed"], r["mode"]): r["plateau_matches_paper"] for r in rows if r["seed"] != "all"}
    assert verdicts[("dae", 0, 0)] == 1 and verdicts[("dae", 0, 2)] == 1
    assert verdicts[("wdae", 0, 0)] == 0 and verdicts[("wdae", 0, 2)] == 1
    assert verdicts[("ae", 0, 0)] == ""  # no paper value for this run
    assert "paper_plateau" not in analysis.metrics(combined, [0])[0]


def _per_mode_gd(steps, lam, eps, gamma, lr, a, b):
    """Independent reference: gradient descent, one mode with H-vector weights a = W1 v, b = W2^T v,
    on l(a, b) = lam/2 - lam a.b + (lam + eps)(a.b)^2/2 + gamma(|a|^2 + |b|^2)/2; u and y = |a - b|^2/4
    at every step."""
    us, ys = [], []
    for _ in range(steps + 1):
        u = a @ b
        us.append(u)
        ys.append((a - b) @ (a - b) / 4)
        r = lam - (lam + eps) * u
        a, b = a + lr * (r * b - gamma * a), b + lr * (r * a - gamma * b)
    return np.array(us), np.array(ys)


@pytest.mark.parametrize("every", [1, 7, 25])
def test_per_step_crossings_equal_a_brute_force_count(every):
    """step_crossing on records every `every` steps finds the first step a per-mode GD (written
    here with vectors, not the x/y map) reaches the level, counted at every step."""
    rng = np.random.default_rng(5)
    cases = [(2.0, 0.5, 0.0, 0.2), (0.7, 0.0, 0.3, 0.9), (1.5, 1.0, 0.2, 0.6), (3.0, 0.0, 0.0, 0.33),
             (0.4, 0.1, 0.0, 1.0)]  # (lam, eps, gamma, lr): the fourth overshoots and oscillates
    steps = 400
    lam, eps, gamma, lr = (np.array(c) for c in zip(*cases))
    curves = [_per_mode_gd(steps, *c, 0.03 * rng.standard_normal(6), 0.03 * rng.standard_normal(6)) for c in cases]
    u = np.stack([c[0] for c in curves], axis=1)  # (step, mode)
    y = np.stack([c[1] for c in curves], axis=1)
    ustar = theory.fixed_point(lam, eps, gamma)
    records = np.arange(0, steps + 1, every)
    for q in (0.1, 0.5, 0.9, 0.99):
        level = q * ustar
        brute = np.array([np.flatnonzero(u[:, k] >= level[k])[0] if (u[:, k] >= level[k]).any() else np.nan
                          for k in range(len(cases))], dtype=float)
        assert np.isfinite(brute).all()
        got = analysis.step_crossing(records, u[records], y[records], level, lam, eps, gamma, lr)
        np.testing.assert_array_equal(got, brute)
    # the per-mode theory (x/y map) from the same start gives the same states at the records
    x0, y0 = u[0] + y[0], y[0]
    u_th, y_th = analysis.mode_states(records, lam, eps, gamma, lr, x0, y0)
    np.testing.assert_allclose(u_th, u[records], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(y_th, y[records], rtol=1e-9, atol=1e-14)
    # never reached within the records, or nothing to reach: NaN
    got = analysis.step_crossing(records, u[records], y[records], np.array([2.0, 0.0, -1.0, np.nan, 0.5 * ustar[4]]),
                                 lam, eps, gamma, lr)
    assert np.isnan(got[:4]).all() and np.isfinite(got[4])


def test_network_crossings_equal_a_run_recorded_at_every_step(problem):
    """The measured per-step times of a run recorded every 10 steps are those of the same run
    recorded at every step (the per-mode map bridges ten steps of the coupled network)."""
    lam, V = problem
    sparse, dense = (analysis.add_theory(analysis.combine_runs([
        linear.train_exact(lam, V, hidden=100, lr=0.05, epochs=300, eps=0.5, gamma=0.1, seed=1, init_std=1e-3,
                           dtype="float64", device="cpu", log_every=every, run="r").dataset().drop_vars(["w1", "w2"])],
        ["r"], [1]), lam, V) for every in (10, 1))
    modes = [0, 1, 2, 3, 4, 5]
    rows_s = [r for r in analysis.metrics(sparse, modes) if r["seed"] == 1]
    u = dense["u"].sel(run="r", seed=1, mode=modes).transpose("epoch", "mode").values
    th = dense["u_theory"].sel(run="r", seed=1, mode=modes).transpose("epoch", "mode").values
    ustar = dense["u_star"].sel(run="r", mode=modes).values
    for q in (0.5, 0.9):
        for curve, kind in ((u, "measured"), (th, "predicted")):
            above = curve >= q * ustar
            brute = np.where(above.any(axis=0), np.argmax(above, axis=0), np.nan)  # NaN: not within 300 steps
            assert np.isfinite(brute).sum() >= 4
            np.testing.assert_array_equal([r[f"t{round(100 * q)}_{kind}"] for r in rows_s], brute)


def test_sweep_table_timings_are_the_metrics_per_step_times(combined):
    """A linear sweep table's timings are the seed means of the per-step times of metrics; its
    largest trajectory error comes with the epoch where it happens."""
    grid = {"dae": {"eps": 0.5}, "wdae": {"gamma": 0.4}}
    table = analysis.sweep_table(combined, "linear", grid, [0, 2])
    per_seed = [r for r in analysis.metrics(combined, [0, 2]) if r["seed"] != "all"]
    for row in table:
        seeds = [r for r in per_seed if r["run"] == row["run"] and r["mode"] == row["mode"]]
        assert row["t_resolution"] == 1
        for name in ("t50_measured", "t90_predicted"):
            assert row[name] == pytest.approx(np.mean([r[name] for r in seeds]))
        err = abs(combined["u_theory"] - combined["u"]).sel(run=row["run"], mode=row["mode"])
        at = [int(err.sel(seed=s)["epoch"][int(err.sel(seed=s).argmax("epoch"))]) for s in (0, 1)]
        assert row["max_abs_err_epoch"] == pytest.approx(np.mean(at))
