# The rules of every experiment kind, generated from the registry (daedyn.kinds): per kind one
# training rule per experiment and bundle, <kind>_train_<experiment>_<bundle> (its outputs are the
# bundle's run files, and a rule's outputs cannot vary with a wildcard), and <kind>_aggregate and
# <kind>_figure (wildcard {experiment}). A kind declares its params, inputs, outputs, sources,
# report entries and resources once; the Plan groups its runs into bundles (daedyn.bundles);
# nothing here is specific to a kind.


def report_output(kind, step, name, path):
    """An output with its report entry, when the kind gives it a caption: category "The paper" or
    "Beyond the paper", subcategory the kind, labels the experiment and the item."""
    entry = getattr(kind, step).report.get(name)
    if entry is None:
        return path
    caption, label = entry
    return report(
        path,
        caption=f"../report/{caption}",
        category=report_category(kind),
        subcategory=kind.title,
        labels={"experiment": "{experiment}", "item": label},
    )


def rule_functions(kind):
    """The aggregate and figure rules' input, params and resource functions for one kind (bound now,
    not late in a loop)."""
    return {
        "aggregate_inputs": lambda wc: PLAN.inputs("aggregate", wc.experiment),
        "aggregate_params": lambda wc: PLAN.step_params("aggregate", wc.experiment),
        "figure_inputs": lambda wc: PLAN.inputs("figure", wc.experiment),
        "figure_params": lambda wc: PLAN.step_params("figure", wc.experiment),
        "aggregate_mem_mb": lambda wc, attempt: PLAN.aggregate_mem_mb(
            wc.experiment, attempt
        ),
    }


def bundle_resources(name, bundle):
    """A bundle's cluster request: memory and runtime over its members, a GPU when asked for."""
    return {
        "mem_mb": lambda wc, attempt: PLAN.bundle_mem_mb(name, bundle, attempt),
        "runtime": lambda wc, attempt: PLAN.bundle_runtime(name, bundle, attempt),
        "gpu": PLAN.gpus(name),
    }


for kind in PLAN.kinds.values():
    fn = rule_functions(kind)
    names = "|".join(PLAN.names(kind)) or "(?!)"

    for name in PLAN.names(kind):
        for bundle in PLAN.bundles(name):

            rule:
                name:
                    PLAN.bundle_rule(name, bundle)
                input:
                    **PLAN.bundle_inputs(name, bundle),
                    code=package_sources(*kind.train.sources, "jobs/bundle"),
                    lock=LOCK,
                output:
                    PLAN.bundle_outputs(name, bundle),
                log:
                    f"logs/{name}/bundles/{bundle}.log",
                benchmark:
                    f"benchmarks/runs/{name}/bundles/{bundle}.tsv"
                threads: kind.threads
                resources:
                    **bundle_resources(name, bundle),
                params:
                    spec=PLAN.bundle_params(name, bundle),
                script:
                    "../scripts/step.py"

    rule:
        name:
            kind.rule("aggregate")
        input:
            unpack(fn["aggregate_inputs"]),
            code=package_sources(*kind.aggregate.sources),
        output:
            **{
                out: report_output(
                    kind, "aggregate", out, f"results/{{experiment}}/{file}"
                )
                for out, file in kind.aggregate.outputs.items()
            },
        log:
            "logs/{experiment}/aggregate.log",
        wildcard_constraints:
            experiment=names,
        localrule: kind.aggregate_memory is None
        resources:
            **({"mem_mb": fn["aggregate_mem_mb"]} if kind.aggregate_memory else {}),
        params:
            spec=fn["aggregate_params"],
        script:
            "../scripts/step.py"

    rule:
        name:
            kind.rule("figure")
        input:
            unpack(fn["figure_inputs"]),
            code=package_sources(*kind.figure.sources),
        output:
            png=report_output(kind, "figure", "png", "results/figures/{experiment}.png"),
            pdf="results/figures/{experiment}.pdf",
        log:
            "logs/{experiment}/figure.log",
        wildcard_constraints:
            experiment=names,
        localrule: True
        params:
            spec=fn["figure_params"],
        script:
            "../scripts/step.py"
