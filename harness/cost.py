"""Training cost: FLOPs of one training iteration (forward + backward) of a method at a profile (issue 13).

A comparison at equal iterations is not one at equal compute: a Mask R-CNN iteration (RPN, RoI box and mask
heads on sampled proposals) costs several single-stage iterations.  ``train_gflops_per_iter(cfg)`` counts the
FLOPs of one forward + backward on the first ``train.batch_size`` training images with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; element-wise work is not
counted), so ``GFLOPs/iter x iterations`` is a run's training compute.  ``equal_compute_iters`` gives the
iterations at which one method's run costs what another's does.
"""
from __future__ import annotations

from functools import lru_cache

import torch

import methods
from harness.config import ExperimentConfig


def _key(cfg: ExperimentConfig) -> str:
    import dataclasses
    import json
    return json.dumps({"method": dataclasses.asdict(cfg.method), "data": dataclasses.asdict(cfg.data),
                       "batch": cfg.train.batch_size}, sort_keys=True, default=str)


@lru_cache(maxsize=64)
def _gflops(key: str, cfg: ExperimentConfig) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from harness.data.types import collate
    from harness.pipeline import build_split
    from harness.train import resolve_num_classes
    ds = build_split(cfg, "train")
    cfg = resolve_num_classes(cfg, ds)
    torch.manual_seed(0)
    model = methods.build_method(cfg.method).train()
    batch = collate([ds[i] for i in range(min(cfg.train.batch_size, len(ds)))], cfg.data.size_divisor)
    kwargs = {"sem_segs": batch.sem_segs} if getattr(model, "uses_sem_seg", False) else {}
    with FlopCounterMode(display=False) as counter:
        loss = methods.sum_losses(model(batch.images, batch.targets, **kwargs))
        loss.backward()
    return counter.get_total_flops() / 1e9


def train_gflops_per_iter(cfg: ExperimentConfig) -> float:
    """GFLOPs of one training iteration (forward + backward, ``cfg.train.batch_size`` images) of ``cfg``.

    Kept on disk for the next process (``harness.memo.disk_memo``, keyed by the config, the data files and the
    code)."""
    from harness.memo import data_fingerprint, disk_memo
    key = _key(cfg)
    return disk_memo("train_gflops", f"{key}\n{data_fingerprint(cfg.data)}", lambda: _gflops(key, cfg),
                     cfg.data.cache_dir)


def equal_compute_iters(cfg: ExperimentConfig, reference: ExperimentConfig) -> int:
    """Iterations of ``cfg`` whose training FLOPs equal ``reference.train.max_iter`` iterations of ``reference``."""
    return max(1, round(reference.train.max_iter * train_gflops_per_iter(reference) / train_gflops_per_iter(cfg)))
