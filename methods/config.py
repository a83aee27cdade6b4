"""Method config dataclasses.

Every method config derives from ``MethodConfig``; each ablation toggle is exactly one field with
its default.  Configs are frozen; variants come from ``dataclasses.replace``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

PostProcess = Literal["matrix", "matrix_linear", "mask", "box", "fast", "none", "default"]


@dataclass(frozen=True)
class MethodConfig:
    """Fields common to every method.

    Attributes:
        name: registry name of the method (``methods.METHODS``).
        num_classes: number of thing classes (contiguous labels 0..num_classes-1). Set from the
            dataset by the harness when left at 0.
        backbone: backbone name (``resnet18``, ``resnet34``, ``resnet50``, ``resnet_narrow``, ...).
        pretrained: path to ImageNet weights, or "" for training from scratch.
        postprocess: NMS variant at inference ("default" = the method's own: matrix for SOLOv2,
            box NMS for CondInst, none for UniInst).
        max_per_img: detections kept per image after post-processing.
    """

    name: str = ""
    num_classes: int = 0
    backbone: str = "resnet18"
    pretrained: str = ""
    postprocess: PostProcess = "default"
    max_per_img: int = 100

    PROFILE_OVERRIDES: ClassVar[dict[str, dict]] = {}
    # fields read only at inference: changing them re-uses the trained weights (excluded from train_hash)
    INFERENCE_ONLY: ClassVar[tuple[str, ...]] = ("postprocess", "max_per_img")
    # fields added after runs were recorded: at their default they build exactly the network the older
    # code built, so they are left out of train_hash while at that default and earlier runs stay valid
    HASH_OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ()
    # fields added after runs were recorded whose default later moved: {field: the value the older runs were
    # trained with}.  Left out of train_hash only at that value, so the older runs keep their hashes and a run at
    # the new default (hashed with the field) never reuses them
    HASH_OMIT_AT_VALUE: ClassVar[dict[str, object]] = {}

    @classmethod
    def trains_no_instances(cls, flat: dict) -> bool:
        """Whether a run of this flat config (``harness.config.to_flat``) trains no instance output, so run health's
        instance rules (positives, mask AP) judge nothing; e.g. CASNet's semantic-only model."""
        return False

    def __post_init__(self) -> None:
        if self.num_classes < 0:
            raise ValueError(f"method.num_classes must be >= 0, got {self.num_classes}")
        if self.max_per_img <= 0:
            raise ValueError(f"method.max_per_img must be > 0, got {self.max_per_img}")


# Per-profile overrides shared by every method (a method's Config may add its own through the
# class attribute PROFILE_OVERRIDES = {"quick": {...}}; the method's entries win).
COMMON_PROFILE_OVERRIDES: dict[str, dict] = {
    "smoke": {"backbone": "resnet_narrow"},
    "quick": {"backbone": "resnet_narrow"},
    "paper": {"backbone": "resnet50", "pretrained": "torchvision://ResNet50_Weights.IMAGENET1K_V1"},
}
