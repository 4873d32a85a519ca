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
        ),
    log:
        "logs/claims/beyond.log",
    localrule: True
    script:
        "../scripts/beyond_claims.py"
