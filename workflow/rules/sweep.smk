# Parameter sweeps (an experiment's `sweep:` grid): per-condition table, claims, summary figure.


rule sweep:
    input:
        combined="results/{swept}/combined.nc",
        code=package_sources(
            "analysis",
            "theory",
            "claims",
            "sweep_claims",
            "figures/__init__",
            "figures/style",
            "figures/sweep",
            "jobs/sweep",
        ),
    output:
        png=report(
            "results/figures/{swept}_sweep.png",
            caption="../report/sweep_figure.rst",
            category="Sweeps",
            labels={"experiment": "{swept}", "table": "summary figure"},
        ),
        pdf="results/figures/{swept}_sweep.pdf",
        table=report(
            "results/{swept}/sweep.csv",
            caption="../report/sweep_table.rst",
            category="Sweeps",
            labels={"experiment": "{swept}", "table": "per-condition table"},
        ),
        claims=report(
            "results/{swept}/claims.csv",
            caption="../report/sweep_claims.rst",
            category="Sweeps",
            labels={"experiment": "{swept}", "table": "claims"},
        ),
    log:
        "logs/sweep/{swept}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        spec=sweep_params,
    script:
        "../scripts/sweep.py"
