"""The claims a parameter sweep answers, from its per-condition table
(:func:`daedyn.analysis.sweep_table`): trained plateaus and timings against the linear theory."""

from __future__ import annotations

import numpy as np

from daedyn.claims import claim_row, fmt

__all__ = ["SWEEP_PLATEAU_TOLERANCE", "sweep_claims"]

#: tolerance of a trained plateau against the theory in a sweep (mode strengths are in [0, 1])
SWEEP_PLATEAU_TOLERANCE = 0.05


def sweep_claims(table, family):
    """Claims a sweep table (:func:`daedyn.analysis.sweep_table`) answers, over all its runs and modes.

    1. The trained plateau equals the theory's value at the same epoch (means over seeds).
    2. The trained plateau reaches the fixed point max(λ − γ, 0)/(λ + ε); a condition whose
       theory has not reached it by the last epoch either is counted apart (too few epochs, not
       a disagreement).
    3. The epochs to 90 % of the plateau equal the theory's (median relative difference).
    For a nonlinear sweep the "theory" is the linear one for the same hyperparameters: a
    reference, so a difference is reported as "qualified", never "refuted".
    """
    tol = SWEEP_PLATEAU_TOLERANCE
    worst_ok = "qualified" if family == "nonlinear" else "refuted"
    final = np.array([r["final"] for r in table])
    th_final = np.array([r["theory_final"] for r in table])
    fixed = np.array([r["fixed_point"] for r in table])
    diff = np.abs(final - th_final)
    k = int(np.argmax(diff))
    rows = [claim_row("sweep-plateau", "the trained plateau (mean over seeds) equals the theory's value at the last "
                 "recorded epoch, for every run and mode of the sweep",
                 f"max |trained − theory| = {fmt(diff[k])} (run {table[k]['run']}, mode {table[k]['mode']}) over "
                 f"{len(table)} run-mode pairs", f"≤ {tol}",
                 "confirmed" if diff[k] <= tol else ("qualified" if diff[k] <= 3 * tol else worst_ok),
                 "linear theory for the same hyperparameters" if family == "nonlinear" else "")]
    converged = np.abs(th_final - fixed) <= tol
    off = np.abs(final - fixed) > tol
    n_off, n_slow = int(np.sum(off & converged)), int(np.sum(off & ~converged))
    rows.append(claim_row("sweep-fixed-point", "the trained plateau reaches the fixed point max(λ − γ, 0)/(λ + ε) "
                     "wherever the theory has reached it by the last epoch",
                     f"{len(table) - n_off - n_slow} of {len(table)} run-mode pairs within {tol}; {n_off} off although "
                     f"the theory converged; {n_slow} not converged in the theory either",
                     f"all within {tol} where the theory converged",
                     "confirmed" if n_off == 0 else worst_ok,
                     "raise epochs to see the slow modes settle" if n_slow else ""))
    t_meas = np.array([r["t90_measured"] for r in table])
    t_pred = np.array([r["t90_predicted"] for r in table])
    both = np.isfinite(t_meas) & np.isfinite(t_pred) & (t_pred > 0)
    if both.any():
        rel = np.abs(t_meas[both] - t_pred[both]) / t_pred[both]
        median = float(np.median(rel))
        rows.append(claim_row("sweep-timing", "the epochs to 90 % of the plateau equal the theory's",
                         f"median |measured − predicted| / predicted = {fmt(median)} over {int(both.sum())} run-mode "
                         f"pairs (max {fmt(rel.max())})", "≤ 0.1 (one recording interval is the resolution)",
                         "confirmed" if median <= 0.1 else ("qualified" if median <= 0.3 else worst_ok)))
    return rows
