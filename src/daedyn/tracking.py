"""Recording of linear networks whose end-to-end map is a product, in Σ's eigenbasis.

:class:`ProductTracker` extends the two-layer tracker of :mod:`daedyn.linear` to any linear
network x̂ = W x̃ whose end-to-end map, in Σ's eigenbasis, factors as VᵀWV = Dᵀ A₁ with
A₁ = W₁V (H₁×d, the first layer) and D (H₁×d, everything above the first layer, transposed
and seen from the eigenbasis). For two layers D = W₂ᵀV; for depth L, D = (W_L⋯W₂)ᵀV.
The model supplies only what differs between models: the regularisation part of its loss
(noise or masking term), the weight-decay term, the layer norms and the balancedness.
The records (``u``, ``singular_values``, the loss terms, norms and ``balancedness``) have the
same names, shapes and formulas as the two-layer tracker, so trajectories of every linear
model compare directly; the per-layer norms are added as ``layer_norm`` (epoch, layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import xarray as xr

from daedyn.linear import EXPLODE_FACTOR, DivergenceError, _num_threads, _Tracker

__all__ = ["ProductTracker"]


class ProductTracker(_Tracker):
    """Records u, singular values, loss terms and norms of a product network (see module doc).

    ``layers`` is the number of weight matrices (the ``layer`` dimension of ``layer_norm``),
    ``rank`` the largest possible rank of W (min(d, narrowest hidden width)): the number of
    recorded singular values. ``meta`` overrides the descriptions (long_name, units) of
    recorded variables whose meaning differs from the two-layer model's. ``limit_note`` is the
    model's own stability hint for the divergence message (the two-layer limits do not apply).
    """

    BUFFERS = _Tracker.BUFFERS + ("layer_norm",)

    def __init__(self, lam: torch.Tensor, eps: float, gamma: float, rank: int, n_log: int,
                 lr: float, layers: int, meta: dict[str, tuple[str, str]] | None = None,
                 limit_note: str = ""):
        super().__init__(lam, eps, gamma, rank, n_log, lr)
        self.limit_note = limit_note
        self.layer_norm = torch.empty(n_log, layers, dtype=lam.dtype, device=lam.device)
        self.meta = dict(meta or {})

    def record_product(self, row: int, epoch: int, A1: torch.Tensor, D: torch.Tensor,
                       penalty: Callable[..., torch.Tensor], layer_sq_norms: list[torch.Tensor],
                       balancedness: torch.Tensor) -> float:
        """Store the state as row ``row``; return the loss.

        ``penalty(A1, D, P, G, Q_lam)`` returns the regularisation part of the loss (recorded as
        ``loss_noise``), given also P = DDᵀ, G = A₁A₁ᵀ and Q_lam = A₁ΛA₁ᵀ; ``layer_sq_norms`` are the
        squared Frobenius norms of W₁…W_L (their γ/2-weighted sum is ``loss_decay``).
        """
        lam = self.lam
        threads = 1 if self.u.device.type == "cpu" else None   # see _Tracker.record
        with _num_threads(threads):
            R2 = torch.linalg.qr(D.T, mode="r").R
            R1 = torch.linalg.qr(A1.T, mode="r").R
        G = R1.T @ R1
        P = R2.T @ R2
        Q_lam = (A1 * lam) @ A1.T
        u = self.u[row]
        torch.sum(A1 * D, dim=0, out=u)
        rec = 0.5 * (self.trace - 2.0 * torch.dot(lam, u) + (P * Q_lam).sum())
        noise = penalty(A1, D, P, G, Q_lam)
        sq = torch.stack(layer_sq_norms)
        decay = 0.5 * self.gamma * sq.sum()
        s = self.scalars[row]
        s[0], s[1], s[2], s[3] = rec + noise + decay, rec, noise, decay
        s[4], s[5] = sq[0].sqrt(), sq[-1].sqrt()
        s[6] = balancedness
        self.layer_norm[row] = sq.sqrt()
        loss = float(s[0])
        self._check(loss, epoch)             # before the SVD, which fails on non-finite input
        with _num_threads(threads):
            self.sv[row] = torch.linalg.svdvals(R2 @ R1.T)
        return loss

    def _check(self, loss: float, epoch: int) -> None:
        if self.first_loss is None:
            self.first_loss = loss
        if not math.isfinite(loss) or loss > EXPLODE_FACTOR * max(abs(self.first_loss), 1e-30):
            raise DivergenceError(
                f"training diverged by epoch {epoch} (loss {loss:.4g}, initial loss "
                f"{self.first_loss:.4g}) with learning rate eta={self.lr:g}; {self.limit_note}")

    def dataset(self, epochs: np.ndarray, lam: np.ndarray, attrs: dict) -> xr.Dataset:
        ds = super().dataset(epochs, lam, attrs)
        ds["layer_norm"] = (("epoch", "layer"), self.layer_norm.double().cpu().numpy(),
                            {"long_name": "Frobenius norm of each weight matrix W_1 ... W_L",
                             "units": "1"})
        ds = ds.assign_coords(layer=("layer", np.arange(1, self.layer_norm.shape[1] + 1)))
        ds["layer"].attrs.update(long_name="layer index l of W_l (1 = first, next to the input)",
                                 units="1")
        for name, (long_name, units) in self.meta.items():
            ds[name].attrs.update(long_name=long_name, units=units)
        return ds
