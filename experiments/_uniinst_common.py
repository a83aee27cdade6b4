"""Shared pieces of the UniInst studies (uniinst.md Tables 1 and 4-8)."""
from __future__ import annotations

NMS_KIND = {"maskrcnn": "box", "solov2": "matrix", "condinst": "box", "uniinst": "mask"}
TABLE1_METHODS = ("maskrcnn", "solov2", "condinst", "uniinst")

NOTE_SCALE = ("Paper: COCO val2017, ResNet-50-FPN, GPU schedules of 3x-6x. Ours: synthetic data at the quick "
              "profile (narrow ResNet from scratch on a CPU). Absolute values are not comparable; the "
              "question is whether the paper's differences hold.")


def available(names):
    import methods
    return tuple(n for n in names if n in methods.available())
