"""Recording of linear networks whose end-to-end map is a product, in Σ's eigenbasis.

:class:`ProductTracker` extends the two-layer tracker of :mod:`daedyn.linear` to any linear
network x̂ = W x̃ whose end-to-end map, in Σ's eigenbasis, factors as VᵀWV = Dᵀ A₁ with
A₁ = W₁V (H₁×d, the first layer) and D (H₁×d, everything above the first layer, transposed
and seen from the eigenbasis). For two layers D = W₂ᵀV; for depth L, D = (W_L⋯W₂)ᵀV.
The two-layer tracker records u, the singular values, the reconstruction and Gaussian-noise
loss terms, norms and balancedness from (A₁, D); a model overrides only what differs: its own
regularisation term (masking), and, for more than two layers, the decay summed over every
layer, the last layer's norm and the balancedness of adjacent layers. The records keep the
two-layer names, shapes and formulas, so the trajectories of every linear model compare
directly; each layer's norm is added as ``layer_norm`` (epoch, layer), and a model may add
per-mode facts of the run (``per_mode``) to its trajectory.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from daedyn.linear import _Tracker
from daedyn.training import Records, num_threads

__all__ = ["BatchedProductTracker", "ProductTracker"]


class ProductTracker(_Tracker):
    """Records u, singular values, loss terms and norms of a product network (see module doc).

    ``hidden`` is the first layer's width H₁ (min(d, H₁) singular values of W are recorded; those
    beyond a narrower layer's width are 0), ``layers`` the number of weight matrices (the ``layer``
    dimension of ``layer_norm``). ``meta`` overrides the descriptions (long_name, units) of
    recorded variables whose meaning differs from the two-layer model's; ``per_mode`` holds
    variables along "mode" (name → (values, attrs)) added to the trajectory.
    """

    BUFFERS = _Tracker.BUFFERS + ("layer_norm",)

    def __init__(self, lam: torch.Tensor, eps: float, gamma: float, hidden: int, n_log: int, layers: int,
                 meta: dict[str, tuple[str, str]] | None = None,
                 per_mode: dict[str, tuple[np.ndarray, dict]] | None = None):
        super().__init__(lam, eps, gamma, hidden, n_log)
        self.layer_norm = torch.empty(n_log, layers, dtype=lam.dtype, device=lam.device)
        self.meta = dict(meta or {})
        self.per_mode = dict(per_mode or {})

    def record(self, row: int, A1: torch.Tensor, D: torch.Tensor, *, penalty: torch.Tensor | None = None,
               layer_sq_norms: list[torch.Tensor] | None = None,
               balancedness: torch.Tensor | None = None) -> float:
        """Store the state as row ``row``; return the loss.

        ``penalty`` replaces the Gaussian-noise term ε/2‖W‖²_F (recorded as ``loss_noise``);
        ``layer_sq_norms`` are the squared Frobenius norms of W₁…W_L (default: of A₁ and D, two
        layers; their γ/2-weighted sum is ``loss_decay``), ``balancedness`` replaces
        ‖W₁W₁ᵀ − W₂ᵀW₂‖_F.
        """
        loss = super().record(row, A1, D)
        s = self.scalars[row]
        if penalty is not None:
            s[2] = penalty
        if layer_sq_norms is None:
            layer_sq_norms = [A1.square().sum(), D.square().sum()]
        else:
            sq = torch.stack(layer_sq_norms)
            s[3] = 0.5 * self.gamma * sq.sum()
            s[5] = sq[-1].sqrt()
        if balancedness is not None:
            s[6] = balancedness
        if penalty is not None or len(layer_sq_norms) > 2:
            s[0] = s[1] + s[2] + s[3]
            loss = float(s[0])
            if not math.isfinite(loss):
                self.sv[row] = math.nan
        self.layer_norm[row] = torch.stack(layer_sq_norms).sqrt()
        return loss

    def dataset(self, epochs: np.ndarray, lam: np.ndarray) -> xr.Dataset:
        ds = super().dataset(epochs, lam)
        ds["layer_norm"] = (("epoch", "layer"), self.layer_norm.double().cpu().numpy(),
                            {"long_name": "layer norm: Frobenius norm of each weight matrix W_1 ... W_L", "units": "1"})
        ds = ds.assign_coords(layer=("layer", np.arange(1, self.layer_norm.shape[1] + 1)))
        ds["layer"].attrs.update(long_name="layer index: l of W_l (1 = first, next to the input)", units="1")
        for name, (long_name, units) in self.meta.items():
            ds[name].attrs.update(long_name=long_name, units=units)
        for name, (values, attrs) in self.per_mode.items():
            ds[name] = ("mode", np.asarray(values, dtype=np.float64), dict(attrs))
        return ds


class BatchedProductTracker(Records):
    """:class:`ProductTracker`'s records for a batch of ``n`` runs (:mod:`daedyn.batching`).

    Every buffer has the row (recorded epoch) first and the run second, so a checkpoint keeps the
    rows recorded so far of every run. ``eps`` and ``gamma`` hold one value per run; ``per_mode`` one
    dict per run. :meth:`record` takes the batched A₁ and D (n×H₁×d) and per-run extras and computes
    what :meth:`ProductTracker.record` computes, with batched QR, SVD and products; :meth:`run` gives
    run i's records as a :class:`ProductTracker`, so its trajectory is laid out by the same code.
    """

    BUFFERS = ("u", "sv", "scalars", "layer_norm")

    def __init__(self, lam: torch.Tensor, eps, gamma, hidden: int, n_log: int, layers: int,
                 meta: dict[str, tuple[str, str]] | None = None,
                 per_mode: list[dict[str, tuple[np.ndarray, dict]]] | None = None):
        d, n = lam.shape[0], len(eps)
        self.lam, self.hidden, self.layers, self.meta = lam, int(hidden), int(layers), meta
        self.eps, self.gamma = np.asarray(eps, dtype=np.float64), np.asarray(gamma, dtype=np.float64)
        # the one-run tracker multiplies by Python floats 0.5ε and 0.5γ: the same values, per run
        kw = dict(dtype=lam.dtype, device=lam.device)
        self.half_eps, self.half_gamma = (torch.as_tensor(0.5 * a, **kw) for a in (self.eps, self.gamma))
        self.trace = float(lam.sum())
        self.k = min(d, hidden)
        self.per_mode = per_mode or [{}] * n
        self.u = torch.empty(n_log, n, d, **kw)
        self.sv = torch.empty(n_log, n, self.k, **kw)
        self.scalars = torch.empty(n_log, n, 7, **kw)          # the order of linear's _SCALARS
        self.layer_norm = torch.empty(n_log, n, layers, **kw)

    def record(self, row: int, A1: torch.Tensor, D: torch.Tensor, *, penalty: torch.Tensor | None = None,
               layer_sq_norms: torch.Tensor | None = None, balancedness: torch.Tensor | None = None) -> torch.Tensor:
        """Store the batch's state as row ``row``; return the runs' losses (n,).

        As :meth:`ProductTracker.record`, per run: ``penalty`` (n,) replaces ε/2‖W‖²_F,
        ``layer_sq_norms`` (n, L) the squared norms of W₁…W_L, ``balancedness`` (n,) the two-layer one.
        """
        lam = self.lam
        threads = 1 if self.u.device.type == "cpu" else None
        with num_threads(threads):
            R2 = torch.linalg.qr(D.mT, mode="r").R
            R1 = torch.linalg.qr(A1.mT, mode="r").R
        G = R1.mT @ R1
        P = R2.mT @ R2
        Q_lam = (A1 * lam) @ A1.mT
        u = self.u[row]
        torch.sum(A1 * D, dim=1, out=u)
        n1sq, n2sq = A1.square().sum((1, 2)), D.square().sum((1, 2))
        rec = 0.5 * (self.trace - 2.0 * (u @ lam) + (P * Q_lam).sum((1, 2)))
        s = self.scalars[row]
        s[:, 1] = rec
        s[:, 2] = self.half_eps * (P * G).sum((1, 2)) if penalty is None else penalty
        if layer_sq_norms is None:
            layer_sq_norms = torch.stack([n1sq, n2sq], dim=1)
            s[:, 3] = self.half_gamma * (n1sq + n2sq)
            s[:, 5] = n2sq.sqrt()
        else:
            s[:, 3] = self.half_gamma * layer_sq_norms.sum(1)
            s[:, 5] = layer_sq_norms[:, -1].sqrt()
        s[:, 4] = n1sq.sqrt()
        s[:, 6] = torch.linalg.matrix_norm(G - P) if balancedness is None else balancedness
        s[:, 0] = s[:, 1] + s[:, 2] + s[:, 3]
        self.layer_norm[row] = layer_sq_norms.sqrt()
        loss = s[:, 0]
        finite = torch.isfinite(loss)
        sv = self.sv[row]
        sv[~finite] = math.nan                                # the SVD fails on such input
        with num_threads(threads):
            if bool(finite.all()):
                sv.copy_(torch.linalg.svdvals(R2 @ R1.mT))
            elif bool(finite.any()):
                sv[finite] = torch.linalg.svdvals((R2 @ R1.mT)[finite])
        return loss

    def run(self, i: int) -> ProductTracker:
        """Run ``i``'s records as a :class:`ProductTracker` (its buffers are views of this one's)."""
        one = ProductTracker(self.lam, float(self.eps[i]), float(self.gamma[i]), self.hidden, 0, self.layers,
                             meta=self.meta, per_mode=self.per_mode[i])
        one.u, one.sv, one.scalars, one.layer_norm = (b[:, i] for b in (self.u, self.sv, self.scalars, self.layer_norm))
        return one
