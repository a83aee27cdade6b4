"""Seconds per training iteration of a method at a profile, and the schedule's projected training time.

    python benchmarks/bench_train_speed.py [--method solov2] [--profile real] [--threads 2] [--iters 18]

Runs ``--iters`` training iterations (batch of the profile, its training transform: multi-scale resize and flips,
data loading included, no DataLoader workers) on the CPU with ``--threads`` torch threads and prints the median
seconds per iteration over all but the first three, and that x ``train.max_iter`` in minutes: the training part of
one run, without the run-health evaluations, checkpoints and the final evaluation (a full run adds about 10 %).
Measure on an idle machine: a second process on the cores slows it (``uptime`` before and after).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _setup import training_setup  # benchmarks/ is the script's own folder, first on sys.path

import methods
from harness.data.types import collate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="solov2")
    ap.add_argument("--profile", default="real")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=18)
    args = ap.parse_args()
    if args.iters < 4:
        ap.error("--iters must be at least 4 (the first three are warm-up)")
    torch.set_num_threads(args.threads)
    cfg, ds, model, opt = training_setup(args.method, args.profile)
    b = cfg.train.batch_size
    load0 = os.getloadavg()[0]
    times = []
    for k in range(args.iters):
        t0 = time.perf_counter()
        batch = collate([ds[(k * b + i) % len(ds)] for i in range(b)], cfg.data.size_divisor)
        loss = methods.sum_losses(model(batch.images, batch.targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    s_it = statistics.median(times[3:])
    print(f"{args.method} @ {args.profile} ({cfg.data.dataset}), batch {b}, {args.threads} threads, "
          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{s_it:.2f} s / iteration (median of {len(times) - 3}, data + step) -> {cfg.train.max_iter} iterations "
          f"= {s_it * cfg.train.max_iter / 60:.1f} min of training")


if __name__ == "__main__":
    main()
