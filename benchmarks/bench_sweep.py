"""Benchmark of a sweep on the MNIST spectrum: runs per second, one run at a time, bundled and batched.

A sweep of R exact-engine runs (H = 64, 800 epochs, float32, records every 10 epochs as the
sweep_mnist experiment) that differ in lr, eps, gamma and seed, trained three ways:

* one at a time: a fresh Python process per run (imports, spectrum, one ``linear.train``), as one
  job per run does. Only ``--processes`` runs are started (once, for the first sweep size); for R
  beyond them the time is their mean per process times R, an extrapolation (the output says so);
* bundled: one process, the one-run engine in a loop (``linear.train`` for each run). At most
  ``--max-bundled`` runs are timed (once); beyond them the time is extrapolated from their mean;
* batched: ``linear_batched.train_batch`` of all R runs, one tensor, timed whole.

It also reports the GEMM rate of the batched engine's step (8·R·d·H² flops: two Gram matrices and
two H×H-by-H×d products per run) against a bare ``torch.bmm`` of the same shapes on the same device,
as a ratio (target: at least 70 %). Both are per-step times of (T(n₂) − T(n₁))/(n₂ − n₁) with
records only at the first and last epoch, the minimum of ``--repeats``.

The spectrum is ``--spectrum`` (a spectrum file of the workflow, results/spectra/mnist_n50000.nc
when there is one), else computed with daedyn.spectrum from MNIST's raw files (50 000 training
images) in $DAEDYN_DATA_MIRROR/mnist, ../shared/datasets/mnist or .gpu/datasets/mnist.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_sweep.py --device cpu --runs 1 10 100 --epochs 100
    PYTHONPATH=src .venv/bin/python benchmarks/bench_sweep.py --device cuda --json sweep.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from daedyn import linear, linear_batched, training  # noqa: E402
from daedyn.runconfig import LinearConfig  # noqa: E402

EPS = (0.0, 0.5, 1.0, 2.0, 4.0)
GAMMA = (0.0, 0.5, 1.0)


def load_spectrum(path: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(λ, V, where from) of the MNIST training set's uncentred second moment, N = 50 000."""
    default = REPO / "results" / "spectra" / "mnist_n50000.nc"
    if path is None and default.exists():
        path = str(default)
    if path is not None:
        import xarray as xr

        with xr.open_dataset(path) as spec:
            return spec["eigenvalue"].values, spec["eigenvector"].values, path
    from daedyn import data, spectrum

    roots = [os.environ.get("DAEDYN_DATA_MIRROR"), REPO.parent / "shared" / "datasets", REPO / ".gpu" / "datasets"]
    mirror = next(Path(r) for r in roots if r and (Path(r) / "mnist" / "train-images-idx3-ubyte.gz").exists())
    spec = spectrum.spectrum(data.matrix(data.load_idx("mnist", "train", mirror=mirror), 50_000), 50_000)
    return spec["eigenvalue"].values, spec["eigenvector"].values, f"computed from {mirror}/mnist (N = 50000)"


def sweep(runs: int, epochs: int, device: str, log_every: int = 10) -> list[LinearConfig]:
    """R runs of the exact engine that differ in lr (0.5 to 0.77 of 1/λ₁ ≈ 0.026), eps, gamma and seed."""
    base = LinearConfig.make(engine="exact", experiment="bench_sweep", dataset="mnist", n_samples=50_000, hidden=64,
                             lr=0.02, epochs=epochs, log_every=log_every, init_std=0.01, dtype="float32", device=device)
    return [dataclasses.replace(base, run=f"r{i}", seed=i, lr=0.02 * (1 - 0.35 * (i % 7) / 6),
                                eps=EPS[i % len(EPS)], gamma=GAMMA[(i // len(EPS)) % len(GAMMA)])
            for i in range(runs)]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


ONE_RUN = """
import sys, numpy as np, torch
torch.set_num_threads({threads})
sys.path.insert(0, {src!r})
from daedyn import linear, linear_batched, training
from daedyn.runconfig import LinearConfig
z = np.load({npz!r})
config = LinearConfig.from_params({params!r})
linear.train(config, training.Problem(z["lam"], z["V"]))
"""


def one_at_a_time(configs, problem, processes: int) -> dict:
    """Wall time of ``processes`` fresh processes, one run each of ``configs``, and of one that only
    starts (imports); per run: their mean."""
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "spectrum.npz")
        np.savez(npz, lam=problem.lam, V=problem.V)
        times = []
        for config in configs[:processes]:
            params = {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}
            code = ONE_RUN.format(src=str(REPO / "src"), npz=npz, params=params, threads=torch.get_num_threads())
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            times.append(time.perf_counter() - t)
    # the start-up alone: a process that imports the same modules and reads the spectrum, trains nothing
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import numpy, torch, xarray; "
                    "from daedyn import linear, training" % str(REPO / "src")], check=True)
    startup = time.perf_counter() - t
    return {"per_run_s": float(np.mean(times)), "measured_runs": len(times), "startup_s": startup}


def bundled(configs, problem, device: str) -> dict:
    """The one-run engine in a loop over ``configs``; per run: the mean."""
    t = timed(lambda: [linear.train(c, problem) for c in configs], device)
    return {"per_run_s": t / len(configs), "measured_runs": len(configs)}


def batched(configs, problem, device: str) -> dict:
    """``train_batch`` of all ``configs``, timed whole."""
    t = timed(lambda: linear_batched.train_batch(configs, problem), device)
    return {"seconds": t, "per_run_s": t / len(configs), "measured_runs": len(configs), "extrapolated": False}


def gemm_ratio(configs, problem, device: str, repeats: int, n1: int = 20, n2: int = 120) -> dict:
    """Per-step time of the batched engine against four bare bmm of its shapes (same device, dtype),
    each (T(n₂) − T(n₁))/(n₂ − n₁) of the minimum times over ``repeats``, engine and bmm measured in
    turn so that a busy spell of a shared machine hits both alike."""
    R, H, d = len(configs), configs[0].hidden, len(problem.lam)
    dt = torch.float32 if configs[0].dtype == "float32" else torch.float64
    g = torch.Generator(device).manual_seed(0)
    A1, B2 = (torch.randn(R, H, d, generator=g, device=device, dtype=dt) for _ in range(2))
    P, Q = torch.empty(R, H, H, device=device, dtype=dt), torch.empty(R, H, H, device=device, dtype=dt)
    N1, N2 = torch.empty_like(A1), torch.empty_like(B2)

    def bare(steps):
        for _ in range(steps):
            torch.bmm(B2, B2.mT, out=P)
            torch.bmm(A1, A1.mT, out=Q)
            torch.bmm(P, A1, out=N1)
            torch.bmm(Q, B2, out=N2)

    def engine(epochs):
        linear_batched.train_batch([dataclasses.replace(c, epochs=epochs, log_every=epochs) for c in configs], problem)

    bare(3)
    best = {}
    for _ in range(repeats):
        for name, fn, steps in [("engine2", engine, n2), ("bmm2", bare, n2), ("engine1", engine, n1),
                                ("bmm1", bare, n1)]:
            best[name] = min(best.get(name, np.inf), timed(lambda: fn(steps), device))
    engine_step = (best["engine2"] - best["engine1"]) / (n2 - n1)
    bmm_step = (best["bmm2"] - best["bmm1"]) / (n2 - n1)
    flops = 8.0 * R * d * H * H
    return {"runs": R, "engine_step_ms": 1e3 * engine_step, "bmm_step_ms": 1e3 * bmm_step,
            "engine_gflops": flops / engine_step / 1e9, "bmm_gflops": flops / bmm_step / 1e9,
            "ratio": bmm_step / engine_step}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--epochs", type=int, default=800)
    ap.add_argument("--modes", nargs="*", default=["one", "bundled", "batched"],
                    choices=["one", "bundled", "batched"], help="none: only the GEMM rate")
    ap.add_argument("--processes", type=int, default=3, help="fresh processes started (one run each)")
    ap.add_argument("--max-bundled", type=int, default=20, help="runs timed in the bundled loop")
    ap.add_argument("--gemm-runs", type=int, default=None, help="R of the GEMM ratio (default: the largest --runs)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--spectrum", default=None, help="a spectrum file (default: results/spectra/mnist_n50000.nc)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lam, V, source = load_spectrum(args.spectrum)
    problem = training.Problem(lam, V)
    out = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else cpu_model(),
           "load_average": os.getloadavg(), "spectrum": source, "lambda_1": float(lam[0]),
           "hidden": 64, "epochs": args.epochs, "dtype": "float32", "sweep": []}
    print(f"bench_sweep on {args.device} ({out['machine']}, {out['threads']} threads, load {out['load_average']}); "
          f"MNIST spectrum ({source}), H = 64, {args.epochs} epochs, float32")
    warm = sweep(2, 2, args.device)  # first calls pay for lazy imports and kernel set-up: not timed
    linear.train(warm[0], problem)
    linear_batched.train_batch(warm, problem)
    print(f"{'runs':>6} {'mode':>8} {'seconds':>10} {'runs/s':>10}  note")
    largest = sweep(max(args.runs), args.epochs, args.device)
    per_run = {}  # the one-at-a-time and bundled modes, measured once on the first runs of the sweep
    if "one" in args.modes:
        per_run["one"] = one_at_a_time(largest, problem, args.processes)
    if "bundled" in args.modes:
        per_run["bundled"] = bundled(largest[:args.max_bundled], problem, args.device)
    for R in args.runs:
        configs = largest[:R]
        for mode in args.modes:
            if mode == "batched":
                row, note = batched(configs, problem, args.device), ""
            else:
                measured = per_run[mode]["measured_runs"]
                row = dict(per_run[mode], seconds=per_run[mode]["per_run_s"] * R, extrapolated=measured < R)
                unit = "processes" if mode == "one" else "runs"
                note = (f"{row['per_run_s']:.2f} s per process ({row['startup_s']:.2f} s start-up), " if mode == "one"
                        else f"{row['per_run_s']:.3f} s per run, ")
                note += (f"extrapolated from {measured} {unit}" if measured < R else
                         f"mean of {measured} {unit}" if measured > R else f"measured ({measured} {unit})")
            row.update(runs=R, mode=mode, runs_per_s=R / row["seconds"])
            out["sweep"].append(row)
            print(f"{R:>6} {mode:>8} {row['seconds']:>10.2f} {row['runs_per_s']:>10.3g}  {note}", flush=True)
    gemm = gemm_ratio(sweep(args.gemm_runs or max(args.runs), 1, args.device), problem, args.device, args.repeats)
    out["gemm"] = gemm
    print(f"GEMM rate at R = {gemm['runs']}: batched engine {gemm['engine_gflops']:.1f} GFLOP/s "
          f"({gemm['engine_step_ms']:.3f} ms/step), bare torch.bmm {gemm['bmm_gflops']:.1f} GFLOP/s "
          f"({gemm['bmm_step_ms']:.3f} ms/step): ratio {100 * gemm['ratio']:.0f} % (target >= 70 %)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
