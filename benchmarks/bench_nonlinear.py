"""Benchmark of the nonlinear (Fig. 6) trainer: overhead vs a bare torch loop, tracking cost.

Random data of MNIST size (N=50 000, d=784, H=256), uniform in [0, 1] like /255 pixels, float32,
ReLU, the paper's DAE condition (noise std 2, fresh every step) with weight decay 0.0045 also on
(the most expensive step: noise generation plus decay). Per-epoch times are differences of two
run lengths (T(n₂) − T(n₁))/(n₂ − n₁) so that set-up cancels; each is the minimum over
``--repeats`` (the CPU may be shared). Measured:

* bare: a plain torch loop written below (same model, data, noise, optimiser);
* trainer: :func:`daedyn.nonlinear.train` recording only its first and last epoch;
* one record: the trainer's own tracker (``nonlinear._Tracker.record``: clean forward pass, both
  mappings, losses, norms) timed directly, min over ``--repeats`` × 3 calls; the overhead at the
  paper's ``log_every`` = 10 is that cost / (10 × trainer epoch time). (A difference of tracked and
  untracked runs is too noisy on a shared CPU: ±0.5 s per epoch.)

From these it estimates the CPU time of one 2000-epoch paper-scale run and of the whole Fig. 6
MNIST (3 runs). ``--reduced N EPOCHS`` also times three whole runs (AE, WDAE, DAE) at a reduced
scale with tracking every 10 epochs.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_nonlinear.py --device cpu
    PYTHONPATH=src .venv/bin/python benchmarks/bench_nonlinear.py --device cpu --reduced 2000 2000
    PYTHONPATH=src .venv/bin/python benchmarks/bench_nonlinear.py --device cuda --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from bench_linear import cpu_model, per_epoch, timed  # the shared timing helpers (same folder)
from daedyn import nonlinear, spectrum
from daedyn.runconfig import NonlinearConfig
from daedyn.training import Problem, resolve_device

PAPER = dict(lr=0.9, epochs=2000, log_every=10, noise_std=2.0, weight_decay=0.0045, init_std=1e-3)
RUNS = {"ae": (0.0, 0.0), "wdae": (0.0, 0.0045), "dae": (2.0, 0.0)}


def bare_loop(X, hidden, epochs, *, lr, noise_std, weight_decay, init_std, seed=0):
    """The plain torch training loop the trainer is compared with."""
    n, d = X.shape
    g = torch.Generator("cpu").manual_seed(seed)
    W1 = (torch.randn(hidden, d, generator=g, dtype=torch.float64) * init_std).to(X).requires_grad_()
    W2 = (torch.randn(d, hidden, generator=g, dtype=torch.float64) * init_std).to(X).requires_grad_()
    opt = torch.optim.SGD([W1, W2], lr=lr, weight_decay=weight_decay)
    noise = torch.Generator(X.device).manual_seed(seed + 1)
    for _ in range(epochs):
        x_noisy = X + noise_std * torch.randn(X.shape, generator=noise, device=X.device, dtype=X.dtype)
        loss = F.mse_loss(torch.relu(x_noisy @ W1.T) @ W2.T, X)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def record_time(X, lam, V, hidden, repeats, device) -> float:
    """min time of one tracking record (the trainer's tracker, on a noisy output of random weights)."""
    k = 4
    Vk = torch.as_tensor(V[:, :k], dtype=X.dtype, device=device).contiguous()
    tracker = nonlinear._Tracker(X, Vk, torch.as_tensor(lam[:k], device=device), repeats, "relu")
    g = torch.Generator("cpu").manual_seed(0)
    W1 = (torch.randn(hidden, X.shape[1], generator=g) * 0.05).to(X)
    W2 = (torch.randn(X.shape[1], hidden, generator=g) * 0.05).to(X)
    xhat = nonlinear.forward(W1, W2, X + 2.0 * torch.randn(X.shape, generator=g).to(X))
    loss = F.mse_loss(xhat, X)
    return min(timed(lambda: tracker.record(r, W1, W2, xhat, loss), device) for r in range(repeats))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=784)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, nargs=2, default=[2, 8], metavar=("N1", "N2"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reduced", type=int, nargs=2, default=None, metavar=("N", "EPOCHS"),
                    help="also time three whole runs (AE, WDAE, DAE) of N samples and EPOCHS epochs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    X = torch.rand(args.n, args.d, generator=torch.Generator().manual_seed(0)).to(device)
    lam, V = spectrum.eigh_descending(spectrum.second_moment(X)[0])
    hp = {k: PAPER[k] for k in ("lr", "noise_std", "weight_decay", "init_std")}
    print(f"device {device} ({cpu_model() if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    print(f"N={args.n} d={args.d} H={args.hidden}, relu, float32, lr={hp['lr']}, noise std={hp['noise_std']}, "
          f"weight decay={hp['weight_decay']}; eta_eff*lam_1 = {2 * hp['lr'] / args.d * lam[0]:.3f}")

    def trainer(epochs, log_every):
        config = NonlinearConfig.make(hidden=args.hidden, epochs=epochs, log_every=log_every, device=device.type,
                                      dtype="float32", **hp)
        nonlinear.train(config, Problem(lam, V, X))

    n1, n2 = args.epochs
    res = {"device": str(device), "n": args.n, "d": args.d, "hidden": args.hidden,
           "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()[0]}
    res["bare_s_per_epoch"] = per_epoch(lambda e: bare_loop(X, args.hidden, e, **hp), n1, n2, args.repeats, device)
    res["trainer_s_per_epoch"] = per_epoch(lambda e: trainer(e, 10**9), n1, n2, args.repeats, device)
    res["ratio_trainer_bare"] = res["trainer_s_per_epoch"] / res["bare_s_per_epoch"]
    res["record_s"] = record_time(X, lam, V, args.hidden, 3 * args.repeats, device)
    res["tracking_overhead_log10"] = res["record_s"] / (PAPER["log_every"] * res["trainer_s_per_epoch"])
    n_rec = PAPER["epochs"] // PAPER["log_every"] + 1
    res["paper_run_s"] = PAPER["epochs"] * res["trainer_s_per_epoch"] + n_rec * res["record_s"]
    res["paper_fig6_s"] = 3 * res["paper_run_s"]
    res["loadavg_end"] = os.getloadavg()[0]
    print(f"bare loop        {1e3 * res['bare_s_per_epoch']:8.1f} ms/epoch")
    print(f"trainer          {1e3 * res['trainer_s_per_epoch']:8.1f} ms/epoch  "
          f"ratio {res['ratio_trainer_bare']:.3f} (target <= 1.3)")
    print(f"one record       {1e3 * res['record_s']:8.1f} ms  overhead at log_every=10: "
          f"{100 * res['tracking_overhead_log10']:.1f} % (target < 10 %)")
    print(f"estimate: one 2000-epoch run {res['paper_run_s'] / 60:.1f} min, Fig. 6 (3 runs) "
          f"{res['paper_fig6_s'] / 3600:.2f} h")

    if args.reduced:
        n, epochs = args.reduced
        Xr = X[:n]
        lam_r, V_r = spectrum.eigh_descending(spectrum.second_moment(Xr)[0])
        res["reduced"] = {"n": n, "epochs": epochs, "runs_s": {}}
        for run, (sd, wd) in RUNS.items():
            config = NonlinearConfig.make(hidden=args.hidden, lr=PAPER["lr"], epochs=epochs, noise_std=sd,
                                          weight_decay=wd, init_std=PAPER["init_std"], log_every=PAPER["log_every"],
                                          device=device.type)
            t = timed(lambda: nonlinear.train(config, Problem(lam_r, V_r, Xr)), device)
            res["reduced"]["runs_s"][run] = t
            print(f"reduced N={n}, {epochs} epochs, {run}: {t:.1f} s")
        print(f"reduced Fig. 6 (3 runs): {sum(res['reduced']['runs_s'].values()) / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
