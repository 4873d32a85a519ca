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


@pytest.mark.parametrize("as_tensor", [False, True])
def test_engine_spectrum_equals_the_plain_eigendecomposition_up_to_sign(as_tensor):
    """The engines' spectrum without a given one (eigh_descending of second_moment, also of a torch
    tensor) equals the eigendecomposition of XᵀX/N reversed to descending order, but for each
    eigenvector's sign; trained runs are bitwise the same (u = vᵀWv is even in v, a sign flip exact)."""
    import torch

    from daedyn.linear import train_datapass, train_exact

    x = np.random.default_rng(3).random((300, 9))
    lam_ref, V_ref = np.linalg.eigh(x.T @ x / x.shape[0])
    lam_ref, V_ref = lam_ref[::-1], V_ref[:, ::-1]
    lam, V = spectrum.eigh_descending(spectrum.second_moment(torch.from_numpy(x) if as_tensor else x)[0])
    assert lam.dtype == V.dtype == np.float64
    np.testing.assert_array_equal(lam, lam_ref)
    np.testing.assert_array_equal(np.abs(V), np.abs(V_ref))
    assert np.all(np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(9)]) == 1.0)
    kw = dict(hidden=4, lr=0.1, epochs=60, eps=0.2, init_std=0.1, seed=1, dtype="float64", device="cpu",
              log_every=20)
    ref, new = train_exact(lam_ref.copy(), V_ref.copy(), **kw), train_exact(lam, V, **kw)
    np.testing.assert_array_equal(new.trajectory.u.values, ref.trajectory.u.values)
    np.testing.assert_array_equal(new.W1, ref.W1)
    own = train_datapass(x, **kw)             # the engine computes the spectrum itself
    given = train_datapass(x, lam=lam_ref.copy(), V=V_ref.copy(), **kw)
    np.testing.assert_array_equal(own.trajectory.u.values, given.trajectory.u.values)
    np.testing.assert_array_equal(own.W1, given.W1)
