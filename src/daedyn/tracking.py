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
per-mode facts of the run (``per_mode``) to its trajectory. With ``runs`` it records a batch of
R runs at once (the batched engines): the states are (R, H₁, d), the extras one value per run.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from daedyn.linear import _Tracker

__all__ = ["ProductTracker"]


class ProductTracker(_Tracker):
    """Records u, singular values, loss terms and norms of a product network (see module doc).

    ``hidden`` is the first layer's width H₁ (min(d, H₁) singular values of W are recorded; those
    beyond a narrower layer's width are 0), ``layers`` the number of weight matrices (the ``layer``
    dimension of ``layer_norm``). ``meta`` overrides the descriptions (long_name, units) of
    recorded variables whose meaning differs from the two-layer model's; ``per_mode`` holds
    variables along "mode" (name → (values, attrs)) added to the trajectory. With ``runs`` it records
    a batch (:class:`daedyn.depth_batched.BatchedDepthEngine`, :class:`daedyn.masking_batched.BatchedMaskingEngine`):
    ``eps`` and ``gamma`` hold one value per run, ``per_mode`` is one dict per run, and ``run(i)``
    has run i's ``dataset(epochs, lam)``; without, the one-run records keep their own operations.
    """

    BUFFERS = _Tracker.BUFFERS + ("layer_norm",)

    def __init__(self, lam: torch.Tensor, eps, gamma, hidden: int, n_log: int, layers: int,
                 meta: dict[str, tuple[str, str]] | None = None, per_mode: dict | list[dict] | None = None,
                 runs: int | None = None):
        super().__init__(lam, eps, gamma, hidden, n_log, runs=runs)
        batch = () if runs is None else (runs,)
        self.layer_norm = torch.empty(n_log, *batch, layers, dtype=lam.dtype, device=lam.device)
        self.meta = dict(meta or {})
        self.per_mode = per_mode or ({} if runs is None else [{}] * runs)

    def record(self, row: int, A1: torch.Tensor, D: torch.Tensor, *, penalty: torch.Tensor | None = None,
               layer_sq_norms: list[torch.Tensor] | None = None, balancedness: torch.Tensor | None = None):
        """Store the state (a batch: the states, R×H₁×d) as row ``row``; return the loss (a batch: the
        runs' losses, a float64 array).

        ``penalty`` replaces the Gaussian-noise term ε/2‖W‖²_F (recorded as ``loss_noise``);
        ``layer_sq_norms`` are the squared Frobenius norms of W₁…W_L (default: of A₁ and D, two
        layers; their γ/2-weighted sum is ``loss_decay``), ``balancedness`` replaces
        ‖W₁W₁ᵀ − W₂ᵀW₂‖_F; each holds one value per run of a batch.
        """
        loss = super().record(row, A1, D)
        s = self.scalars[row]
        if penalty is not None:
            s[..., 2] = penalty
        if layer_sq_norms is None:
            layer_sq_norms = [A1.square().sum((-2, -1)), D.square().sum((-2, -1))]
        else:
            sq = torch.stack(layer_sq_norms, -1)
            s[..., 3] = 0.5 * self.gamma * sq.sum(-1)
            s[..., 5] = sq[..., -1].sqrt()
        if balancedness is not None:
            s[..., 6] = balancedness
        if penalty is not None or len(layer_sq_norms) > 2:
            s[..., 0] = s[..., 1] + s[..., 2] + s[..., 3]
            loss = s[..., 0].double().cpu().numpy()
            self.sv[row][torch.as_tensor(~np.isfinite(loss), device=s.device)] = math.nan  # the SVD of no run
            loss = loss if loss.ndim else float(loss)
        self.layer_norm[row] = torch.stack(layer_sq_norms, -1).sqrt()
        return loss

    def dataset(self, epochs: np.ndarray, lam: np.ndarray, run: int | None = None) -> xr.Dataset:
        """The trajectory (of run ``run`` of a batch)."""
        ds = super().dataset(epochs, lam, run)  # with a run: every buffer on the host (self.host)
        norms = self.layer_norm.double().cpu().numpy() if run is None else self.host["layer_norm"][:, run]
        ds["layer_norm"] = (("epoch", "layer"), norms,
                            {"long_name": "layer norm: Frobenius norm of each weight matrix W_1 ... W_L", "units": "1"})
        ds = ds.assign_coords(layer=("layer", np.arange(1, self.layer_norm.shape[-1] + 1)))
        ds["layer"].attrs.update(long_name="layer index: l of W_l (1 = first, next to the input)", units="1")
        for name, (long_name, units) in self.meta.items():
            ds[name].attrs.update(long_name=long_name, units=units)
        for name, (values, attrs) in (self.per_mode if run is None else self.per_mode[run]).items():
            ds[name] = ("mode", np.asarray(values, dtype=np.float64), dict(attrs))
        return ds
