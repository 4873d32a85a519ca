"""Job: eigendecomposition of a dataset's second moment -> results/spectra/{dataset}_n{N}.nc."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from daedyn import provenance, spectrum, store
from daedyn.jobs import JobInfo, logged

log = logging.getLogger("daedyn")


def spectrum_job(params: Mapping[str, Any], dataset_path: str, output: str, job: JobInfo = JobInfo()) -> None:
    """Eigendecompose Σ of the first N samples of a dataset file into ``results/spectra/…``."""
    with logged(job):
        started = provenance.now()
        needed_by = job.rule or "spectrum"
        ds = store.open_dataset(dataset_path, needed_by=needed_by, load=False)
        try:
            with store.reading(dataset_path, needed_by=needed_by):  # blocks are read (and found damaged) here
                result = spectrum.spectrum(ds["x"], params["n_samples"], center=params["center"],
                                           block_size=params.get("block_size", 4096), progress=True)
            result.attrs["dataset_source"] = ds.attrs.get("source", "")
        finally:
            ds.close()
        log.info("top eigenvalues: %s", ", ".join(f"{v:.4g}" for v in result["eigenvalue"].values[:5]))
        store.write_dataset(
            result, output,
            title=f"daedyn spectrum {job.wildcards.get('dataset', '')} N={params['n_samples']}",
            summary="Eigenvalues (descending) and eigenvectors of the second-moment matrix of the inputs.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=[dataset_path], started=started),
        )
