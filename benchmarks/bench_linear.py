"""Benchmark of the linear engines: data pass (O(N·d·H) per epoch) vs exact (O(d·H²) per epoch).

Random data of MNIST size (N=50 000, d=784, H=256) and CIFAR-10 size (N=30 000, d=3072,
H=512), uniform in [0, 0.5] so that λ₁ ≈ d/16 is of the order of the real data sets' (a
learning rate of 0.01 resp. 0.001 is stable). float32. Per-epoch times are differences of
two run lengths (T(n₂) − T(n₁))/(n₂ − n₁) with logging only at the first and last epoch, so
set-up and logging cancel; each is the minimum over ``--repeats`` (the CPU may be shared).
Optionally times a whole 5000-epoch exact run at MNIST size with tracking every 10 epochs
(the Fig. 5 budget).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_linear.py --device cpu
    PYTHONPATH=src .venv/bin/python benchmarks/bench_linear.py --device cuda --sizes mnist cifar
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from daedyn.linear import train_datapass, train_exact
from daedyn.training import resolve_device

SIZES = {"mnist": dict(n=50_000, d=784, hidden=256, lr=0.01),
         "cifar": dict(n=30_000, d=3072, hidden=512, lr=0.001)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def problem(n, d, seed=0):
    """Random data X (N×d, float32) and the spectrum (λ descending, V) of Σ = XᵀX/N."""
    X = torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) * 0.5
    sigma = (X.double().T @ X.double()) / n
    lam, V = torch.linalg.eigh(sigma)
    return X, lam.flip(0).numpy(), V.flip(1).numpy()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def per_epoch(fn, n1, n2, repeats, device) -> float:
    """min over repeats of (T(n2) − T(n1)) / (n2 − n1), logging only at the ends."""
    fn(n1)  # warm-up
    t1 = min(timed(lambda: fn(n1), device) for _ in range(repeats))
    t2 = min(timed(lambda: fn(n2), device) for _ in range(repeats))
    return max(t2 - t1, 0.0) / (n2 - n1)


def bench_size(name, device, args) -> dict:
    p = SIZES[name]
    X, lam, V = problem(p["n"], p["d"])
    common = dict(hidden=p["hidden"], lr=p["lr"], eps=0.5, device=device.type, dtype="float32")

    def datapass(epochs):
        train_datapass(X, lam=lam, V=V, epochs=epochs, log_every=max(epochs, 1), **common)

    def exact(epochs):
        train_exact(lam, V, epochs=epochs, log_every=max(epochs, 1), **common)

    dp = per_epoch(datapass, 1, 1 + args.datapass_epochs, args.repeats, device)
    ex = per_epoch(exact, 10, 10 + args.exact_epochs, args.repeats, device)
    # cost of one tracking record (u, losses, norms, QR + core SVD)
    tr = timed(lambda: train_exact(lam, V, epochs=100, log_every=1, **common), device)
    tr = max(tr - 100 * ex, 0.0) / 101
    out = dict(size=name, N=p["n"], d=p["d"], H=p["hidden"], datapass_s_per_epoch=dp,
               exact_s_per_epoch=ex, speedup=dp / ex if ex > 0 else float("inf"),
               tracking_s_per_record=tr)
    print(f"{name:5s} N={p['n']} d={p['d']} H={p['hidden']}: data pass {dp * 1e3:9.2f} ms/epoch, "
          f"exact {ex * 1e3:7.3f} ms/epoch, speed-up {out['speedup']:7.1f}x; "
          f"one tracking record {tr * 1e3:.2f} ms", flush=True)
    if name == "mnist" and args.full_run:
        t = timed(lambda: train_exact(lam, V, epochs=5000, log_every=10, **common), device)
        out["full_run_5000_epochs_log10_s"] = t
        print(f"      whole exact run, 5000 epochs, tracking every 10: {t:.2f} s", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--sizes", nargs="+", default=["mnist", "cifar"], choices=sorted(SIZES))
    ap.add_argument("--datapass-epochs", type=int, default=3)
    ap.add_argument("--exact-epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="torch.set_num_threads values to try in turn (0: torch's default)")
    ap.add_argument("--no-full-run", dest="full_run", action="store_false",
                    help="skip the whole 5000-epoch MNIST-size exact run")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    default_threads = torch.get_num_threads()
    info = dict(device=str(device), cpu=cpu_model(), cpu_count=os.cpu_count(),
                default_threads=default_threads, torch=torch.__version__,
                gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else "")
    print(json.dumps(info), flush=True)
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads or default_threads)
        print(f"-- {torch.get_num_threads()} CPU thread(s); load average before: "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        for name in args.sizes:
            results.append(dict(bench_size(name, device, args), threads=torch.get_num_threads(),
                                load_average_1min=os.getloadavg()[0]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info, results=results), f, indent=1)


if __name__ == "__main__":
    main()
