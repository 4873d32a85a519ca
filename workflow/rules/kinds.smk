# The rules of every experiment kind, generated from the registry (daedyn.kinds): per kind
# <kind>_train (one job per run and seed, or per part), <kind>_aggregate and <kind>_figure. A kind
# declares its params, inputs, outputs, sources, report entries and resources once; nothing here is
# specific to a kind. Wildcards: {experiment}, {run}, {seed}.


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
    """The rule's input, params and resource functions for one kind (bound now, not late in a loop)."""

    def seed(wc):
        return int(wc.seed) if "seed" in wc.keys() else None

    return {
        "train_inputs": lambda wc: PLAN.inputs("train", wc.experiment, wc.run),
        "train_params": lambda wc: PLAN.train_params(wc.experiment, wc.run, seed(wc)),
        "aggregate_inputs": lambda wc: PLAN.inputs("aggregate", wc.experiment),
        "aggregate_params": lambda wc: PLAN.step_params("aggregate", wc.experiment),
        "figure_inputs": lambda wc: PLAN.inputs("figure", wc.experiment),
        "figure_params": lambda wc: PLAN.step_params("figure", wc.experiment),
        "mem_mb": lambda wc, attempt: PLAN.mem_mb(wc.experiment, wc.run, attempt),
        "runtime": lambda wc, attempt: PLAN.runtime(wc.experiment, wc.run, attempt),
        "gpu": lambda wc: PLAN.gpus(wc.experiment),
        "aggregate_mem_mb": lambda wc, attempt: PLAN.aggregate_mem_mb(
            wc.experiment, attempt
        ),
    }


for kind in PLAN.kinds.values():
    fn = rule_functions(kind)
    names = "|".join(PLAN.names(kind)) or "(?!)"
    run_stem = kind.run_file.removeprefix("results/").removesuffix(".nc")

    rule:
        name:
            kind.rule("train")
        input:
            unpack(fn["train_inputs"]),
            code=package_sources(*kind.train.sources),
            lock=LOCK,
        output:
            run=kind.run_file,
        log:
            f"logs/{run_stem}.log",
        benchmark:
            f"benchmarks/runs/{run_stem}.tsv"
        wildcard_constraints:
            experiment=names,
            run=kind.run_pattern,
        threads: kind.threads
        resources:
            mem_mb=fn["mem_mb"],
            runtime=fn["runtime"],
            gpu=fn["gpu"],
        params:
            spec=fn["train_params"],
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
