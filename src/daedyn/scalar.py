"""Scalar linear (denoising) autoencoder and the data behind the paper's Figures 1–4.

The scalar network has one input, one hidden and one output unit, weights ``w1``
(encoder) and ``w2`` (decoder), input x = 1 and mode strength u = w1·w2. Its loss is
the per-mode loss (E6)::

    ℓ_λ(w1, w2) = λ/2 (1 − w2 w1)² + ε/2 (w2 w1)² + γ/2 (w1² + w2²)

(the squared error on x = 1 weighted by λ, the marginalised noise term with noise
*variance* ε, and weight decay γ on both weights). ``simulate`` runs plain
full-batch gradient descent on it with learning rate η (τ = 1/η); one step is one
"epoch". The ``figN_data`` builders assemble everything a figure draws into one
``xr.Dataset`` (simulations from this module, closed forms from
:mod:`daedyn.theory`), with the paper's parameters in :data:`FIGURE_DEFAULTS`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from daedyn import theory

__all__ = [
    "FIGURE_DEFAULTS",
    "loss_e6",
    "grad_e6",
    "simulate",
    "init_trials",
    "minimum_manifold",
    "fig1_data",
    "fig2_data",
    "fig3_data",
    "fig4_data",
]

_EPS_0_TO_1_8 = [round(0.2 * k, 10) for k in range(10)]  # 0, 0.2, …, 1.8

#: The paper's parameters (the authors' notebooks), as keyword arguments of ``figN_data``.
FIGURE_DEFAULTS: dict[str, dict] = {
    "fig1": {
        "lam": 1.0,
        "eps": [0.0, 1.0, 5.0],  # columns
        "lr": 0.01,  # τ = 100
        "epochs": 200,
        "trials": 10,  # trial t seeds numpy with 2t, w1, w2 ~ U(-2, 2)
        "seed_stride": 2,
        "init_low": -2.0,
        "init_high": 2.0,
        "surface_points": 100,  # 3-D surface grid on [-2, 2]²
        "surface_range": 2.0,
        "surface_zmax": 50.0,  # z clipped to [0, 50]
        "manifold_points": 1000,  # samples of the hyperbola of minima
    },
    "fig2": {
        "lam": [2.5, 1.0, 0.5],  # columns (the notebook also lists 0.1, never drawn: D7)
        "eps": _EPS_0_TO_1_8,
        "gamma_rule": "matched",  # WDAE row: γ = λε/(λ+ε) (E9)
        "lr": 0.001,  # τ = 1000
        "epochs": 20000,
        "u0": 1e-6,
        "record_every": 10,  # stored resolution of the curves (theory only)
    },
    "fig3": {
        "lam": 1.0,
        "eps": _EPS_0_TO_1_8,  # left and right panels
        "eps_grid_step": 0.02,  # middle panel: ε in [0, 10)
        "eps_grid_max": 10.0,
        "lr_scale": 0.005,  # DAE 0.005/(2λ+3ε); WDAE 0.005/(2λ+2γ) (notebook) or 0.005/(2λ+γ)
        "epochs": 20000,
        "u0": 1e-6,
        "record_every": 10,
    },
    "fig4": {
        "lam": 1.0,
        "eps": 0.1,  # top row DAE (γ = 0); bottom row WDAE with ε = 0, γ = λε/(λ+ε) = 0.0909
        "lr": 0.01,
        "epochs": 1000,
        "trials": 10,  # plus trial 0, the small-init run w1 = w2 = small_init
        "seed_stride": 2,
        "init_low": -2.0,
        "init_high": 2.0,
        "small_init": 0.01,
        "surface_points": 100,  # 2-D imshow grid on [-2, 2]²
        "surface_range": 2.0,
        "quiver_every": 5,  # negative-gradient arrows on every 5th grid point
        "manifold_points": 1000,
        "long_epochs": 20000,  # extra GD run to report the limiting weight norms
    },
}


# --------------------------------------------------------------------------- loss


def loss_e6(w1, w2, lam, eps=0.0, gamma=0.0):
    """Per-mode loss (E6): λ/2 (1 − u)² + ε/2 u² + γ/2 (w1² + w2²), u = w1 w2."""
    w1, w2 = np.asarray(w1, float), np.asarray(w2, float)
    u = w1 * w2
    return 0.5 * lam * (1.0 - u) ** 2 + 0.5 * eps * u**2 + 0.5 * gamma * (w1**2 + w2**2)


def grad_e6(w1, w2, lam, eps=0.0, gamma=0.0):
    """Gradient of (E6): ∂ℓ/∂w1 = (−λ(1−u) + εu) w2 + γ w1, ∂ℓ/∂w2 = (−λ(1−u) + εu) w1 + γ w2."""
    w1, w2 = np.asarray(w1, float), np.asarray(w2, float)
    # dℓ/du: the weighted reconstruction error on x = 1 plus the noise term.
    dl_du = -lam * (1.0 - w1 * w2) + eps * w1 * w2
    return dl_du * w2 + gamma * w1, dl_du * w1 + gamma * w2


# ---------------------------------------------------------------------- simulate


def simulate(lam, eps, gamma, lr, epochs, w1, w2) -> xr.Dataset:
    """Full-batch gradient descent on the scalar network, vectorised over trials.

    Each step is ``w ← w − η ∇ℓ_λ(w)`` with the gradient of (E6) (both weights updated
    from the same old values). ``w1`` and ``w2`` are the initial weights, scalars or
    1-D arrays (one entry per trial). Returns a Dataset with ``w1``, ``w2``, ``u`` =
    w1·w2 and ``loss`` = ℓ_λ, each over dims ``("trial", "epoch")`` with epoch 0 the
    initial state and epoch k the state after k steps.
    """
    w1 = np.atleast_1d(np.asarray(w1, dtype=np.float64)).copy()
    w2 = np.atleast_1d(np.asarray(w2, dtype=np.float64)).copy()
    if w1.shape != w2.shape or w1.ndim != 1:
        raise ValueError("w1 and w2 must be scalars or 1-D arrays of equal length")
    epochs = int(epochs)
    W1 = np.empty((w1.size, epochs + 1))
    W2 = np.empty_like(W1)
    W1[:, 0], W2[:, 0] = w1, w2
    for k in range(epochs):  # the recurrence is sequential in time; trials are vectorised
        g1, g2 = grad_e6(w1, w2, lam, eps, gamma)
        w1, w2 = w1 - lr * g1, w2 - lr * g2
        W1[:, k + 1], W2[:, k + 1] = w1, w2
    dims = ("trial", "epoch")
    ds = xr.Dataset(
        {
            "w1": (dims, W1, {"long_name": "encoder weight w1", "units": "1"}),
            "w2": (dims, W2, {"long_name": "decoder weight w2", "units": "1"}),
            "u": (dims, W1 * W2, {"long_name": "mode strength: u = w2·w1 under gradient descent", "units": "1"}),
            "loss": (dims, loss_e6(W1, W2, lam, eps, gamma),
                     {"long_name": "per-mode loss (E6)", "units": "1"}),
        },
        coords={"trial": np.arange(w1.size), "epoch": np.arange(epochs + 1)},
    )
    ds.attrs.update(lam=float(lam), eps=float(eps), gamma=float(gamma), lr=float(lr),
                    epochs=epochs, method="full-batch gradient descent on (E6)")
    return ds


def init_trials(trials, seed_stride=2, low=-2.0, high=2.0, small_init=None):
    """Initial weights of the notebooks' random restarts.

    Trial t calls ``np.random.seed(seed_stride * t)`` and then draws ``w1 =
    np.random.uniform(low, high)`` followed by ``w2 = np.random.uniform(low, high)``
    (w1 first, as in the Fig. 1 and Fig. 4 notebooks); ``RandomState`` reproduces that
    legacy global stream without touching global state.

    * ``small_init is None`` (Fig. 1): trials t = 0 … trials−1.
    * ``small_init = s`` (Fig. 4): trial 0 is ``w1 = w2 = s`` and trials t = 1 … trials
      are random as above, so ``trials + 1`` runs in all.

    Returns ``(w1, w2)`` as float64 arrays indexed by trial.
    """
    first = 0 if small_init is None else 1
    ts = range(first, first + int(trials))
    draws = [np.random.RandomState(seed_stride * t).uniform(low, high, size=2) for t in ts]
    w = np.array(draws, dtype=np.float64).reshape(-1, 2)
    w1, w2 = w[:, 0], w[:, 1]
    if small_init is not None:
        w1 = np.concatenate([[small_init], w1])
        w2 = np.concatenate([[small_init], w2])
    return w1, w2


# -------------------------------------------------------------- surface helpers


def minimum_manifold(lam, eps=0.0, gamma=0.0, extent=2.0, points=1000):
    """Global minima of (E6) inside the box [−extent, extent]², as two branches.

    For γ = 0 the minima form the hyperbola w1 w2 = u* = λ/(λ+ε); each branch
    (positive / negative quadrant) is sampled at ``points`` values of w1 with
    |w2| ≤ extent. For γ > 0 (and λ > γ) the minima are the two isolated points
    w1 = w2 = ±√u*; they fill the first entry of each branch and the rest is NaN.
    For λ ≤ γ the only minimum is the origin. Returns ``(w1, w2)`` each (2, points).
    """
    ustar = float(theory.fixed_point(lam, eps, gamma))
    m1 = np.full((2, points), np.nan)
    m2 = np.full((2, points), np.nan)
    if gamma > 0 or ustar <= 0:
        r = np.sqrt(max(ustar, 0.0))
        m1[:, 0], m2[:, 0] = [r, -r], [r, -r]
        return m1, m2
    x = np.linspace(ustar / extent, extent, points)  # keeps |w2| = u*/|w1| ≤ extent
    m1[0], m2[0] = x, ustar / x
    m1[1], m2[1] = -x, -ustar / x
    return m1, m2


def _manifold_coords(points):
    """Coordinates of :func:`minimum_manifold`'s output."""
    return {"branch": ("branch", [0, 1], {"long_name": "branch of the minima: 0 for w1 > 0, 1 for w1 < 0"}),
            "manifold_point": ("manifold_point", np.arange(points),
                               {"long_name": "sample index along the branch"})}


def _grid(extent, points):
    return np.linspace(-extent, extent, int(points))


def _json(d):
    return json.dumps(d, sort_keys=True)


# ------------------------------------------------------------------------- Fig. 1


def fig1_data(lam=1.0, eps=(0.0, 1.0, 5.0), lr=0.01, epochs=200, trials=10, seed_stride=2,
              init_low=-2.0, init_high=2.0, surface_points=100, surface_range=2.0,
              surface_zmax=50.0, manifold_points=1000) -> xr.Dataset:
    """Fig. 1: DAE dynamics from random unbalanced starts and the loss surfaces (γ = 0).

    Per noise level ε (dim ``eps``) and random restart (dim ``trial``): GD weights and
    ``u_gd`` (:func:`simulate`), the hyperbolic closed form ``u_theory`` (E11, evaluated
    at t = epoch), the fixed point ``u_star`` = λ/(λ+ε) (E8), the surface ``surface_loss``
    of (E6) on a ``surface_points``² grid over [−r, r]² and the hyperbola of minima
    (``min_w1``, ``min_w2``, ``min_loss``).
    """
    params = dict(lam=lam, eps=list(map(float, eps)), lr=lr, epochs=epochs, trials=trials,
                  seed_stride=seed_stride, init_low=init_low, init_high=init_high,
                  surface_points=surface_points, surface_range=surface_range,
                  surface_zmax=surface_zmax, manifold_points=manifold_points)
    eps = np.asarray(eps, dtype=np.float64)
    w10, w20 = init_trials(trials, seed_stride, init_low, init_high)
    t = np.arange(epochs + 1, dtype=np.float64)

    sims, u_th = [], []
    for e in eps:
        sims.append(simulate(lam, e, 0.0, lr, epochs, w10, w20))
        u_th.append(_fig1_theory(t, lam, e, lr, w10, w20))
    sim = xr.concat(sims, dim=xr.DataArray(eps, dims="eps"), combine_attrs="override")

    g = _grid(surface_range, surface_points)
    W1, W2 = np.meshgrid(g, g, indexing="ij")
    surf = np.stack([loss_e6(W1, W2, lam, e, 0.0) for e in eps])
    mins = [minimum_manifold(lam, e, 0.0, surface_range, manifold_points) for e in eps]
    m1 = np.stack([m[0] for m in mins])
    m2 = np.stack([m[1] for m in mins])
    u_star = theory.fixed_point(lam, eps, 0.0)

    ds = xr.Dataset(
        {
            "w1": sim["w1"], "w2": sim["w2"],
            "u_gd": sim["u"].assign_attrs(long_name="mode strength, GD: u = w2·w1 under gradient descent"),
            "loss_gd": sim["loss"],
            "u_theory": (("eps", "trial", "epoch"), np.stack(u_th),
                         {"long_name": "mode strength, closed form: hyperbolic closed form (E11)",
                          "units": "1"}),
            "u_star": ("eps", np.asarray(u_star, float),
                       {"long_name": "fixed point: u* = λ/(λ+ε) (E8)", "units": "1"}),
            "w1_init": ("trial", w10, {"long_name": "initial w1", "units": "1"}),
            "w2_init": ("trial", w20, {"long_name": "initial w2", "units": "1"}),
            "surface_loss": (("eps", "s_w1", "s_w2"), surf,
                             {"long_name": "loss surface: per-mode loss (E6) on the grid", "units": "1"}),
            "min_w1": (("eps", "branch", "manifold_point"), m1,
                       {"long_name": "w1 at the minima: on the manifold of global minima", "units": "1"}),
            "min_w2": (("eps", "branch", "manifold_point"), m2,
                       {"long_name": "w2 at the minima: on the manifold of global minima", "units": "1"}),
            "min_loss": ("eps", loss_e6(1.0, np.asarray(u_star, float), lam, eps, 0.0),
                         {"long_name": "minimum loss λε/(2(λ+ε))", "units": "1"}),
            "saddle_loss": ("eps", loss_e6(0.0, 0.0, lam, eps, 0.0) + 0 * eps,
                            {"long_name": "saddle loss: loss at w1 = w2 = 0", "units": "1"}),
        },
        coords={"eps": ("eps", eps, {"long_name": "noise variance ε", "units": "1"}),
                "trial": np.arange(trials),
                "epoch": ("epoch", np.arange(epochs + 1),
                          {"long_name": "epoch (GD step)", "units": "1"}),
                "s_w1": ("s_w1", g, {"long_name": "w1", "units": "1"}),
                "s_w2": ("s_w2", g, {"long_name": "w2", "units": "1"}),
                **_manifold_coords(manifold_points)},
    )
    ds.attrs.update(figure="fig1", lam=float(lam), gamma=0.0, lr=float(lr), tau=1.0 / lr,
                    surface_zmax=float(surface_zmax), params=_json(params),
                    title="Learning dynamics, loss surface and GD paths for linear DAEs")
    return ds


def _fig1_theory(t, lam, eps, lr, w1, w2):
    """(E11) per trial at t = epoch; theory.hyperbolic_u is regular for balanced starts too."""
    return np.asarray(theory.hyperbolic_u(t[None, :], lam, eps, lr=lr, w1=w1[:, None],
                                          w2=w2[:, None]), float)


# ------------------------------------------------------------------------- Fig. 2


def _epochs(epochs, record_every):
    return np.arange(0, int(epochs) + 1, int(record_every))


def fig2_data(lam=(2.5, 1.0, 0.5), eps=tuple(_EPS_0_TO_1_8), gamma_rule="matched", lr=0.001,
              epochs=20000, u0=1e-6, record_every=10) -> xr.Dataset:
    """Fig. 2: balanced closed form (E7b) for the DAE (noise ε, γ = 0) and the WDAE (ε = 0,
    weight decay γ = λε/(λ+ε) from (E9), ``gamma_rule="matched"``), per λ (columns) and ε.

    Variables over (lam, eps, epoch): ``u_dae``, ``u_wdae``; over (lam, eps): ``gamma``,
    ``u_star_dae``, ``u_star_wdae`` (the plateaus, E8), and the half-times ``t_half_*``
    (E10b, continuous time) of the DAE, WDAE and plain AE. Epochs are stored every
    ``record_every`` steps (the curves are smooth on that scale).
    """
    if gamma_rule != "matched":
        raise ValueError("only gamma_rule='matched' (γ = λε/(λ+ε), E9) is implemented")
    params = dict(lam=list(map(float, lam)), eps=list(map(float, eps)), gamma_rule=gamma_rule,
                  lr=lr, epochs=epochs, u0=u0, record_every=record_every)
    L = np.asarray(lam, float)[:, None]
    E = np.asarray(eps, float)[None, :]
    G = theory.noise_to_decay(L, E)
    t = _epochs(epochs, record_every).astype(float)
    tt = t[None, None, :]
    u_dae = theory.balanced_u(tt, L[..., None], E[..., None], 0.0, lr, u0)
    u_wdae = theory.balanced_u(tt, L[..., None], 0.0, G[..., None], lr, u0)

    def half(le, ee, gg):
        return np.broadcast_to(theory.steps_to_fraction(0.5, le, ee, gg, lr, u0), G.shape).copy()

    d2 = ("lam", "eps")
    ep = {"units": "1"}  # a number of epochs (UDUNITS has no epoch)
    ds = xr.Dataset(
        {
            "u_dae": (("lam", "eps", "epoch"), np.asarray(u_dae, float),
                      {"long_name": "DAE mode strength u (E7b)", "units": "1"}),
            "u_wdae": (("lam", "eps", "epoch"), np.asarray(u_wdae, float),
                       {"long_name": "WDAE mode strength u (E7b)", "units": "1"}),
            "gamma": (d2, np.asarray(G, float),
                      {"long_name": "matched weight decay: γ = λε/(λ+ε) (E9)", "units": "1"}),
            "u_star_dae": (d2, np.asarray(theory.fixed_point(L, E, 0.0) + 0 * G, float),
                           {"long_name": "DAE plateau λ/(λ+ε)", "units": "1"}),
            "u_star_wdae": (d2, np.asarray(theory.fixed_point(L, 0.0, G), float),
                            {"long_name": "WDAE plateau 1 − γ/λ", "units": "1"}),
            "t_half_dae": (d2, half(L, E, 0.0),
                           {"long_name": "DAE half-time: epochs to half the DAE plateau (E10b)", **ep}),
            "t_half_wdae": (d2, half(L, 0.0, G),
                            {"long_name": "WDAE half-time: epochs to half the WDAE plateau (E10b)", **ep}),
            "t_half_ae": ("lam", np.asarray(theory.steps_to_fraction(0.5, L[:, 0], 0.0, 0.0, lr,
                                                                     u0), float),
                          {"long_name": "AE half-time: epochs to half the AE plateau (E10b)", **ep}),
        },
        coords={"lam": ("lam", np.asarray(lam, float),
                        {"long_name": "eigenvalue λ", "units": "1"}),
                "eps": ("eps", np.asarray(eps, float),
                        {"long_name": "noise variance ε", "units": "1"}),
                "epoch": ("epoch", t.astype(int), {"long_name": "epoch (GD step)", "units": "1"})},
    )
    ds.attrs.update(figure="fig2", lr=float(lr), tau=1.0 / lr, u0=float(u0),
                    record_every=int(record_every), params=_json(params),
                    title="Theoretically predicted dynamics, noise vs weight decay")
    return ds


# ------------------------------------------------------------------------- Fig. 3


def fig3_data(lam=1.0, eps=tuple(_EPS_0_TO_1_8), eps_grid_step=0.02, eps_grid_max=10.0,
              lr_scale=0.005, epochs=20000, u0=1e-6, record_every=10) -> xr.Dataset:
    """Fig. 3: DAE vs WDAE at the heuristic "optimal" learning rates (E13), both WDAE variants.

    DAE: ε, γ = 0, η = s/(2λ+3ε) with s = ``lr_scale``. WDAE: ε = 0, γ = λε/(λ+ε), and
    ``lr_rule`` = "notebook": η = s/(2λ+2γ) (what the authors' left/right panels ran, D5),
    or "optimal": η = s/(2λ+γ) (what their middle panel labels optimal). Variables:
    ``u_dae`` (eps, epoch), ``u_wdae`` and ``u_diff`` = u_DAE − u_WDAE (lr_rule, eps, epoch),
    the rates ``lr_dae``/``lr_wdae``, and on the fine grid ``eps_grid`` ∈ [0, max): ``eta_dae``
    = 1/(2λ+3ε), ``eta_wdae`` = 1/(2λ+γ), ``eta_wdae_notebook`` = 1/(2λ+2γ) and
    ``eta_ratio`` = η*_DAE/η*_WDAE (= λ/(λ+ε)).
    """
    params = dict(lam=lam, eps=list(map(float, eps)), eps_grid_step=eps_grid_step,
                  eps_grid_max=eps_grid_max, lr_scale=lr_scale, epochs=epochs, u0=u0,
                  record_every=record_every)
    E = np.asarray(eps, float)
    G = theory.noise_to_decay(lam, E)
    rules = ["notebook", "optimal"]
    lr_dae = lr_scale * theory.optimal_lr_dae(lam, E)
    lr_wdae = lr_scale * np.stack([theory.notebook_lr_wdae(lam, G), theory.optimal_lr_wdae(lam, G)])
    t = _epochs(epochs, record_every).astype(float)
    u_dae = np.asarray(theory.balanced_u(t[None, :], lam, E[:, None], 0.0, lr_dae[:, None], u0),
                       float)
    u_wdae = np.asarray(theory.balanced_u(t[None, None, :], lam, 0.0, G[None, :, None],
                                          lr_wdae[..., None], u0), float)
    grid = np.arange(0.0, eps_grid_max - 1e-12, eps_grid_step)
    grid_g = theory.noise_to_decay(lam, grid)
    eta_d = np.asarray(theory.optimal_lr_dae(lam, grid), float)
    eta_w = np.asarray(theory.optimal_lr_wdae(lam, grid_g), float)
    one = {"units": "1"}
    ds = xr.Dataset(
        {
            "u_dae": (("eps", "epoch"), u_dae, {"long_name": "DAE mode strength: u (E7b) at η = s/(2λ+3ε)", **one}),
            "u_wdae": (("lr_rule", "eps", "epoch"), u_wdae,
                       {"long_name": "WDAE u (E7b)", **one}),
            "u_diff": (("lr_rule", "eps", "epoch"), u_dae[None] - u_wdae,
                       {"long_name": "u_DAE − u_WDAE", **one}),
            "gamma": ("eps", np.asarray(G, float), {"long_name": "matched γ = λε/(λ+ε)", **one}),
            "lr_dae": ("eps", np.asarray(lr_dae, float), {"long_name": "DAE learning rate", **one}),
            "lr_wdae": (("lr_rule", "eps"), lr_wdae, {"long_name": "WDAE learning rate", **one}),
            "eta_dae": ("eps_grid", eta_d, {"long_name": "η*_DAE = 1/(2λ+3ε)", **one}),
            "eta_wdae": ("eps_grid", eta_w, {"long_name": "η*_WDAE = 1/(2λ+γ)", **one}),
            "eta_wdae_notebook": ("eps_grid",
                                  np.asarray(theory.notebook_lr_wdae(lam, grid_g), float),
                                  {"long_name": "notebook WDAE rate 1/(2λ+2γ)", **one}),
            "eta_ratio": ("eps_grid", eta_d / eta_w, {"long_name": "η*_DAE / η*_WDAE", **one}),
        },
        coords={"eps": ("eps", E, {"long_name": "noise variance ε", **one}),
                "lr_rule": ("lr_rule", rules,
                            {"long_name": "WDAE learning-rate rule",
                             "description": "notebook: s/(2λ+2γ); optimal: s/(2λ+γ)"}),
                "epoch": ("epoch", t.astype(int), {"long_name": "epoch (GD step)", **one}),
                "eps_grid": ("eps_grid", grid, {"long_name": "noise variance ε", **one})},
    )
    ds.attrs.update(figure="fig3", lam=float(lam), lr_scale=float(lr_scale), u0=float(u0),
                    record_every=int(record_every), params=_json(params),
                    title="Learning dynamics for optimal discrete-time learning rates")
    return ds


# ------------------------------------------------------------------------- Fig. 4


def fig4_data(lam=1.0, eps=0.1, lr=0.01, epochs=1000, trials=10, seed_stride=2, init_low=-2.0,
              init_high=2.0, small_init=0.01, surface_points=100, surface_range=2.0,
              quiver_every=5, manifold_points=1000, long_epochs=20000) -> xr.Dataset:
    """Fig. 4: weight norms under noise (DAE: ε, γ = 0) vs weight decay (WDAE: ε = 0,
    γ = λε/(λ+ε)), dim ``model`` = ["DAE", "WDAE"].

    Trial 0 is the small-init run w1 = w2 = ``small_init``; trials 1…``trials`` are the
    seeded U(low, high) restarts. Variables: GD ``w1``, ``w2``, ``u``, ``loss``, ``norm`` =
    √(w1²+w2²) (model, trial, epoch); the gradient flow ``u_flow``, ``imbalance_flow`` =
    w1²−w2² (theory.unbalanced_u, E18); ``u_star``; ``norm_min`` = √(2u*); ``norm_pred`` =
    limiting norm, (c0²+4u*²)^{1/4} for γ = 0 and √(2u*) for γ > 0 (E12); ``norm_long``, the
    GD norm and ``u_long`` the GD u after ``long_epochs``; the surface ``surface_loss`` and
    the negative gradient ``neg_grad_w1``/``neg_grad_w2`` on the grid; and the minima
    ``min_w1``/``min_w2``.
    """
    params = dict(lam=lam, eps=eps, lr=lr, epochs=epochs, trials=trials, seed_stride=seed_stride,
                  init_low=init_low, init_high=init_high, small_init=small_init,
                  surface_points=surface_points, surface_range=surface_range,
                  quiver_every=quiver_every, manifold_points=manifold_points,
                  long_epochs=long_epochs)
    gamma_w = float(theory.noise_to_decay(lam, eps))
    models = {"DAE": (float(eps), 0.0), "WDAE": (0.0, gamma_w)}
    w10, w20 = init_trials(trials, seed_stride, init_low, init_high, small_init)
    t = np.arange(epochs + 1, dtype=float)
    g = _grid(surface_range, surface_points)
    S1, S2 = np.meshgrid(g, g, indexing="ij")
    c0 = w10**2 - w20**2

    per = {k: [] for k in ("sim", "uf", "cf", "ustar", "pred", "long", "ulong", "surf", "gr1",
                           "gr2", "m1", "m2")}
    for e, gm in models.values():
        per["sim"].append(simulate(lam, e, gm, lr, epochs, w10, w20))
        f1, f2, fu = theory.unbalanced_u(t, lam, e, gm, lr, w10, w20)
        per["uf"].append(np.asarray(fu, float))
        per["cf"].append(np.asarray(f1, float) ** 2 - np.asarray(f2, float) ** 2)
        us = float(theory.fixed_point(lam, e, gm))
        per["ustar"].append(us)
        # (E12): DAE keeps its imbalance c0, so w1²+w2² → √(c0²+4u*²); WDAE → 2u*.
        per["pred"].append(np.full_like(c0, np.sqrt(2 * us)) if gm > 0
                           else (c0**2 + 4 * us**2) ** 0.25)
        lw = simulate(lam, e, gm, lr, long_epochs, w10, w20).isel(epoch=-1)
        per["long"].append(np.hypot(lw["w1"].values, lw["w2"].values))
        per["ulong"].append(lw["u"].values)
        per["surf"].append(loss_e6(S1, S2, lam, e, gm))
        d1, d2 = grad_e6(S1, S2, lam, e, gm)
        per["gr1"].append(-d1)
        per["gr2"].append(-d2)
        m1, m2 = minimum_manifold(lam, e, gm, surface_range, manifold_points)
        per["m1"].append(m1)
        per["m2"].append(m2)

    sim = xr.concat(per["sim"], dim=xr.DataArray(list(models), dims="model"),
                    combine_attrs="override")
    one = {"units": "1"}
    dm, dmt, dmte = ("model",), ("model", "trial"), ("model", "trial", "epoch")
    ds = xr.Dataset(
        {
            "w1": sim["w1"], "w2": sim["w2"], "u": sim["u"], "loss": sim["loss"],
            "norm": (dmte, np.hypot(sim["w1"].values, sim["w2"].values),
                     {"long_name": "weight norm √(w1²+w2²) (GD)", **one}),
            "u_flow": (dmte, np.stack(per["uf"]),
                       {"long_name": "mode strength, gradient flow: ODE solve (E18)", **one}),
            "imbalance_flow": (dmte, np.stack(per["cf"]),
                               {"long_name": "imbalance, gradient flow: w1² − w2² under gradient flow", **one}),
            "u_star": (dm, np.array(per["ustar"]), {"long_name": "fixed point u* (E8)", **one}),
            "norm_min": (dm, np.sqrt(2 * np.array(per["ustar"])),
                         {"long_name": "minimum-norm solution √(2u*)", **one}),
            "norm_pred": (dmt, np.stack(per["pred"]),
                          {"long_name": "predicted limiting norm (E12)", **one}),
            "norm_long": (dmt, np.stack(per["long"]),
                          {"long_name": f"GD weight norm, long run: after {int(long_epochs)} epochs", **one}),
            "u_long": (dmt, np.stack(per["ulong"]),
                       {"long_name": f"GD u after {int(long_epochs)} epochs", **one}),
            "eps_model": (dm, np.array([m[0] for m in models.values()]),
                          {"long_name": "noise variance ε", **one}),
            "gamma_model": (dm, np.array([m[1] for m in models.values()]),
                            {"long_name": "weight decay γ", **one}),
            "w1_init": ("trial", w10, {"long_name": "initial w1", **one}),
            "w2_init": ("trial", w20, {"long_name": "initial w2", **one}),
            "small_init_run": ("trial", (np.arange(w10.size) == 0).astype(int),
                               {"long_name": "1 for the small-init run", **one}),
            "surface_loss": (("model", "s_w1", "s_w2"), np.stack(per["surf"]),
                             {"long_name": "per-mode loss (E6)", **one}),
            "neg_grad_w1": (("model", "s_w1", "s_w2"), np.stack(per["gr1"]),
                            {"long_name": "−∂ℓ/∂w1", **one}),
            "neg_grad_w2": (("model", "s_w1", "s_w2"), np.stack(per["gr2"]),
                            {"long_name": "−∂ℓ/∂w2", **one}),
            "min_w1": (("model", "branch", "manifold_point"), np.stack(per["m1"]),
                       {"long_name": "w1 at the minima: at the global minima (NaN-padded)", **one}),
            "min_w2": (("model", "branch", "manifold_point"), np.stack(per["m2"]),
                       {"long_name": "w2 at the minima: at the global minima (NaN-padded)", **one}),
        },
        coords={"model": ("model", list(models),
                          {"long_name": "model: DAE (input noise) or WDAE (weight decay)"}),
                "trial": np.arange(w10.size),
                "epoch": ("epoch", np.arange(epochs + 1), {"long_name": "epoch (GD step)", **one}),
                "s_w1": ("s_w1", g, {"long_name": "w1", **one}),
                "s_w2": ("s_w2", g, {"long_name": "w2", **one}),
                **_manifold_coords(manifold_points)},
    )
    ds.attrs.update(figure="fig4", lam=float(lam), eps=float(eps), gamma=gamma_w, lr=float(lr),
                    tau=1.0 / lr, small_init=float(small_init), quiver_every=int(quiver_every),
                    long_epochs=int(long_epochs), params=_json(params),
                    title="Effect of noise vs weight decay on the norm of the weights")
    return ds
