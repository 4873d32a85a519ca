"""Read the config files of a snakemake command line strictly, before Snakemake reads them.

Snakemake loads --configfile files (given or from a profile) before the workflow runs, and
reports a YAML syntax error there as "Config file is not valid JSON or YAML", without file or
line. ./run.sh calls this first with the same arguments: it names the file, the line and the
key. Anything it cannot judge (bad options, missing files) is left to Snakemake to report.
Usage: python workflow/check_configfiles.py [snakemake options]
"""

import contextlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from daedyn.configcheck import ConfigError, check_files  # noqa: E402
from snakemake.cli import parse_args  # noqa: E402

try:
    # quiet: snakemake prints profile notes and help itself when it runs
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _, args = parse_args(sys.argv[1:])
    check_files(args.configfile)
except ConfigError as err:
    sys.exit(f"Invalid config file {err}")
except (Exception, SystemExit):
    pass
