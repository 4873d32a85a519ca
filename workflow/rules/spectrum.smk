# Spectrum stage: Sigma = X^T X / N of the first N samples, eigendecomposed (descending).


rule spectrum:
    input:
        dataset="results/data/{dataset}.nc",
        code=package_sources("spectrum", "jobs/spectrum"),
        lock=LOCK,
    output:
        "results/spectra/{dataset}_n{n}.nc",
    log:
        "logs/spectra/{dataset}_n{n}.log",
    benchmark:
        "benchmarks/runs/spectra/{dataset}_n{n}.tsv"
    resources:
        mem_mb=lambda wc, attempt: PLAN.spectrum_mem_mb(wc.dataset, attempt),
        runtime=lambda wc, attempt: PLAN.spectrum_runtime(wc.dataset, wc.n, attempt),
    params:
        spec=lambda wc: PLAN.spectrum_params(wc.dataset, wc.n),
    script:
        "../scripts/spectrum.py"


# Held-out second moment in a training spectrum's eigenbasis, computed once per spectrum and held-out
# set (daedyn.heldout, so that an edit of an experiment's analysis recomputes neither it nor the runs).
rule heldout_moment:
    input:
        spectrum="results/spectra/{dataset}_n{n}.nc",
        dataset="results/data/{testset}.nc",
        code=package_sources("spectrum", "heldout", "jobs/heldout"),
        lock=LOCK,
    output:
        "results/spectra/{dataset}_n{n}_test_{testset}.nc",
    log:
        "logs/spectra/{dataset}_n{n}_test_{testset}.log",
    benchmark:
        "benchmarks/runs/spectra/{dataset}_n{n}_test_{testset}.tsv"
    wildcard_constraints:
        testset="[a-z][a-z0-9_]*",
    resources:
        mem_mb=lambda wc, attempt: PLAN.spectrum_mem_mb(wc.dataset, attempt),
        runtime=lambda wc, attempt: PLAN.heldout_runtime(wc.testset, attempt),
    params:
        spec=lambda wc: PLAN.heldout_params(wc.dataset, wc.n, wc.testset),
    script:
        "../scripts/heldout_moment.py"
