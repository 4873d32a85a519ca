#!/usr/bin/env bash
# daedyn's two entry points. Both first create the Python environment (.venv, pip,
# pinned by requirements.lock) when it is missing or older than pyproject.toml/requirements.lock.
#   ./run.sh pipeline [snakemake options]   run the workflow (default targets of config.yaml;
#                                           `./run.sh pipeline paper`: the paper-scale ones);
#                                           also --set KEY=VALUE, e.g.
#                                           --set linear_experiments.fig5_mnist.lr=0.02
#   ./run.sh test [pytest options]          run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

python=${DAEDYN_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python=$candidate
      break
    fi
  done
fi
[ -n "$python" ] || { echo "run.sh: Python 3.11 or newer is required (set DAEDYN_PYTHON to its path)" >&2; exit 2; }

stamp=.venv/.daedyn-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "run.sh: creating the environment in .venv (first time: a few minutes)" >&2
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[test]"
  touch "$stamp"
fi

command=${1:-}
shift || true
case "$command" in
  pipeline)
    # Snakemake loads the local profile profiles/default by itself; a named --profile (e.g. SLURM)
    # replaces it, because the workflow profile would otherwise override the named one key by key
    profile=()
    for arg in "$@"; do
      case "$arg" in
        --workflow-profile*) profile=(); break ;;
        --profile*) profile=(--workflow-profile none) ;;
      esac
    done
    # config files named on the command line (or in a profile): syntax errors with file and line;
    # --set KEY=VALUE becomes one more --configfile (validated like any config file)
    args_file=$(mktemp)
    if ! .venv/bin/python workflow/check_configfiles.py --rewrite-args "${profile[@]}" "$@" >"$args_file"; then
      rm -f "$args_file"
      exit 1
    fi
    mapfile -d '' args <"$args_file"
    rm -f "$args_file"
    exec .venv/bin/snakemake "${args[@]}" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: ./run.sh pipeline [snakemake options] | ./run.sh test [pytest options]" >&2; exit 2 ;;
esac
