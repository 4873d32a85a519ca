"""End-to-end time of the MNIST Fig. 5 experiment through Snakemake, against the paper's data pass.

Runs dataset -> spectrum -> 3 training runs x 5000 epochs -> aggregation with theory -> figure for
`fig5_mnist` of config.yaml in a fresh working directory, reports the wall time and each rule's
time (Snakemake benchmark files), then times a few epochs of the reference data-pass engine on the
same data and prints how long the same three runs would take with it.

    .venv/bin/python benchmarks/bench_fig5.py --mirror ../shared/datasets [--workdir DIR] [--cores 2]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", default=str(REPO.parent / "shared" / "datasets"), help="raw data folder")
    parser.add_argument("--workdir", help="working directory (default: a new temporary one)")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--datapass-epochs", type=int, default=5)
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="daedyn-fig5-"))
    target = "results/figures/fig5_mnist.png"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--workflow-profile", "none", "-c", args.cores, target]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={"DAEDYN_DATA_MIRROR": args.mirror, **_env()})
    wall = time.perf_counter() - start

    print(f"MNIST Fig. 5 end to end (dataset, spectrum, 3 x 5000 epochs, theory, figure): {wall:.1f} s "
          f"in {workdir}")
    train_s = 0.0
    for tsv in sorted((workdir / "benchmarks" / "runs").rglob("*.tsv")):
        with open(tsv) as fh:
            seconds = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        if "train" in tsv.parts:
            train_s += seconds
        print(f"  {seconds:8.1f} s  {tsv.relative_to(workdir / 'benchmarks' / 'runs')}")

    # the reference: the paper's full-batch data pass on the same data, a few epochs, extrapolated
    from daedyn import data, linear, store

    x = data.matrix(store.open_dataset(workdir / "results/data/mnist.nc"), 50000)
    sp = store.open_dataset(workdir / "results/spectra/mnist_n50000.nc")
    lam, V = sp["eigenvalue"].values, sp["eigenvector"].values
    t = []
    for epochs in (1, 1 + args.datapass_epochs):
        t0 = time.perf_counter()
        linear.train_datapass(x, lam=lam, V=V, hidden=256, lr=0.01, epochs=epochs, log_every=epochs)
        t.append(time.perf_counter() - t0)
    per_epoch = (t[1] - t[0]) / args.datapass_epochs
    reference = 3 * 5000 * per_epoch
    print(f"data pass: {1e3 * per_epoch:.0f} ms/epoch -> the three training runs would take {reference:.0f} s; "
          f"the exact engine's runs took {train_s:.1f} s (ratio {reference / train_s:.0f}x)")


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "DAEDYN_DATA_MIRROR"}


if __name__ == "__main__":
    main()
