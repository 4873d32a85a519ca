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
        mem_mb=lambda wc, attempt: PLAN.dataset_mem_mb(wc.dataset, attempt),
        runtime=lambda wc, attempt: PLAN.dataset_runtime(wc.dataset, attempt),
    params:
        spec=lambda wc: PLAN.dataset_params(wc.dataset),
    script:
        "../scripts/dataset.py"
