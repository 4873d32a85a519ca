# Generalisation: held-out second moment in a training spectrum's eigenbasis (computed once per
# spectrum and held-out set; daedyn.heldout, so that an edit of daedyn.generalisation recomputes
# neither it nor the training runs); the experiments of `generalisation_experiments`: train the
# runs of the grid N x eps (one job per N) -> aggregate with the per-mode theory, metrics and
# claims -> figure.

GEN_EXPERIMENT = "|".join(config["generalisation_experiments"]) or "(?!)"


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
        mem_mb=heldout_moment_mem_mb,
        runtime=heldout_moment_runtime,
    params:
        spec=heldout_moment_params,
    script:
        "../scripts/heldout_moment.py"


rule generalisation_train:
    input:
        unpack(generalisation_train_inputs),
        # the linear engines record the held-out errors through daedyn.heldout (not daedyn.generalisation:
        # an edit of the experiment's theory or claims must not retrain)
        code=package_sources(
            "training", "runconfig", "linear", "heldout", "jobs/linear"
        ),
        lock=LOCK,
    output:
        "results/runs/{gen_experiment}/n{n}/seed{seed}.nc",
    log:
        "logs/runs/{gen_experiment}/n{n}/seed{seed}.log",
    benchmark:
        "benchmarks/runs/train/{gen_experiment}/n{n}/seed{seed}.tsv"
    wildcard_constraints:
        gen_experiment=GEN_EXPERIMENT,
    # small matrices (d x H): one thread each, two jobs side by side on two cores
    threads: 1
    resources:
        mem_mb=generalisation_mem_mb,
        runtime=generalisation_runtime,
    params:
        spec=generalisation_train_params,
    script:
        "../scripts/generalisation_train.py"


rule generalisation_aggregate:
    input:
        unpack(generalisation_inputs),
        code=package_sources(
            "spectrum",
            "theory",
            "heldout",
            "generalisation",
            "generalisation_analysis",
            "claims",
            "jobs/generalisation",
        ),
    output:
        combined="results/{gen_experiment}/combined.nc",
        metrics=report(
            "results/{gen_experiment}/metrics.csv",
            caption="../report/generalisation_metrics.rst",
            category="Generalisation",
            labels={"experiment": "{gen_experiment}", "table": "errors"},
        ),
        optimal_noise=report(
            "results/{gen_experiment}/optimal_noise.csv",
            caption="../report/generalisation_optimal_noise.rst",
            category="Generalisation",
            labels={"experiment": "{gen_experiment}", "table": "optimal noise"},
        ),
        claims="results/{gen_experiment}/claims.csv",
    log:
        "logs/aggregate/{gen_experiment}.log",
    wildcard_constraints:
        gen_experiment=GEN_EXPERIMENT,
    resources:
        mem_mb=generalisation_aggregate_mem_mb,
    params:
        spec=generalisation_aggregate_params,
    script:
        "../scripts/generalisation_aggregate.py"


rule generalisation_figure:
    input:
        combined="results/{gen_experiment}/combined.nc",
        code=package_sources(
            "figures/__init__",
            "figures/style",
            "figures/generalisation",
            "jobs/generalisation",
        ),
    output:
        png=report(
            "results/figures/{gen_experiment}.png",
            caption="../report/generalisation_figure.rst",
            category="Generalisation",
            labels={"experiment": "{gen_experiment}", "table": "figure"},
        ),
        pdf="results/figures/{gen_experiment}.pdf",
    log:
        "logs/figures/{gen_experiment}.log",
    wildcard_constraints:
        gen_experiment=GEN_EXPERIMENT,
    localrule: True
    params:
        spec=lambda wildcards: {"experiment": wildcards.gen_experiment},
    script:
        "../scripts/generalisation_figure.py"
