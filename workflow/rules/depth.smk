# Depth-L linear AE/DAE/WDAE (beyond the paper): train each run -> aggregate with the per-mode
# theory (combined.nc, metrics.csv, claims.csv) -> figure.


rule depth_train:
    input:
        spectrum=depth_spectrum,
        # theory is imported for the two-layer stability guard only (see linear_train)
        code=package_sources(
            "training", "runconfig", "depth", "tracking", "linear", "jobs/depth"
        ),
        lock=LOCK,
    output:
        "results/depth/{depth_experiment}/{run}/seed{seed}.nc",
    log:
        "logs/depth/{depth_experiment}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/runs/depth/{depth_experiment}/{run}/seed{seed}.tsv"
    # one thread: the products are small (d x H with H ~ 64-256), a second thread gains little and on
    # a busy CPU costs a lot; two runs side by side use two cores better
    threads: 1
    resources:
        mem_mb=depth_mem_mb,
        runtime=depth_runtime,
        gpu=depth_gpus,
    params:
        spec=depth_train_params,
    script:
        "../scripts/depth_train.py"


rule depth_aggregate:
    input:
        runs=depth_runs,
        code=package_sources(
            "depth",
            "depth_analysis",
            "trajectories",
            "claims",
            "analysis",
            "jobs/depth",
        ),
    output:
        combined="results/{depth_experiment}/combined.nc",
        metrics=report(
            "results/{depth_experiment}/metrics.csv",
            caption="../report/depth_metrics.rst",
            category="Beyond the paper: depth",
            labels={"experiment": "{depth_experiment}", "table": "half-times"},
        ),
        claims=report(
            "results/{depth_experiment}/claims.csv",
            caption="../report/depth_claims.rst",
            category="Beyond the paper: depth",
            labels={"experiment": "{depth_experiment}", "table": "claims"},
        ),
    log:
        "logs/aggregate/{depth_experiment}.log",
    localrule: True
    params:
        spec=depth_aggregate_params,
    script:
        "../scripts/depth_aggregate.py"


rule depth_figure:
    input:
        combined="results/{depth_experiment}/combined.nc",
        code=package_sources(
            "figures/__init__",
            "figures/style",
            "figures/depth",
            "depth",
            "trajectories",
            "jobs/depth",
        ),
    output:
        png=report(
            "results/figures/{depth_experiment}.png",
            caption="../report/depth_figure.rst",
            category="Beyond the paper: depth",
            labels={"experiment": "{depth_experiment}", "table": "figure"},
        ),
        pdf="results/figures/{depth_experiment}.pdf",
    log:
        "logs/figures/{depth_experiment}.log",
    localrule: True
    params:
        spec=depth_figure_params,
    script:
        "../scripts/depth_figure.py"
