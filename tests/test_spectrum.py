"""Second moment and eigendecomposition against float64 numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from daedyn import data, spectrum, store


@pytest.mark.parametrize("center", [False, True])
def test_second_moment_matches_numpy_reference(center):
    rng = np.random.default_rng(0)
    x = rng.random((1003, 37))  # not a multiple of the block size
    sigma, mean = spectrum.second_moment(x, 900, center=center, block_size=128)
    ref_x = x[:900] - (x[:900].mean(axis=0) if center else 0.0)
    reference = ref_x.T @ ref_x / 900
    np.testing.assert_allclose(sigma, reference, rtol=0, atol=1e-10 * np.abs(reference).max())
    np.testing.assert_allclose(mean, x[:900].mean(axis=0), atol=1e-14)
    assert np.array_equal(sigma, sigma.T)


def test_spectrum_of_synthetic_data_is_recovered():
    lam = data.spectrum_values("power_law", 16, scale=5.0, exponent=1.5)
    ds = data.synthetic(2000, 16, lam, seed=7, exact=True)
    result = spectrum.spectrum(ds["x"], block_size=300)
    np.testing.assert_allclose(result["eigenvalue"].values, lam, rtol=1e-10)
    # eigenvectors match the generating ones up to sign
    overlap = np.abs(np.sum(result["eigenvector"].values * ds["true_eigenvector"].values, axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)
    assert result.attrs["trace"] == pytest.approx(lam.sum(), rel=1e-12)


def test_eigendecomposition_reconstructs_sigma_with_fixed_signs():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((10, 10))
    sigma = a @ a.T
    lam, vec = spectrum.eigh_descending(sigma)
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(vec @ np.diag(lam) @ vec.T, sigma, atol=1e-10)
    idx = np.argmax(np.abs(vec), axis=0)
    assert np.all(vec[idx, np.arange(10)] > 0)
    lam2, vec2 = spectrum.eigh_descending(sigma.copy())
    np.testing.assert_array_equal(vec, vec2)


def test_spectrum_from_a_lazily_opened_file(tmp_path):
    """Block-wise reads through netCDF decode the uint8 pixels exactly like the in-memory data."""
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(500, 6, 5), dtype=np.uint8)
    ds = data._image_dataset(images, np.zeros(500, dtype=np.int64), 255, {})
    path = store.write_dataset(ds, tmp_path / "d.nc", title="t", summary="s", provenance_attrs={},
                               encoding={"x": dict(ds["x"].encoding)})
    lazy = store.open_dataset(path, load=False)
    with lazy:
        result = spectrum.spectrum(lazy["x"], 400, block_size=64)
    x = images.reshape(500, -1)[:400] / 255.0
    reference = np.linalg.eigvalsh(x.T @ x / 400)[::-1]
    np.testing.assert_allclose(result["eigenvalue"].values, reference, rtol=1e-10, atol=1e-13)
