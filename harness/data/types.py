"""The one sample type every dataset yields, and batching.

Coordinate frames: ``Sample`` tensors are in the *input frame* (after resize / flip, before
padding); ``orig_size`` is the size on disk.  ``collate`` pads to a multiple of ``size_divisor``
(zeros right / bottom) and normalises with the ImageNet mean / std.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from methods.base import Targets

PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
IGNORE_LABEL = 255


@dataclass
class Sample:
    """One image with its instance annotations.

    Attributes:
        image: Tensor[3, H, W], uint8, RGB (grayscale images are converted to 3 channels).
        masks: Tensor[N, H, W], bool; crowd regions included (see ``iscrowd``).
        labels: Tensor[N], int64, contiguous 0-based thing labels.
        boxes: Tensor[N, 4], float32, x1y1x2y2 in input pixels.
        iscrowd: Tensor[N], bool; crowd annotations are ignore regions, never training targets.
        image_id: the dataset's image id (COCO ``image_id``).
        orig_size: (H0, W0) of the image on disk.
        sem_seg: optional Tensor[H, W], int64 semantic labels (things 0..T-1 in thing-label order,
            stuff T..T+S-1, ``IGNORE_LABEL`` = 255), only for datasets with stuff annotations.
    """

    image: Tensor
    masks: Tensor
    labels: Tensor
    boxes: Tensor
    iscrowd: Tensor
    image_id: int
    orig_size: tuple[int, int]
    sem_seg: Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.image.shape[-2]), int(self.image.shape[-1]))

    def targets(self) -> Targets:
        """Training targets: crowd annotations dropped."""
        keep = ~self.iscrowd
        return Targets(masks=self.masks[keep], labels=self.labels[keep], boxes=self.boxes[keep])


@dataclass
class Batch:
    """A padded, normalised batch.

    Attributes:
        images: Tensor[B, 3, H_pad, W_pad], float32, (x/255 - mean) / std, zero-padded.
        targets: one ``Targets`` per image (crowds dropped), un-padded input frame.
        image_sizes: (h, w) per image in the input frame.
        orig_sizes: (H0, W0) per image on disk.
        image_ids: dataset image ids.
        sem_segs: per image Tensor[h, w] int64 or None.
    """

    images: Tensor
    targets: list[Targets]
    image_sizes: list[tuple[int, int]]
    orig_sizes: list[tuple[int, int]]
    image_ids: list[int]
    sem_segs: list[Tensor | None] = field(default_factory=list)

    def to(self, device) -> Batch:
        return Batch(self.images.to(device, non_blocking=True), [t.to(device) for t in self.targets],
                     self.image_sizes, self.orig_sizes, self.image_ids,
                     [s.to(device) if s is not None else None for s in self.sem_segs])


def normalize(images_uint8: Tensor) -> Tensor:
    """uint8 [..., 3, H, W] -> float32 normalised with the ImageNet mean / std."""
    mean = torch.tensor(PIXEL_MEAN, device=images_uint8.device).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=images_uint8.device).view(3, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


def pad_images(images: list[Tensor], size_divisor: int = 32) -> Tensor:
    """Stack [3, h, w] tensors into [B, 3, H, W], zero padded right/bottom to a multiple of size_divisor."""
    h = max(int(im.shape[-2]) for im in images)
    w = max(int(im.shape[-1]) for im in images)
    if size_divisor > 1:
        h = (h + size_divisor - 1) // size_divisor * size_divisor
        w = (w + size_divisor - 1) // size_divisor * size_divisor
    out = images[0].new_zeros((len(images), 3, h, w))
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = im
    return out


def collate(samples: list[Sample], size_divisor: int = 32) -> Batch:
    """Samples -> Batch (normalise each image, then pad)."""
    images = pad_images([normalize(s.image) for s in samples], size_divisor)
    return Batch(
        images=images,
        targets=[s.targets() for s in samples],
        image_sizes=[s.size for s in samples],
        orig_sizes=[s.orig_size for s in samples],
        image_ids=[s.image_id for s in samples],
        sem_segs=[s.sem_seg for s in samples],
    )
