"""Parameter sweeps: an experiment's ``sweep:`` grid and ``seeds:`` expanded into named runs.

An experiment (a mapping as in ``config.yaml``) may declare

``sweep``
    a mapping key → list of values; the runs are the cartesian product of the lists. Only the
    per-run hyper-parameters of the experiment's family can be swept (:data:`SWEEPABLE`). A list
    of such mappings is the union of their grids (``[{eps: [...]}, {gamma: [...]}]``: a noise
    grid and a weight-decay grid in one experiment).
``runs``
    explicit named runs, kept as they are and combined with the grid.
``seeds``
    a list of seeds, or a count ``n`` meaning seeds ``0 .. n-1``.
``large_sweep``
    ``true`` lifts the limit on the number of training runs (runs × seeds, default
    :data:`MAX_RUNS`).

Run names are built from the swept values alone, ``{key}{value}`` joined by ``_`` in the
alphabetical order of the keys, e.g. ``eps0p5_gamma0``. So a name does not depend on the order of
the keys or of the values in the config, nor on the other grid points: adding a value to a list
adds runs and leaves every existing run (and its result file) as it was. Numbers are written in
plain positional notation without trailing zeros (``1.0`` → ``1``, ``1e-4`` → ``0p0001``), with
``.`` written as ``p`` and ``-`` as ``m``; strings stand as they are (``engineexact``) and a null
as ``none``. Names therefore match the workflow's ``run`` wildcard ``[a-z][a-z0-9_]*``.

Everything here is plain Python (no Snakemake), so a notebook can expand a grid exactly as the
workflow does.
"""

from __future__ import annotations

import itertools
import numbers
from typing import Any, Mapping

import numpy as np

__all__ = ["MAX_RUNS", "SWEEPABLE", "SweepError", "expand", "grid", "run_name", "seed_list", "swept_values"]

#: per-run hyper-parameters that a sweep may vary, per experiment family
SWEEPABLE = {
    "linear": ("eps", "gamma", "lr", "hidden", "n_samples", "init_std", "batch_size", "engine"),
    "nonlinear": ("noise_std", "weight_decay", "lr", "hidden", "n_samples", "init_std", "batch_size"),
}
#: default limit on runs × seeds of one experiment (``large_sweep: true`` lifts it)
MAX_RUNS = 500


class SweepError(ValueError):
    """A bad sweep declaration; the message starts with the config key at fault."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


def _value_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        text = np.format_float_positional(float(value), trim="-")
    else:
        text = str(value)
    return text.replace(".", "p").replace("-", "m")


def run_name(values: Mapping[str, Any]) -> str:
    """The run name of one grid point, e.g. ``{"gamma": 0, "eps": 0.5}`` → ``eps0p5_gamma0``."""
    return "_".join(f"{key}{_value_text(values[key])}" for key in sorted(values))


def seed_list(seeds: int | list[int], where: str = "seeds") -> list[int]:
    """Seeds as a list: a count n means 0 .. n-1; a list must not repeat a seed."""
    if isinstance(seeds, bool) or not isinstance(seeds, (numbers.Integral, list, tuple)):
        raise SweepError(where, f"a list of seeds or a count, not {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if seeds < 1:
            raise SweepError(where, f"a count of seeds must be at least 1, not {seeds}")
        return list(range(int(seeds)))
    if not seeds:
        raise SweepError(where, "the list of seeds is empty")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise SweepError(where, f"seeds {repeated} are listed twice")
    return [int(s) for s in seeds]


def _same(a: Any, b: Any) -> bool:
    both_numbers = all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in (a, b))
    return float(a) == float(b) if both_numbers else a == b


def grid(sweep: Mapping[str, list] | list[Mapping[str, list]], family: str, where: str = "sweep") -> list[dict]:
    """The grid points of a ``sweep:`` (cartesian product), each a dict key → value.

    A list of mappings is the union of their grids (e.g. a noise grid and a weight-decay grid
    side by side); a point is named from its own grid's keys. Raises :class:`SweepError` naming
    the key for an unknown family or key, a value that is not a list, an empty list, a value
    listed twice (``0`` and ``0.0`` are the same value) and a point that two grids share.
    """
    if family not in SWEEPABLE:
        raise SweepError(where, f"unknown experiment family {family!r}; known: {sorted(SWEEPABLE)}")
    grids = list(sweep) if isinstance(sweep, (list, tuple)) else [sweep]
    if not grids:
        raise SweepError(where, "the list of grids is empty")
    points: dict[str, dict] = {}
    for i, one in enumerate(grids):
        at = f"{where}[{i}]" if isinstance(sweep, (list, tuple)) else where
        _check_grid(one, family, at)
        for point in _points(one):
            name = run_name(point)
            if name in points:
                raise SweepError(at, f"the grid point {point} is also in an earlier grid (run {name})")
            points[name] = point
    return list(points.values())


def _check_grid(sweep: Any, family: str, where: str) -> None:
    if not isinstance(sweep, Mapping) or not sweep:
        raise SweepError(where, "a sweep is a non-empty mapping key -> list of values (or a list of them)")
    for key, values in sweep.items():
        if key not in SWEEPABLE[family]:
            raise SweepError(f"{where}.{key}", f"cannot be swept in a {family} experiment; sweepable keys: "
                                               f"{', '.join(SWEEPABLE[family])}")
        if not isinstance(values, (list, tuple)):
            raise SweepError(f"{where}.{key}", f"needs a list of values, not {values!r}")
        if not values:
            raise SweepError(f"{where}.{key}", "the list of values is empty")
        for i, a in enumerate(values):
            for b in values[i + 1:]:
                if _same(a, b):
                    raise SweepError(f"{where}.{key}", f"the value {a!r} is listed twice ({list(values)})")


def _points(sweep: Mapping[str, list]) -> list[dict]:
    keys = sorted(sweep)
    return [dict(zip(keys, point)) for point in itertools.product(*(sweep[k] for k in keys))]


def expand(experiment: Mapping[str, Any], family: str, where: str = "experiment",
           max_runs: int = MAX_RUNS) -> dict:
    """A copy of an experiment with ``seeds`` as a list and ``runs`` holding its grid runs too.

    Each grid run carries its swept values (``{"eps": 0.5, "gamma": 0}``); explicit runs come
    first, unchanged. A grid run whose name is also an explicit run's is an error, and so is an
    experiment of more than ``max_runs`` training runs (runs × seeds) without
    ``large_sweep: true``.
    """
    out = dict(experiment)
    out["seeds"] = seed_list(experiment.get("seeds", [0]), f"{where}.seeds")
    runs = dict(experiment.get("runs") or {})
    sweep = experiment.get("sweep")
    if sweep is not None:
        for point in grid(sweep, family, f"{where}.sweep"):
            name = run_name(point)
            if name in runs:
                raise SweepError(f"{where}.runs.{name}", "an explicit run has the name of a grid point of "
                                                          "`sweep`; rename the run or drop the value")
            runs[name] = point
    if not runs:
        raise SweepError(f"{where}.runs", "the experiment has no runs: give `runs`, `sweep` or both")
    n_jobs = len(runs) * len(out["seeds"])
    if n_jobs > max_runs and not experiment.get("large_sweep", False):
        raise SweepError(f"{where}.sweep" if sweep is not None else f"{where}.runs",
                         f"{len(runs)} runs x {len(out['seeds'])} seeds = {n_jobs} training runs, above the "
                         f"limit of {max_runs}; set `large_sweep: true` in the experiment if that is intended")
    out["runs"] = runs
    return out


def swept_values(experiment: Mapping[str, Any], family: str) -> dict[str, dict[str, Any]]:
    """Run name → its swept values, for the grid runs of an (expanded or not) experiment."""
    sweep = experiment.get("sweep")
    return {run_name(point): point for point in grid(sweep, family)} if sweep else {}
