"""Job of the held-out moments: a held-out set's second moment in a training spectrum's eigenbasis."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from daedyn import heldout, provenance, store
from daedyn.jobs import JobInfo, logged

log = logging.getLogger("daedyn")


def heldout_moment_job(params: Mapping[str, Any], spectrum_path: str, dataset_path: str, output: str,
                       job: JobInfo = JobInfo()) -> None:
    """C = V̂ᵀΣ_testV̂ of a held-out dataset in a training spectrum's eigenbasis →
    ``results/spectra/{dataset}_n{N}_test_{testset}.nc``."""
    with logged(job):
        started = provenance.now()
        who = job.rule or "heldout_moment"
        spec = store.open_dataset(spectrum_path, needed_by=who)
        ds = store.open_dataset(dataset_path, needed_by=who, load=False)
        try:
            result = heldout.heldout_moment(ds["x"], spec, block_size=params.get("block_size", 4096),
                                                   progress=True)
            result.attrs["heldout_source"] = ds.attrs.get("source", "")
            result.attrs["heldout_split"] = ds.attrs.get("split", "")
        finally:
            ds.close()
        c, lam = result["c"].values, result["eigenvalue"].values
        top = slice(0, 5)
        log.info("held-out variance along the top training eigenvectors c_i: %s (eigenvalues %s); "
                 "tr Sigma_test = %.6g vs tr Sigma_train = %.6g", np.array2string(c[top], precision=4),
                 np.array2string(lam[top], precision=4), result.attrs["trace_test"], float(lam.sum()))
        store.write_dataset(
            result, output,
            title=f"daedyn held-out moment {job.wildcards.get('testset', '')} in the eigenbasis of "
                  f"{job.wildcards.get('dataset', '')} N={params['n_samples']}",
            summary="Second moment of held-out inputs in the eigenbasis of a training second moment "
                    "(C = V^T Sigma_test V), its diagonal and the training eigenvalues.",
            provenance_attrs=provenance.collect(dict(params), rule=job.rule, wildcards=job.wildcards,
                                                inputs=[spectrum_path, dataset_path], started=started),
        )
