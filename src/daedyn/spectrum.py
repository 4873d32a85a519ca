"""Second-moment matrix Σ = XᵀX/N and its eigendecomposition.

Σ is the *uncentred* second moment (the paper's "input correlation"), unless
centring is asked for. It is accumulated in float64, block by block (BLAS
matrix products, never a Python loop over samples), so a 30 000 × 3072
CIFAR-10 matrix needs only one block plus the 3072 × 3072 accumulator in
memory.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)


def second_moment(x, n_samples: int | None = None, *, center: bool = False, block_size: int = 4096,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Σ = XᵀX/N (or the covariance with ``center=True``) and the mean, in float64.

    `x` is anything indexable by row slices with a ``shape``: a numpy array, a
    torch tensor, an xarray DataArray backed by a lazily opened netCDF file, ...
    Only the first `n_samples` rows are used.
    """
    total, d = x.shape
    n = total if n_samples is None else int(n_samples)
    if not 0 < n <= total:
        raise ValueError(f"n_samples={n_samples} but the data have {total} rows")
    acc = np.zeros((d, d))
    col_sum = np.zeros(d)
    starts = range(0, n, block_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="second moment", unit="block", mininterval=2.0)
    for start in starts:
        block = _rows(x, start, min(start + block_size, n))
        acc += block.T @ block
        col_sum += block.sum(axis=0)
    mean = col_sum / n
    sigma = acc / n
    if center:
        sigma -= np.outer(mean, mean)
    # symmetrise: the two triangles of a float sum can differ in the last bit
    sigma = 0.5 * (sigma + sigma.T)
    return sigma, mean


def _rows(x, start: int, stop: int) -> np.ndarray:
    block = x[start:stop]
    if hasattr(block, "detach"):  # a torch tensor, on any device (torch is not imported here)
        return block.detach().cpu().numpy().astype(np.float64)
    return np.asarray(getattr(block, "values", block), dtype=np.float64)


def eigh_descending(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues in descending order and eigenvectors as columns, with a fixed sign.

    Each eigenvector is flipped so that its entry of largest magnitude is
    positive, which makes files reproducible across LAPACK builds.
    """
    lam, vec = np.linalg.eigh(sigma)
    lam, vec = lam[::-1].copy(), vec[:, ::-1].copy()
    idx = np.argmax(np.abs(vec), axis=0)
    signs = np.sign(vec[idx, np.arange(vec.shape[1])])
    signs[signs == 0] = 1.0
    return lam, vec * signs


def spectrum(x, n_samples: int | None = None, *, center: bool = False, block_size: int = 4096,
             progress: bool = False) -> xr.Dataset:
    """Eigendecomposition of the second moment of the first `n_samples` rows of `x`.

    Returns a Dataset with ``eigenvalue(component)`` (descending),
    ``eigenvector(feature, component)`` (columns), ``mean(feature)`` and the
    attributes ``n_samples``, ``dim``, ``trace`` and ``center`` (0/1).
    """
    total, d = x.shape
    n = total if n_samples is None else int(n_samples)
    log.info("second moment of %d x %d samples (center=%s)", n, d, center)
    sigma, mean = second_moment(x, n, center=center, block_size=block_size, progress=progress)
    log.info("eigendecomposition of a %d x %d matrix", d, d)
    lam, vec = eigh_descending(sigma)
    return xr.Dataset(
        {
            "eigenvalue": ("component", lam, {
                "long_name": "eigenvalue: of the second-moment matrix (descending)", "units": "1"}),
            "eigenvector": (("feature", "component"), vec, {
                "long_name": "eigenvector: unit eigenvector of the second-moment matrix (column per component)",
                "units": "1"}),
            "mean": ("feature", mean, {"long_name": "mean of the inputs", "units": "1"}),
        },
        coords={"component": np.arange(d), "feature": np.arange(d)},
        attrs={
            "n_samples": n, "dim": d, "trace": float(np.trace(sigma)), "center": int(center),
            "matrix": "covariance (X-mean)^T (X-mean) / N" if center else "uncentred second moment X^T X / N",
        },
    )
