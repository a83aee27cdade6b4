"""Data types and the interface every method implements.

The interface follows torchvision's detection models and detectron2's meta-architectures:

* ``forward(images, targets) -> dict[str, Tensor]`` returns scalar ``loss_*`` terms (the harness sums
  every entry whose key starts with ``loss_``); keeping the loss inside ``forward`` lets DDP and AMP
  wrap it.
* ``predict(images, image_sizes, orig_sizes) -> list[Instances]`` runs inference.  It is split into
  ``forward_test`` (the network, returns raw head outputs) and ``postprocess`` (decoding + NMS
  variant + resizing to the original image size) so the timing protocol can time the stages apart.

Coordinate frames: the *input frame* is the padded batch tensor ``images`` (B, 3, H_pad, W_pad);
image ``i`` occupies ``[:image_sizes[i][0], :image_sizes[i][1]]`` of it (top-left aligned, zero
padding right/bottom).  The *original frame* is the image as stored on disk, ``orig_sizes[i]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Targets:
    """Training targets of one image, in the input frame (after resize/flip, before padding).

    Attributes:
        masks: Tensor[N, H, W], bool, H x W = the image's un-padded input size.
        labels: Tensor[N], int64, contiguous class indices in ``[0, num_classes)``.
        boxes: Tensor[N, 4], float32, x1y1x2y2 in input pixels (tight box of the mask).
    Crowd annotations are never in Targets (the data layer drops them from training targets).
    """

    masks: Tensor
    labels: Tensor
    boxes: Tensor

    def to(self, device: torch.device | str) -> Targets:
        return Targets(self.masks.to(device), self.labels.to(device), self.boxes.to(device))

    def __len__(self) -> int:
        return int(self.labels.numel())


@dataclass
class Instances:
    """Predicted instances of one image, in the original frame.

    Attributes:
        masks: Tensor[N, H0, W0], bool, at the original image size.
        scores: Tensor[N], float32 in [0, 1], sorted descending.
        labels: Tensor[N], int64, contiguous class indices.
    """

    masks: Tensor
    scores: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        n = self.scores.shape[0]
        if self.masks.shape[0] != n or self.labels.shape[0] != n:
            raise ValueError(
                f"Instances: masks {tuple(self.masks.shape)}, scores {tuple(self.scores.shape)} and "
                f"labels {tuple(self.labels.shape)} disagree on N"
            )

    def __len__(self) -> int:
        return int(self.scores.numel())

    @staticmethod
    def empty(height: int, width: int, device: torch.device | str = "cpu") -> Instances:
        return Instances(
            masks=torch.zeros((0, height, width), dtype=torch.bool, device=device),
            scores=torch.zeros((0,), dtype=torch.float32, device=device),
            labels=torch.zeros((0,), dtype=torch.int64, device=device),
        )

    def to(self, device: torch.device | str) -> Instances:
        return Instances(self.masks.to(device), self.scores.to(device), self.labels.to(device))


class Method(nn.Module):
    """Base class of every registered method.

    Subclasses set ``Config`` (a frozen dataclass derived from ``MethodConfig``) and implement
    ``forward``, ``forward_test`` and ``postprocess``.  They never log, time, or read files.
    """

    Config: type  # the method's config dataclass
    # how the method represents a mask between its targets and its output (``methods.oracle.OracleCeiling``):
    # "stride4" (binary targets at stride 4, bilinear upsampling), "roi28" (Mask R-CNN) or "exact" (oracles)
    mask_representation: str = "stride4"

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        # positives per ground-truth instance of the last training forward (run health, harness.health):
        # Tensor[G] int64 over the batch's instances in order, from the method's own assigner; None = unknown
        self.last_positives_per_gt: Tensor | None = None

    def forward(self, images: Tensor, targets: list[Targets]) -> dict[str, Tensor]:  # pragma: no cover
        """Training losses.

        Args:
            images: Tensor[B, 3, H, W], float32, normalised (see ``harness.data.transforms``), padded.
            targets: one ``Targets`` per image, in the input frame.
        Returns:
            dict of scalar tensors; keys starting with ``loss_`` are summed by the harness.
        """
        raise NotImplementedError

    def forward_test(self, images: Tensor):  # pragma: no cover
        """The network alone (no decoding, no NMS). Returns method-specific raw outputs."""
        raise NotImplementedError

    def postprocess(self, raw, image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:  # pragma: no cover
        """Decode raw outputs into Instances at the original size, applying ``cfg.postprocess``."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: list[tuple[int, int]],
                orig_sizes: list[tuple[int, int]] | None = None) -> list[Instances]:
        """Inference: ``postprocess(forward_test(images))``.

        Args:
            images: Tensor[B, 3, H_pad, W_pad], float32, normalised.
            image_sizes: (h, w) of each image inside the padded tensor (input frame).
            orig_sizes: (H0, W0) of each image on disk; defaults to ``image_sizes``.
        Returns:
            list of B ``Instances``, masks at ``orig_sizes``.
        """
        if orig_sizes is None:
            orig_sizes = list(image_sizes)
        return self.postprocess(self.forward_test(images), image_sizes, orig_sizes)


def sum_losses(losses: dict[str, Tensor]) -> Tensor:
    """Sum the ``loss_*`` entries of a method's loss dict."""
    terms = [v for k, v in losses.items() if k.startswith("loss_")]
    if not terms:
        raise ValueError(f"no loss_* terms in {sorted(losses)}")
    return torch.stack([t.float() for t in terms]).sum()
