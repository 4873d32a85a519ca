"""Reading an experiment's results from a notebook or script (see docs/python.md)."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from daedyn import store


def open_experiment(name: str, results: str | os.PathLike = "results") -> xr.Dataset:
    """All runs of a linear or nonlinear experiment with their theory, as one xarray Dataset.

    Reads ``<results>/<name>/combined.nc``, the file the pipeline's aggregation step writes:
    dimensions ``run`` (the config's run names), ``seed``, ``epoch`` and ``mode``; the trained
    networks' mode strengths (``u`` for linear experiments, ``mapping`` for nonlinear ones) beside
    the theory for the same settings (``u_theory``/``u_paper``, ``mapping_theory``). docs/python.md
    lists every variable. `results` is the pipeline's results folder (``results`` under the
    directory Snakemake ran in).

    A missing file raises :class:`daedyn.store.ResultFileError` naming the file, the command that
    builds it and the experiments that do have results there.
    """
    folder = Path(results)
    path = folder / name / "combined.nc"
    if not path.exists():
        found = sorted(p.parent.name for p in folder.glob("*/combined.nc"))
        where = (f"experiments with results in {folder}: {', '.join(found)}" if found
                 else f"{folder} holds no experiment results (is it the pipeline's results folder?)")
        raise store.ResultFileError(
            f"no results for experiment {name!r}: {path} does not exist. Build it in the repository with "
            f"`./run.sh pipeline results/{name}/combined.nc` (or plain `snakemake` with that target); {where}")
    return store.open_dataset(path)
