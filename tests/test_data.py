"""Dataset loaders on fixtures and on the real MNIST files; integrity errors."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from daedyn import data


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in LeCun's IDX format, written independently of the parser."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def idx_fixture(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    folder = tmp_path / "mirror" / "mnist"
    folder.mkdir(parents=True)
    files = {"train-images-idx3-ubyte": idx_bytes(images), "train-labels-idx1-ubyte": idx_bytes(labels)}
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(files["train-images-idx3-ubyte"]))
    (folder / "train-labels-idx1-ubyte").write_bytes(files["train-labels-idx1-ubyte"])  # plain file works too
    spec = replace(data.raw_spec("mnist"), files={
        "train": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}})
    return tmp_path / "mirror", spec, images, labels


def test_idx_parser_roundtrip():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(arr)), arr)
    with pytest.raises(ValueError, match="magic"):
        data.parse_idx(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="header promises"):
        data.parse_idx(idx_bytes(arr)[:-1])


def test_idx_loader_on_fixture(idx_fixture, monkeypatch):
    mirror, spec, images, labels = idx_fixture
    monkeypatch.setitem(data._IDX_SPECS, "mnist", spec)
    ds = data.build({"source": "mnist", "split": "train"}, mirror=mirror)
    assert ds.sizes == {"sample": 7, "feature": 12}
    np.testing.assert_allclose(ds["x"].values, images.reshape(7, -1) / 255.0, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ds["label"].values, labels)
    assert ds.attrs["image_shape"] == "4,3"
    assert ds["x"].encoding["dtype"] == "uint8"


def test_checksum_mismatch_names_file_and_expected_digest(idx_fixture, monkeypatch):
    mirror, spec, *_ = idx_fixture
    path = mirror / "mnist" / "train-labels-idx1-ubyte"
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    path.write_bytes(bytes(content))
    monkeypatch.setitem(data._IDX_SPECS, "mnist", spec)
    with pytest.raises(data.DatasetIntegrityError) as err:
        data.build({"source": "mnist"}, mirror=mirror)
    message = str(err.value)
    assert str(path) in message
    assert spec.files["train"]["train-labels-idx1-ubyte"] in message
    assert "Replace it" in message


def test_truncated_gzip_is_reported_not_a_traceback(idx_fixture, monkeypatch):
    mirror, spec, *_ = idx_fixture
    path = mirror / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    monkeypatch.setitem(data._IDX_SPECS, "mnist", spec)
    with pytest.raises(data.DatasetIntegrityError, match="cannot be read") as err:
        data.build({"source": "mnist"}, mirror=mirror)
    assert str(path) in str(err.value) and spec.files["train"]["train-images-idx3-ubyte"] in str(err.value)


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(data.DatasetUnavailable) as err:
        data.build({"source": "mnist"}, mirror=tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message
    assert str(tmp_path / "mnist") in message
    assert data.MIRROR_ENV in message and "download" in message


def test_failed_download_is_reported(tmp_path, monkeypatch):
    def offline(spec, cache):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_torchvision_download", offline)
    with pytest.raises(data.DatasetUnavailable, match="download failed.*network is unreachable"):
        data.build({"source": "mnist"}, cache=tmp_path / "cache", download=True)


def write_cifar_fixture(root: Path, n_per_batch: int = 3) -> tuple[np.ndarray, np.ndarray, dict]:
    """A tiny cifar-10-batches-py folder in the real pickle layout (rows: R plane, G plane, B plane)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    images, labels, digests = [], [], {}
    for name in names:
        rows = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labs = rng.integers(0, 10, size=n_per_batch).tolist()
        blob = pickle.dumps({"batch_label": name, "data": rows, "labels": labs, "filenames": []})
        (folder / name).write_bytes(blob)
        digests[name] = hashlib.md5(blob).hexdigest()
        images.append(rows)
        labels += labs
    return np.concatenate(images), np.array(labels), digests


def test_cifar_loader_on_fixture(tmp_path):
    rows, labels, digests = write_cifar_fixture(tmp_path)
    spec = replace(data.raw_spec("cifar10"), files={"train": digests})
    ds = data.load_cifar10("train", spec=spec, mirror=tmp_path)
    assert ds.sizes == {"sample": 15, "feature": 3072}
    # torchvision's layout: HWC image, flattened
    hwc = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(15, -1)
    np.testing.assert_allclose(ds["x"].values, hwc / 255.0, atol=1e-15)
    np.testing.assert_array_equal(ds["label"].values, labels)
    assert ds.attrs["image_shape"] == "32,32,3"


def test_cifar_checksum_mismatch(tmp_path):
    _, _, digests = write_cifar_fixture(tmp_path)
    digests["data_batch_3"] = "0" * 32
    spec = replace(data.raw_spec("cifar10"), files={"train": digests})
    with pytest.raises(data.DatasetIntegrityError, match="data_batch_3 is corrupt: MD5"):
        data.load_cifar10("train", spec=spec, mirror=tmp_path)


def test_cifar_spec_uses_torchvision_checksums():
    from torchvision.datasets import CIFAR10

    spec = data.raw_spec("cifar10")
    assert spec.files["train"] == dict(CIFAR10.train_list)
    assert len(spec.files["train"]) == 5


def test_real_mnist_from_shared_folder(mnist_dir):
    ds = data.build({"source": "mnist"}, mirror=mnist_dir.parent)
    assert ds.sizes == {"sample": 60000, "feature": 784}
    x = ds["x"].values
    # reference statistics of the MNIST training images (shared/datasets/mnist/README.md)
    assert x.mean() == pytest.approx(0.13066, abs=5e-6)
    assert x.std() == pytest.approx(0.30811, abs=5e-6)
    assert ds.attrs["raw_checksums"]["train-images-idx3-ubyte"].startswith("sha256:ba891046")


def test_fashion_mnist_from_debian_package():
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    ds = data.build({"source": "fashion_mnist"})
    assert ds.sizes == {"sample": 60000, "feature": 784}
    assert sorted(np.unique(ds["label"].values)) == list(range(10))


def test_digits():
    from sklearn.datasets import load_digits

    ds = data.build({"source": "digits"})
    np.testing.assert_allclose(ds["x"].values, load_digits().data / 16.0)
    assert ds["x"].values.max() == 1.0


def test_matrix_first_n_and_centring():
    ds = data.synthetic(50, 4, np.array([3.0, 2.0, 1.0, 0.5]), seed=3)
    x = data.matrix(ds, 20, center=True)
    np.testing.assert_allclose(x, ds["x"].values[:20] - ds["x"].values[:20].mean(axis=0))
    with pytest.raises(ValueError, match="n_samples=51"):
        data.matrix(ds, 51)


def test_spectrum_values():
    np.testing.assert_allclose(data.spectrum_values("power_law", 4, scale=2, exponent=1), [2, 1, 2 / 3, 0.5])
    np.testing.assert_allclose(data.spectrum_values("exponential", 3, scale=1, decay=0.5), [1, 0.5, 0.25])
    with pytest.raises(ValueError, match="exactly dim=3"):
        data.spectrum_values("list", 3, values=[1, 2])


def test_flipped_byte_in_a_gzip_file_names_file_and_checksum(idx_fixture, monkeypatch):
    """Every single flipped byte of a gzipped raw file either leaves its content intact (header fields)
    or stops the build naming the file and the expected checksum, whichever layer notices: zlib (a
    damaged deflate stream), gzip (CRC, length) or the checksum of the content."""
    mirror, spec, images, _ = idx_fixture
    monkeypatch.setitem(data._IDX_SPECS, "mnist", spec)
    path = mirror / "mnist" / "train-images-idx3-ubyte.gz"
    pristine = path.read_bytes()
    expected = spec.files["train"]["train-images-idx3-ubyte"]
    causes = set()
    for pos in range(len(pristine)):
        corrupt = bytearray(pristine)
        corrupt[pos] ^= 0x55
        path.write_bytes(bytes(corrupt))
        try:
            ds = data.build({"source": "mnist"}, mirror=mirror)
        except data.DatasetIntegrityError as err:
            message = str(err)
            assert str(path) in message and expected in message and "Replace it" in message, message
            causes.add(type(err.__cause__))
        else:
            np.testing.assert_array_equal(ds["x"].values, images.reshape(7, -1) / 255.0)
    assert zlib.error in causes  # the case that used to escape as a raw traceback
    assert gzip.BadGzipFile in causes
