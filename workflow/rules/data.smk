# Dataset stage: raw files (mirror, system folder or torchvision download) -> results/data/{dataset}.nc


rule dataset:
    input:
        code=package_sources("data", "jobs/dataset"),
        lock=LOCK,
    output:
        "results/data/{dataset}.nc",
    log:
        "logs/data/{dataset}.log",
    benchmark:
        "benchmarks/runs/data/{dataset}.tsv"
    resources:
        mem_mb=dataset_mem_mb,
        runtime=dataset_runtime,
    params:
        spec=dataset_params,
    script:
        "../scripts/dataset.py"
