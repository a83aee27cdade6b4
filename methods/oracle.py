"""Oracle methods: predictions made from the ground truth, to check the evaluation harness.

* ``oracle`` returns the GT mask of every non-crowd annotation at the original image size with score
  1.0.  Its mask AP is exactly 100 on any COCO-format dataset (a test holds the harness to it).
* ``oracle_jitter`` degrades the GT in a seeded, controllable way: each instance is dropped with
  probability ``drop_prob``; its mask is dilated or eroded by a random radius in
  ``[-jitter_px, jitter_px]`` px (``scipy.ndimage``, 3x3 cross structuring element per iteration);
  its score is ``1 - score_noise * u``, u ~ U[0, 1); with probability ``dup_prob`` a second,
  independently jittered copy with score ``score * u'`` is added (a duplicate is a false positive
  once the original is matched).  The randomness of an image depends only on ``(seed, image_id)``,
  so results do not depend on batching or on the order of the images.

Unlike every other method these read the ground truth: they have ``uses_ground_truth = True`` and
``set_ground_truth(coco, image_ids, cat_ids)``, which the harness (``harness.evaluate.run_inference``)
calls before each ``predict`` with the ids of the images in the batch.  They have no parameters
(``trainable = False``) and ``forward`` raises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from methods import register
from methods.base import Instances, Method, Targets
from methods.config import MethodConfig


@dataclass(frozen=True)
class OracleConfig(MethodConfig):
    """The oracle has only the common fields (``max_per_img`` truncates the GT list)."""

    name: str = "oracle"


@dataclass(frozen=True)
class OracleJitterConfig(MethodConfig):
    """Degradations of the GT.

    Attributes:
        drop_prob: probability that a GT instance is not predicted (a false negative).
        dup_prob: probability that a GT instance is predicted twice (a false positive).
        jitter_px: largest dilation / erosion radius, px (0 = exact masks).
        score_noise: scores are ``1 - score_noise * U[0, 1)``.
        seed: base seed; the random stream of an image is seeded by ``(seed, image_id)``.
    """

    name: str = "oracle_jitter"
    drop_prob: float = 0.1
    dup_prob: float = 0.1
    jitter_px: int = 2
    score_noise: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("drop_prob", "dup_prob", "score_noise"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"method.{key} must be in [0, 1], got {value}")
        if self.jitter_px < 0:
            raise ValueError(f"method.jitter_px must be >= 0, got {self.jitter_px}")


class _GroundTruthMethod(Method):
    """Shared machinery: holds the GT of the current batch and turns it into ``Instances``."""

    trainable = False
    uses_ground_truth = True
    mask_representation = "exact"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._coco = None
        self._image_ids: list[int] = []
        self._cat_ids: list[int] = []

    def set_ground_truth(self, coco, image_ids, cat_ids) -> None:
        """Set the ground truth that the next ``predict`` returns.

        Args:
            coco: ``pycocotools.coco.COCO`` of the dataset.
            image_ids: COCO image ids of the images of the next batch, in batch order.
            cat_ids: contiguous label -> COCO category id; annotations of other categories are skipped.
        Raises:
            ValueError: image ids that are not in ``coco``.
        """
        unknown = [i for i in image_ids if int(i) not in coco.imgs]
        if unknown:
            raise ValueError(f"{type(self).__name__}: image ids {unknown[:5]} are not in the ground truth")
        self._coco = coco
        self._image_ids = [int(i) for i in image_ids]
        self._cat_ids = [int(c) for c in cat_ids]

    def forward(self, images: Tensor, targets: list[Targets]) -> dict[str, Tensor]:
        raise RuntimeError(f"{type(self).__name__} is an oracle with no trainable parameters; "
                           "it cannot be trained (evaluate it directly)")

    def forward_test(self, images: Tensor) -> list[int]:
        """Returns the image ids whose GT ``postprocess`` decodes (the images are not looked at).

        Raises:
            RuntimeError: ``set_ground_truth`` was not called, or with a different number of images.
        """
        if self._coco is None:
            raise RuntimeError(f"{type(self).__name__}: call set_ground_truth(coco, image_ids, cat_ids) "
                               "before predict")
        if len(self._image_ids) != images.shape[0]:
            raise RuntimeError(f"{type(self).__name__}: set_ground_truth got {len(self._image_ids)} "
                               f"image ids but the batch has {images.shape[0]} images")
        return list(self._image_ids)

    def postprocess(self, raw: list[int], image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:
        """GT (or degraded GT) ``Instances`` of each image id in ``raw``, at ``orig_sizes``.

        Raises:
            ValueError: an image's COCO height / width differs from its ``orig_sizes`` entry.
        """
        out = []
        for image_id, orig in zip(raw, orig_sizes):
            info = self._coco.imgs[image_id]
            if (int(info["height"]), int(info["width"])) != (int(orig[0]), int(orig[1])):
                raise ValueError(f"image {image_id}: COCO size {(info['height'], info['width'])} != "
                                 f"orig_size {tuple(orig)}")
            masks, labels = self._gt_masks(image_id)
            masks, scores, labels = self._degrade(image_id, masks, labels)
            order = np.argsort(-scores, kind="stable")[: self.cfg.max_per_img]
            h, w = int(orig[0]), int(orig[1])
            out.append(Instances(
                masks=torch.from_numpy(masks[order].astype(bool)).reshape(len(order), h, w),
                scores=torch.from_numpy(scores[order].astype(np.float32)),
                labels=torch.from_numpy(labels[order].astype(np.int64)),
            ))
        return out

    def _gt_masks(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(masks uint8 [N, H0, W0], labels int64 [N]) of the non-crowd annotations with a mask."""
        info = self._coco.imgs[image_id]
        label_of = {c: i for i, c in enumerate(self._cat_ids)}
        masks, labels = [], []
        for ann in self._coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0) or ann["category_id"] not in label_of or not ann.get("segmentation"):
                continue
            masks.append(self._coco.annToMask(ann))
            labels.append(label_of[ann["category_id"]])
        if not masks:
            return np.zeros((0, info["height"], info["width"]), np.uint8), np.zeros((0,), np.int64)
        return np.stack(masks), np.asarray(labels, np.int64)

    def _degrade(self, image_id: int, masks: np.ndarray, labels: np.ndarray):
        return masks, np.ones(len(labels), np.float32), labels


@register("oracle")
class Oracle(_GroundTruthMethod):
    """Exact GT masks, score 1.0 (mask AP 100 by construction)."""

    Config = OracleConfig


@register("oracle_jitter")
class OracleJitter(_GroundTruthMethod):
    """GT masks with seeded dilation / erosion, drops, duplicates and score noise (module docstring)."""

    Config = OracleJitterConfig

    def _jitter(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Dilate (radius > 0) or erode (radius < 0) ``mask`` (uint8 [H0, W0]) by a random radius."""
        radius = int(rng.integers(-self.cfg.jitter_px, self.cfg.jitter_px + 1)) if self.cfg.jitter_px else 0
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if radius == 0 or rows.size == 0:
            return mask
        # work on the mask's box plus a margin of |radius| + 1: the same result as on the whole image
        pad = abs(radius) + 1
        y0, y1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, mask.shape[0])
        x0, x1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, mask.shape[1])
        op = ndimage.binary_dilation if radius > 0 else ndimage.binary_erosion
        out = np.zeros_like(mask)
        out[y0:y1, x0:x1] = op(mask[y0:y1, x0:x1], iterations=abs(radius))
        return out

    def _degrade(self, image_id: int, masks: np.ndarray, labels: np.ndarray):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, image_id])
        out_masks, out_scores, out_labels = [], [], []
        for mask, label in zip(masks, labels):
            # draw every random number for every instance so that one setting does not shift the
            # stream of another (changing drop_prob keeps the jitter of the kept instances)
            drop, dup, noise, dup_noise = rng.random(4)
            jittered, dup_mask = self._jitter(mask, rng), self._jitter(mask, rng)
            if drop < cfg.drop_prob:
                continue
            score = 1.0 - cfg.score_noise * noise
            out_masks.append(jittered)
            out_scores.append(score)
            out_labels.append(label)
            if dup < cfg.dup_prob:
                out_masks.append(dup_mask)
                out_scores.append(score * dup_noise)
                out_labels.append(label)
        if not out_masks:
            return masks[:0], np.zeros((0,), np.float32), labels[:0]
        return np.stack(out_masks), np.asarray(out_scores, np.float32), np.asarray(out_labels, np.int64)


@dataclass(frozen=True)
class OracleCeilingConfig(MethodConfig):
    """The ceiling of a mask representation (``harness.ceiling``).

    Attributes:
        representation: how a method represents a mask between its targets and its output:
            "stride4" (SOLOv2, CondInst, UniInst, CASNet: binary targets at stride 4 of the input, the
            4 x 4 area fraction >= 0.5, as ``methods.assign.masks_at_stride``; upsampled bilinearly x4,
            cropped to the image, resized bilinearly to the original size and thresholded, as their
            ``predict``), "stride4_soft" (the same with the area fractions kept soft: what a network
            could output at best), "roi28_aligned" (Mask R-CNN at its default ``roi_convention``, detectron2's:
            the mask cropped to 28 x 28 in its box by ``roi_align(aligned=True)``, the soft training target, pasted
            back with continuous box coordinates, ``methods.maskrcnn.paste_masks_continuous``), "roi28" (Mask
            R-CNN with ``roi_convention="torchvision"``, the only one before 2026-12-04: ``roi_align(aligned=False)``
            and torchvision's ``paste_masks_in_image``) or "exact".
        mask_thr: binarisation threshold after upsampling (0.5, every method's).
        mask_resize: how the masks reach the input size, as the data pipeline resizes them
            (``DataConfig.mask_resize``: "nearest-exact" or "nearest"); ``harness.ceiling`` copies it.
    """

    name: str = "oracle_ceiling"
    representation: str = "stride4"
    mask_thr: float = 0.5
    mask_resize: str = "nearest-exact"

    REPRESENTATIONS = ("stride4", "stride4_soft", "roi28", "roi28_aligned", "exact")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_resize not in ("nearest-exact", "nearest"):  # torch's nearest modes, as DataConfig's
            raise ValueError(f"method.mask_resize must be 'nearest-exact' or 'nearest', got {self.mask_resize!r}")
        if self.representation not in self.REPRESENTATIONS:
            raise ValueError(f"method.representation must be one of {self.REPRESENTATIONS}, got "
                             f"{self.representation!r}")


@register("oracle_ceiling")
class OracleCeiling(_GroundTruthMethod):
    """The ground truth passed through a method's mask representation (``OracleCeilingConfig``), score 1.0.

    Its mask AP is the best any method of that representation can score on the dataset at that input
    size: the resolution ceiling.  Masks go original frame -> input frame (``mask_resize``, as the data pipeline
    resizes them) -> representation -> original frame.
    """

    Config = OracleCeilingConfig

    def postprocess(self, raw: list[int], image_sizes: list[tuple[int, int]],
                    orig_sizes: list[tuple[int, int]]) -> list[Instances]:
        self._input_sizes = {int(i): (int(s[0]), int(s[1])) for i, s in zip(raw, image_sizes)}
        return super().postprocess(raw, image_sizes, orig_sizes)

    def _degrade(self, image_id: int, masks: np.ndarray, labels: np.ndarray):
        import torch.nn.functional as F
        from torchvision.models.detection.roi_heads import paste_masks_in_image
        from torchvision.ops import masks_to_boxes, roi_align

        from methods.assign import masks_at_stride
        from methods.maskrcnn import paste_masks_continuous
        scores = np.ones(len(labels), np.float32)
        rep = self.cfg.representation
        if rep == "exact" or len(masks) == 0:
            return masks, scores, labels
        h0, w0 = masks.shape[1:]
        h, w = self._input_sizes[image_id]
        m = torch.from_numpy(masks.astype(np.float32))[:, None]  # (N, 1, H0, W0)
        m_in = F.interpolate(m, size=(h, w), mode=self.cfg.mask_resize)[:, 0]  # (N, h, w) input frame
        if rep in ("roi28", "roi28_aligned"):
            keep = m_in.flatten(1).amax(1) > 0  # an instance that vanishes at input size gets an empty mask
            out = np.zeros_like(masks)
            if keep.any():
                boxes = masks_to_boxes(m_in[keep] > 0)  # (K, 4) x1y1x2y2, input px (inclusive max)
                boxes[:, 2:] += 1  # continuous box: the pixel edges
                rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32)[:, None], boxes], 1)
                aligned = rep == "roi28_aligned"
                target = roi_align(m_in[keep][:, None], rois, (28, 28), 1.0, 0 if aligned else -1,
                                   aligned=aligned)  # (K, 1, 28, 28) soft, as each convention's training target
                scale = torch.tensor([w0 / w, h0 / h, w0 / w, h0 / h])
                paste = paste_masks_continuous if aligned else paste_masks_in_image
                pasted = paste(target, boxes * scale, (h0, w0))[:, 0]  # (K, H0, W0)
                out[keep.numpy()] = (pasted > self.cfg.mask_thr).numpy().astype(masks.dtype)
            return out, scores, labels
        hs, ws = -(-h // 4), -(-w // 4)
        if rep == "stride4":
            t = masks_at_stride(m_in > 0, (hs, ws), 4)  # (N, hs, ws) {0, 1}
        else:
            full = m_in.new_zeros((len(m_in), hs * 4, ws * 4))
            full[:, :h, :w] = m_in
            t = F.avg_pool2d(full[:, None], 4)[:, 0]  # soft area fractions
        up = F.interpolate(t[:, None], scale_factor=4, mode="bilinear", align_corners=False)[:, :, :h, :w]
        up = F.interpolate(up, size=(h0, w0), mode="bilinear", align_corners=False)[:, 0]
        return (up > self.cfg.mask_thr).numpy().astype(masks.dtype), scores, labels
