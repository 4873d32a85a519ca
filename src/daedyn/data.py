"""Datasets: finding raw files, checking their integrity, preprocessing into xarray.

Sources
-------
``mnist``, ``fashion_mnist``, ``cifar10``
    The torchvision training (or test) sets. Raw files are looked up, in this
    order, in a mirror folder (``data.mirror`` in the config, or the
    ``DAEDYN_DATA_MIRROR`` environment variable), in system folders (Debian's
    ``dataset-fashion-mnist`` package) and in the download cache; if none has
    them and downloading is allowed, torchvision downloads them into the cache.
    Every raw file is checked against a known checksum before it is read.
``digits``
    scikit-learn's bundled 8×8 digits (1797 images, values 0…16).
``synthetic``
    Gaussian data with a chosen eigen-spectrum; with ``exact=True`` its second
    moment XᵀX/N equals V diag(λ) Vᵀ to rounding, so spectra can be checked.

Preprocessing follows the paper: flatten, scale to [0, 1] (pixels / 255,
digits / 16), keep the order of the files. Taking the first N samples and the
optional centring happen in :func:`matrix`, which every consumer uses. Images
are stored as uint8 with a CF ``scale_factor``, so files stay small and decode
to the scaled floats.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)

SOURCES = ("mnist", "fashion_mnist", "cifar10", "digits", "synthetic")
MIRROR_ENV = "DAEDYN_DATA_MIRROR"
DOWNLOAD_ENV = "DAEDYN_DATA_DOWNLOAD"
CACHE = "resources/torchvision"


def access_from_environment() -> dict:
    """Data-access settings of a workflow job: mirror folder, download flag and cache folder.

    The workflow exports them (from ``data.mirror``/``data.download`` unless the user set
    the variables), so that where the files come from never counts as a changed parameter.
    """
    return {"mirror": os.environ.get(MIRROR_ENV) or None, "download": os.environ.get(DOWNLOAD_ENV) == "1",
            "cache": CACHE}


class DatasetUnavailable(FileNotFoundError):
    """Raw files of a dataset cannot be found (or downloaded)."""


class DatasetIntegrityError(ValueError):
    """A raw file does not have its known checksum."""


@dataclass(frozen=True)
class RawSpec:
    """Where a torchvision dataset's raw files may live and what they must hash to."""

    label: str
    folders: tuple[str, ...]  # relative to a mirror / cache root
    system_folders: tuple[str, ...]
    algorithm: str  # hash of the (uncompressed) file content
    files: dict[str, dict[str, str]]  # split -> {file name: digest}
    torchvision_class: str


# SHA-256 of the *uncompressed* IDX files: gzip bytes differ between mirrors, contents do not.
# MNIST: the standard values (also shared/datasets/mnist/SHA256SUMS.uncompressed).
# Fashion-MNIST: zalandoresearch/fashion-mnist release files as shipped by Debian's
# dataset-fashion-mnist 0.0~git20200523.
_IDX_SPECS = {
    "mnist": RawSpec(
        "MNIST", ("mnist", "MNIST/raw"), (), "sha256",
        {
            "train": {
                "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            },
            "test": {
                "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            },
        },
        "MNIST",
    ),
    "fashion_mnist": RawSpec(
        "Fashion-MNIST", ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
        ("/usr/share/datasets/fashion-mnist",), "sha256",
        {
            "train": {
                "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            },
            "test": {
                "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
        },
        "FashionMNIST",
    ),
}


def _cifar_spec() -> RawSpec:
    # CIFAR-10's published checksums are the MD5 sums torchvision ships with its loader;
    # taking them from torchvision keeps one source of truth.
    from torchvision.datasets import CIFAR10

    return RawSpec(
        "CIFAR-10", ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "CIFAR10/cifar-10-batches-py"),
        (), "md5",
        {"train": dict(CIFAR10.train_list), "test": dict(CIFAR10.test_list)},
        "CIFAR10",
    )


def raw_spec(source: str) -> RawSpec:
    if source == "cifar10":
        return _cifar_spec()
    try:
        return _IDX_SPECS[source]
    except KeyError:
        raise ValueError(f"no raw files for source {source!r}; raw sources are mnist, fashion_mnist, cifar10") from None


# --------------------------------------------------------------------------- raw files
def _read_raw(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _digest(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def _candidates(spec: RawSpec, roots: Sequence[Path]) -> list[Path]:
    folders = [root / sub for root in roots for sub in spec.folders]
    return folders + [Path(p) for p in spec.system_folders]


def _find(name: str, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _how_to_provide(spec: RawSpec, source: str) -> str:
    names = ", ".join(n for split in spec.files.values() for n in split)
    return (
        f"Provide the {spec.label} raw files ({names}; gzipped or not) in a folder "
        f"<mirror>/{spec.folders[0]}/ and set data.mirror in config.yaml or the {MIRROR_ENV} environment "
        f"variable to <mirror>, or set data.download: true on a machine with internet access "
        f"(torchvision then downloads {source} into the cache folder)."
    )


def _torchvision_download(spec: RawSpec, cache: Path) -> None:
    import torchvision.datasets as tvd

    log.info("downloading %s with torchvision into %s", spec.label, cache)
    cls = getattr(tvd, spec.torchvision_class)
    for train in (True, False):
        cls(str(cache), train=train, download=True)


def locate_raw_files(
    source: str,
    split: str = "train",
    *,
    mirror: str | Path | None = None,
    cache: str | Path | None = None,
    download: bool = False,
    spec: RawSpec | None = None,
) -> dict[str, Path]:
    """Paths of the raw files of `source`/`split`, downloading them if allowed.

    `spec` overrides the built-in file list and checksums (tests use it for
    fixtures). Raises :class:`DatasetUnavailable` naming the missing file,
    every folder searched and how to provide the data.
    """
    spec = spec or raw_spec(source)
    roots = [Path(p) for p in (mirror, cache) if p]
    folders = _candidates(spec, roots)
    wanted = spec.files[split]
    found = {name: _find(name, folders) for name in wanted}
    missing = [n for n, p in found.items() if p is None]
    if missing and download:
        if cache is None:
            raise DatasetUnavailable(f"cannot download {spec.label}: no cache folder given")
        try:
            _torchvision_download(spec, Path(cache))
        except Exception as err:  # network errors come in many types
            raise DatasetUnavailable(
                f"{spec.label} raw file {missing[0]!r} not found and the download failed ({err}). "
                f"Searched: {', '.join(map(str, folders))}. {_how_to_provide(spec, source)}"
            ) from err
        found = {name: _find(name, folders) for name in wanted}
        missing = [n for n, p in found.items() if p is None]
    if missing:
        raise DatasetUnavailable(
            f"{spec.label} raw file {missing[0]!r} not found. Searched: "
            f"{', '.join(map(str, folders)) or '(no folders: mirror unset)'}. {_how_to_provide(spec, source)}"
        )
    return found  # type: ignore[return-value]


def verified_bytes(path: Path, expected: str, algorithm: str, label: str) -> bytes:
    """Content of a raw file after checking its checksum (of the uncompressed bytes).

    A file that cannot be read or decompressed (truncated, or a damaged deflate stream, which
    zlib reports) is reported like a checksum mismatch: file, expected checksum, what to do.
    """
    content = f"{algorithm.upper()} of its {'uncompressed ' if path.suffix == '.gz' else ''}content"
    fix = "Replace it with a fresh copy (mirror folder or download) and rerun."
    try:
        data = _read_raw(path)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetIntegrityError(
            f"{label} file {path} cannot be read ({type(err).__name__}: {err}); it is corrupt or truncated "
            f"(expected {content}: {expected}). {fix}"
        ) from err
    actual = _digest(data, algorithm)
    if actual != expected:
        raise DatasetIntegrityError(
            f"{label} file {path} is corrupt: {content} is {actual}, expected {expected}. {fix}")
    return data


# --------------------------------------------------------------------------- parsers
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes) -> np.ndarray:
    """Decode an IDX file (LeCun's MNIST format): 4-byte magic, big-endian dims, data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError("not an IDX file (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize + 4 + 4 * ndim
    if len(data) != expected:
        raise ValueError(f"IDX file has {len(data)} bytes, its header promises {expected}")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def parse_cifar_batch(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 in torchvision's HWC order, and labels, of one CIFAR-10 batch."""
    batch = pickle.loads(data, encoding="latin1")
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(batch["labels"] if "labels" in batch else batch["fine_labels"], dtype=np.int64)
    return images, labels


# --------------------------------------------------------------------------- loaders
def _image_dataset(images: np.ndarray, labels: np.ndarray, scale: int, attrs: dict) -> xr.Dataset:
    n = images.shape[0]
    flat = images.reshape(n, -1)
    ds = xr.Dataset(
        {
            "x": (("sample", "feature"), flat / float(scale), {
                "long_name": "input pixel intensity", "units": "1", "coverage_content_type": "image",
                "comment": f"flattened image, raw value / {scale}, in [0, 1]",
            }),
            "label": ("sample", labels.astype(np.int16), {"long_name": "class label", "units": "1",
                                                          "coverage_content_type": "thematicClassification"}),
        },
        coords={"sample": np.arange(n), "feature": np.arange(flat.shape[1])},
        attrs={"image_shape": ",".join(map(str, images.shape[1:])), "pixel_scale": scale, **attrs},
    )
    # chunks of whole rows, so block-wise reads of the first N samples decompress each chunk once
    ds["x"].encoding.update(dtype="uint8", scale_factor=1.0 / scale, _FillValue=None,
                            chunksizes=(min(n, 1024), flat.shape[1]))
    return ds


def load_idx(source: str, split: str = "train", **locate_kw) -> xr.Dataset:
    """MNIST or Fashion-MNIST from IDX files, checksum-verified."""
    spec = raw_spec(source)
    paths = locate_raw_files(source, split, **locate_kw)
    arrays, checks = [], {}
    for name, digest in spec.files[split].items():
        arrays.append(parse_idx(verified_bytes(paths[name], digest, spec.algorithm, spec.label)))
        checks[name] = f"{spec.algorithm}:{digest}"
    images, labels = arrays
    if images.shape[0] != labels.shape[0]:
        raise DatasetIntegrityError(f"{spec.label}: {images.shape[0]} images but {labels.shape[0]} labels")
    return _image_dataset(images, labels, 255, {
        "raw_files": ",".join(str(paths[n]) for n in spec.files[split]),
        "raw_checksums": checks,
    })


def load_cifar10(split: str = "train", *, spec: RawSpec | None = None, **locate_kw) -> xr.Dataset:
    """CIFAR-10 from the python pickle batches, checksum-verified (HWC flattening as torchvision)."""
    spec = spec or raw_spec("cifar10")
    paths = locate_raw_files("cifar10", split, spec=spec, **locate_kw)
    images, labels, checks = [], [], {}
    for name, digest in spec.files[split].items():
        x, y = parse_cifar_batch(verified_bytes(paths[name], digest, spec.algorithm, spec.label))
        images.append(x)
        labels.append(y)
        checks[name] = f"{spec.algorithm}:{digest}"
    return _image_dataset(np.concatenate(images), np.concatenate(labels), 255, {
        "raw_files": ",".join(str(paths[n]) for n in spec.files[split]),
        "raw_checksums": checks,
    })


def load_digits() -> xr.Dataset:
    """scikit-learn's bundled 8×8 digits, scaled by 1/16 (their values are 0…16)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = bunch.images.astype(np.uint8)
    return _image_dataset(images, bunch.target, 16, {"raw_files": "sklearn.datasets.load_digits"})


def spectrum_values(kind: str, dim: int, *, scale: float = 1.0, exponent: float = 1.0,
                    decay: float = 0.5, values: Sequence[float] | None = None) -> np.ndarray:
    """Eigenvalues (descending) of a synthetic spectrum.

    power_law: scale·(k+1)^(−exponent); exponential: scale·decay^k; list: `values`.
    """
    k = np.arange(dim)
    if kind == "power_law":
        lam = scale * (k + 1.0) ** (-exponent)
    elif kind == "exponential":
        lam = scale * decay ** k
    elif kind == "list":
        if values is None or len(values) != dim:
            raise ValueError(f"spectrum kind 'list' needs exactly dim={dim} values, got {values!r}")
        lam = np.asarray(values, dtype=float)
    else:
        raise ValueError(f"unknown spectrum kind {kind!r}; use power_law, exponential or list")
    if np.any(lam < 0):
        raise ValueError("eigenvalues of a second-moment matrix must be ≥ 0")
    return np.sort(lam)[::-1]


def synthetic(n_samples: int, dim: int, eigenvalues: np.ndarray, seed: int = 0, exact: bool = True) -> xr.Dataset:
    """Gaussian data X = Z diag(√λ) Vᵀ with a random orthogonal V.

    With ``exact=True`` the columns of Z are orthonormalised and scaled by √N,
    so that XᵀX/N = V diag(λ) Vᵀ holds to rounding (needs N ≥ dim).
    """
    lam = np.asarray(eigenvalues, dtype=float)
    if lam.shape != (dim,):
        raise ValueError(f"need {dim} eigenvalues, got shape {lam.shape}")
    rng = np.random.default_rng(seed)
    v, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    z = rng.standard_normal((n_samples, dim))
    if exact:
        if n_samples < dim:
            raise ValueError(f"exact synthetic data needs n_samples ≥ dim ({n_samples} < {dim})")
        z, _ = np.linalg.qr(z)
        z *= np.sqrt(n_samples)
    x = (z * np.sqrt(lam)) @ v.T
    return xr.Dataset(
        {
            "x": (("sample", "feature"), x, {"long_name": "synthetic Gaussian input", "units": "1"}),
            "true_eigenvalue": ("component", lam, {
                "long_name": "generating eigenvalue: eigenvalue of the generating second moment", "units": "1"}),
            "true_eigenvector": (("feature", "component"), v, {"long_name": "generating eigenvectors (columns)",
                                                                "units": "1"}),
        },
        coords={"sample": np.arange(n_samples), "feature": np.arange(dim), "component": np.arange(dim)},
        attrs={"seed": seed, "exact_second_moment": int(exact)},
    )


def build(params: dict, *, mirror: str | Path | None = None, cache: str | Path | None = None,
          download: bool = False) -> xr.Dataset:
    """The dataset described by one `datasets:` entry of the config (see the schema)."""
    source = params["source"]
    split = params.get("split", "train")
    if source in ("mnist", "fashion_mnist"):
        ds = load_idx(source, split, mirror=mirror, cache=cache, download=download)
    elif source == "cifar10":
        ds = load_cifar10(split, mirror=mirror, cache=cache, download=download)
    elif source == "digits":
        ds = load_digits()
    elif source == "synthetic":
        syn = params["synthetic"]
        lam = spectrum_values(syn["spectrum"], syn["dim"], scale=syn["scale"], exponent=syn["exponent"],
                              decay=syn["decay"], values=syn.get("values"))
        ds = synthetic(syn["n_samples"], syn["dim"], lam, seed=syn["seed"], exact=syn["exact"])
    else:
        raise ValueError(f"unknown dataset source {source!r}; choose one of {', '.join(SOURCES)}")
    ds.attrs.update(source=source, split=split if source not in ("digits", "synthetic") else "all",
                    preprocessing="flattened; scaled to [0, 1]; file order kept; no centring "
                                  "(first-N selection and optional centring happen downstream)")
    return ds


def matrix(ds: xr.Dataset, n_samples: int | None = None, *, center: bool = False,
           dtype=np.float64) -> np.ndarray:
    """The first `n_samples` rows of the dataset as an (N, d) array, optionally centred."""
    total = ds.sizes["sample"]
    n = total if n_samples is None else int(n_samples)
    if not 0 < n <= total:
        raise ValueError(f"n_samples={n_samples} but the dataset has {total} samples")
    x = np.asarray(ds["x"][:n].values, dtype=dtype)
    if center:
        x -= x.mean(axis=0, keepdims=True)
    return x
