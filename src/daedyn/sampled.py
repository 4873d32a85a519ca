r"""Does sampled noise behave like the marginalised loss the paper's linear model trains?

The paper's linear "DAE" trains the noise-marginalised loss. A real DAE samples noise. Per sample
the gradient of ½‖x − Wx̃‖² averages over the noise to the marginalised gradient, so fresh noise
each step is unbiased step by step, and near the fixed point u* the fluctuations have a stationary
variance ∝ η/B. One fixed noisy copy of the data is biased instead: it converges to the minimiser of
the empirical loss on that copy (:func:`fixed_copy_minimiser`).

* :class:`daedyn.sampled_engines.SeedBatchSampledEngine` trains S independent sampled-noise DAEs
  at once (seed = leading batch dimension, ``torch.bmm``); seed s reproduces :func:`daedyn.linear.train_sampled` with
  ``seed=s`` (same noise generator, minibatch order and update).
* :class:`daedyn.sampled_engines.FixedCopyEngine` trains on one fixed noisy copy x̃ₙ = xₙ + nₙ
  (target xₙ) and records through the linear engines' tracker.
* Both are engines of :func:`daedyn.training.drive` (:func:`daedyn.sampled_engines.train_seed_batch`,
  :func:`daedyn.sampled_engines.train_fixed_copy`): checkpoints, recording cadence, divergence and
  progress come from there.
* The parts of the experiment, each for a :class:`daedyn.runconfig.SampledConfig`:
  :func:`sampled_trajectories` (one batch size), :func:`sampled_variance` (the η sweep),
  :func:`fixed_copies`, with the marginalised recurrence (:func:`marginalised_reference`) and the
  first-order predictions (:func:`mean_vs_marginalised`, :func:`stationary_variance`,
  :func:`loglog_slope`, :func:`predicted_stationary_variance`). The comparison, metrics and claims
  live in :mod:`daedyn.sampled_analysis`, so that editing them retrains nothing.


Mean convention throughout (Σ = XᵀX/N, ε = σ²).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import torch
import xarray as xr

from daedyn import linear, theory
from daedyn.runconfig import LinearConfig, SampledConfig
from daedyn.sampled_engines import train_fixed_copy, train_seed_batch
from daedyn.training import Checkpoint, Problem, init_weights, noise_seed

__all__ = [
    "fixed_copy_minimiser",
    "fixed_copy_plateaus",
    "mean_vs_marginalised",
    "stationary_variance",
    "loglog_slope",
    "predicted_stationary_variance",
    "balanced_minimum",
    "project_top",
    "sampled_problem",
    "sampled_trajectories",
    "sampled_variance",
    "fixed_copies",
]


def fixed_copy_minimiser(X, Xt, hidden: int | None = None) -> np.ndarray:
    """Minimiser W of ½ mean‖xₙ − W x̃ₙ‖² over matrices of rank ≤ H (γ = 0), in float64.

    H ≥ d: W* = (Σₙ xₙx̃ₙᵀ)(Σₙ x̃ₙx̃ₙᵀ)⁻¹. H < d (reduced-rank regression): with R = XᵀX̃/N,
    C = X̃ᵀX̃/N and Ŵ = RC⁻¹, W*_H = UUᵀŴ where U holds the top-H eigenvectors of ŴCŴᵀ = RC⁻¹Rᵀ.
    """
    X, Xt = np.asarray(X, np.float64), np.asarray(Xt, np.float64)
    n, d = X.shape
    R, C = X.T @ Xt / n, Xt.T @ Xt / n
    W = np.linalg.solve(C, R.T).T  # R C⁻¹ (C symmetric)
    if hidden is None or hidden >= d:
        return W
    _, U = np.linalg.eigh(W @ R.T)  # R C⁻¹ Rᵀ, symmetric
    U = U[:, ::-1][:, : int(hidden)]
    return U @ (U.T @ W)


def fixed_copy_plateaus(X, V, *, eps: float, seeds: Sequence[int], hidden: int | None = None,
                        modes: Sequence[int] | None = None) -> np.ndarray:
    """uᵢ = vᵢᵀW*vᵢ of the empirical minimiser for each seed's fixed copy, shape (seed, mode).

    The copies are those of :class:`FixedCopyEngine` with the same seeds.
    """
    X = np.asarray(X, np.float64)
    V = np.asarray(V, np.float64)
    Vm = V if modes is None else V[:, list(modes)]
    out = []
    for s in seeds:
        g = torch.Generator("cpu").manual_seed(noise_seed(int(s)))
        Xt = X + math.sqrt(eps) * torch.randn(*X.shape, generator=g, dtype=torch.float64).numpy()
        W = fixed_copy_minimiser(X, Xt, hidden)
        out.append(np.einsum("di,de,ei->i", Vm, W, Vm))
    return np.array(out)


def balanced_minimum(lam, V, *, eps: float, hidden: int, gamma: float = 0.0):
    """Aligned balanced minimiser of the marginalised loss: W₁ = D Vₕᵀ, W₂ = Vₕ D, D = diag(√u*) (H ≤ d)."""
    lam = np.asarray(lam, np.float64)
    if hidden > lam.size:
        raise ValueError(f"hidden={hidden} exceeds d={lam.size}")
    w = np.sqrt(theory.fixed_point(lam[:hidden], eps, gamma))
    Vh = np.asarray(V, np.float64)[:, :hidden]
    return w[:, None] * Vh.T, Vh * w[None, :]


def mean_vs_marginalised(u: xr.DataArray, reference: xr.DataArray) -> xr.Dataset:
    """Mean over seeds ± standard error of ``u`` (seed, epoch, mode) against ``reference``.

    ``reference`` is the marginalised recurrence on the same (epoch, mode) grid, either one curve
    (all seeds from the same initial weights) or one per seed; with a seed dimension the
    comparison is paired (the s.e. is that of the per-seed differences). Returns ``mean``,
    ``se``, ``reference`` (mean over seeds if per seed), ``diff`` = mean − reference and
    ``z`` = diff/se (NaN where se = 0).
    """
    S = u.sizes["seed"]
    if S < 2:
        raise ValueError("need at least two seeds for a standard error")
    u, reference = u.reset_coords(drop=True), reference.reset_coords(drop=True)  # runs' settings differ
    ref = reference.transpose(*[d for d in u.dims if d in reference.dims])
    diff = u - ref
    se = diff.std("seed", ddof=1) / math.sqrt(S)
    mean_diff = diff.mean("seed")
    ref_mean = ref.mean("seed") if "seed" in ref.dims else ref
    z = (mean_diff / se.where(se > 0))  # no spread yet (e.g. before the first step): no z
    return xr.Dataset({"mean": u.mean("seed"), "se": se, "reference": ref_mean, "diff": mean_diff, "z": z})


def stationary_variance(u: xr.DataArray, start) -> xr.Dataset:
    """Variance over seeds of ``u`` (seed, epoch, mode), averaged over records at epochs ≥ ``start``.

    Returns ``variance`` (mode) and ``se`` (mode), the standard error of that average from the
    spread of the per-record variances (records closer than the relaxation time are correlated,
    so this is a lower bound), and ``mean`` (mode).
    """
    late = u.where(u["epoch"] >= start, drop=True)
    if late.sizes["epoch"] < 1:
        raise ValueError(f"no record at epoch >= {start}")
    per = late.var("seed", ddof=1)
    k = late.sizes["epoch"]
    se = per.std("epoch", ddof=1) / math.sqrt(k) if k > 1 else per.isel(epoch=0) * np.nan
    return xr.Dataset({"variance": per.mean("epoch"), "se": se, "mean": late.mean(("seed", "epoch"))})


def loglog_slope(x, y) -> float | np.ndarray:
    """Least-squares slope of log y against log x (y may carry trailing dimensions)."""
    x = np.log(np.asarray(x, float))
    y = np.log(np.asarray(y, float))
    A = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(A, y.reshape(x.size, -1), rcond=None)
    slope = coef[0]
    return float(slope[0]) if y.ndim == 1 else slope.reshape(y.shape[1:])


def predicted_stationary_variance(X, lam, V, *, eps: float, lr: float, batch_size: int | None,
                                  modes: Sequence[int], reshuffle: bool = True) -> np.ndarray:
    r"""First-order prediction of the stationary variance of uᵢ under sampled noise, per mode (γ = 0).

    Near the aligned balanced minimum a step changes uᵢ by δuᵢ ≈ −2ηuᵢ* gᵢ, where gᵢ = vᵢᵀĝvᵢ is
    the minibatch gradient along the mode, and the mode relaxes with ρ = 1 − 2ηλᵢ per step. Per
    sample, with xᵢ = vᵢᵀx and noise nᵢ ~ N(0, ε), gᵢ = −((1−u)xᵢ − u nᵢ)(xᵢ + nᵢ): its noise part
    has variance (1−2u)²xᵢ²ε + 2u²ε² (fresh every step, so it adds 4η²u*²σₙ²/(b(1 − ρ²))), and its
    noise mean −(1−u)xᵢ² + uε varies over the data with variance σ_d². Minibatches are one pass per
    epoch without replacement (K = N/b steps, variance σ_d²(N−b)/(b(N−1)) each, the K of an epoch
    summing to zero), so at epoch ends the data part adds
    4η²u*² σ_b² (K S₁ − S₂)/((K − 1)(1 − ρ^{2K})), S₁ = Σ_{k<K} ρ^{2k}, S₂ = (Σ_{k<K} ρ^k)²:
    iid-like while a mode relaxes within an epoch, suppressed when it relaxes over many epochs,
    and absent for the full batch (exact for N divisible by b). ``reshuffle=False`` predicts
    minibatches drawn independently with replacement instead: data part 4η²u*²σ_d²/(b(1 − ρ²)).
    The η/b law holds for the noise part. Cross-mode coupling is neglected.
    """
    X = np.asarray(X, np.float64)
    n = X.shape[0]
    b = n if batch_size is None else int(batch_size)
    if not 1 <= b <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (or None for the full batch), got {batch_size}")
    lam = np.asarray(lam, np.float64)[list(modes)]
    xi = X @ np.asarray(V, np.float64)[:, list(modes)]        # (N, m)
    u = lam / (lam + eps)
    noise_var = ((1 - 2 * u) ** 2 * xi**2 * eps + 2 * u**2 * eps**2).mean(axis=0)
    data_var = (-(1 - u) * xi**2 + u * eps).var(axis=0)
    rho = 1.0 - 2.0 * lr * lam
    c2 = (2.0 * lr * u) ** 2
    var = c2 * noise_var / b / (1.0 - rho**2)
    K = n / b
    if not reshuffle:
        var = var + c2 * data_var / b / (1.0 - rho**2)
    elif K > 1:
        k = np.arange(math.ceil(K))[:, None]
        S1 = (rho ** (2 * k)).sum(axis=0)
        S2 = (rho**k).sum(axis=0) ** 2
        sigma_b = data_var * (n - b) / (b * (n - 1))
        var = var + c2 * sigma_b * (K * S1 - S2) / ((K - 1) * (1.0 - rho ** (2 * K)))
    return var


def project_top(problem: Problem, dim: int) -> Problem:
    """``problem`` projected onto its top ``dim`` principal directions: data X V_dim, spectrum (λ[:dim], I_dim).

    Isotropic noise and an isotropic random start make the linear DAE rotation invariant, so
    training on X V (all d directions) is the original problem in distribution; keeping the top
    ``dim`` directions drops only the weakest d − dim ones, whose data and noise reach the
    tracked modes at second order. A cheap reduced size for sampled-noise experiments.
    """
    lam = np.asarray(problem.lam, np.float64)
    if not 1 <= dim <= lam.size:
        raise ValueError(f"dim must be in [1, {lam.size}], got {dim}")
    Xp = np.asarray(problem.data("project_top"), np.float64) @ np.asarray(problem.V, np.float64)[:, :dim]
    return Problem(lam[:dim].copy(), np.eye(dim), Xp)


def sampled_problem(config: SampledConfig, problem: Problem) -> Problem:
    """The problem the experiment trains on, in float64: ``problem`` (its data needed), or its projection
    onto the top ``config.dim`` principal directions (:func:`project_top`); checks the tracked modes
    against it."""
    problem = Problem(np.asarray(problem.lam, np.float64), np.asarray(problem.V, np.float64),
                      np.asarray(problem.data(f"{config.label}: the sampled-noise experiment"), np.float64))
    if config.dim is not None:
        problem = project_top(problem, config.dim)
    limit = min(config.hidden, problem.lam.size)
    if max(config.modes) >= limit:
        raise ValueError(f"{config.label}: modes {list(config.modes)} must be < min(hidden, dim) = {limit} "
                         "(only learned modes have a plateau)")
    return problem


def _eta_max(lam, config: SampledConfig) -> float:
    """The DAE's network stability limit: 1/λ₁ whatever ε (:func:`daedyn.theory.stability_limit`)."""
    return theory.stability_limit(lam, config.eps, 0.0, config.hidden)


def _linear_config(config: SampledConfig, run: str, *, engine: str, lr: float, epochs: int, log_every: int,
                   batch_size: int | None, seed: int, n: int) -> LinearConfig:
    """The linear run configuration of one engine run of a part (ε as configured, no weight decay)."""
    return LinearConfig(
        experiment=config.experiment, run=run, dataset=config.dataset, n_samples=n, engine=engine,
        hidden=config.hidden, lr=lr, epochs=epochs, eps=config.eps, gamma=0.0, init_std=config.init_std, seed=seed,
        log_every=log_every, dtype=config.dtype, device=config.device, batch_size=batch_size, shuffle=True,
        allow_unstable=False, heldout=None, sigma2_test=())


#: the job's checkpoint of each engine run of a part, by name (daedyn.jobs.checkpoints), so that a
#: killed part resumes the run it was in; by default none
Checkpoints = Callable[[str], Checkpoint | None]
_NONE: Checkpoints = lambda name: None  # noqa: E731


def batch_part(batch_size: int | None) -> str:
    """Name of the trajectory part of one batch size: ``traj_full`` or ``traj_b{B}``."""
    return "traj_full" if batch_size is None else f"traj_b{int(batch_size)}"


def sampled_trajectories(config: SampledConfig, problem: Problem, *, checkpoint: Checkpoints = _NONE,
                         threads: int | None = None, progress: bool = False) -> tuple[xr.Dataset, list[int]]:
    """Fresh-noise training of ``config.seeds`` seeds from one set of initial weights, per batch size.

    For each B in ``config.batches`` (None: the full batch): η = ``fraction``·η_max for ``steps``
    gradient steps (whole epochs), about ``records`` records; initial weights of ``init_seed``
    (``init_std``) shared by every seed. Returns ``u`` (batch, seed, step, mode) (NaN where a batch
    size has no record) with ``steps_per_epoch`` (batch), and the epochs its engine runs resumed from.
    Stops before training where ``steps`` leave the marginalised recurrence no stationary phase
    (:func:`marginalised_reference`).
    """
    config.need("fraction", "steps", "records", "batches", "burn_in")
    problem = sampled_problem(config, problem)
    X, lam, V = problem.X, problem.lam, problem.V
    n, d = X.shape
    marginalised_reference(config, problem)  # steps too few for the summary: fail before training
    eta_max = _eta_max(lam, config)
    lr = config.fraction * eta_max
    W1, W2 = init_weights(d, config.hidden, init_std=config.init_std, seed=config.init_seed)
    parts, resumed = [], []
    for B in config.batches:
        b = n if B is None else int(B)
        if not 1 <= b <= n:
            raise ValueError(f"{config.label}: batch size {B} must be in [1, n_samples = {n}]")
        spe = -(-n // b)
        epochs = -(-config.steps // spe)
        every = max(1, round(epochs / config.records))
        name = batch_part(B)
        cfg = _linear_config(config, name, engine="sampled", lr=lr, epochs=epochs, log_every=every, batch_size=b,
                             seed=config.init_seed, n=n)
        run = train_seed_batch(cfg, problem, seeds=range(config.seeds), modes=config.modes, W1=W1, W2=W2,
                               checkpoint=checkpoint(name), threads=threads, progress=progress)
        resumed += run.resumed_from
        u = run.trajectory["u"].swap_dims(epoch="step").reset_coords(drop=True)  # the config stays in attrs
        parts.append(u.expand_dims(batch=[b]).assign_coords(steps_per_epoch=("batch", [spe])))
    u = xr.concat(parts, "batch", join="outer")
    out = xr.Dataset({"u": u})
    out["batch"].attrs.update(long_name="minibatch size B: N is the full batch", units="1")
    out["steps_per_epoch"].attrs.update(long_name="gradient steps per epoch", units="1")
    out.attrs.update(lr=lr, eta_max=eta_max, fraction=config.fraction, steps=config.steps, n_samples=n, dim=d,
                     hidden=config.hidden, eps=config.eps, init_std=config.init_std, init_seed=config.init_seed)
    return out, resumed


def sampled_variance(config: SampledConfig, problem: Problem, *, checkpoint: Checkpoints = _NONE,
                     threads: int | None = None, progress: bool = False) -> tuple[xr.Dataset, list[int]]:
    """The η sweep: ``config.seeds`` seeds from the aligned balanced minimum (:func:`balanced_minimum`)
    at batch size ``var_batch``, for each η = f·η_max, f in ``var_fractions``.

    A run lasts ``burn_in`` + ``window`` relaxation times τ = 1/(2ηλ) of the slowest tracked mode,
    recorded every τ/2. Returns ``u`` (lr, seed, epoch, mode) (NaN past a run's end) and
    ``window_start`` (lr): the first epoch of the stationary window (after ``burn_in`` τ), and the
    epochs its engine runs resumed from.
    """
    config.need("var_fractions", "var_batch", "burn_in", "window")
    problem = sampled_problem(config, problem)
    X, lam, V = problem.X, problem.lam, problem.V
    n, d = X.shape
    if not 1 <= config.var_batch <= n:
        raise ValueError(f"{config.label}: var_batch {config.var_batch} must be in [1, n_samples = {n}]")
    eta_max = _eta_max(lam, config)
    Wm1, Wm2 = balanced_minimum(lam, V, eps=config.eps, hidden=config.hidden)
    lam_slow = lam[max(config.modes)]
    spe = -(-n // config.var_batch)
    parts, starts, resumed = [], [], []
    for f in config.var_fractions:
        eta = f * eta_max
        tau = 1.0 / (2 * eta * lam_slow)
        epochs = math.ceil((config.burn_in + config.window) * tau / spe)
        every = max(1, math.floor(tau / 2 / spe))
        name = f"variance_f{f:g}"
        cfg = _linear_config(config, name, engine="sampled", lr=eta, epochs=epochs, log_every=every,
                             batch_size=config.var_batch, seed=config.init_seed, n=n)
        run = train_seed_batch(cfg, problem, seeds=range(config.seeds), modes=config.modes, W1=Wm1, W2=Wm2,
                               checkpoint=checkpoint(name), threads=threads, progress=progress)
        resumed += run.resumed_from
        parts.append(run.trajectory["u"].reset_coords(drop=True).expand_dims(lr=[eta]))
        starts.append(config.burn_in * tau / spe)
    out = xr.Dataset({"u": xr.concat(parts, "lr", join="outer")})
    out = out.assign_coords(fraction=("lr", np.asarray(config.var_fractions, float)))
    out["window_start"] = ("lr", np.array(starts), {
        "long_name": "stationary window start: first epoch of the window (burn_in relaxation times of the "
                     "slowest tracked mode)",
        "units": "1"})
    out["lr"].attrs.update(long_name="learning rate eta", units="1")
    out["fraction"].attrs.update(long_name="fraction of the stability limit: learning rate as a fraction of "
                                           "1/lambda_1", units="1")
    out.attrs.update(eta_max=eta_max, var_batch=config.var_batch, steps_per_epoch=spe, burn_in=config.burn_in,
                     window=config.window, n_samples=n, dim=d, hidden=config.hidden, eps=config.eps)
    return out, resumed


def fixed_copies(config: SampledConfig, problem: Problem, *, checkpoint: Checkpoints = _NONE,
                 threads: int | None = None, progress: bool = False) -> tuple[xr.Dataset, list[int]]:
    """Fixed noisy copies: the closed-form plateaus of copies 0 .. ``copies``−1
    (:func:`fixed_copy_plateaus`) and copies 0 .. ``trained_copies``−1 trained (full batch, η =
    ``fraction``·η_max, ``steps`` steps, from the trajectories' initial weights).

    Returns ``plateau`` (copy, mode), ``trained`` (trained_copy, mode): the trained copies' final u,
    and ``u_star`` (mode), the marginalised fixed point; and the epochs its engine runs resumed from.
    """
    config.need("fraction", "steps", "copies", "trained_copies")
    problem = sampled_problem(config, problem)
    X, lam, V = problem.X, problem.lam, problem.V
    n, d = X.shape
    modes = list(config.modes)
    lr = config.fraction * _eta_max(lam, config)
    plateaus = fixed_copy_plateaus(X, V, eps=config.eps, seeds=range(config.copies), hidden=config.hidden,
                                   modes=modes)
    W1, W2 = init_weights(d, config.hidden, init_std=config.init_std, seed=config.init_seed)
    trained, resumed = [], []
    for c in range(config.trained_copies):
        name = f"fixed_copy{c}"
        cfg = _linear_config(config, name, engine="datapass", lr=lr, epochs=config.steps, log_every=config.steps,
                             batch_size=None, seed=c, n=n)
        run = train_fixed_copy(cfg, problem, W1=W1, W2=W2, checkpoint=checkpoint(name), threads=threads,
                               progress=progress)
        resumed += run.resumed_from
        trained.append(run.trajectory["u"].isel(epoch=-1).values[modes])
    out = xr.Dataset({
        "plateau": (("copy", "mode"), plateaus,
                    {"long_name": "copy's plateau: u_i of the empirical minimiser on one fixed noisy copy "
                                  "(closed form)", "units": "1"}),
        "trained": (("trained_copy", "mode"), np.array(trained).reshape(len(trained), len(modes)),
                    {"long_name": "trained on the copy: u_i after training on the copy (last step)", "units": "1"}),
        "u_star": ("mode", theory.fixed_point(lam[modes], config.eps),
                   {"long_name": "marginalised fixed point: lam/(lam + eps)", "units": "1"}),
    }, coords={"copy": ("copy", np.arange(config.copies), {"long_name": "copy seed: seed of the fixed noisy copy",
                                                            "units": "1"}),
               "trained_copy": ("trained_copy", np.arange(config.trained_copies),
                                {"long_name": "trained copy seed: seed of a trained fixed copy", "units": "1"}),
               "mode": ("mode", np.asarray(modes), {"long_name": "eigenmode index: 0 = largest eigenvalue",
                                                    "units": "1"}),
               "lam": ("mode", lam[modes], {"long_name": "eigenvalue of Sigma", "units": "1"})})
    out.attrs.update(lr=lr, steps=config.steps, n_samples=n, dim=d, hidden=config.hidden, eps=config.eps)
    return out, resumed


def marginalised_reference(config: SampledConfig, problem: Problem):
    """The marginalised recurrence the trajectories are compared with, and where its stationary phase starts.

    :func:`daedyn.linear.train_exact` in float64 on the CPU (a small exact computation, wherever the
    parts run) from the parts' shared initial weights, at η = ``fraction``·η_max for ``steps`` steps,
    on the projected problem (from :func:`sampled_problem`). Returns
    ``(u, u_star, lr, settle)``: u (step, mode) of the tracked modes, their fixed points, the learning
    rate, and the first step of the stationary phase (``burn_in`` relaxation times 1/(2ηλ) of the
    slowest tracked mode after the recurrence is within 1 % of u* on every tracked mode). Raises
    ValueError, naming the keys to change, where ``steps`` leave no stationary phase, so a trajectory
    part fails before it trains, not the aggregation after it.
    """
    config.need("fraction", "steps", "burn_in")
    lam, n = problem.lam, problem.X.shape[0]
    modes = list(config.modes)
    u_star = theory.fixed_point(lam[modes], config.eps)
    lr = config.fraction * _eta_max(lam, config)
    W1, W2 = init_weights(len(lam), config.hidden, init_std=config.init_std, seed=config.init_seed)
    reference = dataclasses.replace(
        _linear_config(config, "marginalised", engine="exact", lr=lr, epochs=config.steps, log_every=1,
                       batch_size=None, seed=config.init_seed, n=n), dtype="float64", device="cpu")
    ref = linear.train(reference, problem, W1=W1, W2=W2)
    u = ref.trajectory["u"].sel(mode=modes).rename(epoch="step").reset_coords(drop=True)
    settled = np.all(np.abs(u.values - u_star) <= 0.01 * u_star, axis=1)
    if not settled[-1]:
        raise ValueError(f"{config.label}: the marginalised recurrence has not reached its plateau on modes {modes} "
                         f"within steps = {config.steps} (at fraction = {config.fraction} of the stability limit, "
                         f"init_std = {config.init_std}): raise steps, fraction or init_std")
    settle = int(np.flatnonzero(~settled)[-1] + 1 + config.burn_in / (2 * lr * lam[max(modes)]))
    if settle > 0.8 * config.steps:
        raise ValueError(f"{config.label}: the stationary phase starts at step {settle} of steps = {config.steps} "
                         "(it needs the last fifth of them): raise steps")
    return u, u_star, lr, settle
