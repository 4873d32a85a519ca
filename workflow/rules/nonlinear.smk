# Nonlinear (ReLU/tanh) DAE/WDAE with sampled noise (paper Fig. 6): train -> aggregate with linear theory -> figure.


rule nonlinear_train:
    input:
        dataset=nonlinear_dataset,
        spectrum=nonlinear_spectrum,
        # theory: the stability warning only (see linear_train)
        code=package_sources(
            "training", "runconfig", "nonlinear", "linear", "data", "jobs/nonlinear"
        ),
        lock=LOCK,
    output:
        "results/nonlinear/{nl_experiment}/{run}/seed{seed}.nc",
    log:
        "logs/nonlinear/{nl_experiment}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/runs/nonlinear/{nl_experiment}/{run}/seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=nonlinear_mem_mb,
        runtime=nonlinear_runtime,
        gpu=nonlinear_gpus,
    params:
        spec=nonlinear_train_params,
    script:
        "../scripts/nonlinear_train.py"


rule nonlinear_aggregate:
    input:
        runs=nonlinear_runs,
        spectrum=nonlinear_spectrum,
        code=package_sources("nonlinear", "theory", "analysis", "jobs/nonlinear"),
    output:
        combined="results/{nl_experiment}/combined.nc",
        halftimes=report(
            "results/{nl_experiment}/halftimes.csv",
            caption="../report/nonlinear_halftimes.rst",
            category="Nonlinear networks (Fig. 6)",
            labels={"experiment": "{nl_experiment}", "table": "half-times"},
        ),
    log:
        "logs/aggregate/{nl_experiment}.log",
    localrule: True
    params:
        spec=nonlinear_aggregate_params,
    script:
        "../scripts/nonlinear_aggregate.py"


rule nonlinear_figure:
    input:
        combined="results/{nl_experiment}/combined.nc",
        code=package_sources(
            "figures/__init__", "figures/style", "figures/nonlinear", "jobs/nonlinear"
        ),
    output:
        png=report(
            "results/figures/{nl_experiment}.png",
            caption="../report/nonlinear_figure.rst",
            category="Nonlinear networks (Fig. 6)",
            labels={"experiment": "{nl_experiment}", "table": "figure"},
        ),
        pdf="results/figures/{nl_experiment}.pdf",
    log:
        "logs/figures/{nl_experiment}.log",
    localrule: True
    params:
        spec=nonlinear_figure_params,
    script:
        "../scripts/nonlinear_figure.py"
