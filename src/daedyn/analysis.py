"""Aggregation of linear training runs with their per-mode theory (paper Fig. 5).

Each run file (one per run × seed, from :mod:`daedyn.jobs.linear`) holds the
tracked trajectory and the initial weights. :func:`combine_runs` stacks them
along ``run`` and ``seed``, failing on a missing or duplicate run;
:func:`add_theory` adds two theories in the same coordinates:

``u_theory``
    the exact per-mode discrete map started from each mode's *actual* initial
    weights (E15 in docs/science.md: x₀ = ‖a+b‖²/4, y₀ = ‖a−b‖²/4 with a = W₁vᵢ,
    b = W₂ᵀvᵢ), cross-mode coupling neglected;
``u_paper``
    the paper's balanced closed form (E7b) with its single heuristic
    u₀ = (sum of the top 100 singular values of the initial W)/d (D3).

:func:`metrics` compares both with the trained network's uᵢ = vᵢᵀWvᵢ.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from daedyn import theory

PAPER_U0_TOP = 100  # the authors sum the top 100 singular values of the initial W (D3)


def combine_runs(runs: list[xr.Dataset], expected_runs: list[str], expected_seeds: list[int]) -> xr.Dataset:
    """Stack run files along (run, seed); a missing or duplicate run is an error."""
    keys = [(str(ds["run"].item()), int(ds["seed"].item())) for ds in runs]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate runs {dupes}")
    expected = {(r, s) for r in expected_runs for s in expected_seeds}
    if set(keys) != expected:
        raise ValueError(f"runs do not match the grid: missing {sorted(expected - set(keys))}, "
                         f"unexpected {sorted(set(keys) - expected)}")
    combined = xr.combine_by_coords(runs, join="exact", compat="no_conflicts", coords="minimal",
                                    data_vars="minimal", combine_attrs="drop_conflicts")
    return combined.sel(run=list(expected_runs), seed=list(expected_seeds))


def paper_u0(singular_values_init: np.ndarray, d: int, top: int = PAPER_U0_TOP) -> float:
    """The authors' heuristic u₀: sum of the top `top` singular values of the initial W, over d."""
    sv = np.sort(np.asarray(singular_values_init, dtype=float))[::-1]
    return float(sv[:top].sum() / d)


def add_theory(combined: xr.Dataset, lam: np.ndarray, V: np.ndarray) -> xr.Dataset:
    """Add ``u_theory`` (E15, from each mode's initial weights) and ``u_paper`` (E7b, heuristic u₀).

    Both are computed at every step in float64 and sampled at the recorded
    epochs, so they share the coordinates of the trained ``u``.
    """
    epochs = combined["epoch"].values
    n_steps = int(epochs.max())
    d = lam.size
    shape = (combined.sizes["run"], combined.sizes["seed"], d, epochs.size)
    u_theory, u_paper = np.empty(shape), np.empty(shape)
    u0s = np.empty(shape[:2])
    for i, run in enumerate(combined["run"].values):
        for j, seed in enumerate(combined["seed"].values):
            one = combined.sel(run=run, seed=seed)
            eps, gamma, lr = (float(one[k]) for k in ("eps", "gamma", "lr"))
            x0, y0 = theory.mode_state_from_weights(
                one["w1_init"].values.astype(float), one["w2_init"].values.astype(float), V)
            u_theory[i, j] = theory.vector_mode_map(n_steps, lam, eps, gamma, lr, x0=x0, y0=y0)[:, epochs]
            u0s[i, j] = paper_u0(one["singular_values"].sel(epoch=0).values, d)
            u_paper[i, j] = theory.balanced_u(epochs[None, :], lam[:, None], eps, gamma, lr, u0s[i, j])
    dims = ("run", "seed", "mode", "epoch")
    combined = combined.copy()
    combined["u_theory"] = xr.DataArray(u_theory, dims=dims, attrs={
        "long_name": "per-mode theory from each mode's initial weights (exact discrete map, E15)",
        "units": "1"}).transpose(*combined["u"].dims)
    combined["u_paper"] = xr.DataArray(u_paper, dims=dims, attrs={
        "long_name": "paper's balanced closed form (E7b) with the heuristic u0 (D3)",
        "units": "1"}).transpose(*combined["u"].dims)
    combined["u0_paper"] = (("run", "seed"), u0s, {
        "long_name": f"heuristic u0 = sum of the top {PAPER_U0_TOP} singular values of the initial W / d",
        "units": "1"})
    # the network's stability limit for each run (the guard's number)
    combined = combined.assign_coords(eta_max=("run", [
        theory.stability_limit(lam, float(combined["eps"].sel(run=r)), float(combined["gamma"].sel(run=r)),
                               int(combined["hidden_units"].sel(run=r))) for r in combined["run"].values],
        {"long_name": "stability limit eta_max of full-batch gradient descent for the whole network",
         "units": "1"}))
    combined["u_star"] = (("run", "mode"), theory.fixed_point(
        lam[None, :], combined["eps"].values[:, None], combined["gamma"].values[:, None]), {
        "long_name": "fixed point max(lam - gamma, 0)/(lam + eps) (E8)", "units": "1"})
    return combined


def _first_epoch(epochs: np.ndarray, u: np.ndarray, level: np.ndarray) -> np.ndarray:
    """First recorded epoch where u ≥ level, per mode (NaN if never, or if level ≤ 0)."""
    reached = u >= level[None, :]
    first = np.where(reached.any(axis=0), epochs[np.argmax(reached, axis=0)], np.nan)
    return np.where(level > 0, first, np.nan)


PLATEAU_TOLERANCE = 0.05  # claim 14 (docs/science.md): plateaus read off the paper's figure, ±0.05


def metrics(combined: xr.Dataset, modes: list[int], paper_plateaus: dict | None = None) -> list[dict]:
    """Per run, seed and mode: theory-vs-actual errors and the epochs to 50 % / 90 % of u*.

    Relative errors are max|Δu| divided by the mode's fixed point u* (undefined
    where u* = 0). "Predicted" epochs come from the E15 theory curve, at the
    recording resolution like the measured ones; ``t50_paper`` is the paper's
    closed form (E10b) with its heuristic u₀. ``eta_max`` is the network's stability
    limit (:func:`daedyn.theory.stability_limit`, added by :func:`add_theory`), so
    ``lr_over_eta_max`` < 1 says how safely the learning rate was chosen and
    ``above_stability_limit`` flags a run trained above it on purpose (``allow_unstable``). With ``paper_plateaus`` (run name → one value per
    mode, read off the paper's figure) each row also says whether the trained plateau lies
    within ±0.05 of the paper's (1/0; blank without a paper value).
    """
    rows = []
    epochs = combined["epoch"].values
    for run in combined["run"].values:
        for seed in combined["seed"].values:
            one = combined.sel(run=run, seed=seed, mode=modes)
            actual = one["u"].transpose("epoch", "mode").values.astype(float)
            th = one["u_theory"].transpose("epoch", "mode").values
            pa = one["u_paper"].transpose("epoch", "mode").values
            ustar = one["u_star"].values
            lam = one["lam"].values
            eps, gamma, lr = (float(one[k]) for k in ("eps", "gamma", "lr"))
            err_th = np.abs(th - actual).max(axis=0)
            err_pa = np.abs(pa - actual).max(axis=0)
            safe = np.where(ustar > 0, ustar, np.nan)
            t_pred = {f: _first_epoch(epochs, th, f * ustar) for f in (0.5, 0.9)}
            t_meas = {f: _first_epoch(epochs, actual, f * ustar) for f in (0.5, 0.9)}
            t50_paper = theory.steps_to_fraction(0.5, lam, eps, gamma, lr, float(one["u0_paper"]))
            eta_max = float(one["eta_max"])
            for k, mode in enumerate(modes):
                rows.append({
                    "run": str(run), "seed": int(seed), "mode": int(mode), "lam": float(lam[k]),
                    "eps": eps, "gamma": gamma, "u_star": float(ustar[k]),
                    "u_final": float(actual[-1, k]),
                    "max_abs_err_theory": float(err_th[k]), "max_rel_err_theory": float(err_th[k] / safe[k]),
                    "max_abs_err_paper": float(err_pa[k]), "max_rel_err_paper": float(err_pa[k] / safe[k]),
                    "t50_predicted": float(t_pred[0.5][k]), "t50_measured": float(t_meas[0.5][k]),
                    "t90_predicted": float(t_pred[0.9][k]), "t90_measured": float(t_meas[0.9][k]),
                    "t50_paper": float(np.asarray(t50_paper)[k]),
                    "lr": lr, "eta_max": eta_max, "lr_over_eta_max": lr / eta_max,
                    "above_stability_limit": int(lr >= eta_max),
                    **_plateau_check(paper_plateaus, str(run), k, float(actual[-1, k])),
                })
    return rows


def _plateau_check(paper_plateaus: dict | None, run: str, k: int, final: float) -> dict:
    if not paper_plateaus:
        return {}
    values = paper_plateaus.get(run)
    if values is None:
        return {"paper_plateau": float("nan"), "plateau_matches_paper": ""}
    return {"paper_plateau": float(values[k]),
            "plateau_matches_paper": int(abs(final - values[k]) <= PLATEAU_TOLERANCE)}
