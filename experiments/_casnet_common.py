"""Shared pieces of the CASNet studies (casnet.md Tables I-IV) on the synthetic ``shapes-street``.

The paper's tables were extracted from a PDF whose columns are scrambled; the numbers below are the ones
its text confirms (Table I: mask AP val 32.8 joint, 36.3 separated, "+3.5"; Table II: PQ 59.0 joint,
66.1 separated) and, for the other columns, the values in the order the extraction lists them (marked
"as extracted" in the reports).
"""
from __future__ import annotations

from harness.studies import Variant

NOTE_SCALE = ("Paper: Cityscapes val, HRNet backbone, 8 GPUs. Ours: synthetic shapes-street (5 thing classes: "
              "car, pedestrian, truck, bus, rider; stuff: road, sky, building) at the quick profile, a ResNet-FPN "
              "stand-in for HRNet (methods/casnet.py) trained from scratch on a CPU. Absolute values are not "
              "comparable; the question is whether the paper's differences hold.")
SEPARATED_NOTE = ("'separated': the semantic predictions come from a separately trained semantic model (CASNet's "
                  "semantic head alone: beta = gamma = 0, same backbone), as the paper's separately trained HRNet.")


def casnet_variants(mode: str, *, gt_semantics: bool = False) -> tuple[Variant, ...]:
    panoptic = mode == "panoptic"
    base = (f"method.mode={mode}",)
    # beta = gamma = 0: no box or box-probability loss, so the box-probability positives (positive_fallback) do not
    # change its weights; it keeps the runs it was trained with under the older rule ("none")
    sem = Variant("semantic model", "casnet",
                  overrides=base + ("method.beta=0.0", "method.gamma=0.0", "method.positive_fallback=none"),
                  panoptic=panoptic)
    joint = Variant("casnet (joint)", "casnet", overrides=base, panoptic=panoptic)
    sep = Variant("casnet (separated)", "casnet",
                  overrides=base + ("method.semantic_checkpoint=@semantic model", "method.train_mode=separated"),
                  panoptic=panoptic)
    out = (sem, joint, sep)
    if gt_semantics:
        out += (Variant("casnet (GT semantics)", "casnet", overrides=base + ("method.use_gt_semantics=true",),
                        panoptic=panoptic),)
    return out
