# Linear DAEs with masking (dropout) noise (beyond the paper): train each run -> aggregate by keep
# probability with the per-mode approximation (combined.nc, metrics.csv, claims.csv) -> figure.


rule masking_train:
    input:
        unpack(masking_train_inputs),
        code=package_sources(
            "training",
            "runconfig",
            "masking",
            "tracking",
            "linear",
            "data",
            "jobs/masking",
        ),
        lock=LOCK,
    output:
        "results/masking/{masking_experiment}/{run}/seed{seed}.nc",
    log:
        "logs/masking/{masking_experiment}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/runs/masking/{masking_experiment}/{run}/seed{seed}.tsv"
    # one thread: the products are small (d x H with H ~ 64-256), a second thread gains little and on
    # a busy CPU costs a lot; two runs side by side use two cores better
    threads: 1
    resources:
        mem_mb=masking_mem_mb,
        runtime=masking_runtime,
        gpu=masking_gpus,
    params:
        spec=masking_train_params,
    script:
        "../scripts/masking_train.py"


rule masking_aggregate:
    input:
        runs=masking_runs,
        code=package_sources(
            "masking",
            "masking_analysis",
            "theory",
            "trajectories",
            "claims",
            "analysis",
            "jobs/masking",
        ),
    output:
        combined="results/{masking_experiment}/combined.nc",
        metrics=report(
            "results/{masking_experiment}/metrics.csv",
            caption="../report/masking_metrics.rst",
            category="Beyond the paper: masking noise",
            labels={"experiment": "{masking_experiment}", "table": "theory vs actual"},
        ),
        claims=report(
            "results/{masking_experiment}/claims.csv",
            caption="../report/masking_claims.rst",
            category="Beyond the paper: masking noise",
            labels={"experiment": "{masking_experiment}", "table": "claims"},
        ),
    log:
        "logs/aggregate/{masking_experiment}.log",
    localrule: True
    params:
        spec=masking_aggregate_params,
    script:
        "../scripts/masking_aggregate.py"


rule masking_figure:
    input:
        combined="results/{masking_experiment}/combined.nc",
        code=package_sources(
            "figures/__init__",
            "figures/style",
            "figures/masking",
            "trajectories",
            "jobs/masking",
        ),
    output:
        png=report(
            "results/figures/{masking_experiment}.png",
            caption="../report/masking_figure.rst",
            category="Beyond the paper: masking noise",
            labels={"experiment": "{masking_experiment}", "table": "figure"},
        ),
        pdf="results/figures/{masking_experiment}.pdf",
    log:
        "logs/figures/{masking_experiment}.log",
    localrule: True
    params:
        spec=masking_figure_params,
    script:
        "../scripts/masking_figure.py"
