"""Linear AEs, DAEs and WDAEs trained as one batch by the exact engine: the runs of a sweep that share the
spectrum and H step together along a leading run dimension (:class:`BatchedExactEngine`, :func:`train_batch`),
with torch.bmm/baddbmm.

Each run keeps its own lr, ε, γ, seed and init_std, its stability limit, divergence check and records (with
the held-out errors when the problem has a held-out moment). A batched run equals the same run trained alone by
:class:`daedyn.linear.ExactEngine` to rounding (within 1e-12 of each array's scale in float64, 1e-6 in
float32); the one-run engine keeps its own operations, so its results do not depend on batching."""

from __future__ import annotations


import numpy as np
import torch

from daedyn import training
from daedyn.linear import Run, _check_orthogonal, _LinearEngine, train
from daedyn.runconfig import LinearConfig
from daedyn.training import Checkpoint, Problem, as_tensor

__all__ = ["BATCH_PER_RUN", "BatchedExactEngine", "batch_groups", "train_batch"]


class BatchedExactEngine(_LinearEngine):
    """:class:`ExactEngine` for R runs at once: the runs along the leading dimension of every state
    tensor (A1, B2: (R, H, d)), one step four batched products (``torch.bmm``/``baddbmm``) for the
    whole batch.

    The runs share the spectrum and every configuration key but :data:`BATCH_PER_RUN` (lr, eps,
    gamma, seed, init_std, allow_unstable and the run's name), which the step carries as (R, 1, 1)
    and (R, 1, d) tensors: A1' = c A1 + ηB2Λ − ηP A1 diag(λ+ε) and A2'ᵀ = c B2 + ηA1Λ − ηQ B2 with
    c = 1 − ηγ, each run with its own η, ε, γ. The records (:class:`_Tracker` with ``runs``), the
    stability guard and the divergence check are per run; :func:`daedyn.training.run_batch` splits
    the result into one run per configuration.

    A run follows :class:`ExactEngine`'s recurrence, but not its exact operations: the per-run rate
    is folded into the H×H Gram matrices (−ηP) instead of a GEMM's scalar alpha, c·A1 is a product
    instead of a fused add, and a batched product or reduction may add in another order. So a run of
    a batch equals the run alone to rounding, not bit for bit (``tests/test_batched.py``): within
    1e-12 (float64) and 1e-6 (float32) of each array's largest magnitude, balancedness (a difference
    of two Gram matrices) of theirs.
    """

    def __init__(self, configs: list[LinearConfig], lam, V, C=None):
        super().__init__(list(configs), lam, V, None, None, C=C)
        _check_orthogonal(self.V)
        R, H = len(self.configs), self.config.hidden
        self.A1 = torch.matmul(self.W1_0, self.V).contiguous()           # (R, H, d)
        self.B2 = torch.matmul(self.W2_0.mT, self.V).contiguous()
        self.N1, self.N2 = torch.empty_like(self.A1), torch.empty_like(self.B2)
        self.A1s = torch.empty_like(self.A1)
        self.P = torch.empty(R, H, H, dtype=self.dtype, device=self.device)
        self.Q, self.Pe, self.Qe = torch.empty_like(self.P), torch.empty_like(self.P), torch.empty_like(self.P)

        def per_run(values):  # (R, 1, 1): broadcast over each run's matrices
            return as_tensor(np.asarray(values, dtype=np.float64), self.dtype, self.device)[:, None, None]

        self.neg_eta = per_run([-c.lr for c in self.configs])
        self.c = per_run([1.0 - c.lr * c.gamma for c in self.configs])
        self.s = self.lam_t + per_run([c.eps for c in self.configs])    # (R, 1, d): diag(λ+ε) per run
        self.eta_lam = self.lam_t * per_run([c.lr for c in self.configs])  # (R, 1, d): ηΛ per run
        self.fresh = False                                              # P, Q belong to the current state

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, "B2": self.B2}

    def _grams(self) -> None:
        if not self.fresh:
            torch.mul(self.A1, self.s, out=self.A1s)
            torch.bmm(self.B2, self.B2.mT, out=self.P)       # P = A2ᵀA2 per run
            torch.bmm(self.A1s, self.A1.mT, out=self.Q)      # Q = A1 diag(λ+ε) A1ᵀ per run
            self.fresh = True

    def record(self, row: int, epoch: int) -> np.ndarray:
        self._grams()
        return self.tracker.record(row, self.A1, self.B2, self.P, self.Q)

    def step(self, epoch: int) -> None:
        self._grams()
        A1, B2 = self.A1, self.B2
        # −ηP and −ηQ (H×H, cheap): each product is then one baddbmm with the run's rate folded in
        torch.mul(self.P, self.neg_eta, out=self.Pe)
        torch.mul(self.Q, self.neg_eta, out=self.Qe)
        torch.mul(B2, self.eta_lam, out=self.N1).addcmul_(A1, self.c).baddbmm_(self.Pe, self.A1s)
        torch.mul(A1, self.eta_lam, out=self.N2).addcmul_(B2, self.c).baddbmm_(self.Qe, B2)
        self.A1, self.N1, self.B2, self.N2 = self.N1, A1, self.N2, B2
        self.fresh = False

    def final_weights(self):
        return torch.matmul(self.A1, self.V.T), torch.matmul(self.B2, self.V.T).mT


#: the configuration keys in which runs of one batch may differ (:func:`train_batch`); every other key,
#: and the spectrum, they share. batch_size and shuffle do not enter the exact engine.
BATCH_PER_RUN = frozenset({"experiment", "run", "lr", "eps", "gamma", "seed", "init_std", "allow_unstable",
                           "batch_size", "shuffle"})


def batch_groups(configs: list[LinearConfig]) -> list[list[int]]:
    """Indices of ``configs`` in groups that :func:`train_batch` trains as one batch, in order of first
    appearance: exact-engine runs equal in every key but :data:`BATCH_PER_RUN`; a run of another
    engine is a group of its own."""
    exact = [i for i, c in enumerate(configs) if c.engine == "exact"]
    groups = [[exact[j] for j in group] for group in training.batch_groups([configs[i] for i in exact], BATCH_PER_RUN)]
    groups += [[i] for i, c in enumerate(configs) if c.engine != "exact"]
    return sorted(groups)


def train_batch(configs: list[LinearConfig], problem: Problem, *, checkpoint: Checkpoint | None = None,
                threads: int | None = None, progress: bool = False) -> list[Run]:
    """Train exact-engine runs that share a spectrum as one batch (:class:`BatchedExactEngine`, one
    :func:`daedyn.training.drive` loop and one ``checkpoint`` for all) and return one :class:`Run` per
    configuration, in order, whose ``dataset()`` is :func:`train`'s for that configuration to rounding
    (:class:`BatchedExactEngine`: float64 within 1e-12, float32 within 1e-6 of each array's scale).

    The runs may differ only in :data:`BATCH_PER_RUN` (a ValueError names the first other key that
    differs; :func:`batch_groups` splits a list into batches); ``problem.C`` gives every run its
    held-out records. The guard checks each run's lr against its own stability limit before the
    first step and names every run above it; a diverging run stops the batch with an error naming it,
    its epoch and why. A single configuration of another engine is trained by :func:`train`.
    """
    configs = list(configs)
    if len(configs) == 1 and configs[0].engine != "exact":
        return [train(configs[0], problem, checkpoint=checkpoint, threads=threads, progress=progress)]
    training.check_batch(configs, BATCH_PER_RUN)
    if configs[0].engine != "exact":
        raise ValueError(f"{configs[0].label}: engine is {configs[0].engine!r}; only runs of the exact engine train "
                         "as one batch (train the others one by one with daedyn.linear.train)")
    engine = BatchedExactEngine(configs, problem.lam, problem.V, problem.C)
    return training.run_batch(engine, Run, checkpoint=checkpoint, threads=threads, progress=progress)
