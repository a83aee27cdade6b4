"""dataset_stats on a hand-built GT with known pairs, areas and crowds; format_stats."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.data import InstanceDataset
from harness.data.stats import dataset_stats, format_stats, overlap_pairs


def _ann(i, image_id, cat, bbox, area, iscrowd=0):
    x, y, w, h = bbox
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": area, "iscrowd": iscrowd,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


@pytest.fixture
def ds(tmp_path):
    anns = [
        # image 1: boxes A, B (IoU 0.81 > 0.5, same class), C far away: 1 pair, 1 same-class
        _ann(1, 1, 1, [0, 0, 10, 10], 100.0),
        _ann(2, 1, 1, [0, 0, 9, 9], 1024.0),  # area at the small/medium threshold -> medium
        _ann(3, 1, 2, [20, 20, 5, 5], 9216.0),  # -> large
        # image 2: D, E with IoU exactly 0.5 (not > 0.5), F overlaps D with IoU 0.9 (other class)
        # and E with IoU 0.56 (same class),
        # plus a crowd on top of D (never counted in pairs)
        _ann(4, 2, 1, [0, 0, 10, 10], 10.0),
        _ann(5, 2, 2, [0, 0, 10, 5], 10.0),  # IoU(D, E) = 50 / 100 = 0.5
        _ann(6, 2, 2, [0, 0, 10, 9], 9215.0),  # IoU(D, F) = 0.9, IoU(E, F) = 50 / 90 = 0.56
        _ann(7, 2, 1, [0, 0, 10, 10], 50000.0, iscrowd=1),
    ]
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 30, "width": 30},
                       {"id": 2, "file_name": "a.png", "height": 30, "width": 30},
                       {"id": 3, "file_name": "a.png", "height": 30, "width": 30}],
            "annotations": anns, "categories": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    Image.new("RGB", (30, 30)).save(tmp_path / "a.png")
    return InstanceDataset(tmp_path / "ann.json", tmp_path, name="hand")


def test_overlap_pairs_hand_cases():
    assert overlap_pairs([[0, 0, 10, 10], [0, 0, 9, 9]], [1, 1]) == (1, 1)
    assert overlap_pairs([[0, 0, 10, 10], [0, 0, 10, 5]], [1, 2]) == (0, 0)  # IoU == 0.5 is not > 0.5
    assert overlap_pairs([[0, 0, 10, 10]], [1]) == (0, 0)
    assert overlap_pairs([[0, 0, 4, 4]] * 3, [1, 2, 1]) == (3, 1)  # 3 pairs i < j, one same-class


def test_dataset_stats_hand_computed(ds):
    st = dataset_stats(ds)
    assert (st["images"], st["instances"], st["crowd"]) == (3, 7, 1)
    assert st["instances_per_image"] == 2.0
    assert st["per_class"] == {"one": 3, "two": 3}
    # pairs: image 1 (A, B); image 2 (D, F), (E, F) -> 3 pairs over 3 images; same class: (A, B), (E, F)
    assert st["overlap_density"] == 1.0
    assert st["overlap_density_same_class"] == pytest.approx(2 / 3)
    # areas 100, 1024, 9216, 10, 10, 9215 with thresholds 1024 / 9216 (real data: scale 1)
    assert st["area_scale"] == 1.0
    assert st["size_mix"] == pytest.approx({"small": 3 / 6, "medium": 2 / 6, "large": 1 / 6})
    assert st["size_mix_coco"] == st["size_mix"]
    assert st["skipped"]["zero_area"] == 0


def test_area_scale_from_info(ds, tmp_path):
    data = json.loads(ds.ann_file.read_text())
    data["info"] = {"coco_area_scale": 0.01}  # thresholds 10.24 / 92.16
    (tmp_path / "scaled.json").write_text(json.dumps(data))
    st = dataset_stats(InstanceDataset(tmp_path / "scaled.json", tmp_path))
    assert st["size_mix"] == pytest.approx({"small": 2 / 6, "medium": 0.0, "large": 4 / 6})
    assert st["size_mix_coco"] == pytest.approx({"small": 3 / 6, "medium": 2 / 6, "large": 1 / 6})


def test_format_stats(ds):
    text = format_stats(dataset_stats(ds))
    assert "overlap density" in text and "1.0000" in text
    assert "50.0% / 33.3% / 16.7%" in text
    assert "one" in text and "two" in text and "crowd" in text


def test_mask_shape_stats_hand_built(tmp_path):
    """A mask in two pieces, two pieces touching at a corner (one 8-connected component), a 5-px-wide bar and a
    plain square; 'small' by the GT area (< 32^2, no area scale)."""
    from pycocotools import mask as mask_utils

    from harness.data.stats import mask_shape_stats
    masks = np.zeros((4, 40, 40), dtype=np.uint8)
    masks[0, 0:8, 0:5] = masks[0, 0:8, 10:15] = 1  # split: two pieces 5 px apart (8 px tall: not thin)
    masks[1, 0:5, 0:5] = masks[1, 5:10, 5:10] = 1  # corner contact: one 8-connected piece
    masks[2, 0:30, 0:5] = 1  # thin: 5 px wide
    masks[3, 0:36, 0:36] = 1  # large square

    def ann(i, m, area):
        rle = mask_utils.encode(np.asfortranarray(m))
        ys, xs = np.nonzero(m)
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        return {"id": i, "image_id": 1, "category_id": 1, "bbox": bbox, "area": area, "iscrowd": 0,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}
    anns = [ann(1, masks[0], 50.0), ann(2, masks[1], 50.0), ann(3, masks[2], 150.0), ann(4, masks[3], 1296.0)]
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 40, "width": 40}], "annotations": anns,
            "categories": [{"id": 1, "name": "one"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    st = mask_shape_stats(InstanceDataset(tmp_path / "ann.json", tmp_path, name="hand"))
    assert st["instances"] == 4 and st["split_frac"] == 0.25 and st["thin_frac"] == 0.25
    assert st["small"] == {"instances": 3, "split_frac": 1 / 3, "thin_frac": 1 / 3, "split_or_thin_frac": 2 / 3}
    # format_stats prints them when present
    text = format_stats({**dataset_stats(InstanceDataset(tmp_path / "ann.json", tmp_path, name="hand")),
                         "mask_shapes": st})
    assert "GT split in pieces / thin (< 8 px)" in text and "25.0% / 25.0%" in text
    assert "of the 3 small: split / thin / either" in text and "33.3% / 33.3% / 66.7%" in text
