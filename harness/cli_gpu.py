"""``python -m harness gpu-check`` arguments, registered without importing torch (``--help`` stays fast); the
command itself is ``harness.gpu_check.main``."""
from __future__ import annotations

import argparse


def _main(args) -> int:
    from harness.gpu_check import main
    return main(args)


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gpu-check", help="every method at the paper input size on CUDA: fp32 / fp16 timing, AMP "
                                         "training, memory, NMS, DDP; one table + results/gpu_check/ (skipped "
                                         "without CUDA)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--dry", action="store_true", help="tiny CPU self-test of every step (with --device cpu)")
    p.add_argument("--out", default=None, help="results root for the records (default: results; none in --dry)")
    p.add_argument("--methods", default=None, help="comma-separated methods (default: every trainable method)")
    p.add_argument("--num-images", type=int, default=100, help="images timed per precision (default 100)")
    p.add_argument("--train-iters", type=int, default=50, help="AMP training iterations (default 50)")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip what is left past this many seconds")
    p.set_defaults(func=_main)
    return p
