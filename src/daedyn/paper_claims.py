"""The paper's theory claims (docs/science.md, "Claims checked") against the Fig. 1–4 datasets.

:func:`theory_claims` takes the four datasets built by :mod:`daedyn.scalar` and returns one
row per claim with the columns ``claim`` (its number in docs/science.md), ``statement``, ``measured`` (numbers
computed here from the datasets, from independent ODE solves or finite differences, or from
:mod:`daedyn.theory`), ``expected`` (the value and tolerance stated in docs/science.md), ``verdict``
("confirmed", "qualified" or "refuted") and ``note``. The expected values quoted below refer to
the paper's parameters (``scalar.FIGURE_DEFAULTS``); with other parameters the comparisons still
run but the doc's numbers may not apply.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from daedyn import scalar, theory
from daedyn.claims import claim_row, fmt, grade

__all__ = ["theory_claims"]


def _e(x):
    return f"{float(x):.1e}"


def _flow(t, lam, eps, gamma, lr, w1, w2):
    """High-accuracy gradient flow of (E5), all parameter sets in one vectorised DOP853 solve.

    τẇ1 = w2(λ − (λ+ε)w1w2) − γw1, τẇ2 = w1(λ − (λ+ε)w1w2) − γw2, τ = 1/lr; t in epochs.
    Returns u = w1·w2 with shape broadcast(params) + t.shape, and w1, w2 likewise.
    """
    lam, eps, gamma, lr, w1, w2 = np.broadcast_arrays(*(np.asarray(x, float) for x in
                                                      (lam, eps, gamma, lr, w1, w2)))
    shape = lam.shape
    lam, eps, gamma, lr = (x.ravel() for x in (lam, eps, gamma, lr))
    k = lam.size

    def rhs(_t, y):
        a, b = y[:k], y[k:]
        r = lam - (lam + eps) * a * b
        return np.concatenate([lr * (b * r - gamma * a), lr * (a * r - gamma * b)])

    t = np.asarray(t, float)
    sol = solve_ivp(rhs, (0.0, float(t[-1])), np.concatenate([w1.ravel(), w2.ravel()]),
                    method="DOP853", t_eval=t, rtol=1e-12, atol=1e-15)
    if not sol.success:  # pragma: no cover - a failed reference solve is a bug here
        raise RuntimeError(sol.message)
    a = sol.y[:k].reshape(shape + t.shape)
    b = sol.y[k:].reshape(shape + t.shape)
    return a * b, a, b


def _at(ds, dim, value, tol=1e-9):
    """Index of ``value`` along coordinate ``dim`` or None."""
    c = ds[dim].values
    hit = np.flatnonzero(np.abs(c - value) <= tol)
    return int(hit[0]) if hit.size else None


def _first_step(t, u, level):
    """First epoch of ``t`` at which u ≥ level (nan if never): per-step when ``t`` holds every step."""
    above = np.flatnonzero(u >= level)
    return float(t[above[0]]) if above.size else np.nan


# ------------------------------------------------------------------------- claims


def _claim1(fig1, fig2):
    t1 = fig1["epoch"].values.astype(float)
    u1, _, _ = _flow(t1, fig1.attrs["lam"], fig1["eps"].values[:, None], 0.0, fig1.attrs["lr"],
                     fig1["w1_init"].values[None, :], fig1["w2_init"].values[None, :])
    err1 = float(np.abs(u1 - fig1["u_theory"].values).max())
    t2 = fig2["epoch"].values.astype(float)
    L, E, G = fig2["lam"].values[:, None], fig2["eps"].values[None, :], fig2["gamma"].values
    w0 = np.sqrt(fig2.attrs["u0"])  # balanced start w1 = w2 = √u0
    lr = fig2.attrs["lr"]
    ud, _, _ = _flow(t2, L, E, 0.0, lr, w0, w0)
    uw, _, _ = _flow(t2, L, 0.0, G, lr, w0, w0)
    err2 = max(float(np.abs(ud - fig2["u_dae"].values).max()),
               float(np.abs(uw - fig2["u_wdae"].values).max()))
    worst = max(err1, err2)
    return claim_row(
        1, "(E7b) and (E11) match a high-accuracy ODE solve of (E5) for the Fig. 1 and Fig. 2 "
        "settings",
        f"max |Δu|: E11 (Fig. 1) {_e(err1)}, E7b (Fig. 2) {_e(err2)}",
        "≤ 1e-8 (observed 1.2e-9)",
        grade(worst <= 1e-8, worst <= 1e-6),
        "reference: DOP853, rtol 1e-12, atol 1e-15, written here independently of daedyn.theory",
        tolerance="max |Δu| ≤ 1e-8 (≤ 1e-6: qualified)",
        judged_on=f"the worst of every curve and epoch of both figures: {_e(worst)} "
                  f"({'Fig. 1, E11' if err1 >= err2 else 'Fig. 2, E7b'})")


def _claim2(fig1):
    d = np.abs(fig1["u_theory"] - fig1["u_gd"])
    mx = d.max(("trial", "epoch")).values
    late = d.where(fig1["epoch"] > 50).max(("trial", "epoch")).values
    eps = fig1["eps"].values
    doc = {0.0: 0.02, 1.0: 0.04, 5.0: 0.16}
    bounds = np.array([doc.get(float(e), np.nan) for e in eps])
    # the doc's maxima are rounded to 1-2 significant digits: allow 10 %
    ok_max = bool(np.all(mx <= 1.1 * np.nan_to_num(bounds, nan=np.inf)))
    ok_late = bool(np.all(late <= 0.0015))
    meas = ("max |Δu| " + ", ".join(f"ε={fmt(e)}: {m:.4f}" for e, m in zip(eps, mx))
            + "; after epoch 50: " + ", ".join(f"ε={fmt(e)}: {m:.4f}" for e, m in zip(eps, late)))
    note = ""
    if ok_max and not ok_late:
        bad = [f"ε={fmt(e)}" for e, m in zip(eps, late) if m > 0.0015]
        good = ", ".join(fmt(e) for e, m in zip(eps, late) if m <= 0.0015) or "none"
        note = ("the overall maxima match; the ≤0.0015 bound after epoch 50 holds only for "
                f"ε={good}, not for {', '.join(bad)} (slowly converging runs keep an O(η) "
                "time-lag error)")
    return claim_row(
        2, "Fig. 1: theory (E11) vs discrete GD, λ=1, η=0.01, 200 epochs, 10 inits in [-2,2]²",
        meas, "max ≤ 0.02, 0.04, 0.16 (ε = 0, 1, 5); ≤ 0.0015 after epoch 50",
        grade(ok_max and ok_late, ok_max), note,
        tolerance="the stated maxima + 10 % (they are rounded); ≤ 0.0015 after epoch 50 (else qualified)",
        judged_on=f"the worst trial and epoch of each ε; worst after epoch 50: {late.max():.4f} at "
                  f"ε = {fmt(eps[int(np.argmax(late))])}")


def _claim3(fig1, long_epochs=5000):
    ustar = fig1["u_star"].values
    eps, lam = fig1["eps"].values, fig1.attrs["lam"]
    exp_star = lam / (lam + eps)
    star_err = float(np.abs(ustar - exp_star).max())
    end = np.abs(fig1["u_gd"].isel(epoch=-1) - fig1["u_star"]).max("trial").values
    # continue GD well past the figure's horizon from the same inits
    long = [scalar.simulate(lam, e, 0.0, fig1.attrs["lr"], long_epochs, fig1["w1_init"].values,
                            fig1["w2_init"].values)["u"].values[:, -1] for e in eps]
    long_err = float(np.max(np.abs(np.array(long) - ustar[:, None])))
    ok_star = star_err <= 1e-12
    converged_fig = bool(np.all(end <= 1e-2))
    return claim_row(
        3, "GD converges to u* = λ/(λ+ε) = 1, 0.5, 1/6 for λ = 1, ε = 0, 1, 5",
        f"u* = {', '.join(fmt(u, 4) for u in ustar)}; max |u_GD − u*| at epoch "
        f"{int(fig1['epoch'][-1])}: {', '.join(f'{x:.3g}' for x in end)}; at epoch {long_epochs}: "
        f"{_e(long_err)}",
        "u* = 1, 0.5, 0.1667; GD → u*",
        grade(ok_star and long_err <= 1e-6 and converged_fig, ok_star and long_err <= 1e-6),
        "" if converged_fig else
        f"within the figure's {int(fig1['epoch'][-1])} epochs some runs are still converging "
        f"(worst {end.max():.3g}); GD reaches u* when run longer",
        tolerance=f"|u* − λ/(λ+ε)| ≤ 1e-12; |u_GD − u*| ≤ 1e-6 at epoch {long_epochs}; ≤ 1e-2 at the figure's end "
                  "(else qualified)",
        judged_on=f"every trial and ε: worst |u* − λ/(λ+ε)| {_e(star_err)}, worst |u_GD − u*| {_e(long_err)} at "
                  f"epoch {long_epochs} and {end.max():.3g} at the figure's end (ε = {fmt(eps[int(np.argmax(end))])})")


def _claim4():
    lam = 1.0
    ratio = np.array([1.0, 0.1, 0.01, 0.001])
    us = theory.fixed_point(lam, lam / ratio, 0.0)
    mono = bool(np.all(np.diff(us) < 0))
    rel = float(np.abs(us[-1] / ratio[-1] - 1.0))
    return claim_row(
        "4 (theory)", "Noise lets the DAE ignore low-variance directions: u* → 0 as λ/ε → 0",
        f"u* at λ/ε = 1, 0.1, 0.01, 0.001: {', '.join(fmt(u) for u in us)}; "
        f"u*/(λ/ε) − 1 at 0.001: {_e(rel)}",
        "u* = λ/(λ+ε) ≈ λ/ε → 0 (Wiener-like), never exactly 0",
        grade(mono and rel < 2e-3 and np.all(us > 0)),
        "the MNIST/CIFAR-10 plateau ordering is checked with Fig. 5",
        tolerance="u* decreasing in ε/λ and > 0 at every ratio; |u*/(λ/ε) − 1| < 2e-3 at λ/ε = 0.001",
        judged_on=f"every ratio λ/ε = 1 … 0.001: smallest u* {_e(us.min())} (> 0), decreasing: {mono}; "
                  f"worst (λ/ε = 0.001) |u*/(λ/ε) − 1| {_e(rel)}")


def _claim5(fig2):
    d_star = float(np.abs(fig2["u_star_dae"] - fig2["u_star_wdae"]).max())
    # plateaus read off the curves: pairs where both curves are flat at the last sample
    ud, uw = fig2["u_dae"].values, fig2["u_wdae"].values
    flat = (np.abs(ud[..., -1] - ud[..., -2]) < 1e-13) & (np.abs(uw[..., -1] - uw[..., -2]) < 1e-13)
    d_curve = float(np.abs(ud[..., -1] - uw[..., -1])[flat].max()) if flat.any() else np.nan
    ok = d_star <= 1e-12 and (not flat.any() or d_curve <= 1e-10)
    return claim_row(
        5, "DAE(ε) and WDAE(γ = λε/(λ+ε)) share the fixed point (Fig. 2 plateau pairs)",
        f"max |u*_DAE − u*_WDAE| = {_e(d_star)}; converged curve ends ({int(flat.sum())} pairs): "
        f"max |Δ| = {_e(d_curve) if flat.any() else 'n/a'}",
        "equal to ≤ 1e-12", grade(ok),
        "curve ends compared only where both curves are flat (|Δu| < 1e-13 between the last two "
        "samples), with tolerance 1e-10",
        tolerance="|u*_DAE − u*_WDAE| ≤ 1e-12; converged curve ends ≤ 1e-10",
        judged_on=f"the worst (λ, ε) pair: fixed points {_e(d_star)}, curve ends "
                  f"{_e(d_curve) if flat.any() else 'none converged'}")


def _claim6(fig2):
    L = fig2["lam"].values[:, None, None]
    E = fig2["eps"].values[None, :, None]
    t = fig2["epoch"].values[None, None, :].astype(float)
    lr, u0 = fig2.attrs["lr"], fig2.attrs["u0"]
    stretched = theory.balanced_u(t / (1.0 + E / L), L, E, 0.0, lr, u0)
    err = float(np.abs(fig2["u_wdae"].values - stretched).max())
    doc = {(1.0, 1.0): (6561, 13122), (0.5, 1.8): (12289, 56531)}
    parts, ok_half = [], True
    for (lam, eps), (ed, ew) in doc.items():
        i, j = _at(fig2, "lam", lam), _at(fig2, "eps", eps)
        if i is None or j is None:  # not in this dataset: evaluate (E10b) at the doc's settings
            td = float(theory.steps_to_fraction(0.5, lam, eps, 0.0, 1e-3, 1e-6))
            tw = float(theory.steps_to_fraction(0.5, lam, 0.0, theory.noise_to_decay(lam, eps),
                                                1e-3, 1e-6))
            src = "E10b"
        else:
            td, tw = float(fig2["t_half_dae"][i, j]), float(fig2["t_half_wdae"][i, j])
            # the stored curves are sampled every record_every epochs: the crossing is read off the
            # closed form at every epoch instead, the first step at or above half the plateau
            steps = np.arange(int(fig2["epoch"].values[-1]) + 1)
            lr, u0 = fig2.attrs["lr"], fig2.attrs["u0"]
            cd = _first_step(steps, theory.balanced_u(steps, lam, eps, 0.0, lr, u0),
                             0.5 * float(fig2["u_star_dae"][i, j]))
            cw = _first_step(steps, theory.balanced_u(steps, lam, 0.0, float(fig2["gamma"][i, j]), lr, u0),
                             0.5 * float(fig2["u_star_wdae"][i, j]))
            src = (f"first step at or above half {cd:.0f}" + (f"/{cw:.0f}" if np.isfinite(cw) else
                                                            "/beyond the last epoch"))
            # the first whole step follows the continuous crossing within one epoch
            ok_half &= all(0 <= c - h < 1 for c, h in ((cd, td), (cw, tw)) if np.isfinite(c))
        ok_half &= abs(td - ed) <= 1 and abs(tw - ew) <= 1
        parts.append(f"λ={fmt(lam)}, ε={fmt(eps)}: {td:.1f} vs {tw:.1f} ({src})")
    return claim_row(
        6, "Same η, matched γ: u_WDAE(t) = u_DAE(t/(1+ε/λ)); half-times DAE vs WDAE",
        f"max |u_WDAE(t) − u_DAE(t/(1+ε/λ))| = {_e(err)}; " + "; ".join(parts),
        "≤ 1e-12; 6561 vs 13122 (λ=ε=1), 12289 vs 56531 (λ=0.5, ε=1.8), ±1 epoch",
        grade(err <= 1e-12 and ok_half, err <= 1e-9),
        "half-times from (E10b) (continuous time, u0 = 1e-6, η = 1e-3); each checked against the first whole "
        "epoch of the closed form at or above half its plateau (within one epoch after it)",
        tolerance="≤ 1e-12 for the curves; ±1 epoch for each half-time; first whole epoch within 1 after it",
        judged_on=f"the largest curve difference {_e(err)} and every half-time: " + "; ".join(parts))


def _claim7(fig2):
    j = int(np.argmax(fig2["eps"].values))
    eps = float(fig2["eps"][j])
    lam = fig2["lam"].values
    ratio = fig2["t_half_wdae"].values[:, j] / fig2["t_half_dae"].values[:, j]
    pred = 1.0 + eps / lam
    err = float(np.max(np.abs(ratio / pred - 1.0)))
    order = bool(np.all(np.diff(ratio[np.argsort(lam)]) < 0))  # smaller λ → larger factor
    return claim_row(
        7, "The weight-decay slow-down factor 1+ε/λ is larger for low-variance modes",
        f"t½(WDAE)/t½(DAE) at ε={fmt(eps)}: " + ", ".join(f"λ={fmt(l)}: {r:.4g}" for l, r in
                                                         zip(lam, ratio))
        + f"; max rel. deviation from 1+ε/λ {_e(err)}",
        "ratio = 1 + ε/λ, decreasing in λ (4.6 at λ=0.5 vs 1.72 at λ=2.5 for ε=1.8)",
        grade(order and err <= 1e-9),
        tolerance="|ratio/(1+ε/λ) − 1| ≤ 1e-9 at every λ; ratio strictly decreasing in λ",
        judged_on=f"worst of {lam.size} modes at ε = {fmt(eps)}: {_e(err)} at λ = "
                  f"{fmt(lam[int(np.argmax(np.abs(ratio / pred - 1.0)))])}; decreasing: {order}")


def _claim8(fig2):
    t = fig2["epoch"].values.astype(float)
    tau = 1.0 / fig2.attrs["lr"]
    L = fig2["lam"].values[:, None]
    G = fig2["gamma"].values
    worst = 0.0
    for u, ustar, a in ((fig2["u_dae"].values, fig2["u_star_dae"].values, L + 0 * G),
                        (fig2["u_wdae"].values, fig2["u_star_wdae"].values, L - G)):
        for idx in np.ndindex(a.shape):
            early = u[idx] < 1e-3 * ustar[idx]  # logistic regime: u ≪ u*
            if early.sum() < 5:
                continue
            slope = np.polyfit(t[early], np.log(u[idx][early]), 1)[0]
            worst = max(worst, abs(slope * tau / (2.0 * a[idx]) - 1.0))
    return claim_row(
        8, "Noise keeps the growth constant 2λ/τ; weight decay lowers it to 2(λ−γ)/τ",
        f"early log-slope fits (u < 1e-3·u*) on all Fig. 2 curves: max relative error {worst:.2e}",
        "≤ 1 %", grade(worst <= 0.01, worst <= 0.05),
        tolerance="relative error of the fitted growth constant ≤ 1 % (≤ 5 %: qualified)",
        judged_on=f"the worst of every Fig. 2 curve with at least 5 points below 1e-3·u*: {worst:.2e}")


def _claim9():
    gamma, eps, lr, u0 = 0.5, 0.5, 1e-3, 1e-6  # Fig. 5's γ = σ² = 0.5
    lam = np.array([0.1, 0.25, 0.5, 0.75, 1.0, 2.5])
    t = 1e6
    uw = theory.balanced_u(t, lam, 0.0, gamma, lr, u0)
    ud = theory.balanced_u(t, lam, eps, 0.0, lr, u0)
    dead = lam <= gamma
    w_dead = float(uw[dead].max())
    d_rel = float(np.max(np.abs(ud / (lam / (lam + eps)) - 1.0)))
    return claim_row(
        "9 (theory)", "With one scalar γ, modes with λ ≤ γ are never learned by a WDAE; the DAE "
        "learns every λ > 0",
        f"γ = ε = 0.5, t = 1e6 epochs (η = 1e-3, u0 = 1e-6): max WDAE u for λ ≤ γ = {_e(w_dead)}; "
        f"DAE u/u* − 1 max {_e(d_rel)} for λ = {', '.join(fmt(x) for x in lam)}",
        "WDAE u → 0 for λ ≤ γ (u* = 0); DAE u → λ/(λ+ε) > 0",
        grade(w_dead <= u0 and d_rel <= 1e-9),
        "empirical parts (MNIST mode 31, CIFAR-10 mode 4) are checked with Figs. 5–6",
        tolerance=f"WDAE u ≤ u0 = {u0:g} for every λ ≤ γ; |u_DAE/u* − 1| ≤ 1e-9 for every λ",
        judged_on=f"the worst λ of each: WDAE {_e(w_dead)}, DAE {_e(d_rel)}")


def _hessian_fd(lam, eps, gamma, h=1e-4):
    """Central finite-difference Hessian of (E6) at w1 = w2 = 1 (independent of the formulas)."""
    f = lambda a, b: scalar.loss_e6(a, b, lam, eps, gamma)  # noqa: E731
    H = np.empty((2, 2) + np.shape(eps))
    H[0, 0] = (f(1 + h, 1) - 2 * f(1, 1) + f(1 - h, 1)) / h**2
    H[1, 1] = (f(1, 1 + h) - 2 * f(1, 1) + f(1, 1 - h)) / h**2
    H[0, 1] = H[1, 0] = (f(1 + h, 1 + h) - f(1 + h, 1 - h) - f(1 - h, 1 + h)
                         + f(1 - h, 1 - h)) / (4 * h * h)
    return np.linalg.eigvalsh(np.moveaxis(H, (0, 1), (-2, -1)))[..., -1]


def _claim10(fig3):
    lam = fig3.attrs["lam"]
    g = fig3["eps_grid"].values
    gam = theory.noise_to_decay(lam, g)
    top_d = _hessian_fd(lam, g, 0.0)
    top_w = _hessian_fd(lam, 0.0 * g, gam)
    err = max(float(np.max(np.abs(fig3["eta_dae"].values * top_d - 1.0))),
              float(np.max(np.abs(fig3["eta_wdae"].values * top_w - 1.0))))
    ratio_err = float(np.max(np.abs(fig3["eta_ratio"].values - lam / (lam + g))))
    r10 = float(theory.optimal_lr_dae(lam, 10.0)
                / theory.optimal_lr_wdae(lam, theory.noise_to_decay(lam, 10.0)))
    return claim_row(
        10, "η*_DAE = 1/(2λ+3ε), η*_WDAE = 1/(2λ+γ) are 1/(top Hessian eigenvalue at w=1); "
        "their ratio is λ/(λ+ε)",
        f"max |η*·λ_max(FD Hessian) − 1| = {_e(err)}; max |ratio − λ/(λ+ε)| = {_e(ratio_err)}; "
        f"ratio at λ=1, ε=10: {r10:.4f}",
        "equal (to FD accuracy ~1e-6); ratio 0.0909 at λ=1, ε=10",
        grade(err <= 1e-6 and ratio_err <= 1e-12 and abs(r10 - 1 / 11) <= 5e-5),
        "a heuristic: the Hessian is taken at the AE solution w = 1, which a regularised model "
        "never reaches (at u* the top eigenvalue is 2(λ−γ))",
        tolerance="|η*·λ_max − 1| ≤ 1e-6 (finite differences); |ratio − λ/(λ+ε)| ≤ 1e-12; ratio at ε = 10 "
                  "within 5e-5 of 1/11",
        judged_on=f"worst over {g.size} ε of the grid, DAE and WDAE: |η*·λ_max − 1| {_e(err)}, "
                  f"|ratio − λ/(λ+ε)| {_e(ratio_err)}")


def _claim11(fig3):
    d = fig3["u_diff"]
    opt = float(np.abs(d.sel(lr_rule="optimal")).max())
    nb = d.sel(lr_rule="notebook").max("epoch")
    doc = {0.2: 0.207, 1.0: 0.269, 1.8: 0.215}
    parts, ok, close = [], True, True
    for e, v in doc.items():
        j = _at(fig3, "eps", e)
        if j is None:
            parts.append(f"ε={fmt(e)}: not in dataset")
            ok = False
            continue
        m = float(nb[j])
        parts.append(f"ε={fmt(e)}: {m:.4f}")
        ok &= abs(m - v) <= 1e-3
        close &= abs(m - v) <= 1e-2
    nonneg = float(d.sel(lr_rule="notebook").min()) >= -1e-12
    rows = [claim_row(
        11, "At η*-scaled rates (×0.005) DAE and WDAE coincide; with the coded WDAE rate "
        "0.005/(2λ+2γ) the DAE leads",
        f"max |u_DAE − u_WDAE| at 1/(2λ+γ): {_e(opt)}; max lead at 1/(2λ+2γ): " + ", ".join(parts),
        "≤ 1e-12; ≤ 0.207, 0.269, 0.215 at ε = 0.2, 1, 1.8 (±0.001)",
        grade(opt <= 1e-12 and ok and nonneg, opt <= 1e-12 and close),
        "peaks read from curves sampled every "
        f"{fig3.attrs.get('record_every', 1)} epochs",
        tolerance="≤ 1e-12 at the optimal rates; each peak lead within 1e-3 of the stated value (1e-2: qualified)",
        judged_on=f"the largest |u_DAE − u_WDAE| over every ε and epoch at the optimal rates ({_e(opt)}) and "
                  "each ε's peak lead")]
    rows.append(claim_row(
        "11 (paper's Fig. 3)", "The DAE's optimal rate is smaller, yet the DAE still learns faster "
        "than the WDAE at optimal rates",
        f"at the rates the middle panel calls optimal, max |u_DAE − u_WDAE| = {_e(opt)}",
        "a positive lead of the DAE",
        "refuted" if opt <= 1e-12 else "qualified",
        "the lead in the original figure comes from running the WDAE at 0.005/(2λ+2γ), not "
        "at its own 'optimal' 0.005/(2λ+γ); at matched rates the trajectories are identical (E13)",
        tolerance="a lead of the DAE > 1e-12 (the rounding floor) at the optimal rates",
        judged_on=f"the largest |u_DAE − u_WDAE| over every ε and epoch: {_e(opt)}"))
    return rows


def _claim12(fig4):
    dae, wd = fig4.sel(model="DAE"), fig4.sel(model="WDAE")
    small = fig4["small_init_run"].values.astype(bool)
    ustar = fig4["u_star"].values
    end_u = np.abs(fig4["u"].isel(epoch=-1) - fig4["u_star"]).max("trial").values
    long_u = float(np.abs(fig4["u_long"] - fig4["u_star"]).max())
    nmin = float(wd["norm_min"])
    w_end = wd["norm"].isel(epoch=-1).values
    w_long = float(np.abs(wd["norm_long"].values - nmin).max())
    d_end = dae["norm"].isel(epoch=-1).values
    d_pred_err = float(np.abs(d_end - dae["norm_pred"].values)[~small].max())
    d_rng = (d_end[~small].min(), d_end[~small].max())
    s_end = fig4["norm"].isel(epoch=-1).values[:, small].ravel()
    # epochs the small-init run spends near the saddle: until u reaches u*/10
    t = fig4["epoch"].values
    plateau = [_first_step(t, fig4["u"].sel(model=m).values[small][0], 0.1 * float(fig4["u_star"].sel(model=m)))
               for m in fig4["model"].values]  # Fig. 4's GD is stored at every step
    ok = (abs(ustar[0] - 1 / 1.1) <= 1e-3 and long_u <= 1e-6 and w_long <= 1e-3
          and abs(nmin - 1.348) <= 1e-3 and d_pred_err <= 0.01
          and abs(d_rng[0] - 1.36) <= 0.01 and abs(d_rng[1] - 1.99) <= 0.01
          and np.all(np.abs(s_end - 1.348) <= 1e-3) and all(200 <= p <= 500 for p in plateau))
    n_long = fig4.attrs["long_epochs"]
    meas = (f"u*: {', '.join(fmt(u, 4) for u in ustar)}; max |u − u*| at epoch {int(t[-1])}: "
            f"DAE {end_u[0]:.1e}, WDAE {end_u[1]:.1e}, after {n_long}: {_e(long_u)}; "
            f"WDAE norms at {int(t[-1])}: {w_end.min():.4f}–{w_end.max():.4f}, "
            f"→ √(2u*) = {nmin:.4f} (max dev. after {n_long}: {_e(w_long)}); "
            f"DAE norms {d_rng[0]:.3f}–{d_rng[1]:.3f}, max |norm − (c0²+4u*²)^¼| = {d_pred_err:.4f}; small init ends at "
            f"{', '.join(f'{x:.4f}' for x in s_end)}, reaches u*/10 at epoch "
            f"{', '.join(f'{p:.0f}' for p in plateau)}")
    return claim_row(
        12, "Fig. 4: both reach u = 0.909; WDAE norms → √(2u*) = 1.348; DAE norms stay at "
        "(c0²+4u*²)^¼; the w = 0.01 run ends at 1.348 after a ~300-epoch plateau",
        meas,
        "u* = 0.909; WDAE 1.348–1.384 at 1000 → 1.3484; DAE 1.36–1.99 (±0.01 vs formula); "
        "small init 1.348, plateau ~300 epochs",
        grade(bool(ok)),
        "the WDAE has not fully converged by epoch 1000 (u within "
        f"{end_u[1]:.1e} of u*); plateau = the first GD step at which u ≥ u*/10",
        tolerance="u* ±1e-3 after the long run; norms ±1e-3 (WDAE, small init), ±0.01 (DAE formula, range); "
                  "plateau 200–500 epochs",
        judged_on=f"every trial: worst |u − u*| {_e(long_u)}, worst DAE norm error {d_pred_err:.4f}, plateaus "
                  f"{', '.join(f'{p:.0f}' for p in plateau)} epochs")


def _claim13(fig4):
    t = fig4["epoch"].values.astype(float)
    tau = fig4.attrs["tau"]
    c0 = (fig4["w1_init"] ** 2 - fig4["w2_init"] ** 2).values
    scale = max(float(np.abs(c0).max()), 1e-300)
    devs = {}
    for m in fig4["model"].values:
        g = float(fig4["gamma_model"].sel(model=m))
        c = fig4["imbalance_flow"].sel(model=m).values * np.exp(2 * g * t / tau)[None, :]
        devs[m] = float(np.abs(c - c0[:, None]).max()) / scale
    # discrete GD: one step maps c ↦ [(1−ηγ)² − η² r²] c exactly (E14), so it is not conserved
    eta = fig4.attrs["lr"]
    w1, w2 = fig4["w1"].values, fig4["w2"].values
    lam = fig4.attrs["lam"]
    eps = fig4["eps_model"].values[:, None, None]
    gam = fig4["gamma_model"].values[:, None, None]
    r = lam - (lam + eps) * w1 * w2
    c = w1**2 - w2**2
    pred = ((1 - eta * gam) ** 2 - eta**2 * r**2)[..., :-1] * c[..., :-1]
    gd_err = float(np.abs(c[..., 1:] - pred).max()) / scale
    gd_drift = float(np.abs(c[0, :, -1] - c[0, :, 0]).max()) / scale
    worst = max(devs.values())
    return claim_row(
        "13 (scalar)", "Under gradient flow w1² − w2² is constant for γ = 0 and decays as "
        "e^{−2γt/τ} for γ > 0",
        f"max relative deviation: DAE {_e(devs['DAE'])}, WDAE {_e(devs['WDAE'])} "
        "(flow, Fig. 4 inits); "
        f"GD obeys the discrete law c' = [(1−ηγ)² − η²r²]c to {_e(gd_err)} and drifts by "
        f"{_e(gd_drift)} (DAE, epoch {int(t[-1])})",
        "conserved / ∝ e^{−2γt/τ} (to ODE accuracy ≤ 1e-8)",
        grade(worst <= 1e-8, worst <= 1e-6),
        "per-mode (scalar) version; the full-matrix check belongs to the network tests",
        tolerance="relative deviation ≤ 1e-8 (ODE accuracy; ≤ 1e-6: qualified)",
        judged_on=f"the worst of DAE and WDAE over every Fig. 4 init and time: {_e(worst)}")


def _claim16():
    lams = np.array([0.5, 1.0, 2.0, 3.0])
    u0 = 1e-6
    per = []
    for eta in (1e-3, 1e-2, 1e-1):
        steps = int(np.ceil(40.0 / (2 * lams.min() * eta)))
        um = theory.balanced_map(steps, lams, 0.0, 0.0, eta, u0)
        uc = theory.balanced_u(np.arange(steps + 1)[None, :], lams[:, None], 0.0, 0.0, eta, u0)
        per.append(np.abs(um - uc).max(axis=1))
    per = np.array(per)  # (eta, lam)
    scaled = per / np.array([1e-3, 1e-2, 1e-1])[:, None]
    linear = float(np.max(np.abs(scaled / scaled[0] - 1.0)))
    at3 = scaled[:, -1]
    return claim_row(
        "16 (per mode)", "The continuous closed form is off from discrete GD by O(η): "
        "max |Δu| ≈ 1.6η at λ = 3",
        f"u0 = 1e-6, ε = γ = 0: max|Δu|/η at λ = 3 for η = 1e-3, 1e-2, 1e-1: "
        f"{', '.join(f'{x:.3g}' for x in at3)} (≈{scaled[0, 0] / lams[0]:.2f}·λ); "
        f"deviation from linear scaling {linear:.1%}",
        "O(η); ≈1.6e-3, 1.6e-2, 0.16 at η = 1e-3, 1e-2, 1e-1",
        grade(linear <= 0.2 and np.all(np.abs(at3 / 1.6 - 1) <= 0.25), linear <= 0.2),
        "the constant grows with ln(u*/u0) (the map lags the flow by a fixed number of steps "
        "during the growth phase); the claim states no u0, so only the O(η) scaling is "
        "checked strictly",
        tolerance="max|Δu|/η within 20 % of its value at η = 1e-3 for every η and λ (O(η)); at λ = 3 within "
                  "25 % of 1.6 (else qualified)",
        judged_on=f"worst over 3 η × {lams.size} λ: deviation from linear scaling {linear:.1%}; at λ = 3 "
                  f"worst |Δu/η / 1.6 − 1| {float(np.max(np.abs(at3 / 1.6 - 1))):.1%}")


def _converges(lr, lam, eps, gamma, steps=20000, u0=0.5):
    u = theory.balanced_map(steps, lam, eps, gamma, lr, u0)
    us = theory.fixed_point(lam, eps, gamma)
    return np.abs(u[..., -1] - us) < 1e-6 * np.maximum(us, 1e-12)


def _claim17():
    # scan η across the predicted limit of the balanced map, for DAE (two ε) and a WDAE
    cases = np.array([(3.0, 0.4, 0.0), (3.0, 1.5, 0.0), (3.0, 0.0, 0.1)])
    lam, eps, gam = (cases[:, k, None] for k in range(3))
    grid = 1.0 + np.linspace(-0.02, 0.02, 81)  # η in units of 1/(λ−γ), steps of 0.05 %
    etas = grid[None, :] / (lam - gam)
    conv_grid = _converges(etas, lam, eps, gam)
    found = [float(etas[i][conv_grid[i]].max()) for i in range(len(cases))]
    pred = 1.0 / (cases[:, 0] - cases[:, 2])
    rel = float(np.max(np.abs(np.array(found) / pred - 1.0)))
    # period-2 orbit just above the limit (λ = 3, ε = 0.5, η = 0.334)
    u = theory.balanced_map(20000, 3.0, 0.5, 0.0, 0.334, 1e-6)[-2:]
    ok2 = abs(min(u) - 0.818) <= 2e-3 and abs(max(u) - 0.895) <= 2e-3
    conv = bool(_converges(0.33, 3.0, 0.5, 0.0, steps=20000, u0=1e-6))
    worst = ("ε=0.4", "ε=1.5", "WDAE γ=0.1")[int(np.argmax(np.abs(np.array(found) / pred - 1.0)))]
    return claim_row(
        17, "The balanced per-mode map is stable iff η < 1/(λ−γ), with a period-2 orbit just "
        "above; the DAE limit does not depend on ε",
        f"scanned limits (λ=3): ε=0.4 {found[0]:.5f}, ε=1.5 {found[1]:.5f}, WDAE γ=0.1 "
        f"{found[2]:.5f}; max rel. deviation from 1/(λ−γ) {_e(rel)}; η=0.33 converges: {conv}; "
        f"η=0.334 orbit {min(u):.3f}/{max(u):.3f}",
        "1/3 for both ε, 1/2.9 for γ=0.1; orbit 0.818/0.895 at η=0.334",
        grade(rel <= 1e-3 and ok2 and conv, rel <= 1e-2),
        "limit = the largest η on a 0.05 % grid whose map converges to u* within 20000 steps; "
        "the full-network 1/λ₁ part is a Hessian check elsewhere",
        tolerance="scanned limit within 1e-3 of 1/(λ−γ) (else 1e-2: qualified); orbit within 2e-3 of "
                  "0.818/0.895; η = 0.33 converges",
        judged_on=f"worst of 3 cases: {_e(rel)} ({worst}); orbit {min(u):.3f}/{max(u):.3f}")


def _claim19(fig2, n=50000):
    t = fig2["epoch"].values.astype(float)[None, None, :]
    L = fig2["lam"].values[:, None, None]
    E = fig2["eps"].values[None, :, None]
    lr, u0 = fig2.attrs["lr"], fig2.attrs["u0"]
    mean = theory.balanced_u(t, L, E, 0.0, lr, u0)
    ls, es, _, tau_s = theory.to_n_scaled(n, L, E, 0.0, lr)
    nsc = theory.balanced_u(t, ls, es, 0.0, 1.0 / tau_s, u0)
    mixed = theory.balanced_u(t / n, ls, es, 0.0, lr, u0)  # N-scaled λ with τ = 1/η
    same = float(np.abs(mean - nsc).max())
    shift = float(np.abs(mixed - mean).max())
    return claim_row(
        19, "The sum and mean conventions give identical theory curves; mixing them rescales "
        "time by N",
        f"N = {n}: max |u_mean − u_N-scaled| = {_e(same)}; mixed convention at t/N vs mean at t: "
        f"{_e(shift)}", "≤ 1e-12", grade(same <= 1e-12 and shift <= 1e-12),
        "mixed = N-scaled λ, ε with the mean-convention τ = 1/η",
        tolerance="max |Δu| ≤ 1e-12 for both comparisons",
        judged_on=f"the worst λ, ε and epoch of Fig. 2's grid: {_e(max(same, shift))}")


def theory_claims(fig1, fig2, fig3, fig4):
    """Evaluate claims 1–13, 16, 17, 19 of docs/science.md (theory / scalar parts) on the datasets.

    Returns a list of dicts with keys :data:`COLUMNS`; ``verdict`` ∈ :data:`VERDICTS`.
    """
    rows = [_claim1(fig1, fig2), _claim2(fig1), _claim3(fig1), _claim4(), _claim5(fig2),
            _claim6(fig2), _claim7(fig2), _claim8(fig2), _claim9(), _claim10(fig3)]
    rows += _claim11(fig3)
    rows += [_claim12(fig4), _claim13(fig4), _claim16(), _claim17(), _claim19(fig2)]
    return rows
