"""Matrix NMS vs greedy mask NMS on the same masks, as a ratio measured in one run.

    python benchmarks/bench_nms.py [--num-masks 500] [--size 64] [--repeats 30] [--device cpu|cuda]

The masks imitate a SOLO candidate set: ``num_masks / 8`` random rectangles / ellipses ("objects"),
each predicted about 8 times with jittered position (~0.3 half-size) and size (~15 %) (neighbouring grid cells predict
near-duplicates), labels shared by an object's duplicates (5 classes), scores random and sorted.
Both variants get the same sorted inputs and include their own IoU computation:
``matrix_nms(masks, labels, scores)`` (gaussian, sigma 2) and ``mask_nms(masks, labels, scores, 0.5)``.
Medians over ``--repeats`` interleaved repetitions after 3 warm-up calls; CUDA is synchronised around
every call.  Prints both times and the ratio matrix / greedy (< 1: Matrix NMS is faster).
On a CPU the ratio is only meaningful on an idle machine: with other processes on the cores, each of Matrix NMS's
per-class parallel regions waits for its slowest thread and the ratio swings (0.8-1.6 at 2 threads beside two
training jobs on 2 cores, 0.23 at 1 thread there); a warning is printed when the load exceeds the cores.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from methods.postprocess import mask_nms, matrix_nms


def make_masks(num_masks: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> masks Tensor[N, size, size] bool, labels Tensor[N] int64, scores Tensor[N] sorted descending."""
    g = torch.Generator().manual_seed(seed)
    num_objects = max(1, num_masks // 8)
    obj = torch.rand(num_objects, 4, generator=g)  # cx, cy, half-w, half-h in units of the canvas
    obj[:, 2:] = 0.05 + 0.2 * obj[:, 2:]
    owner = torch.randint(0, num_objects, (num_masks,), generator=g)
    p = obj[owner].clone()  # (N, 4)
    p[:, :2] += 0.3 * p[:, 2:] * torch.randn(num_masks, 2, generator=g)  # centre shift ~0.3 half-size
    p[:, 2:] *= 1 + 0.15 * torch.randn(num_masks, 2, generator=g).clamp(-2, 2)  # size jitter 15 %
    is_ellipse = torch.rand(num_masks, generator=g) < 0.5
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    dx = (xs[None] - p[:, 0, None, None]).abs() / p[:, 2, None, None]  # (N, size, size)
    dy = (ys[None] - p[:, 1, None, None]).abs() / p[:, 3, None, None]
    masks = torch.where(is_ellipse[:, None, None], dx**2 + dy**2 <= 1, (dx <= 1) & (dy <= 1))
    labels = torch.randint(0, 5, (num_objects,), generator=g)[owner]
    scores = torch.rand(num_masks, generator=g).sort(descending=True).values
    return masks, labels, scores


def _time(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-masks", type=int, default=500)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        from harness.cpu import warn_if_loaded
        warn_if_loaded("bench_nms")
    masks, labels, scores = (t.to(device) for t in make_masks(args.num_masks, args.size))
    run_matrix = lambda: matrix_nms(masks, labels, scores, kernel="gaussian", sigma=2.0)  # noqa: E731
    run_greedy = lambda: mask_nms(masks, labels, scores, iou_thr=0.5)  # noqa: E731
    for _ in range(3):
        run_matrix(), run_greedy()
    t_matrix, t_greedy = [], []
    for _ in range(args.repeats):
        t_matrix.append(_time(run_matrix, device))
        t_greedy.append(_time(run_greedy, device))
    m, g = statistics.median(t_matrix), statistics.median(t_greedy)
    kept = int(run_greedy().numel())
    decayed = int((run_matrix() < 0.05).sum())
    print(f"device={device} threads={torch.get_num_threads()} masks={args.num_masks}x{args.size}x{args.size} "
          f"repeats={args.repeats} (greedy keeps {kept}; matrix decays {decayed} below 0.05)")
    print(f"matrix_nms {m * 1e3:.2f} ms   mask_nms (greedy) {g * 1e3:.2f} ms   ratio matrix/greedy {m / g:.3f}")


if __name__ == "__main__":
    main()
