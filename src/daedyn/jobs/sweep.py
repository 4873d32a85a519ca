"""Job of a parameter sweep: the per-condition table, its claims and the summary figure.

``params``: experiment (name), family ("linear" or "nonlinear"), grid (run name → swept values,
:func:`daedyn.sweep.swept_values`) and modes (linear: the modes to summarise; None: all).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from daedyn import store
from daedyn.jobs import JobInfo, logged, save_figure, write_csv

log = logging.getLogger("daedyn")


def sweep_job(params: Mapping[str, Any], combined_path: str, outputs: Sequence[str], table_out: str,
              claims_out: str, job: JobInfo = JobInfo()) -> None:
    """Write ``results/{experiment}/sweep.csv`` and ``claims.csv`` and draw
    ``results/figures/{experiment}_sweep.png/.pdf`` from the experiment's combined file."""
    from daedyn import analysis, claims, sweep_claims
    from daedyn.figures.sweep import plot_sweep

    with logged(job):
        who = job.rule or "sweep"
        combined = store.open_dataset(combined_path, needed_by=who)
        grid = dict(params["grid"])
        table = analysis.sweep_table(combined, params["family"], grid, params.get("modes"))
        write_csv(table, table_out)
        rows = sweep_claims.sweep_claims(table, params["family"])
        log.info("%s\n%s", params["experiment"], claims.format_claims(rows))
        write_csv(rows, claims_out)
        d = combined.attrs.get("n_features")
        save_figure(plot_sweep(table, grid, params["family"], title=params["experiment"],
                               d=int(d) if d is not None else None), outputs)
