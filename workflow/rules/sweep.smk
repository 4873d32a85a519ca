# Parameter sweeps (an experiment's `sweep:` grid): per-condition table, claims, summary figure.


rule sweep:
    input:
        combined="results/{experiment}/combined.nc",
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
            "results/figures/{experiment}_sweep.png",
            caption="../report/sweep_figure.rst",
            category="Sweeps",
            subcategory=lambda wc: PLAN.kind_of[wc.experiment].title,
            labels={"experiment": "{experiment}", "item": "summary figure"},
        ),
        pdf="results/figures/{experiment}_sweep.pdf",
        table=report(
            "results/{experiment}/sweep.csv",
            caption="../report/sweep_table.rst",
            category="Sweeps",
            subcategory=lambda wc: PLAN.kind_of[wc.experiment].title,
            labels={"experiment": "{experiment}", "item": "per-condition table"},
        ),
        claims=report(
            "results/{experiment}/claims.csv",
            caption="../report/sweep_claims.rst",
            category="Sweeps",
            subcategory=lambda wc: PLAN.kind_of[wc.experiment].title,
            labels={"experiment": "{experiment}", "item": "claims"},
        ),
    log:
        "logs/{experiment}/sweep.log",
    wildcard_constraints:
        experiment="|".join(PLAN.swept(paper=None)) or "(?!)",
    localrule: True
    params:
        spec=lambda wc: PLAN.sweep_params(wc.experiment),
    script:
        "../scripts/sweep.py"
