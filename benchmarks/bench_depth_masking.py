"""Per-epoch cost of the depth-L and masking engines at MNIST size (d = 784), with the exact
two-layer engine beside them.

Random data of MNIST size as in ``bench_linear.py`` (its ``problem``: N = 50 000, d = 784,
uniform in [0, 0.5]), float32. Each engine runs on the loop driver ``daedyn.training.drive``,
recording only at the first and last epoch; a per-epoch time is (T(n₂) − T(n₁))/(n₂ − n₁) (the
records cancel), the minimum over ``--repeats``, and a record is timed on its own (the minimum
over ``--repeats``). The sampled masking engine runs full batch
on the first ``--sampled-n`` images (it costs O(N·d·H) per epoch).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_depth_masking.py --hidden 64 256 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from bench_linear import cpu_model, per_epoch, problem, timed  # the shared timing helpers
from daedyn import depth, masking
from daedyn.linear import train_exact
from daedyn.runconfig import DepthConfig, MaskingConfig
from daedyn.training import drive, resolve_device


def engines(X, lam, V, hidden, device, sampled_n):
    """name -> a function that builds the engine for ``epochs`` epochs recorded every ``log_every``."""
    diag = (X.double() ** 2).mean(0).numpy()
    # lr far below the stability limits: the benchmark times steps, not learning
    common = dict(hidden=hidden, lr=1e-4, dtype="float32", device=str(device))

    def deep(L):
        return lambda epochs, log_every: depth.DepthEngine(DepthConfig.make(
            depth=L, eps=0.5, init="aligned", w0=0.2, epochs=epochs, log_every=log_every, **common), lam, V)

    def masked(noise, engine="marginal"):
        def build(epochs, log_every):
            cfg = MaskingConfig.make(q=0.7, noise=noise, engine=engine, epochs=epochs, log_every=log_every,
                                     **common)
            if engine == "sampled":
                return masking.SampledMaskingEngine(cfg, X[:sampled_n], lam, V, diag)
            return masking.MarginalMaskingEngine(cfg, lam, V, diag)
        return build

    out = {f"depth L={L}": deep(L) for L in (2, 3, 4)}
    out["masking marginal"] = masked("masking")
    out["masking per-mode noise"] = masked("per_mode")
    out[f"masking sampled N={sampled_n}"] = masked("masking", "sampled")
    return out


def bench(name, build, device, args):
    sampled = "sampled" in name
    n1, n2 = (1, 1 + args.sampled_epochs) if sampled else (10, 10 + args.epochs)

    def run(epochs):
        e = build(epochs, epochs)
        drive(e, e.config)

    step = per_epoch(run, n1, n2, args.repeats, device)
    e = build(args.repeats - 1, 1)
    record = min(timed(lambda r=r: e.record(r, 0), device) for r in range(args.repeats))
    return dict(engine=name, s_per_epoch=step, s_per_record=record)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="auto | cpu | cuda")
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--epochs", type=int, default=50, help="n2 - n1 of the eigenbasis engines")
    ap.add_argument("--sampled-epochs", type=int, default=3)
    ap.add_argument("--sampled-n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    X, lam, V = problem(50_000, 784)
    info = dict(device=str(device), cpu=cpu_model(), cpu_count=os.cpu_count(), torch=torch.__version__)
    print(json.dumps(info), flush=True)
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for hidden in args.hidden:
            print(f"-- H={hidden}, {threads} thread(s); load average {os.getloadavg()[0]:.1f}", flush=True)
            rows = [bench(n, b, device, args) for n, b in engines(X, lam, V, hidden, device,
                                                                  args.sampled_n).items()]
            ex = per_epoch(lambda n: train_exact(lam, V, hidden=hidden, lr=0.01, eps=0.5, epochs=n,
                                                 log_every=max(n, 1), dtype="float32", device=str(device)),
                           10, 10 + args.epochs, args.repeats, device)
            rows.append(dict(engine="two-layer train_exact", s_per_epoch=ex, s_per_record=float("nan")))
            for r in rows:
                print(f"   {r['engine']:28s} {r['s_per_epoch'] * 1e3:9.2f} ms/epoch, "
                      f"one record {r['s_per_record'] * 1e3:7.2f} ms", flush=True)
                results.append(dict(r, hidden=hidden, threads=threads, load=os.getloadavg()[0]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info, results=results), f, indent=1)


if __name__ == "__main__":
    main()
