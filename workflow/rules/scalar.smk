# Scalar-network figures (paper Figs. 1-4): theory + simulation -> netCDF -> figure; claims table.


rule scalar_figure_data:
    input:
        code=package_sources("theory", "scalar", "jobs/scalar"),
        lock=LOCK,
    output:
        "results/scalar/{figure}.nc",
    log:
        "logs/scalar/{figure}.log",
    benchmark:
        "benchmarks/runs/scalar/{figure}.tsv"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        figure="{figure}",
        spec=lambda wc: PLAN.scalar_figure_params(wc.figure),
    script:
        "../scripts/scalar_figure_data.py"


rule scalar_figure_plot:
    input:
        data="results/scalar/{figure}.nc",
        code=package_sources(
            "figures/__init__", "figures/style", "figures/scalar", "jobs/scalar"
        ),
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/scalar_figure.rst",
            category="The paper",
            subcategory="Scalar network (Figs. 1-4)",
            labels={"experiment": "{figure}", "item": "figure"},
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "logs/figures/{figure}.log",
    localrule: True
    params:
        figure="{figure}",
    script:
        "../scripts/scalar_figure_plot.py"


rule theory_claims:
    input:
        **{fig: f"results/scalar/{fig}.nc" for fig in PLAN.scalar_figures()},
        code=package_sources(
            "theory", "scalar", "claims", "paper_claims", "jobs/scalar"
        ),
    output:
        report(
            "results/claims/theory.csv",
            caption="../report/claims.rst",
            category="Claims",
            subcategory="The paper's theory claims",
            labels={"item": "the paper's theory claims (Figs. 1-4)"},
        ),
    log:
        "logs/claims/theory.log",
    localrule: True
    params:
        figures=PLAN.scalar_figures(),
    script:
        "../scripts/theory_claims.py"
