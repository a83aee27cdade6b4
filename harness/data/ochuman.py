"""OCHuman (Zhang et al., Pose2Seg, CVPR 2019) in its COCO-format JSON.

Files: ``ochuman_coco_format_{val,test}_range_0.00_1.00.json`` (val = the first 2,500 sorted image
ids, test = the remaining 2,231) and the image folder.  Quirks handled here:

* single category ``person`` (id 1); every annotation has ``iscrowd = 0``;
* masks are COCO RLE with *string* counts (decoded by pycocotools as they are);
* ``area`` is the person's **box** area, not the mask area, so COCOeval's AP_S/M/L on OCHuman
  bucket by box size;
* some people have a box but no segmentation.  They are counted in ``dataset.skipped
  ["no_segmentation"]`` and left out of training samples (one ``DataWarning``), but stay in the
  GT JSON used for evaluation, where predictions on them count as false positives (the OCHuman
  protocol).  UniInst evaluates on a 1,761-image subset; that subset is a different JSON.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.data.coco import DatasetError, InstanceDataset
from harness.data.types import Sample

PERSON_CATEGORY_ID = 1


def load_ochuman(ann_file: str | Path, img_dir: str | Path, *, name: str | None = None,
                 transform: Callable[[Sample], Sample] | None = None) -> InstanceDataset:
    """An OCHuman COCO-format JSON as an ``InstanceDataset``.

    Raises:
        DatasetError: the file is not an OCHuman-style JSON (categories other than person id 1),
            plus every error of ``InstanceDataset``.
    """
    ds = InstanceDataset(ann_file, img_dir, name=name if name is not None else f"ochuman:{ann_file}",
                         transform=transform)
    if ds.cat_ids != [PERSON_CATEGORY_ID] or ds.class_names != ["person"]:
        raise DatasetError(f"{ann_file}: OCHuman expects the single category person (id 1), got "
                           f"{list(zip(ds.cat_ids, ds.class_names))}")
    return ds
