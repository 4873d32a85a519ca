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


#: per-run settings that get a column of their own in metrics.csv where they differ between runs
RUN_SETTINGS = ("n_samples", "init_std", "batch_size", "engine")
#: trajectories summarised over seeds by :func:`combine_runs` (``<name>_mean``, ``<name>_sd``)
SEED_STATISTICS = ("u", "mapping", "mapping_noisy")


def combine_runs(runs: list[xr.Dataset], expected_runs: list[str], expected_seeds: list[int]) -> xr.Dataset:
    """Stack run files along (run, seed), with their seed statistics (:func:`seed_statistics`).

    A missing or duplicate run is an error, and so are runs recorded at different epochs or
    modes. Settings that differ between runs (scalar coordinates such as ``lr`` and
    ``hidden_units``, and :data:`RUN_SETTINGS`) become (run,) coordinates, and ``lam`` a
    (run, mode) coordinate where the runs were trained on different spectra; settings shared
    by every run stay scalars.
    """
    keys = [(str(ds["run"].item()), int(ds["seed"].item())) for ds in runs]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate runs {dupes}")
    expected = {(r, s) for r in expected_runs for s in expected_seeds}
    if set(keys) != expected:
        raise ValueError(f"runs do not match the grid: missing {sorted(expected - set(keys))}, "
                         f"unexpected {sorted(set(keys) - expected)}")
    for dim in ("epoch", "mode"):
        for key, ds in zip(keys[1:], runs[1:]):
            if dim in ds.dims and not np.array_equal(ds[dim].values, runs[0][dim].values):
                raise ValueError(f"run {key} is recorded at other {dim}s than run {keys[0]}; the runs of "
                                 f"one experiment share their {dim}s")
    runs = _per_run_settings(runs)
    combined = xr.combine_by_coords(runs, join="outer", compat="no_conflicts", coords="minimal",
                                    data_vars="minimal", combine_attrs="drop_conflicts")
    combined = combined.sel(run=list(expected_runs), seed=list(expected_seeds))
    return seed_statistics(combined, [name for name in SEED_STATISTICS if name in combined])


def _per_run_settings(runs: list[xr.Dataset]) -> list[xr.Dataset]:
    """Run files ready to combine. Every setting is already a (run,) coordinate of its run file;
    ``lam`` becomes a (run, mode) coordinate where the runs were trained on different spectra, and
    runs of different widths get a ``hidden`` index so that they are padded (with NaN)."""
    def differs(values):
        return any(not np.array_equal(v, values[0]) for v in values[1:])

    varying_lam = differs([ds["lam"].values for ds in runs]) if "lam" in runs[0].coords else False
    varying_hidden = "hidden" in runs[0].dims and differs([ds.sizes["hidden"] for ds in runs])
    out = []
    for ds in runs:
        if varying_lam:
            ds = ds.assign_coords(lam=(("run", "mode"), ds["lam"].values[None, :], ds["lam"].attrs))
        if varying_hidden:
            ds = ds.assign_coords(hidden=np.arange(ds.sizes["hidden"]))
        out.append(ds)
    return out


def seed_statistics(combined: xr.Dataset, names) -> xr.Dataset:
    """Add ``<name>_mean`` and ``<name>_sd`` over seeds for each variable, and ``n_seeds`` per run.

    The standard deviation is the sample one (n − 1 in the denominator), NaN with a single seed;
    ``n_seeds`` counts the seeds with a value at the last recorded epoch.
    """
    out = combined.copy()
    for name in names:
        values = combined[name]
        # "short name: definition" (store.write_dataset splits it), or a file's long_name and comment
        what, _, definition = str(values.attrs.get("long_name", name)).partition(": ")
        definition = definition or values.attrs.get("comment", what)
        out[f"{name}_mean"] = values.mean("seed").assign_attrs(
            long_name=f"{what}, seed mean: mean over seeds of {definition}", units=values.attrs.get("units", "1"))
        sd = values.std("seed", ddof=1) if combined.sizes["seed"] > 1 else xr.full_like(values.isel(seed=0), np.nan)
        out[f"{name}_sd"] = sd.assign_attrs(
            long_name=f"{what}, seed sd: sample standard deviation over seeds (n - 1) of {definition}; NaN with "
                      "one seed", units=values.attrs.get("units", "1"))
    if names:
        last = combined[names[0]].isel(epoch=-1)
        count = last.notnull().all([d for d in last.dims if d not in ("run", "seed")]).sum("seed")
        out["n_seeds"] = count.astype(np.int64).assign_attrs(long_name="number of seeds", units="1")
    return out


def paper_u0(singular_values_init: np.ndarray, d: int, top: int = PAPER_U0_TOP) -> float:
    """The authors' heuristic u₀: sum of the top `top` singular values of the initial W, over d."""
    sv = np.asarray(singular_values_init, dtype=float)
    sv = np.sort(sv[np.isfinite(sv)])[::-1]  # runs of a narrower network are padded with NaN
    return float(sv[:top].sum() / d)


def add_theory(combined: xr.Dataset, lam: np.ndarray, V: np.ndarray,
               spectra: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> xr.Dataset:
    """Add ``u_theory`` (from each mode's initial weights), ``u_paper`` (the paper's closed form
    with its heuristic u₀, E7b), the fixed points ``u_star`` and each run's stability limit ``eta_max``.

    ``lam``, ``V`` are the eigenvalues and eigenvectors of the spectrum the runs were trained
    on. A run trained on another one (a sweep over ``n_samples``) takes its own from
    ``spectra`` (n_samples → (lam, V)); without it that is an error naming the run. Both
    theories are computed at every step in float64 and sampled at the recorded epochs, so they
    share the coordinates of the trained ``u``.
    """
    epochs = combined["epoch"].values
    n_steps = int(epochs.max())
    d = lam.size
    shape = (combined.sizes["run"], combined.sizes["seed"], d, epochs.size)
    u_theory, u_paper = np.empty(shape), np.empty(shape)
    x0s, y0s = np.empty(shape[:3]), np.empty(shape[:3])
    u0s = np.empty(shape[:2])
    u_star = np.empty((combined.sizes["run"], d))
    eta_max = np.empty(combined.sizes["run"])
    for i, run in enumerate(combined["run"].values):
        run_lam, run_V = _spectrum_of(combined.sel(run=run), lam, V, spectra)
        eps, gamma = float(combined["eps"].sel(run=run)), float(combined["gamma"].sel(run=run))
        u_star[i] = theory.fixed_point(run_lam, eps, gamma)
        # the network's stability limit for the run (the number the engines' guard uses)
        eta_max[i] = theory.stability_limit(run_lam, eps, gamma, int(combined["hidden_units"].sel(run=run)))
        for j, seed in enumerate(combined["seed"].values):
            one = combined.sel(run=run, seed=seed)
            lr = float(one["lr"])
            w1 = one["w1_init"].dropna("hidden", how="all") if "hidden" in one.dims else one["w1_init"]
            w2 = one["w2_init"].dropna("hidden", how="all") if "hidden" in one.dims else one["w2_init"]
            x0s[i, j], y0s[i, j] = x0, y0 = theory.mode_state_from_weights(w1.values.astype(float),
                                                                            w2.values.astype(float), run_V)
            u_theory[i, j] = theory.vector_mode_map(n_steps, run_lam, eps, gamma, lr, x0=x0, y0=y0)[:, epochs]
            u0s[i, j] = paper_u0(one["singular_values"].sel(epoch=0).values, d)
            u_paper[i, j] = theory.balanced_u(epochs[None, :], run_lam[:, None], eps, gamma, lr, u0s[i, j])
    dims = ("run", "seed", "mode", "epoch")
    combined = combined.copy()
    combined["u_theory"] = xr.DataArray(u_theory, dims=dims, attrs={
        "long_name": "per-mode theory: from each mode's initial weights (exact discrete map, E15)",
        "units": "1"}).transpose(*combined["u"].dims)
    combined["u_paper"] = xr.DataArray(u_paper, dims=dims, attrs={
        "long_name": "paper's closed form: balanced closed form (E7b) with the heuristic u0 (D3)",
        "units": "1"}).transpose(*combined["u"].dims)
    combined["x0"] = (("run", "seed", "mode"), x0s, {
        "long_name": "initial state x0: |a_i + b_i|^2/4 of the mode (a_i = W1 v_i, b_i = W2^T v_i)", "units": "1"})
    combined["y0"] = (("run", "seed", "mode"), y0s, {
        "long_name": "initial state y0: |a_i - b_i|^2/4 of the mode", "units": "1"})
    combined["u0_paper"] = (("run", "seed"), u0s, {
        "long_name": f"paper's heuristic u0: sum of the top {PAPER_U0_TOP} singular values of the initial W / d",
        "units": "1"})
    combined = combined.assign_coords(eta_max=("run", eta_max, {
        "long_name": "stability limit eta_max: of full-batch gradient descent for the whole network (E16)",
        "units": "1"}))
    combined["u_star"] = (("run", "mode"), u_star, {
        "long_name": "fixed point: max(lam - gamma, 0)/(lam + eps) (E8)", "units": "1"})
    return combined


def _spectrum_of(run: xr.Dataset, lam: np.ndarray, V: np.ndarray, spectra: dict | None):
    """The (lam, V) a run was trained on: the given one, or its n_samples' entry of ``spectra``."""
    trained = run["lam"].values
    candidates = [(lam, V)]
    n = int(run["n_samples"]) if "n_samples" in run.coords else None
    if spectra and n in spectra:
        candidates.insert(0, spectra[n])
    for cand_lam, cand_V in candidates:
        if cand_lam.shape == trained.shape and np.allclose(cand_lam, trained, rtol=1e-9, atol=0):
            return np.asarray(cand_lam, float), cand_V
    raise ValueError(f"run {str(run['run'].item())!r} was trained on another spectrum (n_samples={n}) than the "
                     f"one given; pass its eigenvalues and eigenvectors as spectra={{{n}: (lam, V)}}")


def _first_epoch(epochs: np.ndarray, u: np.ndarray, level: np.ndarray) -> np.ndarray:
    """First recorded epoch where u ≥ level, per mode (NaN if never, or if level ≤ 0)."""
    reached = u >= level[None, :]
    first = np.where(reached.any(axis=0), epochs[np.argmax(reached, axis=0)], np.nan)
    return np.where(level > 0, first, np.nan)


def step_crossing(epochs, u, y, level, lam, eps, gamma, lr) -> np.ndarray:
    """First step at which u ≥ level, per mode, at per-step resolution (NaN: never, or level ≤ 0).

    ``epochs`` (n,) are the recorded steps, ``u`` (n, m) the recorded mode strengths, ``y`` (n, m)
    the per-mode map's y = ‖a−b‖²/4 at the same records (:func:`mode_states`; the part of a mode's
    state that u does not show), ``level`` (m,). The steps between two records are those of the
    exact per-mode map (:func:`daedyn.theory.mode_map_step`) started from the earlier record's
    state (x = u + y, y), so a record at every step gives the first record at or above the level,
    and a crossing never lies after the first record that shows it. For the per-mode theory's own
    trajectory this is its exact first step; for a trained network the steps between records
    neglect cross-mode coupling over one recording interval.
    """
    epochs = np.asarray(epochs, dtype=np.int64)
    u, y = np.asarray(u, np.float64), np.asarray(y, np.float64)
    level = np.asarray(level, np.float64)
    lam = np.broadcast_to(np.asarray(lam, np.float64), level.shape)
    above = u >= level[None, :]
    reached = above.any(axis=0) & (level > 0)
    out = np.where(reached, epochs[np.argmax(above, axis=0)], np.nan).astype(np.float64)
    active = reached.copy()  # modes whose crossing may lie before their first record above the level
    for r in range(epochs.size - 1):
        active &= out > epochs[r]
        if not active.any():
            break
        x_, y_ = u[r] + y[r], y[r]
        for t in range(int(epochs[r]) + 1, int(epochs[r + 1])):
            x_, y_ = theory.mode_map_step(x_, y_, lam, eps, gamma, lr)
            hit = active & (x_ - y_ >= level)
            out[hit] = t
            active &= ~hit
            if not active.any():
                break
    return out


def _crossings(one: xr.Dataset, epochs, lam, eps, gamma, lr):
    """The crossing function of a linear run's (epoch, mode) curves and its resolution in epochs:
    :func:`step_crossing` (1) where :func:`per_step_engine`, else the first record (the interval)."""
    if per_step_engine(one):
        _, y = mode_states(epochs, lam, eps, gamma, lr, one["x0"].values, one["y0"].values)
        return (lambda u, level: step_crossing(epochs, u, y, level, lam, eps, gamma, lr)), 1
    return (lambda u, level: _first_epoch(epochs, u, level)), int(np.max(np.diff(epochs), initial=1))


def mode_states(epochs, lam, eps, gamma, lr, x0, y0) -> tuple[np.ndarray, np.ndarray]:
    """The per-mode theory (u, y) (epoch, mode) at ``epochs``, from the initial states (x0, y0)."""
    epochs = np.asarray(epochs, dtype=np.int64)
    u, y = theory.vector_mode_map(int(epochs.max()), lam, eps, gamma, lr, x0=x0, y0=y0, states=True)
    return u[..., epochs].T, y[..., epochs].T


def per_step_engine(run: xr.Dataset) -> bool:
    """Whether a linear run takes one full-batch gradient step of the marginalised loss per epoch
    (engine exact or datapass, full batch): then the per-mode map continues its records step by step."""
    engine = str(run["engine"].item()) if "engine" in run.coords else "exact"
    steps = int(run["n_steps"].item()) if "n_steps" in run.coords else int(run["epoch"].values.max())
    return engine in ("exact", "datapass") and steps == int(run["epoch"].values.max())


PLATEAU_TOLERANCE = 0.05  # claim 14 (docs/science.md): plateaus read off the paper's figure, ±0.05


#: metrics summarised over seeds in the per-condition rows of :func:`metrics` (mean and ``<name>_sd``)
SEED_SUMMARISED = ("u_final", "t50_measured", "t90_measured", "t50_predicted", "t90_predicted",
                   "max_abs_err_theory", "max_rel_err_theory")


def metrics(combined: xr.Dataset, modes: list[int], paper_plateaus: dict | None = None) -> list[dict]:
    """Per run, seed and mode: theory-vs-actual errors and the epochs to 50 % / 90 % of u*; then
    per run and mode (``seed`` = "all") the same over the seeds.

    Relative errors are max|Δu| divided by the mode's fixed point u* (undefined
    where u* = 0). "Predicted" epochs come from the E15 theory curve, "measured" ones from
    the trained u, both at per-step resolution for a run of one full-batch step per epoch
    (:func:`step_crossing`), else at the recording interval (``t_resolution``, in epochs: 1
    or the interval); ``t50_paper`` is the paper's
    closed form (E10b) with its heuristic u₀. ``eta_max`` is the network's stability
    limit (:func:`daedyn.theory.stability_limit`, added by :func:`add_theory`), so
    ``lr_over_eta_max`` < 1 says how safely the learning rate was chosen and
    ``above_stability_limit`` flags a run trained above it on purpose (``allow_unstable``). With ``paper_plateaus`` (run name → one value per
    mode, read off the paper's figure) each row also says whether the trained plateau lies
    within ±0.05 of the paper's (1/0; blank without a paper value). Settings that differ
    between runs (``hidden``, ``n_samples``, ...) get a column each.

    A per-condition row holds the mean over seeds of every number, the sample standard
    deviation of :data:`SEED_SUMMARISED` in ``<name>_sd`` (blank in per-seed rows, NaN with one
    seed) and the number of seeds in ``n_seeds``; a mean is NaN where any seed's value is
    (e.g. a seed that never reached 90 %).
    """
    rows = []
    epochs = combined["epoch"].values
    varying = [name for name in ("hidden_units", *RUN_SETTINGS) if name in combined.coords
               and combined[name].dims == ("run",) and len({str(v) for v in combined[name].values}) > 1]
    for run in combined["run"].values:
        one_run = combined.sel(run=run)
        settings = {("hidden" if name == "hidden_units" else name): one_run[name].item() for name in varying}
        for seed in combined["seed"].values:
            one = one_run.sel(seed=seed, mode=modes)
            actual = one["u"].transpose("epoch", "mode").values.astype(float)
            th = one["u_theory"].transpose("epoch", "mode").values
            pa = one["u_paper"].transpose("epoch", "mode").values
            ustar = one["u_star"].values
            lam = one["lam"].values
            eps, gamma, lr = (float(one[k]) for k in ("eps", "gamma", "lr"))
            err_th = np.abs(th - actual).max(axis=0)
            err_pa = np.abs(pa - actual).max(axis=0)
            safe = np.where(ustar > 0, ustar, np.nan)
            cross, resolution = _crossings(one, epochs, lam, eps, gamma, lr)
            t_pred = {f: cross(th, f * ustar) for f in (0.5, 0.9)}
            t_meas = {f: cross(actual, f * ustar) for f in (0.5, 0.9)}
            t50_paper = theory.steps_to_fraction(0.5, lam, eps, gamma, lr, float(one["u0_paper"]))
            eta_max = float(one["eta_max"])
            for k, mode in enumerate(modes):
                rows.append({
                    "run": str(run), "seed": int(seed), "n_seeds": 1, "mode": int(mode), "lam": float(lam[k]),
                    "eps": eps, "gamma": gamma, **settings, "u_star": float(ustar[k]),
                    "u_final": float(actual[-1, k]),
                    "max_abs_err_theory": float(err_th[k]), "max_rel_err_theory": float(err_th[k] / safe[k]),
                    "max_abs_err_paper": float(err_pa[k]), "max_rel_err_paper": float(err_pa[k] / safe[k]),
                    "t50_predicted": float(t_pred[0.5][k]), "t50_measured": float(t_meas[0.5][k]),
                    "t90_predicted": float(t_pred[0.9][k]), "t90_measured": float(t_meas[0.9][k]),
                    "t_resolution": resolution, "t50_paper": float(np.asarray(t50_paper)[k]),
                    "lr": lr, "eta_max": eta_max, "lr_over_eta_max": lr / eta_max,
                    "above_stability_limit": int(lr >= eta_max),
                    **_plateau_check(paper_plateaus, str(run), k, float(actual[-1, k])),
                    **{f"{name}_sd": "" for name in SEED_SUMMARISED},
                })
    return rows + _condition_rows(rows, paper_plateaus, modes)


def _condition_rows(rows: list[dict], paper_plateaus: dict | None, modes: list[int]) -> list[dict]:
    """Per run and mode, the seeds' rows summarised, in the columns of the per-seed rows."""
    per_seed = [{k: v for k, v in row.items() if not k.endswith("_sd")} for row in rows]
    out = []
    for summary in summarise_seeds(per_seed, SEED_SUMMARISED):
        summary["seed"] = "all"
        k = list(modes).index(summary["mode"])
        summary.update(_plateau_check(paper_plateaus, summary["run"], k, summary["u_final"]))
        out.append({key: summary.get(key, "") for key in rows[0]})
    return out


def _plateau_check(paper_plateaus: dict | None, run: str, k: int, final: float) -> dict:
    if not paper_plateaus:
        return {}
    values = paper_plateaus.get(run)
    if values is None:
        return {"paper_plateau": float("nan"), "plateau_matches_paper": ""}
    return {"paper_plateau": float(values[k]),
            "plateau_matches_paper": int(abs(final - values[k]) <= PLATEAU_TOLERANCE)}


def summarise_seeds(rows: list[dict], names, keys=("run", "mode")) -> list[dict]:
    """One row per group of `keys` from per-seed rows, with ``n_seeds``: for each of `names`
    the mean over seeds (NaN if any seed's is) and its sample standard deviation ``<name>_sd``
    (NaN with one seed); any other value as it is where the seeds share it, else its mean."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for members in groups.values():
        summary = {"n_seeds": len(members)}
        for key, value in members[0].items():
            if key in names or key in ("seed", "n_seeds"):
                continue
            values = [m[key] for m in members]
            same = all(v == value or (v != v and value != value) for v in values)  # NaN == NaN here
            summary[key] = value if same else float(np.mean(values))
        for name in names:
            values = np.array([m[name] for m in members], dtype=float)
            summary[name] = float(values.mean())
            summary[f"{name}_sd"] = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        out.append(summary)
    return out


#: per-condition quantities of a sweep table (:func:`sweep_table`), each with a mean and ``_sd``
SWEEP_MEASURED = ("final", "theory_final", "t50_measured", "t50_predicted", "t90_measured", "t90_predicted",
                  "max_abs_err")


def sweep_table(combined: xr.Dataset, family: str, grid: dict[str, dict], modes=None) -> list[dict]:
    """Per grid run and mode of a sweep: its swept values and, over seeds (mean and ``_sd``), the
    trained plateau (last recorded epoch), the theory's value there, the epochs to 50 % and
    90 % measured and predicted, and the largest |theory − trained| over the run.

    ``family`` "linear": the trained uᵢ against the per-mode theory from the initial weights
    (``u_theory``); 50 %/90 % are of the fixed point u*, as in :func:`metrics`. "nonlinear": the
    network's mapping on clean inputs against the linear theory for the same hyperparameters
    (``mapping_theory``); 50 %/90 % are of each curve's own final value (NaN below 0.01, a mode
    not learned). ``fixed_point`` is max(λ − γ, 0)/(λ + ε) in the theory's units. ``grid`` maps
    the grid's run names to their swept values (:func:`daedyn.sweep.swept_values`); a key that
    only another grid sweeps is None; explicit runs of the experiment are left out.

    Timings are first steps at per-step resolution for a linear run of one full-batch step per
    epoch (:func:`step_crossing`), else the first record at or above the level; ``t_resolution``
    says which (1, or the recording interval in epochs). ``max_abs_err_epoch`` is the epoch of the
    largest |theory − trained| (mean over seeds): mid-run, not at the plateau, where the per-mode
    theory neglects the coupling of the modes while they grow.
    """
    if family not in ("linear", "nonlinear"):
        raise ValueError(f"unknown family {family!r}; expected linear or nonlinear")
    missing = sorted(set(grid) - {str(r) for r in combined["run"].values})
    if missing:
        raise ValueError(f"grid runs {missing} are not in the combined dataset")
    keys = sorted({k for values in grid.values() for k in values})  # a key of another grid: None
    trained, predicted = ("u", "u_theory") if family == "linear" else ("mapping", "mapping_theory")
    modes = [int(m) for m in (combined["mode"].values if modes is None else modes)]
    epochs = combined["epoch"].values
    rows = []
    for run, values in grid.items():
        one_run = combined.sel(run=run, mode=modes)
        lam = one_run["lam"].values
        if family == "linear":
            ustar = one_run["u_star"].values
        else:
            ustar = theory.fixed_point(lam, float(one_run["noise_var"]), float(one_run["gamma_theory"]))
        for seed in combined["seed"].values:
            one = one_run.sel(seed=seed)
            actual = one[trained].transpose("epoch", "mode").values.astype(float)
            th = one[predicted].transpose("epoch", "mode").values.astype(float)
            if family == "linear":
                levels = {f: (f * ustar, f * ustar) for f in (0.5, 0.9)}
            else:
                def own(curve, f):
                    return np.where(curve[-1] >= 0.01, f * curve[-1], np.nan)
                levels = {f: (own(actual, f), own(th, f)) for f in (0.5, 0.9)}
            if family == "linear":
                cross, resolution = _crossings(one, epochs, lam, *(float(one[k]) for k in ("eps", "gamma", "lr")))
            else:  # a nonlinear network follows no per-mode map: the first record at or above the level
                cross, resolution = ((lambda u, level: _first_epoch(epochs, u, level)),
                                     int(np.max(np.diff(epochs), initial=1)))
            t = {f: (cross(actual, a), cross(th, b)) for f, (a, b) in levels.items()}
            err = np.abs(th - actual).max(axis=0)
            for k, mode in enumerate(modes):
                rows.append({"run": str(run), **{k: values.get(k) for k in keys}, "mode": mode, "lam": float(lam[k]), "seed": int(seed),
                             "fixed_point": float(ustar[k]), "final": float(actual[-1, k]),
                             "theory_final": float(th[-1, k]),
                             "t50_measured": float(t[0.5][0][k]), "t50_predicted": float(t[0.5][1][k]),
                             "t90_measured": float(t[0.9][0][k]), "t90_predicted": float(t[0.9][1][k]),
                             "t_resolution": resolution, "max_abs_err": float(err[k]),
                             "max_abs_err_epoch": int(epochs[np.argmax(np.abs(th - actual)[:, k])])})
    return summarise_seeds(rows, SWEEP_MEASURED)
