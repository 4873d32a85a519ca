"""Read the config files of a snakemake command line strictly, before Snakemake reads them, and
turn ``--set KEY=VALUE`` overrides into one more config file.

Snakemake loads --configfile files (given or from a profile) before the workflow runs, and
reports a YAML syntax error there as "Config file is not valid JSON or YAML", without file or
line. ./run.sh calls this first with the same arguments: it names the file, the line and the
key. Anything it cannot judge (bad options, missing files) is left to Snakemake to report.

``--set KEY=VALUE`` (repeatable; KEY a dotted path such as ``linear_experiments.fig5_mnist.lr``,
VALUE YAML) is not a Snakemake option: with ``--rewrite-args`` first, the overrides are written to
``.snakemake/overrides/set-<hash>.yaml`` (a file, so that cluster jobs see it too), and the
command line without them, plus ``--configfile <the files in effect> <that file>``, is printed
NUL-separated for run.sh to pass to Snakemake. The overrides thus merge over config.yaml and every
``--configfile`` (theirs win) and are validated like any config file: typed values, unknown keys
named.

Usage: python workflow/check_configfiles.py [--rewrite-args] [snakemake options] [--set KEY=VALUE ...]
"""

import contextlib
import hashlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import yaml  # noqa: E402

from daedyn.configcheck import ConfigError, check_files, load_strict, overrides_config, parse_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def split_sets(argv: list[str]) -> tuple[list[str], list[str]]:
    """The ``--set`` values and the other arguments."""
    sets, rest, it = [], [], iter(argv)
    for arg in it:
        if arg == "--set":
            value = next(it, None)
            if value is None or value.startswith("-"):
                raise ConfigError("Invalid config: --set needs KEY=VALUE, "
                                  "e.g. --set linear_experiments.fig5_mnist.lr=0.02")
            sets.append(value)
        elif arg.startswith("--set="):
            sets.append(arg.removeprefix("--set="))
        else:
            rest.append(arg)
    return sets, rest


def snakemake_configfiles(argv: list[str]) -> list[Path] | None:
    """The config files Snakemake would read for this command line (profiles included); None when
    Snakemake cannot parse it (Snakemake reports that itself)."""
    from snakemake.cli import parse_args

    try:
        # quiet: snakemake prints profile notes and help itself when it runs
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _, args = parse_args(argv)
    except (Exception, SystemExit):
        return None
    return [Path(p) for p in args.configfile]


def merged(files: list[Path]) -> dict:
    """config.yaml with the files merged over it, as Snakemake merges them."""
    from snakemake.utils import update_config

    config = load_strict(ROOT / "config.yaml") or {}
    for path in files:
        if path.is_file():
            update_config(config, load_strict(path) or {})
    return config


def write_overrides(content: dict) -> Path:
    text = "# written by ./run.sh pipeline --set (workflow/check_configfiles.py)\n"
    text += yaml.safe_dump(content, sort_keys=False)
    path = Path(".snakemake/overrides") / f"set-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path.resolve()


def main(argv: list[str]) -> int:
    rewrite = bool(argv) and argv[0] == "--rewrite-args"
    argv = argv[1:] if rewrite else argv
    try:
        sets, rest = split_sets(argv)
        files = snakemake_configfiles(rest)
        if sets:
            if files is None:
                raise ConfigError("Invalid config: --set: Snakemake cannot read the rest of the command line; "
                                  "run it without --set to see why")
            check_files(files)
            overrides = overrides_config(merged(files), parse_overrides(sets))
            files.append(write_overrides(overrides))
            rest += ["--configfile", *map(str, files)]
        elif files:
            try:
                check_files(files)
            except ConfigError:
                raise
            except Exception:  # not a config error (an unreadable file): Snakemake reports it
                pass
    except ConfigError as err:
        message = str(err)
        print(message if message.startswith("Invalid config") else f"Invalid config file {message}", file=sys.stderr)
        return 1
    if rewrite:
        sys.stdout.write("".join(f"{arg}\0" for arg in rest))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
