# Generalisation: held-out second moment in a training spectrum's eigenbasis (computed once per
# spectrum and held-out set).


rule heldout_moment:
    input:
        spectrum="results/spectra/{dataset}_n{n}.nc",
        dataset="results/data/{testset}.nc",
        code=package_sources(
            "spectrum", "theory", "generalisation", "jobs/generalisation"
        ),
        lock=LOCK,
    output:
        "results/spectra/{dataset}_n{n}_test_{testset}.nc",
    log:
        "logs/spectra/{dataset}_n{n}_test_{testset}.log",
    benchmark:
        "benchmarks/runs/spectra/{dataset}_n{n}_test_{testset}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=heldout_moment_mem_mb,
        runtime=30,
    params:
        spec=heldout_moment_params,
    script:
        "../scripts/heldout_moment.py"
