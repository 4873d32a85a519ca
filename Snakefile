# daedyn workflow: datasets -> spectra -> (theory, training) -> aggregation -> figures.
# Run `./run.sh pipeline` or plain `snakemake` (see README.md); `snakemake paper` builds the
# paper-scale experiments.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.27")


# The workflow's own checks come from its own sources (jobs verify the same, see common.smk).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from daedyn import configcheck

# The repository's config.yaml, also when the run is relocated with --directory;
# --configfile FILE is merged over it (its keys win; lists replace lists). Snakemake's loader keeps the last of two equal keys
# and reports syntax errors without file or line, so every config file is read strictly first.
CONFIG_FILE = Path(workflow.basedir) / "config.yaml"
try:
    configcheck.check_files([CONFIG_FILE, *workflow.overwrite_configfiles])
except configcheck.ConfigError as err:
    raise WorkflowError(f"Invalid config file {err}") from None


configfile: CONFIG_FILE


# The report's landing page (`snakemake --report report.html`): the verdict table and the figures.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectrum.smk"
include: "workflow/rules/scalar.smk"
include: "workflow/rules/kinds.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,


# Paper-scale experiments (`paper: true` in the config): `snakemake paper`.
rule paper:
    input:
        PAPER_TARGETS,
