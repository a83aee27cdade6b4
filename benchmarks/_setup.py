"""What the training benchmarks share: a method at a profile, ready to take SGD steps on its training split."""
from __future__ import annotations

import torch

import methods
from harness.config import make_config
from harness.pipeline import build_split
from harness.train import resolve_num_classes


def training_setup(method: str, profile: str):
    """(cfg, train dataset, model in train mode, SGD optimizer) for ``method`` at ``profile`` on the CPU, seed 0.

    The lr is tiny (1e-4): the benchmarks time steps, they do not train."""
    cfg = make_config(method, profile, overrides=["train.device=cpu"])
    ds = build_split(cfg, "train")
    cfg = resolve_num_classes(cfg, ds)
    torch.manual_seed(0)
    model = methods.build_method(cfg.method).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    return cfg, ds, model, opt
