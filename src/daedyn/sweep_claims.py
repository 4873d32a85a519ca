"""The claims a parameter sweep answers, from its per-condition table
(:func:`daedyn.analysis.sweep_table`): trained plateaus, trajectories and timings against the linear
theory. Every row judges the worst run-mode pair against a stated tolerance and names it."""

from __future__ import annotations

import numpy as np

from daedyn.claims import claim_row, fmt

__all__ = ["SWEEP_PLATEAU_TOLERANCE", "SWEEP_TIMING_TOLERANCE", "SWEEP_TIMING_QUANTILE", "sweep_claims"]

#: tolerance of a trained plateau and trajectory against the theory in a sweep (mode strengths are in [0, 1])
SWEEP_PLATEAU_TOLERANCE = 0.05
#: tolerance of a timing: this fraction of the theory's epochs, or the timing resolution if larger
SWEEP_TIMING_TOLERANCE = 0.1
#: the quantile of the timing errors that must lie within the tolerance for "qualified"
SWEEP_TIMING_QUANTILE = 0.9


def _where(row) -> str:
    return f"run {row['run']}, mode {row['mode']}"


def sweep_claims(table, family):
    """Claims a sweep table (:func:`daedyn.analysis.sweep_table`) answers, over all its runs and modes.

    1. The trained plateau equals the theory's value at the same epoch (means over seeds).
    2. The trained plateau reaches the fixed point max(λ − γ, 0)/(λ + ε); a condition whose
       theory has not reached it by the last epoch either is counted apart (too few epochs, not
       a disagreement).
    3. The trained trajectory follows the theory throughout the run: the largest |theory −
       trained| at any recorded epoch, which peaks mid-run while the modes grow.
    4. The epochs to 50 % and 90 % of the plateau equal the theory's, within
       :data:`SWEEP_TIMING_TOLERANCE` of the theory's epochs or the timing resolution
       (``t_resolution``: one step for a linear run, the recording interval for a nonlinear one).

    Each row is confirmed only if its worst run-mode pair lies within the tolerance; the
    plateau and trajectory rows are qualified within three times the tolerance, the timing row
    if the :data:`SWEEP_TIMING_QUANTILE` quantile of its errors lies within it (the worst cases
    are named either way). For a nonlinear sweep the "theory" is the linear one for the same
    hyperparameters: a reference, so a difference is reported as "qualified", never "refuted".
    """
    tol = SWEEP_PLATEAU_TOLERANCE
    worst_ok = "qualified" if family == "nonlinear" else "refuted"
    reference = "linear theory for the same hyperparameters" if family == "nonlinear" else ""

    def verdict(worst, almost):
        return "confirmed" if worst <= tol else ("qualified" if almost else worst_ok)

    final = np.array([r["final"] for r in table])
    th_final = np.array([r["theory_final"] for r in table])
    fixed = np.array([r["fixed_point"] for r in table])
    diff = np.abs(final - th_final)
    k = int(np.argmax(diff))
    rows = [claim_row("sweep-plateau", "the trained plateau (mean over seeds) equals the theory's value at the last "
                      "recorded epoch, for every run and mode of the sweep",
                      f"max |trained − theory| = {fmt(diff[k])} ({_where(table[k])}) over {len(table)} run-mode pairs",
                      f"≤ {tol} for every pair", verdict(diff[k], diff[k] <= 3 * tol), reference,
                      tolerance=f"≤ {tol} (qualified ≤ {3 * tol:g})",
                      judged_on=f"worst over {len(table)} run-mode pairs: {fmt(diff[k])} ({_where(table[k])})")]
    converged = np.abs(th_final - fixed) <= tol
    gap = np.abs(final - fixed)
    off = gap > tol
    n_off, n_slow = int(np.sum(off & converged)), int(np.sum(off & ~converged))
    k = int(np.argmax(np.where(converged, gap, -np.inf)))
    rows.append(claim_row("sweep-fixed-point", "the trained plateau reaches the fixed point max(λ − γ, 0)/(λ + ε) "
                          "wherever the theory has reached it by the last epoch",
                          f"{len(table) - n_off - n_slow} of {len(table)} run-mode pairs within {tol}; {n_off} off although "
                          f"the theory converged; {n_slow} not converged in the theory either; worst where the theory "
                          f"converged: |trained − fixed point| = {fmt(gap[k])} ({_where(table[k])})",
                          f"all within {tol} where the theory converged",
                          "confirmed" if n_off == 0 else worst_ok,
                          "raise epochs to see the slow modes settle" if n_slow else "",
                          tolerance=f"≤ {tol}",
                          judged_on=f"worst over the {int(converged.sum())} pairs whose theory converged: "
                                    f"{fmt(gap[k])} ({_where(table[k])})"))
    err = np.array([r["max_abs_err"] for r in table])
    k = int(np.argmax(err))
    rows.append(claim_row("sweep-trajectory", "the trained trajectory follows the theory at every recorded epoch, "
                          "not only at the plateau",
                          f"max over the run of |theory − trained| = {fmt(err[k])} ({_where(table[k])}, largest "
                          f"near epoch {table[k]['max_abs_err_epoch']:.0f}) over {len(table)} run-mode pairs; "
                          f"{int(np.sum(err > tol))} pairs above {tol}",
                          f"≤ {tol} for every pair at every epoch", verdict(err[k], err[k] <= 3 * tol),
                          reference or "the per-mode theory neglects the coupling of the modes, largest while they "
                          "grow", tolerance=f"≤ {tol} (qualified ≤ {3 * tol:g})",
                          judged_on=f"worst over {len(table)} run-mode pairs and every recorded epoch: {fmt(err[k])} "
                                    f"({_where(table[k])})"))
    rows.append(_timing(table, worst_ok, reference))
    return rows


def _timing(table, worst_ok, reference):
    """The timing row: epochs to 50 % and 90 % of the plateau, measured against the theory's."""
    cases = []  # (relative error / relative tolerance, label, error text)
    for r in table:
        for q in ("50", "90"):
            meas, pred = r[f"t{q}_measured"], r[f"t{q}_predicted"]
            if not (np.isfinite(meas) and np.isfinite(pred) and pred > 0):
                continue
            allowed = max(SWEEP_TIMING_TOLERANCE * pred, r["t_resolution"])
            cases.append((abs(meas - pred) / allowed, f"t{q} of {_where(r)}: {meas:.0f} vs {pred:.0f} epochs "
                          f"({abs(meas - pred) / pred:.0%})"))
    resolution = sorted({r["t_resolution"] for r in table})
    expected = (f"every timing within {SWEEP_TIMING_TOLERANCE:.0%} of the theory's epochs or "
                f"{'/'.join(map(str, resolution))} epoch(s) (the timing resolution), whichever is larger")
    statement = "the epochs to 50 % and 90 % of the plateau equal the theory's"
    if not cases:
        return claim_row("sweep-timing", statement, "no run-mode pair reached 50 % of its plateau", expected,
                         worst_ok, reference, tolerance=expected, judged_on="no timing to judge")
    score = np.array([c[0] for c in cases])
    order = np.argsort(-score)
    within = score <= 1.0
    quantile = float(np.quantile(score, SWEEP_TIMING_QUANTILE))
    worst = "; ".join(cases[i][1] for i in order[:3])
    return claim_row(
        "sweep-timing", statement,
        f"{int(within.sum())} of {score.size} timings within the tolerance; the "
        f"{SWEEP_TIMING_QUANTILE:.0%} quantile of |measured − predicted| is {fmt(quantile)} times the tolerance; "
        f"worst: {worst}",
        expected,
        "confirmed" if within.all() else ("qualified" if quantile <= 1.0 else worst_ok),
        reference or "per-step timings (the steps between records follow the exact per-mode map); qualified "
        f"where the {SWEEP_TIMING_QUANTILE:.0%} quantile is within the tolerance",
        tolerance=f"max({SWEEP_TIMING_TOLERANCE:.0%} of the theory's epochs, the timing resolution)",
        judged_on=f"worst over {score.size} timings ({'all' if within.all() else 'not all'} within), then the "
                  f"{SWEEP_TIMING_QUANTILE:.0%} quantile ({fmt(quantile)} × the tolerance); worst: {worst}")
