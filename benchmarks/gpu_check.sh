#!/usr/bin/env bash
# The GPU check: CUDA tests, both engine benchmarks, a 1000-run sweep on the MNIST spectrum (one at a
# time, bundled, batched; the batched engine's GEMM rate against bare torch.bmm) and the paper-scale
# Fig. 6 (fig6_mnist) on one GPU, within 11 minutes on an H200. Every number goes into one file: $OUT/gpu_check.txt when OUT is
# set, else benchmarks/gpu_check.txt (plus the Fig. 6 figure beside it).
#
#   benchmarks/gpu_check.sh --prepare   on a machine with PyPI (no GPU needed), from the repository root:
#                                       fills .gpu/ (git-ignored) with what a bare GPU machine lacks,
#                                       wheels of snakemake and netCDF4 and their dependencies for
#                                       Python 3.12, and MNIST's raw files from DAEDYN_DATA_MIRROR
#   benchmarks/gpu_check.sh             on the GPU machine, with .gpu/ copied along (the device tool:
#                                       run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"]))
#   benchmarks/gpu_check.sh --smoke     any machine, CPU only: the same steps at toy sizes, to test
#                                       this script (not the GPU)
#
# Environment: DAEDYN_PYTHON, if set, is used as is. Else an existing .venv with the dependencies,
# else the machine's python3 (with its own torch), completed offline by installing .gpu/wheels into
# .gpu/site (on PYTHONPATH; a venv would hide the packages of python3's own venv). daedyn itself
# comes from this checkout (PYTHONPATH=src).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
gpu_dir=$repo/.gpu
mode=${1:-gpu}

pin() {  # the locked version of a package
  grep -i "^$1==" requirements.lock | head -1 | cut -d= -f3
}

if [ "$mode" = "--prepare" ]; then
  set -e
  python=${DAEDYN_PYTHON:-.venv/bin/python}
  mirror=${DAEDYN_DATA_MIRROR:?set DAEDYN_DATA_MIRROR to the folder holding mnist/}
  mkdir -p "$gpu_dir/wheels" "$gpu_dir/datasets/mnist"
  cp "$mirror"/mnist/*-ubyte.gz "$gpu_dir/datasets/mnist/"
  # what snakemake and netCDF4 need, as installed here (the versions of requirements.lock), less
  # what the GPU machine's image already has (torch and its stack, numpy, the common web packages)
  names=$("$python" - <<'EOF'
import re
from importlib import metadata
from packaging.requirements import Requirement

ON_IMAGE = {"numpy", "torch", "pyyaml", "jinja2", "markupsafe", "requests", "urllib3", "idna", "certifi",
            "charset-normalizer", "packaging", "psutil", "tabulate", "wrapt", "attrs", "typing-extensions",
            "filelock", "fsspec", "pillow", "setuptools"}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
todo, seen = ["snakemake", "netCDF4"], {}
while todo:
    name = norm(todo.pop())
    if name in seen or name in ON_IMAGE:
        continue
    dist = metadata.distribution(name)
    seen[name] = f"{dist.metadata['Name']}=={dist.version}"
    for spec in dist.requires or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate(env):
            todo.append(req.name)
print(" ".join(sorted(seen.values())))
EOF
)
  for spec in $names; do
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$gpu_dir/wheels" "$spec" 2>/dev/null ||
      "$python" -m pip wheel --quiet --no-deps -w "$gpu_dir/wheels" "$spec"  # pure-Python sdist
  done
  echo "gpu_check: $(ls "$gpu_dir/wheels" | wc -l) wheels ($(du -sh "$gpu_dir" | cut -f1) in .gpu/)" >&2
  exit 0
fi

# time limits of the steps add up to under 11 minutes on the GPU; a shared CPU gets four times as long
case "$mode" in
  gpu) device=cuda slack=1 ;;
  --smoke) device=cpu slack=4 ;;
  *) echo "usage: benchmarks/gpu_check.sh [--prepare | --smoke]" >&2; exit 2 ;;
esac
report=${OUT:+$OUT/gpu_check.txt}
report=${report:-$repo/benchmarks/gpu_check.txt}
mkdir -p "$(dirname "$report")"
: >"$report"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
start=$SECONDS

say() { echo "$*" | tee -a "$report"; }
# step NAME SECONDS COMMAND...: run under a time limit, its output into the report; go on if it fails
step() {
  local name=$1 limit=$(($2 * slack)) t=$SECONDS rc
  shift 2
  say ""
  say "== $name (limit ${limit} s)"
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$report"
  rc=${PIPESTATUS[0]}
  say "-- $name: exit $rc after $((SECONDS - t)) s"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

# --- environment -------------------------------------------------------------------------------
export PYTHONPATH=$repo/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
needs='import daedyn, netCDF4, snakemake, torch, xarray, scipy, yaml, pytest'
py=${DAEDYN_PYTHON:-}
if [ -z "$py" ] && [ -x .venv/bin/python ] && .venv/bin/python -c "$needs" 2>/dev/null; then
  py=$repo/.venv/bin/python
fi
if [ -z "$py" ]; then
  py=$(command -v python3)
  step "environment: $("$py" --version 2>&1) at $py, plus .gpu/wheels" 60 "$py" -m pip install --quiet \
    --no-index --no-deps --no-compile --target "$gpu_dir/site" "$gpu_dir"/wheels/*.whl
  export PYTHONPATH=$gpu_dir/site:$PYTHONPATH
fi
if ! "$py" -c "$needs"; then
  say "gpu_check: $py lacks a dependency (see above); run benchmarks/gpu_check.sh --prepare where PyPI is reachable"
  exit 1
fi
mirror=${DAEDYN_DATA_MIRROR:-$gpu_dir/datasets}
[ -d "$repo/../shared/datasets/mnist" ] && [ ! -d "$mirror/mnist" ] && mirror=$repo/../shared/datasets
export DAEDYN_DATA_MIRROR=$mirror

say "gpu_check ($mode) $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "python: $py"
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "device",
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1 | tee -a "$report"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
  --format=csv,noheader 2>&1 | tee -a "$report"
if [ "$device" = cuda ] && ! "$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  say "gpu_check: torch sees no CUDA device; use --smoke to test the script on a CPU"
  exit 1
fi

# --- 1. CUDA tests (every test with "cuda" in its name or marker; they skip without a GPU) --------
step "CUDA tests" 80 "$py" -m pytest -q -p no:cacheprovider -rA -k cuda tests

# --- 2., 3. engine benchmarks --------------------------------------------------------------------
if [ "$device" = cuda ]; then
  linear_args=() nonlinear_args=()
else  # toy sizes: checks the plumbing only
  linear_args=(--sizes mnist --datapass-epochs 1 --exact-epochs 2 --repeats 1 --no-full-run)
  nonlinear_args=(--n 2000 --epochs 1 2 --repeats 1)
fi
step "bench_linear --device $device" 75 "$py" benchmarks/bench_linear.py --device "$device" \
  --json "$work/bench_linear.json" "${linear_args[@]}"
[ -f "$work/bench_linear.json" ] && cat "$work/bench_linear.json" >>"$report"
step "bench_nonlinear --device $device" 55 "$py" benchmarks/bench_nonlinear.py --device "$device" \
  --json "$work/bench_nonlinear.json" "${nonlinear_args[@]}"
[ -f "$work/bench_nonlinear.json" ] && cat "$work/bench_nonlinear.json" >>"$report"

# --- 4. a sweep of R exact runs on the MNIST spectrum (H = 64, 800 epochs): runs/s one at a time,
# bundled and batched for R up to 1000 (target: the 1000-run sweep batched within 5 min), and the
# batched engine's GEMM rate against a bare torch.bmm of its shapes (target: ratio >= 70 %) ----------
if [ "$device" = cuda ]; then
  sweep_args=(--runs 1 10 100 1000 --epochs 800)
else
  sweep_args=(--runs 1 3 --epochs 5 --processes 1 --max-bundled 2 --repeats 1)
fi
step "bench_sweep --device $device" 180 "$py" benchmarks/bench_sweep.py --device "$device" \
  --json "$work/bench_sweep.json" "${sweep_args[@]}"
[ -f "$work/bench_sweep.json" ] && cat "$work/bench_sweep.json" >>"$report"

# --- 5. paper-scale Fig. 6 through the workflow, one GPU job at a time ----------------------------
if [ "$device" = cuda ]; then
  echo "nonlinear_experiments: {fig6_mnist: {device: cuda}}" >"$work/gpu.yaml"
else
  echo "nonlinear_experiments: {fig6_mnist: {device: cpu, n_samples: 1000, hidden: 16, epochs: 20}}" >"$work/gpu.yaml"
fi
echo "data: {download: false}" >>"$work/gpu.yaml"
fig6=(results/figures/fig6_mnist.png results/fig6_mnist/halftimes.csv)
step "fig6_mnist (paper scale on $device) through snakemake" 170 "$py" -m snakemake "${fig6[@]}" \
  -s "$repo/Snakefile" --directory "$work/fig6" --workflow-profile none --configfile "$work/gpu.yaml" \
  --cores "$(nproc)" --resources gpu=1
for tsv in "$work"/fig6/benchmarks/runs/*/*.tsv "$work"/fig6/benchmarks/runs/*/bundles/*.tsv; do
  [ -f "$tsv" ] && say "${tsv#"$work"/fig6/benchmarks/runs/}: $(tail -1 "$tsv" | cut -f1-3) (s, h:m:s, max_rss MB)"
done
for log in "$work"/fig6/logs/fig6_mnist/bundles/*.log; do
  [ -f "$log" ] && grep -h "final mapping\|finished in" "$log" | sed "s|^|${log#"$work"/fig6/logs/}: |" | tee -a "$report"
done
if [ -f "$work/fig6/results/fig6_mnist/halftimes.csv" ]; then
  say "halftimes.csv:"
  tee -a "$report" <"$work/fig6/results/fig6_mnist/halftimes.csv"
  cp "$work/fig6/results/figures/fig6_mnist.png" "$(dirname "$report")/gpu_check_fig6_mnist.png"
fi

say ""
say "gpu_check: total $((SECONDS - start)) s; failed steps: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
