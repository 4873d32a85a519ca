"""Depth-L linear networks trained as one batch: the runs of a sweep that share the spectrum and the
layers' shapes step together along a leading run dimension (:class:`BatchedDepthEngine`, :func:`train_batch`).

Each run keeps its own lr, ε, γ (or matched decay), start and stability limit. A batched run equals the same
run trained alone by :class:`daedyn.depth.DepthEngine` to rounding (within 1e-12 of each array's scale in
float64, 1e-6 in float32); the one-run engine keeps its own operations, so its results do not depend on
batching."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from daedyn import training
from daedyn.depth import (_DEPTH_META, DepthRun, _basis, _chain, _eta_max, _matched, _note, _product_weights,
                          _start)
from daedyn.runconfig import DepthConfig
from daedyn.tracking import ProductTracker
from daedyn.training import Checkpoint, Engine, Problem, as_tensor

__all__ = ["BATCH_PER_RUN", "BatchedDepthEngine", "batch_groups", "train_batch"]


#: the configuration keys in which the runs of one batch may differ (:func:`batch_groups`); every
#: other key (depth, widths, dtype, device, epochs, log_every and what fixes the spectrum) is shared
BATCH_PER_RUN = frozenset({"experiment", "run", "lr", "eps", "gamma", "match_eps", "match_mode", "init", "w0",
                           "init_std", "seed", "allow_unstable", "shuffle"})


class BatchedDepthEngine(Engine):
    """:class:`DepthEngine` for a batch of runs: the runs along the leading dimension of every state
    tensor (A₁: R×H₁×d, the middle layers R×H_l×H_{l−1}, B: R×H_{L−1}×d), one batched step for all,
    driven by :func:`daedyn.training.drive` with one checkpoint for the batch
    (:func:`daedyn.training.run_batch` splits it into one run per configuration).

    The runs share every configuration key but :data:`BATCH_PER_RUN`; each has its own lr, eps,
    gamma (or match_eps), start (aligned w0, or random seed and init_std) and allow_unstable, its
    own stability limit (as :class:`DepthEngine`), divergence check and records. The step is the
    module docstring's with ``torch.bmm`` products and η, c = 1 − ηγ and ε as (R, 1, 1) tensors.

    A run follows :class:`DepthEngine`'s recurrence, but not its exact operations: the per-run rate
    multiplies a product (``addcmul``) instead of being a GEMM's scalar alpha, and a batched product
    or reduction may add in another order. So a run of a batch equals the run alone to rounding, not
    bit for bit (``tests/test_batched_depth_masking.py``): within 1e-12 (float64) and 1e-6 (float32)
    of each array's largest magnitude, balancedness (a difference of Gram matrices) of theirs.
    """

    def __init__(self, configs: Sequence[DepthConfig], lam, V):
        training.check_batch(configs, BATCH_PER_RUN)
        super().__init__(list(configs), np.asarray(lam, dtype=np.float64).ravel(), False)
        kw = dict(dtype=self.dtype, device=self.device)
        self.V = _basis(V, self.lam.size, kw)
        self.configs = runs = [_matched(c, self.lam) for c in self.configs]
        self.config = c0 = runs[0]
        with torch.no_grad():
            starts = [_start(c, self.V, None, kw) for c in runs]
            self.A1, self.B, self.W1_0, self.W2_0 = (torch.stack([s[k] for s in starts]) for k in (0, 2, 3, 4))
            self.mids = [torch.stack([s[1][k] for s in starts]) for k in range(c0.depth - 2)]
            self.lam_t = as_tensor(self.lam, **kw)

            def per_run(values):                     # (R, 1, 1): one value per run, broadcast over (H, d)
                return torch.as_tensor(np.asarray(values, dtype=np.float64), **kw).reshape(-1, 1, 1)

            self.s = self.lam_t + per_run([c.eps for c in runs])            # diag(λ+ε) per run
            self.eta_lam = self.lam_t * per_run([c.lr for c in runs])
            self.c = per_run([1.0 - c.lr * c.gamma for c in runs])
            self.eta, self.neg_eta = per_run([c.lr for c in runs]), per_run([-c.lr for c in runs])
            # buffers: no allocation in the two-layer step
            self.A1s, self.N1, self.T1 = (torch.empty_like(self.A1) for _ in range(3))
            self.N2, self.T2 = torch.empty_like(self.B), torch.empty_like(self.B)
            widths = c0.hidden_widths
            self.P = torch.empty(len(runs), widths[-1], widths[-1], **kw)
            self.Q = torch.empty(len(runs), widths[0], widths[0], **kw)
        self.guard([_eta_max(self.lam, c) for c in runs])
        self.tracker = ProductTracker(self.lam_t, [c.eps for c in runs], [c.gamma for c in runs], c0.hidden_widths[0],
                                      self.records, c0.depth, meta=_DEPTH_META, runs=len(runs))

    def state(self) -> dict[str, torch.Tensor]:
        return {"A1": self.A1, **{f"W{l + 2}": m for l, m in enumerate(self.mids)}, "B": self.B}

    def record(self, row: int, epoch: int) -> np.ndarray:
        with torch.no_grad():
            A1, B, mids = self.A1, self.B, self.mids
            if not mids:                                           # two layers: the two-layer records
                return self.tracker.record(row, A1, B)
            D = _chain(mids).mT @ B
            left = [A1 @ A1.mT] + [m @ m.mT for m in mids]       # W_l W_lᵀ, l < L
            right = [m.mT @ m for m in mids] + [B @ B.mT]        # W_{l+1}ᵀ W_{l+1}
            bal = torch.stack([torch.linalg.matrix_norm(a - b) for a, b in zip(left, right)], -1).amax(-1)
            sq = [A1.square().sum((-2, -1)), *(m.square().sum((-2, -1)) for m in mids), B.square().sum((-2, -1))]
            return self.tracker.record(row, A1, D, layer_sq_norms=sq, balancedness=bal)

    def step(self, epoch: int) -> None:
        del epoch  # full batch: every epoch is the same deterministic step
        with torch.no_grad():
            A1, B, mids, c, A1s, P, Q = self.A1, self.B, self.mids, self.c, self.A1s, self.P, self.Q
            torch.mul(A1, self.s, out=A1s)
            torch.bmm(B, B.mT, out=P)                             # P = BBᵀ = W_LᵀW_L
            torch.bmm(A1s, A1.mT, out=Q)                          # Q = A1 diag(λ+ε) A1ᵀ
            new = []
            if mids:
                C = _chain(mids)                                  # W_{L−1} ⋯ W_2
                D, E = C.mT @ B, C @ A1
                PD, QE = C.mT @ P @ C, C @ Q @ C.mT
                K = torch.baddbmm((B * self.lam_t) @ A1.mT, P @ C, Q, alpha=-1.0)
                for k, m in enumerate(mids):
                    up, down = _chain(mids[k + 1:]), _chain(mids[:k])
                    g = K if up is None else up.mT @ K
                    g = g if down is None else g @ down.mT
                    new.append(torch.addcmul(m * c, g, self.eta))
            else:
                D, E, PD, QE = B, A1, P, Q
            # A1' = c A1 + η DΛ − η (DDᵀ) A1 diag(λ+ε);  B' = c B + η EΛ − η (E diag(λ+ε) Eᵀ) B
            torch.mul(D, self.eta_lam, out=self.N1).addcmul_(A1, c).addcmul_(torch.bmm(PD, A1s, out=self.T1),
                                                                              self.neg_eta)
            torch.mul(E, self.eta_lam, out=self.N2).addcmul_(B, c).addcmul_(torch.bmm(QE, B, out=self.T2),
                                                                             self.neg_eta)
            # the new state in the spare buffers (state() reads the current ones when it is called)
            self.A1, self.N1, self.B, self.N2, self.mids = self.N1, A1, self.N2, B, new

    def divergence_note(self, run: int | None = None) -> str:
        """Run ``run``'s learning rate against its limit (every run's when None)."""
        if run is None:
            return "; ".join(f"run {i}: {self.divergence_note(i)}" for i in range(len(self.configs)))
        return _note(self.configs[run], float(self.eta_max[run]), self.lam)

    def derived(self) -> dict:
        return {**super().derived(), "eta_max": self.eta_max}

    def final_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W₁, W_L⋯W₂) of every run in the data's basis."""
        with torch.no_grad():
            return _product_weights(self.A1, self.mids, self.B, self.V)


def batch_groups(configs: Sequence[DepthConfig]) -> list[list[int]]:
    """The indices of ``configs`` in groups that can train as one batch (:func:`train_batch`): equal in
    every key but :data:`BATCH_PER_RUN`, groups in order of first appearance."""
    return training.batch_groups(configs, BATCH_PER_RUN)


def train_batch(configs: Sequence[DepthConfig], problem: Problem, *, checkpoint: Checkpoint | None = None,
                threads: int | None = None, progress: bool = False) -> list[DepthRun]:
    """Train depth-L runs that differ only in :data:`BATCH_PER_RUN` as one batch
    (:class:`BatchedDepthEngine`) on the spectrum of ``problem``; one :class:`DepthRun` per
    configuration, in order, each laid out as :func:`train`'s. Configurations that differ in another
    key raise a ValueError naming it (group them first with :func:`batch_groups`). ``checkpoint``
    holds the whole batch."""
    return training.run_batch(BatchedDepthEngine(configs, problem.lam, problem.V), DepthRun,
                              checkpoint=checkpoint, threads=threads, progress=progress)
