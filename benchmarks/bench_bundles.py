"""Bundles end to end through Snakemake: what a sweep costs against one run, and how long a big sweep plans.

1. A 40-run MNIST sweep (8 noise levels x 5 seeds, H = 64, 800 epochs, exact engine, float32, N = 50 000:
   the default `sweep_mnist` settings) against a single such run, each a `snakemake --cores` of its run
   files in a working directory whose dataset and spectrum are built beforehand (not timed). With one
   job per run the sweep cost about 30 single runs (start-up dominates); a bundle pays it once.
2. `snakemake -n` of a 2000-run sweep (400 noise levels x 5 seeds): the time to plan it.

    DAEDYN_DATA_MIRROR=/path/to/mirror PYTHONPATH=src .venv/bin/python benchmarks/bench_bundles.py \
        [--workdir DIR] [--cores 1]

On a CPU shared with other busy processes use --cores 1: two torch threads then wait for cores
others hold (benchmarks/README.md measured 50x slower epochs).

The mirror holds the raw MNIST files (<mirror>/mnist/*.gz). Prints the load average before and after:
the times are only comparable on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from daedyn.sweep import run_name  # noqa: E402
RUN = {"dataset": "mnist", "n_samples": 50000, "hidden": 64, "lr": 0.02, "epochs": 800, "log_every": 10,
       "init_std": 1.0e-2, "engine": "exact", "dtype": "float32", "modes": [0, 3, 7], "checkpoint_every": 0}
EPS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
SEEDS = 5


def config(experiments: dict) -> dict:
    """Only these experiments: the default ones are switched off, so nothing else is planned."""
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())
    out = {section: {name: {"enabled": False} for name in exps}
           for section, exps in defaults.items() if section.endswith("_experiments")}
    out["linear_experiments"].update(experiments)
    out.update(data={"download": False}, spectra=[{"dataset": "mnist", "n_samples": RUN["n_samples"]}],
               scalar_figures={})
    return out


def snakemake(workdir: Path, cfg: dict, *args: str) -> float:
    """Seconds of one Snakemake call (failing loudly)."""
    (workdir / "bench-config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", "none", "--configfile", str(workdir / "bench-config.yaml"), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="working directory (default: a temporary one)")
    parser.add_argument("--skip-sweep", action="store_true", help="only the dry run of the 2000-run sweep")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores, also the training threads (at most 2)")
    args = parser.parse_args()
    if "DAEDYN_DATA_MIRROR" not in os.environ:
        raise SystemExit("set DAEDYN_DATA_MIRROR to the folder that holds mnist/*.gz")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-bundles-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"working directory {work}; load average before: {os.getloadavg()}")

    if not args.skip_sweep:
        sweep = {**RUN, "seeds": SEEDS, "sweep": {"eps": EPS}}
        single = {**RUN, "seeds": [0], "runs": {"dae": {"eps": 1.0}}}
        cfg = config({"bench_sweep": sweep, "bench_single": single})
        cores = f"--cores={args.cores}"
        snakemake(work, cfg, cores, f"results/spectra/mnist_n{RUN['n_samples']}.nc")  # inputs: not timed
        one = snakemake(work, cfg, cores, "results/bench_single/runs/dae/seed0.nc")
        files = [f"results/bench_sweep/runs/{run_name({'eps': e})}/seed{s}.nc" for e in EPS for s in range(SEEDS)]
        many = snakemake(work, cfg, cores, *files)
        print(f"one run: {one:.1f} s; {len(files)}-run sweep: {many:.1f} s; ratio {many / one:.2f} (target <= 4)")

    grid = [round(0.01 * i, 2) for i in range(400)]
    big = config({"bench_big": {**RUN, "seeds": SEEDS, "large_sweep": True, "sweep": {"eps": grid}}})
    plan = snakemake(work, big, "-n", "results/bench_big/combined.nc")
    print(f"snakemake -n of a {len(grid) * SEEDS}-run sweep: {plan:.1f} s (target <= 20)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
