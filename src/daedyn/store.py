"""The project's only netCDF writer and reader.

Every result file goes through :func:`write_dataset`, which adds the CF / ACDD
global attributes (CF-1.11: UDUNITS units, a short long_name on every variable, the shared
index coordinates get theirs from :data:`COORDINATE_LONG_NAMES`, and a long_name written as
"short name: definition" is stored as that short name with the definition as ``comment``,
:func:`split_long_name`; ACDD-1.3: its highly
recommended global attributes, among them ``id`` and ``naming_authority``, and a
``coverage_content_type`` on every variable) and the provenance of
:mod:`daedyn.provenance`, chooses an
explicit encoding (zlib, no fill value on coordinates) and writes atomically:
to a temporary file in the same folder, then ``os.replace``. A job killed
mid-write therefore never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

# HDF5 file locking fails on many shared cluster filesystems; must be set before netCDF4 loads.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from daedyn import __version__, provenance  # noqa: E402

ENGINE = "netcdf4"
CONVENTIONS = "CF-1.11, ACDD-1.3"
REFERENCES = (
    "Pretorius, Kroon & Kamper, Learning Dynamics of Linear Denoising Autoencoders, "
    "ICML 2018, arXiv:1806.05413"
)
LICENSE = (
    "daedyn is MIT-licensed software. Results derived from a public dataset (MNIST, Fashion-MNIST, "
    "CIFAR-10, scikit-learn's digits) are also subject to that dataset's own terms of use."
)
NAMING_AUTHORITY = "daedyn"
#: ACDD coverage_content_type (ISO 19115-1) values. A variable that names none gets "coordinate"
#: (coordinates), "auxiliaryInformation" (text, e.g. per-run provenance) or "modelResult" (everything
#: daedyn computes: training runs, theory, metrics)
COVERAGE_CONTENT_TYPES = ("image", "thematicClassification", "physicalMeasurement", "auxiliaryInformation",
                          "qualityInformation", "referenceInformation", "modelResult", "coordinate")
#: long_name of the index coordinates that many files share; a coordinate that brings its own keeps it
#: (like every long_name given as "short name: definition", split into long_name and comment)
COORDINATE_LONG_NAMES = {
    "sample": "sample index: order of the source dataset",
    "feature": "input feature index: flattened pixel and channel",
    "component": "eigen-component index: 0 = largest eigenvalue",
    "mode": "eigenmode index: of Sigma, 0 = largest eigenvalue",
    "epoch": "epoch: full-batch gradient steps taken",
    "run": "run name: a key of the experiment's runs",
    "seed": "random seed: of the run's initial weights and noise",
    "trial": "random restart index",
    "hidden_units": "hidden width H: number of hidden units",
}


class ResultFileError(OSError):
    """A result file is missing, truncated or not a netCDF file daedyn can read."""


def _check_attr(key: str, value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple, dict)):
        return provenance.canonical_json(value)
    raise TypeError(f"attribute {key!r} has type {type(value).__name__}; use str, int or float")


def _clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _check_attr(k, v) for k, v in attrs.items() if v is not None}


def write_dataset(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    summary: str | None = None,
    provenance_attrs: Mapping[str, Any],
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    complevel: int = 4,
) -> Path:
    """Write `ds` to `path` atomically with CF attributes and provenance.

    `title` and `summary` may also come from ``ds.attrs`` (a dataset's own attributes win).
    `encoding` overrides the default per-variable encoding (zlib level
    `complevel`, NaN fill for float data, none for coordinates), e.g. to store
    pixels as uint8 with a ``scale_factor``. Attribute values must be str,
    numbers or JSON-able containers; anything else raises TypeError before a
    byte is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    finished = provenance.now()
    ds = ds.copy()
    if not (title or ds.attrs.get("title")) or not (summary or ds.attrs.get("summary")):
        raise ValueError(f"{path}: a result file needs a title and a summary")
    ds.attrs = _clean_attrs({
        "Conventions": CONVENTIONS,
        "title": title,
        "summary": summary,
        "institution": "daedyn project (open-source software)",
        "source": f"daedyn {__version__}",
        "references": REFERENCES,
        "license": LICENSE,
        "keywords": "denoising autoencoder, learning dynamics, linear networks, weight decay",
        "creator_name": "daedyn contributors",
        "creator_type": "group",
        "project": "daedyn: learning dynamics of denoising autoencoders",
        "naming_authority": NAMING_AUTHORITY,
        "id": dataset_id(path, provenance_attrs),
        "processing_level": "model output: trained networks and their theory",
        "acknowledgement": "The theory reproduced and extended here is " + REFERENCES + ".",
        "product_version": __version__,
        "comment": "Mean convention Sigma = X^T X / N; noise eps is a variance; one epoch = one full-batch step.",
        "date_created": finished,
        **ds.attrs,
        **provenance_attrs,
        "time_finished": finished,
    })
    history = f"{finished} daedyn {__version__}: rule {ds.attrs.get('snakemake_rule') or 'n/a'}"
    ds.attrs["history"] = f"{history}\n{ds.attrs['history']}" if "history" in ds.attrs else history
    for name, var in ds.variables.items():
        var.attrs = _clean_attrs(var.attrs)
        if name in ds.coords and "long_name" not in var.attrs and name in COORDINATE_LONG_NAMES:
            var.attrs["long_name"] = COORDINATE_LONG_NAMES[name]
        var.attrs.update(split_long_name(var.attrs))
        var.attrs.setdefault("coverage_content_type", "coordinate" if name in ds.coords else
                             "auxiliaryInformation" if var.dtype.kind in "USO" else "modelResult")

    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        e: dict[str, Any] = {}
        if name in ds.coords:
            e["_FillValue"] = None
        elif var.dtype.kind in "iub":
            e["_FillValue"] = None
        if var.ndim > 0 and var.dtype.kind in "fiub" and name not in ds.dims:
            e.update(zlib=True, complevel=complevel)
        if var.dtype.kind == "U":
            e.pop("zlib", None)
        enc[name] = e
    for name, extra in (encoding or {}).items():
        enc.setdefault(name, {}).update(extra)

    with atomic_path(path, needs=ds.nbytes) as tmp:
        with warnings.catch_warnings():
            # packed uint8 pixels have no missing values, so no fill value is needed
            warnings.filterwarnings("ignore", message="saving variable .* without any _FillValue")
            ds.to_netcdf(tmp, engine=ENGINE, encoding=enc)
    return path


class ResultWriteError(OSError):
    """A result file could not be written (the message names it, and a full disk)."""


def split_long_name(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A long_name given as "short name: definition" as a short ``long_name`` (a few words, what plots
    and tables show) and the definition as ``comment`` (before a comment the variable has). Only a
    colon outside parentheses separates them."""
    text, depth = str(attrs.get("long_name", "")), 0
    for i, char in enumerate(text):  # the first ": " outside parentheses ("minibatch size (N: full batch)" stays)
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and text.startswith(": ", i):
            short, definition = text[:i], text[i + 2:]
            break
    else:
        return {}
    if not definition:
        return {}
    comment = attrs.get("comment")
    return {"long_name": short, "comment": f"{definition}; {comment}" if comment else definition}


def dataset_id(path: str | os.PathLike, provenance_attrs: Mapping[str, Any]) -> str:
    """The ACDD ``id`` of a result file, unique within :data:`NAMING_AUTHORITY`: its path below the
    results folder and the SHA-256 of the job's config (the same for a rebuild with the same config)."""
    parts = Path(path).parts
    where = "/".join(parts[len(parts) - parts[::-1].index("results") - 1:] if "results" in parts else parts[-1:])
    digest = provenance_attrs.get("config_sha256") or ""
    return f"{where}:{digest[:16]}" if digest else where


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, needs: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed to `path`, on failure removed.

    Used for every result file (netCDF, CSV, figures), so that an interrupted
    job never leaves a file that looks complete. A write killed outright
    (SIGKILL, node failure) cannot remove its temporary file; the next write of
    the same `path` does. A failed write (netCDF's ``NetCDF: HDF error`` names
    no file) raises :class:`ResultWriteError` naming `path`, and says "no space
    left on device" where the error's errno or the free space says so (less
    free than `needs`, the bytes the content may take).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.stem}.", f".tmp{path.suffix}"
    leftover = re.compile(rf"{re.escape(prefix)}[a-z0-9_]+{re.escape(suffix)}")  # mkstemp's names, no dots
    for old in path.parent.iterdir():
        if leftover.fullmatch(old.name):
            old.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results should be readable like any file
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (ResultWriteError, ResultFileError)):  # already names its file
            raise
        raise _write_error(path, err, needs) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_error(path: Path, err: BaseException, needs: int) -> ResultWriteError:
    free = shutil.disk_usage(path.parent).free
    if getattr(err, "errno", None) == errno.ENOSPC or free < needs:
        return ResultWriteError(
            errno.ENOSPC, f"cannot write {path}: no space left on device ({free / 2**20:.1f} MiB free in "
            f"{path.parent}, the content takes up to {needs / 2**20:.1f} MiB; {type(err).__name__}: {err}). "
            "Free some space (or point the results elsewhere) and rerun; no partial file was left behind.")
    return ResultWriteError(getattr(err, "errno", None) or errno.EIO,
                            f"cannot write {path}: {type(err).__name__}: {err}; no partial file was left behind")


def open_dataset(path: str | os.PathLike, *, needed_by: str = "", load: bool = True, **kwargs) -> xr.Dataset:
    """Open a result file, with an error that names the file (and the rule that needs it).

    With ``load=True`` (default) the data are read into memory and the file is
    closed at once; ``load=False`` keeps it open lazily (for block-wise reads
    of large datasets) and the caller must close it.
    """
    path = Path(path)
    if not path.exists():
        raise ResultFileError(f"result file {path} does not exist{_who(needed_by)}; rerun the step that makes it")
    try:
        ds = xr.open_dataset(path, engine=ENGINE, **kwargs)
        if load:
            with ds:
                ds = ds.load()
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise _unreadable(path, needed_by, err) from err
    return ds


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The global attributes of a result file (its provenance), read without its data, so that a
    damaged data chunk does not hide where the file came from."""
    import netCDF4

    path = Path(path)
    if not path.exists():
        raise ResultFileError(f"result file {path} does not exist")
    try:
        with netCDF4.Dataset(path) as nc:
            return {key: nc.getncattr(key) for key in nc.ncattrs()}
    except (OSError, RuntimeError) as err:
        raise _unreadable(path, "", err) from err


@contextlib.contextmanager
def reading(path: str | os.PathLike, *, needed_by: str = "") -> Iterator[None]:
    """Report read errors of a lazily opened file (``open_dataset(..., load=False)``) like open_dataset.

    A damaged chunk shows up only when it is read, as netCDF4's ``RuntimeError: NetCDF: HDF
    error`` (or an OSError), which names no file; inside this block it names the file and the rule.
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        raise _unreadable(Path(path), needed_by, err) from err


def _who(needed_by: str) -> str:
    return f" (needed by {needed_by})" if needed_by else ""


def _unreadable(path: Path, needed_by: str, err: BaseException) -> ResultFileError:
    return ResultFileError(
        f"cannot read {path}{_who(needed_by)}: {err}. The file is corrupt or truncated; delete it and rerun "
        f"the workflow so that it is rebuilt."
    )


def config_of(ds: xr.Dataset) -> dict[str, Any]:
    """The job config stored in a result file's provenance."""
    return json.loads(ds.attrs["config_json"])
