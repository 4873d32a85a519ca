# daedyn workflow: datasets -> spectra -> (theory, training) -> aggregation -> figures.
# Run `./run.sh pipeline` (see README.md); any snakemake option may follow.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.27")


# The repository's config.yaml, also when the run is relocated with --directory;
# --configfile FILE replaces it.
configfile: Path(workflow.basedir) / "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectrum.smk"
include: "workflow/rules/scalar.smk"
include: "workflow/rules/linear.smk"
include: "workflow/rules/nonlinear.smk"
include: "workflow/rules/generalisation.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
