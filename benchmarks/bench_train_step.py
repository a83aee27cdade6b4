"""Cost of target assignment + losses in a training step, as a ratio measured in one run.

    python benchmarks/bench_train_step.py [--method solov2] [--profile quick] [--repeats 20]

Times, on the same batch (quick-profile images, batch size of the profile), alternately:
  * full:  ``method(images, targets)`` (network + target assignment + losses) + backward + SGD step;
  * bare:  ``method.forward_test(images)`` (the network alone) + backward of a trivial loss (the sum of
    every output tensor) + SGD step.
(full - bare) / full is the share of the step spent on target assignment and losses; the goal for
SOLOv2 at the quick profile is at most 30 %.  Medians over ``--repeats`` interleaved repetitions.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from _setup import training_setup  # benchmarks/ is the script's own folder, first on sys.path

import methods
from harness.data.types import collate


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="solov2")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    cfg, ds, model, opt = training_setup(args.method, args.profile)
    batch = collate([ds[i] for i in range(cfg.train.batch_size)], cfg.data.size_divisor)

    def full():
        losses = model(batch.images, batch.targets)
        loss = methods.sum_losses(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def bare():
        raw = model.forward_test(batch.images)
        loss = sum(t.float().sum() for t in _tensors(raw) if t.requires_grad) * 0.0
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        full()
        bare()
    tf, tb = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        full()
        t1 = time.perf_counter()
        bare()
        t2 = time.perf_counter()
        tf.append(t1 - t0)
        tb.append(t2 - t1)
    mf, mb = statistics.median(tf) * 1e3, statistics.median(tb) * 1e3
    share = (mf - mb) / mf
    print(f"{args.method} @ {args.profile}, batch {cfg.train.batch_size}, {torch.get_num_threads()} threads")
    print(f"full training step   {mf:8.1f} ms (median of {args.repeats})")
    print(f"bare fwd+bwd+step    {mb:8.1f} ms")
    print(f"assignment + losses  {share * 100:6.1f} % of the step (goal <= 30 %)")


if __name__ == "__main__":
    main()
