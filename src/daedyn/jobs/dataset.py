"""Job: one `datasets:` entry -> results/data/{dataset}.nc."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from daedyn import data, provenance, store
from daedyn.jobs import JobInfo, logged

log = logging.getLogger("daedyn")


def dataset_job(params: Mapping[str, Any], output: str, job: JobInfo = JobInfo()) -> None:
    """Build ``results/data/{dataset}.nc`` from one `datasets:` config entry.

    `params` holds the dataset entry under ``dataset``; where raw files are
    looked for comes from the environment (:func:`daedyn.data.access_from_environment`).
    """
    with logged(job):
        started = provenance.now()
        spec = params["dataset"]
        ds = data.build(spec, **data.access_from_environment())
        log.info("%s: %d samples x %d features", spec["source"], ds.sizes["sample"], ds.sizes["feature"])
        encoding = {"x": dict(ds["x"].encoding)} if ds["x"].encoding else None
        seed = spec.get("synthetic", {}).get("seed")  # only synthetic data are random
        store.write_dataset(
            ds, output,
            title=f"daedyn dataset {job.wildcards.get('dataset', spec['source'])}",
            summary=f"Preprocessed {spec['source']} inputs ({ds.attrs['preprocessing']}).",
            provenance_attrs=provenance.collect(dict(params["dataset"]), rule=job.rule, wildcards=job.wildcards,
                                                seed=seed, started=started),
            encoding=encoding,
        )
