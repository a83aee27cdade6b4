"""Sample transforms through ``torchvision.transforms.v2`` (``tv_tensors.Image`` / ``Mask``).

One pure function per step, ``Sample -> Sample``; boxes are always recomputed from the
transformed masks (``torchvision.ops.masks_to_boxes``), and instances whose mask becomes empty
(tiny objects shrunk away by a resize) are dropped.  Randomness (multi-scale size, flip) is drawn
from torch's global generator in the callables ``TrainTransform`` / ``EvalTransform``, so DataLoader
workers get distinct, reproducible streams.  Padding to ``size_divisor`` happens later in
``harness.data.types.collate``.

Resizing follows detectron2's ``ResizeShortestEdge``: scale = short_side / min(H, W), reduced so
that the long side is at most ``max_size``; new size = round(H * scale), round(W * scale).  Images
use bilinear interpolation with antialiasing, masks and ``sem_seg`` nearest neighbour: "nearest-exact" by
default (``DataConfig.mask_resize``; the input pixel under each output pixel's centre, aligned with the image),
or torch's legacy "nearest" (torchvision's ``Mask`` default, shifted by about (scale - 1) / 2 px).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from harness.data.types import Sample


def boxes_from_masks(masks: Tensor) -> Tensor:
    """Tight boxes of masks.

    Args:
        masks: Tensor[N, H, W], bool; every mask non-empty.

    Returns:
        Tensor[N, 4], float32, x1y1x2y2 in pixels with (x2, y2) = last pixel index + 1, so
        ``x2 - x1`` is the mask's width in pixels (the COCO ``bbox`` convention).
    """
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    boxes = masks_to_boxes(masks).float()
    boxes[:, 2:] += 1.0
    return boxes


def short_side_size(height: int, width: int, short_side: int, max_size: int) -> tuple[int, int]:
    """Output (h, w) for resizing the short side to ``short_side`` with the long side capped at ``max_size``.

    Raises:
        ValueError: non-positive sizes.
    """
    if min(height, width, short_side, max_size) <= 0:
        raise ValueError(f"sizes must be positive: image {height}x{width}, short_side {short_side}, "
                         f"max_size {max_size}")
    scale = short_side / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def _drop_empty(sample: Sample) -> Sample:
    keep = sample.masks.flatten(1).any(dim=1) if sample.masks.shape[0] else torch.zeros(0, dtype=torch.bool)
    if bool(keep.all()):
        return replace(sample, boxes=boxes_from_masks(sample.masks))
    masks = sample.masks[keep]
    return replace(sample, masks=masks, labels=sample.labels[keep], iscrowd=sample.iscrowd[keep],
                   boxes=boxes_from_masks(masks))


MASK_MODES = {"nearest-exact": InterpolationMode.NEAREST_EXACT, "nearest": InterpolationMode.NEAREST}


def resize(sample: Sample, size: tuple[int, int], mask_mode: str = "nearest-exact") -> Sample:
    """Resize image (bilinear, antialiased), masks and ``sem_seg`` (``mask_mode``: "nearest-exact" or
    torch's legacy "nearest") to ``size`` = (h, w).

    Raises:
        KeyError: unknown ``mask_mode``.
    """
    if tuple(size) == sample.size:
        return sample
    mode = MASK_MODES[mask_mode]
    size_list = [int(size[0]), int(size[1])]
    image = F.resize(tv_tensors.Image(sample.image), size_list, antialias=True).as_subclass(Tensor)
    masks = F.resize(tv_tensors.Mask(sample.masks), size_list, interpolation=mode).as_subclass(Tensor)
    sem_seg = sample.sem_seg
    if sem_seg is not None:
        sem_seg = F.resize(sem_seg[None], size_list, interpolation=mode)[0]
    return _drop_empty(replace(sample, image=image, masks=masks, sem_seg=sem_seg))


def resize_short_side(sample: Sample, short_side: int, max_size: int, mask_mode: str = "nearest-exact") -> Sample:
    """Resize so that the short side is ``short_side`` px and the long side at most ``max_size`` px."""
    return resize(sample, short_side_size(*sample.size, short_side, max_size), mask_mode)


def hflip(sample: Sample) -> Sample:
    """Mirror image, masks and ``sem_seg`` left-right (x -> W - x); boxes recomputed."""
    image = F.horizontal_flip(tv_tensors.Image(sample.image)).as_subclass(Tensor)
    masks = F.horizontal_flip(tv_tensors.Mask(sample.masks)).as_subclass(Tensor)
    sem_seg = sample.sem_seg.flip(-1) if sample.sem_seg is not None else None
    return replace(sample, image=image, masks=masks, sem_seg=sem_seg, boxes=boxes_from_masks(masks))


class TrainTransform:
    """Training augmentation: random short side from ``train_short_sides`` (capped by ``max_size``),
    then a horizontal flip with probability ``flip_prob``.
    """

    def __init__(self, train_short_sides: Sequence[int], max_size: int, flip_prob: float,
                 mask_mode: str = "nearest-exact") -> None:
        if not train_short_sides:
            raise ValueError("train_short_sides must not be empty")
        self.train_short_sides = tuple(int(s) for s in train_short_sides)
        self.max_size = int(max_size)
        self.flip_prob = float(flip_prob)
        self.mask_mode = mask_mode

    def __call__(self, sample: Sample) -> Sample:
        i = int(torch.randint(len(self.train_short_sides), ()).item())
        sample = resize_short_side(sample, self.train_short_sides[i], self.max_size, self.mask_mode)
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            sample = hflip(sample)
        return sample


class EvalTransform:
    """Evaluation: resize the short side to ``test_short_side`` (capped by ``max_size``)."""

    def __init__(self, test_short_side: int, max_size: int, mask_mode: str = "nearest-exact") -> None:
        self.test_short_side = int(test_short_side)
        self.max_size = int(max_size)
        self.mask_mode = mask_mode

    def __call__(self, sample: Sample) -> Sample:
        return resize_short_side(sample, self.test_short_side, self.max_size, self.mask_mode)


def build_transform(data_cfg, train: bool) -> TrainTransform | EvalTransform:
    """The transform of ``harness.config.DataConfig`` for training (``train=True``) or evaluation."""
    mode = getattr(data_cfg, "mask_resize", "nearest-exact")
    if train:
        return TrainTransform(data_cfg.train_short_sides, data_cfg.max_size, data_cfg.flip_prob, mode)
    return EvalTransform(data_cfg.test_short_side, data_cfg.max_size, mode)
