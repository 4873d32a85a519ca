"""Provenance: which config, code, data, seed and machine made a result.

This is the only place that gathers provenance. `collect` returns a flat dict of
netCDF-safe attributes (str, int or float: booleans as 0/1, nested data as JSON
strings, never None) that :func:`daedyn.store.write_dataset` stores in every
result file. `describe` turns the attributes of a file back into a readable
report.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from daedyn import __version__

PACKAGE_ROOT = Path(__file__).resolve().parent
#: set by the workflow for its jobs: the ``src/`` folder whose modules Snakemake tracks
WORKFLOW_SOURCE_ENV = "DAEDYN_WORKFLOW_SOURCE"
#: distributions whose versions are recorded in every result
TRACKED_PACKAGES = (
    "numpy", "scipy", "xarray", "netCDF4", "torch", "torchvision",
    "matplotlib", "snakemake", "scikit-learn",
)


def now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces, so equal configs hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ForeignPackageError(RuntimeError):
    """The imported daedyn is not the one in the workflow's own ``src/`` folder."""


def check_source() -> None:
    """Fail unless the imported daedyn is the workflow's own (the ``src/`` it sets in the environment).

    Snakemake tracks the workflow's ``src/daedyn`` files; a job that imports another checkout
    installed in a shared environment would run code that neither Snakemake nor the recorded git
    state describe. Outside the workflow (no variable set) there is nothing to compare.
    """
    expected = os.environ.get(WORKFLOW_SOURCE_ENV)
    if not expected or (Path(expected).resolve() / "daedyn") == PACKAGE_ROOT:
        return
    repo = Path(expected).resolve().parent
    raise ForeignPackageError(
        f"this job imports daedyn from {PACKAGE_ROOT}, but the workflow's own package is "
        f"{repo / 'src' / 'daedyn'}: the job would run other code than the workflow tracks and records. "
        f"Install the workflow's checkout into the environment that runs Snakemake (`pip install -e {repo}`), "
        f"or run the workflow with `{repo / 'run.sh'} pipeline`, which builds its own .venv from it."
    )


def git_state(path: str | os.PathLike = PACKAGE_ROOT) -> dict[str, Any]:
    """Commit, dirty flag, `git describe` and (when dirty) the SHA-256 of the uncommitted code.

    The package's own checkout is asked (not the working directory), so a
    workflow run with ``--directory elsewhere`` still records the code version.
    The uncommitted code is `git diff HEAD` plus the untracked files (not
    ignored) under `path`, the package's folder: a new module not yet added
    runs too. Its hash tells apart two runs of the same commit with different
    uncommitted edits. Outside a git checkout the fields say "unknown" and
    git_dirty is -1.
    """

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, check=True, timeout=20).stdout

    try:
        commit = git("rev-parse", "HEAD").decode().strip()
        # untracked files count under `path` only: results or scratch files elsewhere do not make the code "dirty"
        changed = git("status", "--porcelain", "--untracked-files=no").strip()
        untracked = sorted(name for name in git("ls-files", "--others", "--exclude-standard", "-z", "--", ".")
                           .split(b"\0") if name)
        describe = git("describe", "--always", "--dirty", "--tags").decode().strip()
        diff = git("diff", "HEAD", "--binary", "--no-ext-diff", "--no-color") if changed else b""
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": -1, "git_describe": "unknown", "git_diff_sha256": ""}
    if not (changed or untracked):
        return {"git_commit": commit, "git_dirty": 0, "git_describe": describe, "git_diff_sha256": ""}
    code = hashlib.sha256(diff)
    for name in untracked:
        file = Path(path) / os.fsdecode(name)
        code.update(b"\0untracked " + name + b"\0" + (os.fsencode(os.readlink(file)) if file.is_symlink()
                                                         else file.read_bytes()))
    return {"git_commit": commit, "git_dirty": 1, "git_describe": describe, "git_diff_sha256": code.hexdigest()}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_info(device: str | None) -> dict[str, Any]:
    """Device attributes; torch is only consulted when the job already imported it."""
    info: dict[str, Any] = {"device": device or "cpu", "gpu_name": "", "cuda_version": ""}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["cuda_version"] = torch.version.cuda or ""
        # CPU reductions are split by thread: results are bit-identical only at equal counts
        info["torch_threads"] = torch.get_num_threads()
        info["torch_deterministic"] = int(torch.are_deterministic_algorithms_enabled())
        if device and device.startswith("cuda") and torch.cuda.is_available():
            info["gpu_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def collect(
    config: Mapping[str, Any],
    *,
    rule: str = "",
    wildcards: Mapping[str, Any] | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    seed: int | str | None = None,
    device: str | None = None,
    started: str | None = None,
    resumed_from: Iterable[int] = (),
) -> dict[str, Any]:
    """Provenance attributes of one job.

    `config` is the job's resolved configuration (what reached it through
    Snakemake's ``params:``, or the arguments of a notebook call); it is stored
    as JSON together with its SHA-256. `inputs` are files whose SHA-256 is
    recorded, so a result can be traced to the exact data it was computed from.
    `resumed_from` lists the epochs of the checkpoints the run was resumed from
    (stored as ``resume_history``, ``[]`` for a run that went through at once).
    """
    config_json = canonical_json(config)
    attrs: dict[str, Any] = {
        "daedyn_version": __version__,
        "package_path": str(PACKAGE_ROOT),
        **git_state(),
        "config_json": config_json,
        "config_sha256": sha256_text(config_json),
        "input_sha256": canonical_json({str(p): sha256_file(p) for p in inputs}),
        "seed": seed if seed is not None else "none",
        "snakemake_rule": rule,
        "snakemake_wildcards": canonical_json(dict(wildcards or {})),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "package_versions": canonical_json(package_versions()),
        "time_started": started or now(),
        "resume_history": canonical_json([int(epoch) for epoch in resumed_from]),
    }
    attrs.update(device_info(device))
    return attrs


#: attributes that change between otherwise identical runs (dropped when comparing results)
VOLATILE_ATTRS = (
    "time_started", "time_finished", "date_created", "history", "hostname", "platform",
    "slurm_job_id", "git_commit", "git_dirty", "git_describe", "git_diff_sha256", "input_sha256",
    "package_path", "resume_history",
)

_REPORT_KEYS = (
    ("title", "title"), ("snakemake_rule", "rule"), ("snakemake_wildcards", "wildcards"),
    ("config_sha256", "config sha256"), ("config_json", "config"), ("daedyn_version", "daedyn"),
    ("package_path", "package"), ("git_commit", "git commit"), ("git_dirty", "git dirty"),
    ("git_describe", "git describe"), ("git_diff_sha256", "git diff sha256"),
    ("input_sha256", "inputs (sha256)"), ("seed", "seed"), ("hostname", "host"),
    ("device", "device"), ("gpu_name", "gpu"), ("torch_threads", "torch threads"),
    ("slurm_job_id", "slurm job"), ("resume_history", "resumed from"),
    ("time_started", "started"), ("time_finished", "finished"),
    ("package_versions", "packages"),
)


def describe(attrs: Mapping[str, Any]) -> str:
    """A human-readable provenance report from a result file's attributes."""
    lines = []
    for key, label in _REPORT_KEYS:
        if key in attrs and attrs[key] != "":
            value = attrs[key]
            if key in ("config_json", "input_sha256", "package_versions", "snakemake_wildcards"):
                try:
                    value = json.dumps(json.loads(value), indent=2, sort_keys=True).replace("\n", "\n    ")
                except (TypeError, ValueError):
                    pass
            lines.append(f"{label:>16}: {value}")
    missing = [k for k in ("config_sha256", "git_commit", "seed") if k not in attrs]
    if missing:
        lines.append(f"{'warning':>16}: no provenance keys {missing}; not written by daedyn?")
    return "\n".join(lines)
