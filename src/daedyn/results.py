"""Reading an experiment's results from a notebook or script (see docs/python.md)."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from daedyn import store


def open_experiment(name: str, results: str | os.PathLike = "results") -> xr.Dataset:
    """All runs of an experiment of any kind with their theory, as one xarray Dataset.

    Reads the netCDF file the experiment's aggregation writes, ``<results>/<name>/combined.nc``
    (``summary.nc`` for a sampled-noise experiment): for linear and nonlinear experiments the
    dimensions ``run`` (the config's run names), ``seed``, ``epoch`` and ``mode``, the trained
    networks' mode strengths (``u``, or ``mapping``) beside the theory for the same settings.
    docs/python.md lists every variable of every kind. `results` is the pipeline's results folder
    (``results`` under the directory Snakemake ran in).

    A missing file raises :class:`daedyn.store.ResultFileError` naming the file, the command that
    builds it and the experiments that do have results there.
    """
    folder = Path(results)
    tables = _aggregate_tables()
    for table in tables:
        if (folder / name / table).exists():
            return store.open_dataset(folder / name / table)
    found = sorted({p.parent.name for table in tables for p in folder.glob(f"*/{table}")})
    where = (f"experiments with results in {folder}: {', '.join(found)}" if found
             else f"{folder} holds no experiment results (is it the pipeline's results folder?)")
    configured = _configured_table(name)
    target = f"results/{name}/{configured or tables[0]}"
    command = f"./run.sh pipeline {target}" if configured else \
        f"./run.sh pipeline --configfile <the file that defines {name}> {target}"
    raise store.ResultFileError(
        f"no results for experiment {name!r}: {folder / name} holds none of {', '.join(tables)}. Build it in the "
        f"repository with `{command}` (or plain `snakemake` with that target); {where}")


def _aggregate_tables() -> list[str]:
    """The first netCDF output of each kind's aggregation: combined.nc, summary.nc."""
    from daedyn.kinds import load
    return list(dict.fromkeys(next(f for f in kind.aggregate.outputs.values() if f.endswith(".nc"))
                              for kind in load().values()))


def _configured_table(name: str) -> str | None:
    """The aggregation file of experiment `name` if the repository's config.yaml declares it."""
    import yaml
    from daedyn.kinds import load

    config_file = Path(__file__).resolve().parents[2] / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    for kind in load().values():
        if name in (config.get(kind.section) or {}):
            return next(f for f in kind.aggregate.outputs.values() if f.endswith(".nc"))
    return None


#: where run files lay before each experiment got one results tree (results/<root>/<experiment>/...)
OLD_RUN_ROOTS = ("runs", "nonlinear", "depth", "masking")


def move_old_layout(results: str | os.PathLike = "results", dry_run: bool = False) -> list[tuple[Path, Path]]:
    """Move run files (and checkpoints) of the old layout into each experiment's tree.

    ``<results>/{runs,nonlinear,depth,masking}/<experiment>/<rest>`` becomes
    ``<results>/<experiment>/runs/<rest>``. Returns the (old, new) pairs; with ``dry_run`` nothing
    moves. A file already at its new place is never overwritten: that raises before anything moves.
    """
    folder = Path(results)
    moves = [(path, folder / experiment.name / "runs" / path.relative_to(experiment))
             for root in OLD_RUN_ROOTS if (folder / root).is_dir()
             for experiment in sorted((folder / root).iterdir()) if experiment.is_dir()
             and not (folder / root / "combined.nc").exists()  # an experiment named like a root
             for path in sorted(experiment.rglob("*")) if path.is_file()]
    clashes = [str(new) for _, new in moves if new.exists()]
    if clashes:
        raise FileExistsError(f"not moving anything: {len(clashes)} files exist at their new place already, "
                              f"e.g. {clashes[0]}; remove them or the old ones first")
    if not dry_run:
        for old, new in moves:
            new.parent.mkdir(parents=True, exist_ok=True)
            old.rename(new)  # keeps the modification time, so Snakemake sees no newer input
        for root in OLD_RUN_ROOTS:
            for empty in sorted((folder / root).glob("**/"), key=lambda p: -len(p.parts)):
                if empty.is_dir() and not any(empty.iterdir()):
                    empty.rmdir()
    return moves
