# daedyn workflow: datasets -> spectra -> (theory, training) -> aggregation -> figures.
# Run `./run.sh pipeline` or plain `snakemake` (see README.md); `snakemake paper` builds the
# paper-scale experiments.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.27")


# The repository's config.yaml, also when the run is relocated with --directory;
# --configfile FILE is merged over it (its keys win; lists replace lists).
configfile: Path(workflow.basedir) / "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectrum.smk"
include: "workflow/rules/scalar.smk"
include: "workflow/rules/linear.smk"
include: "workflow/rules/nonlinear.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,


# Paper-scale experiments (`paper: true` in the config): `snakemake paper`.
rule paper:
    input:
        PAPER_TARGETS,
