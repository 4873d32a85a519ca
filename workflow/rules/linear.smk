# Linear AE/DAE/WDAE on real data (paper Fig. 5): train each run -> aggregate with theory -> figure.


rule linear_train:
    input:
        unpack(linear_train_inputs),
        # theory is imported for the stability guard only, which stops or warns but changes no
        # result: a theory edit must not retrain
        code=package_sources("training", "runconfig", "linear", "data", "jobs/linear"),
        lock=LOCK,
    output:
        "results/runs/{experiment}/{run}/seed{seed}.nc",
    log:
        "logs/runs/{experiment}/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/runs/train/{experiment}/{run}/seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=linear_mem_mb,
        runtime=linear_runtime,
        gpu=linear_gpus,
    params:
        spec=linear_train_params,
    script:
        "../scripts/linear_train.py"


rule linear_aggregate:
    input:
        runs=linear_runs,
        spectrum=linear_spectrum,
        run_spectra=linear_run_spectra,
        code=package_sources("theory", "analysis", "jobs/linear"),
    output:
        combined="results/{experiment}/combined.nc",
        metrics=report(
            "results/{experiment}/metrics.csv",
            caption="../report/linear_metrics.rst",
            category="Linear networks (Fig. 5)",
            labels={"experiment": "{experiment}", "table": "theory vs actual"},
        ),
    log:
        "logs/aggregate/{experiment}.log",
    localrule: True
    params:
        spec=linear_aggregate_params,
    script:
        "../scripts/linear_aggregate.py"


rule linear_figure:
    input:
        combined="results/{experiment}/combined.nc",
        code=package_sources(
            "figures/__init__", "figures/style", "figures/linear", "jobs/linear"
        ),
    output:
        png=report(
            "results/figures/{experiment}.png",
            caption="../report/linear_figure.rst",
            category="Linear networks (Fig. 5)",
            labels={"experiment": "{experiment}", "table": "figure"},
        ),
        pdf="results/figures/{experiment}.pdf",
    log:
        "logs/figures/{experiment}.log",
    localrule: True
    params:
        spec=linear_figure_params,
    script:
        "../scripts/linear_figure.py"
