# Beyond the paper: noise against weight decay at matched stability (lr_normalised_experiments) and
# sampled against marginalised noise (sampled_experiments). Train -> aggregate with theory -> figure.


wildcard_constraints:
    lrn_experiment="|".join(config["lr_normalised_experiments"]) or "(?!)",
    lrn_run=r"(dae|wdae_k\d+|wdae_g[0-9.e+-]+)_f[0-9.e-]+",
    sm_experiment="|".join(config["sampled_experiments"]) or "(?!)",
    sm_part=r"traj_full|traj_b\d+|variance|fixed_copy",


rule lr_normalised_train:
    input:
        spectrum=lr_normalised_spectrum,
        # theory sets the run's learning rate, gamma and length: a theory edit retrains
        code=package_sources(
            "training",
            "runconfig",
            "theory",
            "linear",
            "lr_normalised",
            "jobs/lr_normalised",
        ),
        lock=LOCK,
    output:
        "results/runs/{lrn_experiment}/{lrn_run}/seed{seed}.nc",
    log:
        "logs/runs/{lrn_experiment}/{lrn_run}/seed{seed}.log",
    benchmark:
        "benchmarks/runs/train/{lrn_experiment}/{lrn_run}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=lr_normalised_mem_mb,
        runtime=lr_normalised_runtime,
        gpu=lr_normalised_gpus,
    params:
        spec=lr_normalised_train_params,
    script:
        "../scripts/lr_normalised_train.py"


rule lr_normalised_aggregate:
    input:
        runs=lr_normalised_runs,
        spectrum=lr_normalised_spectrum,
        code=package_sources("theory", "lr_normalised", "claims", "jobs/lr_normalised"),
    output:
        combined="results/{lrn_experiment}/combined.nc",
        comparison="results/{lrn_experiment}/comparison.nc",
        metrics=report(
            "results/{lrn_experiment}/metrics.csv",
            caption="../report/lr_normalised_metrics.rst",
            category="Beyond the paper",
            labels={"experiment": "{lrn_experiment}", "table": "step counts"},
        ),
        claims="results/{lrn_experiment}/claims.csv",
    log:
        "logs/aggregate/{lrn_experiment}.log",
    localrule: True
    params:
        spec=lambda wc: {
            "experiment": wc.lrn_experiment,
            "modes": config["lr_normalised_experiments"][wc.lrn_experiment]["modes"],
        },
    script:
        "../scripts/lr_normalised_aggregate.py"


rule lr_normalised_figure:
    input:
        comparison="results/{lrn_experiment}/comparison.nc",
        code=package_sources(
            "figures/__init__",
            "figures/style",
            "figures/lr_normalised",
            "lr_normalised",
            "jobs/lr_normalised",
        ),
    output:
        png=report(
            "results/figures/{lrn_experiment}.png",
            caption="../report/lr_normalised_figure.rst",
            category="Beyond the paper",
            labels={"experiment": "{lrn_experiment}", "table": "figure"},
        ),
        pdf="results/figures/{lrn_experiment}.pdf",
    log:
        "logs/figures/{lrn_experiment}.log",
    localrule: True
    params:
        spec=lambda wc: {"experiment": wc.lrn_experiment},
    script:
        "../scripts/lr_normalised_figure.py"


rule sampled_part:
    input:
        spectrum=sampled_spectrum,
        dataset=sampled_dataset,
        # theory sets the learning rates (fractions of the stability limit): a theory edit retrains
        code=package_sources(
            "training",
            "runconfig",
            "theory",
            "linear",
            "sampled",
            "sampled_engines",
            "data",
            "jobs/sampled",
        ),
        lock=LOCK,
    output:
        "results/runs/{sm_experiment}/{sm_part}.nc",
    log:
        "logs/runs/{sm_experiment}/{sm_part}.log",
    benchmark:
        "benchmarks/runs/train/{sm_experiment}/{sm_part}.tsv"
    threads: 1
    resources:
        mem_mb=sampled_mem_mb,
        runtime=sampled_runtime,
        gpu=sampled_gpus,
    params:
        spec=sampled_part_params,
    script:
        "../scripts/sampled_part.py"


rule sampled_aggregate:
    input:
        unpack(sampled_part_paths),
        spectrum=sampled_spectrum,
        dataset=sampled_dataset,
        code=package_sources(
            "training",
            "runconfig",
            "theory",
            "linear",
            "sampled",
            "sampled_engines",
            "data",
            "claims",
            "jobs/sampled",
        ),
    output:
        summary="results/{sm_experiment}/summary.nc",
        metrics=report(
            "results/{sm_experiment}/metrics.csv",
            caption="../report/sampled_metrics.rst",
            category="Beyond the paper",
            labels={"experiment": "{sm_experiment}", "table": "metrics"},
        ),
        claims="results/{sm_experiment}/claims.csv",
    log:
        "logs/aggregate/{sm_experiment}.log",
    localrule: True
    params:
        spec=sampled_aggregate_params,
    script:
        "../scripts/sampled_aggregate.py"


rule sampled_figure:
    input:
        summary="results/{sm_experiment}/summary.nc",
        code=package_sources(
            "figures/__init__",
            "figures/style",
            "figures/sampled",
            "jobs/sampled",
        ),
    output:
        png=report(
            "results/figures/{sm_experiment}.png",
            caption="../report/sampled_figure.rst",
            category="Beyond the paper",
            labels={"experiment": "{sm_experiment}", "table": "figure"},
        ),
        pdf="results/figures/{sm_experiment}.pdf",
    log:
        "logs/figures/{sm_experiment}.log",
    localrule: True
    params:
        spec=lambda wc: {"experiment": wc.sm_experiment},
    script:
        "../scripts/sampled_figure.py"
