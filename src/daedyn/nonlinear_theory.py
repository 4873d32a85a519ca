r"""Exact high-dimensional theory of a nonlinear denoising autoencoder trained by online SGD, and the
engine that trains the same network at finite D (docs/science.md, E25–E30).

Model
-----
Inputs are Gaussian with a spiked covariance in D dimensions,

    x = Σ_r √λ_r c_r v_r + √b z,    c_r ~ N(0, 1), z ~ N(0, I_D),   Ω = E[xxᵀ] = b I + Σ_r λ_r v_r v_rᵀ,

with P orthonormal spike directions v_r (the first P coordinate axes: the bulk is isotropic, so the
choice is no loss of generality). The network sees x̃ = x + σξ, ξ ~ N(0, I_D), and reconstructs the
clean x (σ = 0: a plain autoencoder):

    x̂ = Σ_k a_k g(h_k),    h_k = w_k·x̃/√D,    k = 1 … K,

encoder rows w_k with O(1) entries, decoder columns a_k of O(1) norm; tied weights set a_k = w_k/√D.
Online SGD takes a fresh sample every step on ℓ = ½|x − x̂|² + (γ/2)(Σ_k|a_k|² + Σ_k|w_k|²/D), at
learning rate η for the encoder and η/D for the decoder (E25):

    Δa_k = (η/D) [(x − x̂) g(h_k) − γ a_k],     Δw_k = η [e_k g'(h_k) x̃/√D − (γ/D) w_k],   e_k = a_k·(x − x̂).

Time is t = steps/D. As D → ∞ the order parameters (E26)

    Q = WWᵀ/D,  M = WV/√D,  T = AᵀA,  S = AᵀV,  R_kl = a_k·w_l/√D

(K×K, K×P, K×K, K×P, K×K) concentrate and follow deterministic ODEs (:func:`rhs`, E27–E28):
first-order terms η·E[…] (the mean gradient projected on v_r, w_l and a_l) and second-order terms
η²·E[…] (the square of one step, summed over D steps per unit time). Every average is over the
jointly Gaussian fields h (noisy preactivations), h⁰ = Wx/√D (clean), y = Aᵀx, ỹ = Aᵀx̃, s = Vᵀx̃
and t = Vᵀx, whose covariance is a function of (Q, M, T, S, R) and σ² alone
(:func:`field_covariance`): the noisy input stays jointly Gaussian with the clean target, so noise
changes only that covariance. The errors on noisy and on clean inputs are exact functions of the
order parameters at any D (:func:`errors`, E30).

Averages (E29)
--------------
The Gaussian averages of both activations, closed forms and orthant integrals, are in
:mod:`daedyn.nonlinear_averages`.

The simulation (:class:`daedyn.nonlinear_online.OnlineEngine`) trains the same network at finite D on fresh samples, every
(σ², η) condition and seed at once, driven by :func:`daedyn.training.drive` with checkpoints; it
records the exact order parameters of its weights. It also trains on real data made to have a
spiked covariance exactly (:func:`daedyn.nonlinear_online.spiked_data`): then only the higher moments differ from the
theory's Gaussian, which is what the Gaussian-equivalence comparison measures.

The comparison of the two is in :mod:`daedyn.nonlinear_theory_analysis`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, ClassVar

import numpy as np

from daedyn.nonlinear_averages import averages, two_point
from daedyn.runconfig import RunConfig

__all__ = ["NonlinearTheoryConfig", "Order", "errors", "field_covariance", "initial_weights", "integrate",
           "order_dataset", "order_from_weights", "rhs", "theory"]

ORDER = ("Q", "M", "T", "S", "R")
#: long names and dimensions of the order parameters in result files
ORDER_META = {
    "Q": ("encoder overlaps Q: Q_kl = w_k.w_l/D", ("unit", "unit2")),
    "M": ("encoder-spike overlaps M: M_kr = w_k.v_r/sqrt(D)", ("unit", "spike")),
    "T": ("decoder overlaps T: T_kl = a_k.a_l", ("unit", "unit2")),
    "S": ("decoder-spike overlaps S: S_kr = a_k.v_r", ("unit", "spike")),
    "R": ("decoder-encoder overlaps R: R_kl = a_k.w_l/sqrt(D)", ("unit", "unit2")),
}


# ---------------------------------------------------------------------------------------------
# configuration


@dataclasses.dataclass(frozen=True)
class NonlinearTheoryConfig(RunConfig):
    """One run: one activation and input source, every (noise variance, learning rate) condition and
    seed (schema: nonlinear_theory_experiment).

    ``source`` "gaussian" draws spiked Gaussian inputs with ``spikes``; "data" trains on the rows of a
    dataset made spiked by :func:`daedyn.nonlinear_online.spiked_data` with its top ``data_spikes`` directions (``spikes`` is
    None until the job has read the data)."""

    KIND: ClassVar[str] = "nonlinear_theory_experiment"
    OPTIONAL: ClassVar[tuple[str, ...]] = ("n_samples", "spikes", "data_spikes", "eval_samples")
    META: ClassVar[dict[str, tuple[str, str]]] = {
        "activation": ("activation: hidden-layer activation g (erf: erf(h/sqrt 2))", ""),
        "source": ("inputs: gaussian (spiked Gaussian) or data (a dataset made spiked)", ""),
        "dim": ("input dimension D", "1"),
        "hidden": ("number of hidden units K", "1"),
        "bulk": ("bulk variance b: the variance of every input direction", "1"),
        "weight_decay": ("weight decay gamma: penalty gamma/2 (tr T + tr Q)", "1"),
        "tied": ("tied weights: 1 where a_k = w_k/sqrt(D)", "1"),
        "init_seed": ("initial seed: of the shared initial weights and of the sample streams", "1"),
        "n_samples": ("dataset rows: how many rows the data run samples from", "1"),
        "dataset": ("dataset: of a data run (empty: spiked Gaussian inputs)", ""),
    }

    activation: str
    source: str
    n_samples: int | None
    dim: int
    hidden: int
    spikes: tuple | None
    data_spikes: int | None
    bulk: float
    noise_var: tuple
    lr: tuple
    tied: bool
    weight_decay: float
    time: float
    record_every: float
    seeds: int
    init_seed: int
    init_overlap: float
    init_std: float
    dec_std: float
    eval_samples: int | None
    device: str

    def __post_init__(self):
        if self.dataset is None:                  # the experiment's `dataset: null` (no data run)
            object.__setattr__(self, "dataset", "")
        super().__post_init__()
        where = f"{self.family} run {self.label}"
        if self.source == "gaussian" and self.spikes is None:
            raise ValueError(f"{where}: Gaussian inputs need spikes")
        if self.source == "data" and self.spikes is None and self.data_spikes is None:
            raise ValueError(f"{where}: a data run needs data_spikes (how many top directions are spikes)")
        if self.hidden > self.dim or self.n_spikes > self.dim:
            raise ValueError(f"{where}: need hidden <= dim and len(spikes) <= dim")

    #: what the engine base reads
    dtype: ClassVar[str] = "float64"
    log_every: ClassVar[int] = 1

    @property
    def n_spikes(self) -> int:
        return len(self.spikes) if self.spikes is not None else int(self.data_spikes)

    @property
    def block(self) -> int:
        """SGD steps between records: one engine epoch."""
        return max(1, round(self.record_every * self.dim))

    @property
    def epochs(self) -> int:
        return max(1, round(self.time * self.dim / self.block))

    @property
    def conditions(self) -> list[tuple[float, float]]:
        """(σ², η) of every condition, noise variance outer."""
        return list(itertools.product(self.noise_var, self.lr))

    def with_spikes(self, spikes, source: str | None = None) -> "NonlinearTheoryConfig":
        """The same run with the spike variances fixed (a data run, once its data are read)."""
        return dataclasses.replace(self, spikes=tuple(float(s) for s in spikes), source=source or self.source)


# ---------------------------------------------------------------------------------------------
# order parameters and fields


@dataclasses.dataclass
class Order:
    """Order parameters with any leading batch shape: Q, T, R (…, K, K), M, S (…, K, P)."""

    Q: np.ndarray
    M: np.ndarray
    T: np.ndarray
    S: np.ndarray
    R: np.ndarray

    def map(self, f, *others: "Order") -> "Order":
        return Order(*(f(getattr(self, n), *(getattr(o, n) for o in others)) for n in ORDER))

    def __add__(self, other):
        return self.map(np.add, other)

    def __sub__(self, other):
        return self.map(np.subtract, other)

    def scale(self, c) -> "Order":
        c = np.asarray(c, dtype=float)
        return self.map(lambda a: a * c.reshape(c.shape + (1,) * (a.ndim - c.ndim)))

    def flat(self) -> np.ndarray:
        """Every entry, concatenated along the last axis (…, 3K² + 2KP)."""
        lead = self.Q.shape[:-2]
        return np.concatenate([getattr(self, n).reshape(lead + (-1,)) for n in ORDER], axis=-1)

    @classmethod
    def unflat(cls, v: np.ndarray, K: int, P: int) -> "Order":
        sizes = [K * K, K * P, K * K, K * P, K * K]
        shapes = [(K, K), (K, P), (K, K), (K, P), (K, K)]
        parts = np.split(v, np.cumsum(sizes)[:-1], axis=-1)
        return cls(*(p.reshape(v.shape[:-1] + s) for p, s in zip(parts, shapes)))


def field_slices(K: int, P: int) -> dict[str, slice]:
    """Positions of the fields h, h0, y, yt, s, t in :func:`field_covariance`."""
    names, sizes = ("h", "h0", "y", "yt", "s", "t"), (K, K, K, K, P, P)
    edges = np.cumsum((0,) + sizes)
    return {n: slice(int(a), int(b)) for n, a, b in zip(names, edges[:-1], edges[1:])}


def _t(a):
    return np.swapaxes(a, -1, -2)


def field_covariance(op: Order, lam, bulk: float, noise_var) -> np.ndarray:
    """Covariance (…, n, n) of the fields [h, h⁰, y, ỹ, s, t] (n = 4K + 2P) under x ~ N(0, Ω), x̃ = x + σξ."""
    lam = np.asarray(lam, dtype=float)
    s2 = np.asarray(noise_var, dtype=float)[..., None, None]
    b = float(bulk)
    Q, M, T, S, R = op.Q, op.M, op.T, op.S, op.R
    K, P = M.shape[-2], M.shape[-1]
    MLM = (M * lam) @ _t(M)
    SLS = (S * lam) @ _t(S)
    MLS = (M * lam) @ _t(S)          # [k, l] = Σ λ_r M_kr S_lr
    Rt = _t(R)                       # [k, l] = R_lk = a_l·w_k/√D
    shape = np.broadcast_shapes(Q.shape[:-2], s2.shape[:-2])
    C = np.zeros(shape + (4 * K + 2 * P,) * 2)
    f = field_slices(K, P)

    def put(a, c, block):
        C[..., f[a], f[c]] = block
        if a != c:
            C[..., f[c], f[a]] = _t(np.broadcast_to(block, C[..., f[a], f[c]].shape))

    put("h", "h", (b + s2) * Q + MLM)
    put("h", "h0", b * Q + MLM)
    put("h0", "h0", b * Q + MLM)
    put("h", "y", b * Rt + MLS)
    put("h0", "y", b * Rt + MLS)
    put("h", "yt", (b + s2) * Rt + MLS)
    put("h0", "yt", b * Rt + MLS)
    put("y", "y", b * T + SLS)
    put("y", "yt", b * T + SLS)
    put("yt", "yt", (b + s2) * T + SLS)
    put("h", "s", M * (b + s2 + lam))
    put("h", "t", M * (b + lam))
    put("h0", "s", M * (b + lam))
    put("h0", "t", M * (b + lam))
    put("y", "s", S * (b + lam))
    put("y", "t", S * (b + lam))
    put("yt", "s", S * (b + s2 + lam))
    put("yt", "t", S * (b + lam))
    eye = np.eye(P)
    put("s", "s", (b + s2 + lam) * eye)
    put("s", "t", (b + lam) * eye)
    put("t", "t", (b + lam) * eye)
    return C


# ---------------------------------------------------------------------------------------------
# the ODEs


def rhs(op: Order, lam, bulk, noise_var, lr, weight_decay, *, activation: str, tied: bool = False) -> Order:
    """d(order parameters)/dt, t = steps/D (E27–E28), batched over leading dims.

    ``noise_var`` (σ²) and ``lr`` (η) broadcast against the batch shape of ``op``. First-order terms
    (η times a mean gradient projected on v_r, w_l/√D or a_l) and second-order terms (η² times the
    mean square of one step, with |x − x̂|² ≈ bD, |x̃|² ≈ (b + σ²)D and (x − x̂)·x̃ ≈ bD).
    """
    K, P = op.M.shape[-2:]
    b, wd = float(bulk), float(weight_decay)
    s2 = np.asarray(noise_var, dtype=float)
    eta = np.asarray(lr, dtype=float)[..., None, None]
    C = field_covariance(op, lam, b, s2)
    A = averages(C, K, activation)
    f = field_slices(K, P)
    ks = np.arange(K)
    GG, PY, PLG, PGG = A["GG"], A["PY"], A["PLG"], A["PGG"]
    LG = A["LG"]
    T = op.T
    # first-order parts: E[g_k (target − x̂)·direction] and E[e_k g'_k field]
    dec_S = _t(LG[..., f["t"], :]) - GG @ op.S                                    # E[g_k (t_r − Σ S_mr g_m)]
    enc_M = PY[..., f["s"]] - np.einsum("...km,...krm->...kr", T, PLG[..., f["s"], :])    # E[e_k g'_k s_r]
    dec_W = _t(LG[..., f["h0"], :]) - GG @ op.R                                   # E[g_k (h0_l − Σ R_ml g_m)]
    enc_A = PY[..., f["yt"]] - np.einsum("...lm,...lkm->...lk", T, PLG[..., f["yt"], :])  # [l, k] E[e_l g'_l ỹ_k]
    dec_A = _t(LG[..., f["y"], :]) - GG @ T                                       # E[g_k e_l]
    enc_W = PY[..., f["h"]] - np.einsum("...km,...klm->...kl", T, PLG[..., f["h"], :])    # E[e_k g'_k h_l]
    # second-order parts
    G_dd = b * GG                                                                 # b E[g_k g_l]
    y_of = PLG[..., ks, f["y"].start + ks, :]                                     # [l, k] = E[g'_l y_l g_k]
    G_de = b * _t(y_of - np.einsum("...lm,...lkm->...lk", T, PGG))               # [k, l] = b E[g_k e_l g'_l]
    t2 = np.einsum("...ln,...kln->...kl", T, A["PPYG"])
    G_ee = (b + s2)[..., None, None] * (A["PPYY"] - t2 - _t(t2)
                                        + np.einsum("...km,...ln,...klmn->...kl", T, T, A["PPGG"]))
    if tied:
        Pm = dec_W + enc_W
        dQ = eta * (Pm + _t(Pm) - 2 * wd * op.Q) + eta ** 2 * (G_dd + G_de + _t(G_de) + G_ee)
        dM = eta * (dec_S + enc_M - wd * op.M)
        return Order(dQ, dM, dQ, dM, dQ)
    dQ = eta * (enc_W + _t(enc_W) - 2 * wd * op.Q) + eta ** 2 * G_ee
    dM = eta * (enc_M - wd * op.M)
    dT = eta * (dec_A + _t(dec_A) - 2 * wd * T) + eta ** 2 * G_dd
    dS = eta * (dec_S - wd * op.S)
    dR = eta * (dec_W + _t(enc_A) - 2 * wd * op.R) + eta ** 2 * G_de
    return Order(dQ, dM, dT, dS, dR)


def integrate(op0: Order, times, lam, bulk, noise_var, lr, weight_decay, *, activation: str, tied: bool = False,
              dt: float = 0.01) -> list[Order]:
    """Classical RK4 from t = times[0] to each of ``times`` (ascending), steps of at most ``dt`` that end
    exactly on every time. Returns the order parameters at each time."""
    f = lambda o: rhs(o, lam, bulk, noise_var, lr, weight_decay, activation=activation, tied=tied)  # noqa: E731
    out, op, now = [op0], op0, float(times[0])
    for t in times[1:]:
        n = max(1, math.ceil((t - now) / dt - 1e-9))
        h = (t - now) / n
        for _ in range(n):
            k1 = f(op)
            k2 = f(op + k1.scale(h / 2))
            k3 = f(op + k2.scale(h / 2))
            k4 = f(op + k3.scale(h))
            op = op + (k1 + k2.scale(2) + k3.scale(2) + k4).scale(h / 6)
        now = float(t)
        out.append(op)
    return out


def errors(op: Order, lam, bulk, noise_var, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """(denoising, reconstruction) error: ½E|x − x̂|² − bD/2 on noisy and on clean inputs (E30).

    Exact at any D for Gaussian inputs, from the order parameters of the weights."""
    K, P = op.M.shape[-2:]
    C = field_covariance(op, lam, bulk, noise_var)
    f = field_slices(K, P)
    half = 0.5 * float(np.sum(lam))
    out = []
    for h in ("h", "h0"):
        idx = np.r_[np.arange(f[h].start, f[h].stop), np.arange(f["y"].start, f["y"].stop)]
        GG, LG = two_point(C[..., idx[:, None], idx[None, :]], K, activation)
        yg = np.trace(LG[..., K:, :], axis1=-2, axis2=-1)
        out.append(half - yg + 0.5 * np.sum(op.T * GG, axis=(-2, -1)))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# finite-D networks: initial weights, order parameters of weights


def initial_weights(config: NonlinearTheoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Shared initial weights (W (K×D), A (D×K)), float64, from ``init_seed``.

    W = init_std·G + √D M₀ on the spike axes, M₀ ~ N(0, init_overlap²) (macroscopic overlaps, so no
    seed waits on a saddle of order 1/√D), A ~ N(0, dec_std²/D) per entry (tied: A = Wᵀ/√D)."""
    rng = np.random.default_rng(config.init_seed)
    K, D, P = config.hidden, config.dim, config.n_spikes
    W = config.init_std * rng.standard_normal((K, D))
    W[:, :P] += math.sqrt(D) * config.init_overlap * rng.standard_normal((K, P))
    A = W.T / math.sqrt(D) if config.tied else config.dec_std * rng.standard_normal((D, K)) / math.sqrt(D)
    return W, A


def order_from_weights(W, A, P: int) -> Order:
    """Exact order parameters of weights W (…, K, D), A (…, D, K); spikes on the first P axes."""
    W, A = np.asarray(W, float), np.asarray(A, float)
    D = W.shape[-1]
    return Order(W @ _t(W) / D, W[..., :P] / math.sqrt(D), _t(A) @ A, _t(A[..., :P, :]),
                 _t(A) @ _t(W) / math.sqrt(D))


def theory(config: NonlinearTheoryConfig, times, op0: Order, *, dt: float = 0.01) -> Order:
    """The theory for every condition of ``config`` at ``times``, from the order parameters ``op0``
    (one network's, shared by every condition): Order with leading dims (noise_var, lr, time)."""
    conds = np.array(config.conditions)
    batch = op0.map(lambda a: np.broadcast_to(a, (len(conds),) + a.shape).copy())
    traj = integrate(batch, list(times), config.spikes, config.bulk, conds[:, 0], conds[:, 1], config.weight_decay,
                     activation=config.activation, tied=config.tied, dt=dt)
    nv, nl = len(config.noise_var), len(config.lr)
    return Order(*(np.stack([getattr(o, n) for o in traj], axis=1).reshape((nv, nl, len(times)) + getattr(op0, n).shape)
                   for n in ORDER))


# ---------------------------------------------------------------------------------------------
# result files


def order_dataset(config: NonlinearTheoryConfig, times, op: Order, *, prefix: str = "", seed_dim: bool = True,
                  extra: dict | None = None):
    """Order parameters (noise_var, lr, [seed,] time, …) and their errors (E30) as an xarray Dataset;
    ``prefix`` "theory_" names the theory's."""
    import xarray as xr

    noise = np.asarray(config.noise_var, float).reshape((-1, 1) + (1,) * (1 + seed_dim))
    dn, rc = errors(op, config.spikes, config.bulk, noise, config.activation)
    lead = ("noise_var", "lr") + (("seed",) if seed_dim else ()) + ("t",)
    # a long_name is "short name: definition" (daedyn.store keeps the short name, the rest goes to comment)
    short, what = ("theory ", " (theory, D -> infinity)") if prefix else ("", "")
    data = {f"{prefix}{n}": (lead + dims, getattr(op, n), {"long_name": short + long + what, "units": "1"})
            for n, (long, dims) in ORDER_META.items()}
    data[f"{prefix}err_denoise"] = (lead, dn, {"long_name": f"{short}denoising error: 1/2 E|x - f(x~)|^2 - bD/2, "
                                                            "Gaussian inputs, from the order parameters" + what,
                                               "units": "1"})
    data[f"{prefix}err_recon"] = (lead, rc, {"long_name": f"{short}reconstruction error: 1/2 E|x - f(x)|^2 - bD/2, "
                                                          "Gaussian inputs, from the order parameters" + what,
                                             "units": "1"})
    for name, values in (extra or {}).items():
        kind = "denoising" if "denoise" in name else "reconstruction"
        data[name] = (lead, values, {"long_name": f"{kind} error on the data: 1/2 |x - f(x)|^2 - bD/2 measured on the data's "
                                                  f"evaluation rows (1/2 |x|^2 - bD/2 by its mean)", "units": "1"})
    coords = {
        "noise_var": ("noise_var", np.asarray(config.noise_var, float),
                      {"long_name": "input noise variance sigma^2", "units": "1"}),
        "lr": ("lr", np.asarray(config.lr, float), {"long_name": "learning rate: eta (decoder: eta/D)", "units": "1"}),
        "t": ("t", np.asarray(times, float), {"long_name": "training time: t = SGD steps / D", "units": "1"}),
        "spike": ("spike", np.arange(config.n_spikes), {"long_name": "spike index r", "units": "1"}),
        "spike_var": ("spike", np.asarray(config.spikes, float),
                      {"long_name": "spike variance: lambda_r above the bulk", "units": "1"}),
        "unit": ("unit", np.arange(config.hidden), {"long_name": "hidden unit k", "units": "1"}),
        "unit2": ("unit2", np.arange(config.hidden), {"long_name": "hidden unit l", "units": "1"}),
    }
    if seed_dim:
        coords["seed"] = ("seed", np.arange(config.seeds), {"long_name": "SGD replica (sample stream)", "units": "1"})
    return xr.Dataset(data, coords=coords)
