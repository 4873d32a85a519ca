from daedyn import findings


# The claims beyond the paper: each new experiment's claims.csv in one table.
rule beyond_claims:
    input:
        claims=PLAN.beyond_claims(),
        code=package_sources("claims", "jobs/claims"),
    output:
        report(
            "results/claims/beyond.csv",
            caption="../report/beyond_claims.rst",
            category="Claims",
            subcategory="Claims beyond the paper",
            labels={"item": "every experiment beyond the paper"},
        ),
    log:
        "logs/claims/beyond.log",
    localrule: True
    script:
        "../scripts/beyond_claims.py"


# Every claim the default target checks, with its verdict, experiment and figure: the verdict table
# of the report's landing page (workflow/report/workflow.rst).
rule claims_summary:
    input:
        tables=[source["table"] for source in PLAN.claims_summary()],
        code=package_sources("claims", "jobs/claims"),
    output:
        table=report(
            "results/claims/summary.csv",
            caption="../report/claims_summary.rst",
            category="Claims",
            subcategory="Every claim",
            labels={"item": "every claim with its verdict"},
        ),
        page="results/claims/summary.rst",
    log:
        "logs/claims/summary.log",
    localrule: True
    params:
        sources=PLAN.claims_summary(),
    script:
        "../scripts/claims_summary.py"


# The findings page: every claim of summary.csv with its numbers (measured, expected, tolerance, worst
# case), each experiment's paragraph (its kind's, from its tables, or its verdicts counted), the audit
# of the claims tables and the page's provenance (daedyn.findings). The report's landing page
# includes its rst twin.
rule findings:
    input:
        summary="results/claims/summary.csv",
        tables=[
            path
            for kind in PLAN.kinds.values()
            for name in PLAN.experiments(kind)
            for path in findings.table_paths(kind, name)
        ],
        code=package_sources(
            "claims", "findings", "jobs/claims", *findings.sources(PLAN.kinds)
        ),
    output:
        page=report(
            "results/findings.md",
            caption="../report/findings.rst",
            category="Claims",
            subcategory="Findings",
            labels={"item": "every claim with its numbers"},
        ),
        rst="results/findings.rst",
    log:
        "logs/claims/findings.log",
    localrule: True
    script:
        "../scripts/findings.py"
