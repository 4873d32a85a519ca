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
        mem_mb=spectrum_mem_mb,
        runtime=spectrum_runtime,
    params:
        spec=spectrum_params,
    script:
        "../scripts/spectrum.py"
