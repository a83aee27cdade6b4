"""Shared fixtures-as-functions of the method tests (CondInst, UniInst, Mask R-CNN)."""
from dataclasses import replace

import torch

from methods.base import Instances, Targets


def two_image_batch():
    """Two images of different sizes in one padded batch; the second has no instances."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 96)
    images[0, :, 50:, :] = 0
    images[0, :, :, 70:] = 0
    masks = torch.zeros(2, 50, 70, dtype=torch.bool)
    masks[0, 5:30, 10:40] = True
    masks[1, 20:45, 30:68] = True
    t0 = Targets(masks=masks, labels=torch.tensor([1, 2]), boxes=torch.tensor([[10.0, 5, 40, 30], [30, 20, 68, 45]]))
    t1 = Targets(masks=torch.zeros(0, 64, 96, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.long),
                 boxes=torch.zeros(0, 4))
    return images, [t0, t1], [(50, 70), (64, 96)], [(100, 140), (64, 96)]


def check_instances(out: list[Instances], orig_sizes, num_classes: int) -> None:
    assert len(out) == len(orig_sizes)
    for inst, (h, w) in zip(out, orig_sizes):
        assert inst.masks.dtype == torch.bool and tuple(inst.masks.shape[1:]) == (h, w)
        assert inst.scores.dtype == torch.float32 and inst.labels.dtype == torch.int64
        if len(inst):
            assert float(inst.scores.min()) >= 0 and float(inst.scores.max()) <= 1
            assert torch.all(inst.scores[:-1] >= inst.scores[1:])
            assert int(inst.labels.min()) >= 0 and int(inst.labels.max()) < num_classes


def predict_with(model, kind: str, images, sizes, orig, max_per_img: int = 20):
    """``model.predict`` with post-processing ``kind`` and ``max_per_img``; the config is restored afterwards."""
    model.eval()
    old = model.cfg
    model.cfg = replace(old, postprocess=kind, max_per_img=max_per_img)
    try:
        return model.predict(images, sizes, orig)
    finally:
        model.cfg = old
