"""Linear DAEs with masking noise trained as one batch: the runs of a sweep that share the spectrum and
the network's shape step together along a leading run dimension (:class:`BatchedMaskingEngine`,
:func:`train_batch`), the mask-averaged loss of every noise variant of
:class:`daedyn.masking.MarginalMaskingEngine`.

Each run keeps its own lr, keep probability, form, noise variant, γ and start. A batched run equals the same
run trained alone to rounding (within 1e-12 of each array's scale in float64, 1e-6 in float32); the one-run
engine keeps its own operations, so its results do not depend on batching."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from daedyn import training
from daedyn.masking import (_META, MaskingRun, _check, _check_rows, _diag_sigma, _note, _per_mode, _spectrum,
                            matched_eps, noise_covariance, stability_bound)
from daedyn.runconfig import MaskingConfig
from daedyn.tracking import ProductTracker
from daedyn.training import Checkpoint, Engine, Problem, as_tensor, initial_weights

__all__ = ["BATCH_PER_RUN", "BatchedMaskingEngine", "batch_groups", "train_batch"]


#: the configuration keys in which the runs of one batch may differ (:func:`batch_groups`); every
#: other key (hidden, the engine, dtype, device, epochs, log_every and what fixes the spectrum) is
#: shared. batch_size and shuffle change nothing in the marginal engine.
BATCH_PER_RUN = frozenset({"experiment", "run", "lr", "q", "form", "noise", "gamma", "init_std", "seed",
                           "allow_unstable", "batch_size", "shuffle"})


class BatchedMaskingEngine(Engine):
    """:class:`MarginalMaskingEngine` for a batch of runs: A₁ and B of every run along a leading
    dimension (R×H×d), one batched step for all, driven by :func:`daedyn.training.drive` with one
    checkpoint for the batch (:func:`daedyn.training.run_batch` splits it into one run per
    configuration).

    The runs share every configuration key but :data:`BATCH_PER_RUN` (the marginal engine: masks
    drawn every step are the sampled engine's, trained one run at a time); each has its own lr, q,
    form, noise, gamma, seed, init_std and allow_unstable, its own stability bound, divergence check,
    per-mode facts and records (:class:`daedyn.tracking.ProductTracker` with ``runs``). The step is
    the module docstring's with ``torch.bmm`` products and ηκ, ηκ², c = 1 − ηγ as (R, 1, 1) tensors;
    Λ + N is applied per run as A₁(Λ + N) = A₁·r + f·(A₁M) with M = VᵀDV shared by the runs: r = λ
    and f = ρ for masks, r = λ + diag N and f = 0 for the diagonal Gaussian comparisons, so the
    O(d²H) product is one product for every run, and none when no run draws masks.

    A run follows :class:`MarginalMaskingEngine`'s recurrence, but not its exact operations (the
    per-run rates multiply products instead of being a GEMM's scalar alpha, the masked noise is
    A₁·r + f·(A₁M) instead of A₁(Λ + N), and a batched product may add in another order), so a run
    of a batch equals the run alone to rounding, not bit for bit
    (``tests/test_batched_depth_masking.py``): within 1e-12 (float64) and 1e-6 (float32) of each
    array's largest magnitude, balancedness (a difference of Gram matrices) of theirs.
    """

    def __init__(self, configs: Sequence[MaskingConfig], lam, V, diag_sigma):
        for config in configs:
            if config.engine != "marginal":
                raise ValueError(f"{config.label}: engine is {config.engine!r}; a batch trains the marginal engine "
                                 "(engine: marginal); train sampled-mask runs one at a time with masking.train")
        training.check_batch(configs, BATCH_PER_RUN)
        super().__init__(list(configs), np.asarray(lam, dtype=np.float64).ravel(), False)
        runs, d = self.configs, self.lam.size
        kw = dict(dtype=self.dtype, device=self.device)
        V_np, diag_np, self.lam_t, self.V = _spectrum(self.lam, V, diag_sigma, kw)
        forms = [_check(c.q, c.form) for c in runs]                     # (κ, ρ) per run
        masks = [c.noise == "masking" for c in runs]
        facts = {}                  # (stability bound, diag N) per distinct setting: a sweep repeats them
        for c in runs:
            if (c.q, c.form, c.noise, c.gamma) not in facts:
                noise = noise_covariance(V_np, diag_np, c.q, c.noise)
                facts[c.q, c.form, c.noise, c.gamma] = (stability_bound(self.lam, noise, c.q, c.form, c.gamma),
                                                        np.diag(noise).copy())
        facts = [facts[c.q, c.form, c.noise, c.gamma] for c in runs]
        self.eps_matched = np.array([matched_eps(diag_np, c.q) for c in runs])
        with torch.no_grad():
            starts = [initial_weights(d, c.hidden, c.init_std, c.seed, None, None, **kw) for c in runs]
            self.W1_0, self.W2_0 = (torch.stack([w[k] for w in starts]) for k in (0, 1))
            self.A1 = torch.matmul(self.W1_0, self.V).contiguous()
            self.B = torch.matmul(self.W2_0.mT, self.V).contiguous()
            self.r = self.per_run(np.stack([self.lam if m else self.lam + nd for m, (_, nd) in zip(masks, facts)]),
                                  (len(runs), 1, d))
            self.f = self.per_run([rho if m else 0.0 for (_, rho), m in zip(forms, masks)])
            self.M = (as_tensor(V_np.T @ (diag_np[:, None] * V_np), **kw).expand(len(runs), -1, -1)   # VᵀDV
                      if any(masks) else None)
            self.one_minus_k = self.per_run([1.0 - k for k, _ in forms], (-1,))
            self.k2 = self.per_run([k * k for k, _ in forms], (-1,))
            self.eta_k_lam = self.lam_t * self.per_run([c.lr * k for c, (k, _) in zip(runs, forms)])
            self.neg_eta_k2 = self.per_run([-c.lr * k**2 for c, (k, _) in zip(runs, forms)])
            self.c = self.per_run([1.0 - c.lr * c.gamma for c in runs])
            # buffers: no allocation inside the loop
            self.A1R, self.T, self.N1, self.N2 = (torch.empty_like(self.A1) for _ in range(4))
            self.P = torch.empty(len(runs), self.config.hidden, self.config.hidden, **kw)
            self.Q = torch.empty_like(self.P)
        self.guard([bound for bound, _ in facts])
        self.tracker = ProductTracker(
            self.lam_t, [0.0] * len(runs), [c.gamma for c in runs], self.config.hidden, self.records, 2, meta=_META,
            per_mode=[_per_mode(c, V_np, diag_np, self.W1_0[i], self.W2_0[i], self.V) for i, c in enumerate(runs)],
            runs=len(runs))

    def per_run(self, values, shape=(-1, 1, 1)) -> torch.Tensor:
        """One value per run as a tensor of the runs' dtype and device, by default (R, 1, 1)."""
        return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=self.dtype,
                               device=self.device).reshape(shape)

    def _times_r(self, A1: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """A1 (Λ + N) of every run into ``out``: A1·r + f·(A1 VᵀDV)."""
        torch.mul(A1, self.r, out=out)
        if self.M is not None:
            out.addcmul_(torch.bmm(A1, self.M, out=self.T), self.f)      # the only O(d²H) product
        return out

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, "B": self.B}

    def record(self, row: int, epoch: int) -> np.ndarray:
        """Records of every run with the noise term loss − clean reconstruction − decay (module
        docstring); the runs' losses."""
        with torch.no_grad():
            A1, B = self.A1, self.B
            P = B @ B.mT
            q_r = self._times_r(A1, torch.empty_like(A1)) @ A1.mT                 # A1 (Λ+N) A1ᵀ
            q_lam = (A1 * self.lam_t) @ A1.mT
            lam_u = ((A1 * B).sum(-2) * self.lam_t).sum(-1)                       # tr(WΣ)
            penalty = self.one_minus_k * lam_u + 0.5 * (self.k2 * (P * q_r).sum((-2, -1)) - (P * q_lam).sum((-2, -1)))
            return self.tracker.record(row, A1, B, penalty=penalty)

    def step(self, epoch: int) -> None:
        del epoch  # full batch: every epoch is the same deterministic step
        with torch.no_grad():
            A1, B, A1R, T, P, Q, c = self.A1, self.B, self.A1R, self.T, self.P, self.Q, self.c
            self._times_r(A1, A1R)
            torch.bmm(B, B.mT, out=P)
            torch.bmm(A1R, A1.mT, out=Q)
            torch.mul(B, self.eta_k_lam, out=self.N1).addcmul_(A1, c).addcmul_(torch.bmm(P, A1R, out=T),
                                                                                self.neg_eta_k2)
            torch.mul(A1, self.eta_k_lam, out=self.N2).addcmul_(B, c).addcmul_(torch.bmm(Q, B, out=T),
                                                                                self.neg_eta_k2)
            # the new state in the spare buffers (state() reads the current ones when it is called)
            self.A1, self.N1, self.B, self.N2 = self.N1, A1, self.N2, B

    def divergence_note(self, run: int | None = None) -> str:
        """Run ``run``'s learning rate against its bound (every run's when None)."""
        if run is None:
            return "; ".join(f"run {i}: {self.divergence_note(i)}" for i in range(len(self.configs)))
        return _note(self.configs[run], float(self.eta_max[run]))

    def derived(self) -> dict:
        return {**super().derived(), "eta_max": self.eta_max, "eps_matched": self.eps_matched}

    def final_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every run's current (W1, W2) in the data's basis."""
        with torch.no_grad():
            return torch.matmul(self.A1, self.V.T), torch.matmul(self.B, self.V.T).mT


def batch_groups(configs: Sequence[MaskingConfig]) -> list[list[int]]:
    """The indices of ``configs`` in groups that can train as one batch (:func:`train_batch`): equal in
    every key but :data:`BATCH_PER_RUN`, groups in order of first appearance. Sampled-engine runs
    group apart from marginal ones; :func:`train_batch` refuses them."""
    return training.batch_groups(configs, BATCH_PER_RUN)


def train_batch(configs: Sequence[MaskingConfig], problem: Problem, *, checkpoint: Checkpoint | None = None,
                threads: int | None = None, progress: bool = False) -> list[MaskingRun]:
    """Train marginal-engine masking runs that differ only in :data:`BATCH_PER_RUN` as one batch
    (:class:`BatchedMaskingEngine`) on the spectrum of ``problem`` (Σ's diagonal as in :func:`train`);
    one :class:`MaskingRun` per configuration, in order, each laid out as :func:`train`'s.
    Configurations that differ in another key raise a ValueError naming it (group them first with
    :func:`batch_groups`). ``checkpoint`` holds the whole batch."""
    for config in configs:
        _check_rows(config, problem.X)
    engine = BatchedMaskingEngine(configs, problem.lam, problem.V, _diag_sigma(problem))
    return training.run_batch(engine, MaskingRun, checkpoint=checkpoint, threads=threads, progress=progress)
