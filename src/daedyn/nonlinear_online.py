"""Online SGD of the nonlinear denoising autoencoder whose order-parameter theory is
:mod:`daedyn.nonlinear_theory`: the simulation the theory is compared with.

:class:`OnlineEngine` trains the D → K → D network at finite D on samples drawn fresh every step
(spiked Gaussian inputs, or rows of real data made spiked by :func:`spiked_data`), every (σ², η)
condition and seed in one tensor, on the one training loop (:func:`daedyn.training.run_engine`,
checkpoints and progress included); it records the exact order parameters of its weights, from
which the population errors follow (:func:`daedyn.nonlinear_theory.errors`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from daedyn import training
from daedyn.nonlinear_averages import SQ2PI
from daedyn.nonlinear_theory import (ORDER, NonlinearTheoryConfig, Order, errors, initial_weights,
                                     order_dataset, order_from_weights)
from daedyn.training import Engine, Records

__all__ = ["OnlineEngine", "TheoryRun", "spiked_data", "train"]


# ---------------------------------------------------------------------------------------------
# real data made spiked


def spiked_data(X, lam, V, dim: int, n_spikes: int, bulk: float = 1.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows of ``X`` (N×d, uncentred; ``lam``, ``V`` the eigenpairs of its second moment XᵀX/N) made to
    have exactly the spiked covariance b I + Σ_r λ_r e_r e_rᵀ in ``dim`` dimensions.

    The rows are centred, expressed in the eigenbasis of their covariance (Σ − μμᵀ, from the second
    moment), restricted to the top ``dim`` directions μ_1 ≥ … ≥ μ_dim and rescaled: the top
    ``n_spikes`` by √(b/μ̄), the others (the bulk) each to variance b, μ̄ the mean of the bulk's μ_i.
    So the spikes keep their ratio to the mean bulk variance, λ_r = b(μ_r/μ̄ − 1), and the covariance
    over the N rows is exactly the spiked one. Returns (rows (N×dim), λ, facts)."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    sigma = (V * np.asarray(lam, float)) @ V.T - np.outer(mean, mean)
    mu, U = np.linalg.eigh((sigma + sigma.T) / 2)
    mu, U = mu[::-1][:dim], U[:, ::-1][:, :dim]
    if mu[-1] <= 1e-12 * mu[0]:
        raise ValueError(f"the data's covariance has rank below dim={dim}; use a smaller data_dim")
    mbar = float(np.mean(mu[n_spikes:]))
    scale = np.sqrt(bulk / np.r_[np.full(n_spikes, mbar), mu[n_spikes:]])
    Y = ((X - mean) @ U) * scale
    spikes = bulk * (mu[:n_spikes] / mbar - 1)
    if np.any(spikes <= 0):
        raise ValueError(f"the top {n_spikes} directions are not above the mean bulk variance: {mu[:n_spikes]}")
    facts = {"bulk_mean_variance": mbar, "top_variances": mu[:n_spikes].tolist(),
             "smallest_kept_variance": float(mu[-1])}
    return Y, spikes, facts


# ---------------------------------------------------------------------------------------------
# the simulation engine


class OnlineEngine(Engine):
    """Online SGD of the D → K → D network, every condition (σ², η) and seed in one tensor of
    B = conditions × seeds networks (condition-major), all from the shared :func:`initial_weights`.

    Gaussian inputs are drawn fresh every step; data inputs (``X``, already spiked) are rows drawn
    by :func:`daedyn.training.minibatches`: each step B distinct rows, one per network, from one
    permutation per record block (a new one when a block needs more than N rows). The input noise
    ξ is drawn fresh. One engine epoch is ``config.block`` steps (record_every·D); a record holds
    the exact order parameters of every network and, for data inputs, the errors measured on
    ``eval_samples`` fixed rows with fixed noise (:meth:`data_errors`).
    """

    def __init__(self, config: NonlinearTheoryConfig, X=None):
        import torch

        if config.spikes is None:
            raise ValueError(f"{config.label}: the spike variances must be set (NonlinearTheoryConfig.with_spikes)")
        super().__init__(config, np.asarray(config.spikes, float), False)
        c, kw = config, dict(dtype=torch.float64, device=self.device)
        self.K, self.D, self.P = c.hidden, c.dim, c.n_spikes
        conds = np.repeat(np.array(c.conditions), c.seeds, axis=0)
        self.B = conds.shape[0]
        self.noise_var = conds[:, 0]
        self.s = torch.as_tensor(np.sqrt(conds[:, 0]), **kw)[:, None]
        self.eta = torch.as_tensor(conds[:, 1], **kw)[:, None, None]
        self.sqrt_lam = torch.as_tensor(np.sqrt(self.lam), **kw)
        W0, A0 = initial_weights(c)
        self.W1_0, self.W2_0 = torch.as_tensor(W0), torch.as_tensor(A0)
        self.W1 = self.W1_0.to(**kw).expand(self.B, -1, -1).contiguous()
        self.W2 = self.W2_0.to(**kw).expand(self.B, -1, -1).contiguous()
        self.gen = torch.Generator(self.device).manual_seed(training.noise_seed(c.init_seed))
        self.eta_max = math.inf
        self.data = c.source == "data"
        if self.data:
            if X is None:
                raise ValueError(f"{c.label}: a data run needs its (spiked) data")
            if X.shape[1] != c.dim:
                raise ValueError(f"{c.label}: the data have {X.shape[1]} columns, dim is {c.dim}")
            self.use_data(X, self.B)
            self._eval_set()
        buffers = dict(Q=(self.K, self.K), M=(self.K, self.P), T=(self.K, self.K), S=(self.K, self.P),
                       R=(self.K, self.K))
        if self.data:
            buffers.update(err_denoise_data=(), err_recon_data=())
        self.tracker = _Tracker(self, buffers)

    def _eval_set(self) -> None:
        """Fixed rows and noise of the measured errors (their own generator: the training streams do not move)."""
        import torch

        n = self.X.shape[0]
        m = min(int(self.config.eval_samples or n), n)
        g = torch.Generator("cpu").manual_seed(training.noise_seed(self.config.init_seed + 1))
        rows = torch.randperm(n, generator=g)[:m].to(self.device)
        self.X_eval = self.X[rows]
        self.xi_eval = torch.randn(m, self.D, generator=g, dtype=torch.float64).to(self.device)
        # ½(E|x|² − bD) of the whole data (exact: the spiked data's covariance is Ω), so only the
        # network's terms carry sampling error
        self.half_excess = 0.5 * float(np.sum(self.lam))

    def state(self):
        return {"W1": self.W1, "W2": self.W2}

    def generators(self):
        return {"samples": self.gen}

    def derived(self) -> dict:
        return {"n_steps": self.config.epochs * self.config.block}

    def fingerprint_extra(self) -> dict:
        return {**super().fingerprint_extra(), "device": str(self.device)}

    def order(self) -> Order:
        return order_from_weights(self.W1.cpu().numpy(), self.W2.cpu().numpy(), self.P)

    def g(self, h):
        import torch

        if self.config.activation == "relu":
            return torch.relu(h), (h > 0).to(h.dtype)
        return torch.erf(h / math.sqrt(2)), SQ2PI * torch.exp(-0.5 * h * h)

    def data_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """(denoising, reconstruction) error ½|x − x̂|² − bD/2 of every network, averaged over the
        evaluation rows (noise: the fixed draws scaled by each network's σ); ½|x|² − bD/2 is replaced
        by its exact mean ½Σλ."""
        import torch

        out = []
        h0 = torch.matmul(self.X_eval, self.W1.transpose(1, 2)) / math.sqrt(self.D)            # (B, m, K)
        hn = torch.matmul(self.xi_eval, self.W1.transpose(1, 2)) / math.sqrt(self.D)
        y = torch.matmul(self.X_eval, self.W2)                                                  # a_k·x  (B, m, K)
        T = torch.matmul(self.W2.transpose(1, 2), self.W2)                                     # (B, K, K)
        for h in (h0 + self.s[:, :, None] * hn, h0):
            g, _ = self.g(h)
            # ½|x − x̂|² − bD/2 = ½(|x|² − bD) − Σ_k g_k a_k·x + ½ gᵀTg
            err = self.half_excess - (g * y).sum(-1) + 0.5 * (torch.matmul(g, T) * g).sum(-1)
            out.append(err.mean(-1).cpu().numpy())
        return out[0], out[1]

    def record(self, row: int, epoch: int) -> float:
        import torch

        op = self.order()
        for name in ORDER:
            getattr(self.tracker, name)[row] = torch.as_tensor(getattr(op, name))
        if self.data:
            dn, rc = self.data_errors()
            self.tracker.err_denoise_data[row] = torch.as_tensor(dn)
            self.tracker.err_recon_data[row] = torch.as_tensor(rc)
        dn = errors(op, self.lam, self.config.bulk, self.noise_var, self.config.activation)[0]
        return float(np.mean(dn)) + 0.5 * self.config.bulk * self.D   # the mean loss ½E|x − x̂|² (positive)

    def divergence_note(self) -> str:
        return (f"learning rates {list(self.config.lr)}: no stability limit is known for this nonlinear network "
                "(eta_max unknown); lower lr")

    def _rows(self):
        """Row indices (B,) of each step of one block: B distinct rows per step."""
        n, need = self.X.shape[0], self.config.block
        while need > 0:
            for idx in training.minibatches(n, self.B, [self.gen], self.device):
                if idx.shape[0] < self.B or need == 0:
                    break
                need -= 1
                yield idx

    def step(self, epoch: int) -> None:
        import torch

        c = self.config
        D, sqD, wd, kw = self.D, math.sqrt(self.D), c.weight_decay, dict(dtype=torch.float64, device=self.device)
        rows = self._rows() if self.data else None
        with torch.no_grad():
            for _ in range(c.block):
                if self.data:
                    x = self.X[next(rows)]
                else:
                    x = math.sqrt(c.bulk) * torch.randn(self.B, D, generator=self.gen, **kw)
                    x[:, :self.P] += self.sqrt_lam * torch.randn(self.B, self.P, generator=self.gen, **kw)
                xt = x + self.s * torch.randn(self.B, D, generator=self.gen, **kw)
                h = torch.bmm(self.W1, xt.unsqueeze(2)).squeeze(2) / sqD                # (B, K)
                g, gp = self.g(h)
                err = x - torch.bmm(self.W2, g.unsqueeze(2)).squeeze(2)                 # x − x̂  (B, D)
                e = torch.bmm(err.unsqueeze(1), self.W2).squeeze(1)                      # e_k = a_k·(x − x̂)
                if c.tied:
                    grad = ((e * gp).unsqueeze(2) * xt.unsqueeze(1) + g.unsqueeze(2) * err.unsqueeze(1)) / sqD
                    self.W1.add_(self.eta * (grad - (wd / D) * self.W1))
                    self.W2.copy_(self.W1.transpose(1, 2) / sqD)
                else:
                    dec = err.unsqueeze(2) * g.unsqueeze(1)                                # (B, D, K)
                    self.W2.add_((self.eta / D) * (dec - wd * self.W2))
                    self.W1.add_(self.eta * ((e * gp).unsqueeze(2) * xt.unsqueeze(1) / sqD - (wd / D) * self.W1))


class _Tracker(Records):
    """Record buffers (row, network, …) of :class:`OnlineEngine` and their run-file layout."""

    def __init__(self, engine: OnlineEngine, buffers: dict[str, tuple]):
        import torch

        self.BUFFERS = tuple(buffers)
        self.engine = engine
        for name, shape in buffers.items():
            setattr(self, name, torch.full((engine.records, engine.B) + shape, math.nan, dtype=torch.float64))

    def dataset(self, epochs, lam):
        c = self.engine.config
        rows = len(epochs)
        nv, nl, ns = len(c.noise_var), len(c.lr), c.seeds

        def lay(a):                                    # (rows, B, …) → (noise_var, lr, seed, time, …)
            a = a[:rows].numpy()
            return np.moveaxis(a.reshape((rows, nv, nl, ns) + a.shape[2:]), 0, 3)

        op = Order(*(lay(getattr(self, n)) for n in ORDER))
        extra = {n: lay(getattr(self, n)) for n in self.BUFFERS if n not in ORDER}
        return order_dataset(c, np.asarray(epochs) * c.block / c.dim, op, extra=extra)


@dataclasses.dataclass
class TheoryRun:
    """Result of :func:`train`: the configuration, the trajectory (the run file), the final weights of
    every network ((B, K, D), (B, D, K)) and the shared initial ones."""

    config: NonlinearTheoryConfig
    trajectory: Any
    W1: np.ndarray
    W2: np.ndarray
    W1_init: np.ndarray
    W2_init: np.ndarray
    resumed_from: list = dataclasses.field(default_factory=list)

    def dataset(self):
        """The run file: the trajectory with the configuration as coordinates (weights not stored)."""
        return self.trajectory


def train(config: NonlinearTheoryConfig, problem=None, *, X=None, checkpoint=None, threads: int | None = None,
          progress: bool = False) -> TheoryRun:
    """Train every condition and seed of ``config`` (:class:`OnlineEngine` through
    :func:`daedyn.training.run_engine`). A data run takes its spiked rows ``X`` (:func:`spiked_data`);
    ``problem`` is accepted for the engines' common signature and not needed."""
    return training.run_engine(OnlineEngine(config, X), TheoryRun, checkpoint=checkpoint, threads=threads,
                               progress=progress)
