"""Cityscapes instanceIds -> COCO JSON on a tiny fixture written by the test."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data import DatasetError, InstanceDataset
from harness.data.cityscapes import convert_cityscapes


@pytest.fixture
def cs_root(tmp_path):
    """One city, two frames of 8 x 12 px (instanceIds as 16-bit PNG + a leftImg8bit image each)."""
    gt, img = tmp_path / "gtFine" / "val" / "aachen", tmp_path / "leftImg8bit" / "val" / "aachen"
    gt.mkdir(parents=True)
    img.mkdir(parents=True)
    a = np.full((8, 12), 7, np.uint16)  # road (label 7, not an instance class)
    a[0:2, 0:3] = 26001  # car #1 (6 px)
    a[2:4, 0:2] = 26002  # car #2 (4 px)
    a[5:8, 5:7] = 24000  # person #0 (6 px)
    a[0:3, 8:12] = 24  # person crowd / group region (12 px)
    a[6:8, 9:12] = 29003  # caravan: not converted
    b = np.zeros((8, 12), np.uint16)
    b[1:7, 1:3] = 25005  # rider (12 px)
    b[0:1, 5:9] = 32001  # motorcycle (4 px)
    for name, ids in (("aachen_000000_000019", a), ("aachen_000001_000019", b)):
        Image.fromarray(ids).save(gt / f"{name}_gtFine_instanceIds.png")
        Image.new("RGB", (12, 8)).save(img / f"{name}_leftImg8bit.png")
    return tmp_path


def test_thing8(cs_root, tmp_path):
    out = convert_cityscapes(cs_root, "val", tmp_path / "out" / "cs.json", "thing8")
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["categories"]] == ["person", "rider", "car", "truck", "bus", "train",
                                                       "motorcycle", "bicycle"]
    assert [im["file_name"] for im in data["images"]] == ["aachen/aachen_000000_000019_leftImg8bit.png",
                                                          "aachen/aachen_000001_000019_leftImg8bit.png"]
    got = sorted((a["image_id"], a["category_id"], a["area"], a["iscrowd"]) for a in data["annotations"])
    # 24000 is an instance (>= 1000) of person; 24 is the person crowd region
    assert got == [(1, 1, 6, 0), (1, 1, 12, 1), (1, 3, 4, 0), (1, 3, 6, 0), (2, 2, 12, 0), (2, 7, 4, 0)]
    car = next(a for a in data["annotations"] if a["category_id"] == 3 and a["area"] == 6)
    assert car["bbox"] == [0.0, 0.0, 3.0, 2.0]
    rle = {"size": car["segmentation"]["size"], "counts": car["segmentation"]["counts"].encode()}
    assert mask_utils.decode(rle)[0:2, 0:3].all() and mask_utils.decode(rle).sum() == 6
    ds = InstanceDataset(out, cs_root / "leftImg8bit" / "val")
    assert ds.info()["n_instances"] == 6 and ds.info()["n_crowd"] == 1
    s = ds[0]
    assert s.iscrowd.sum() == 1 and len(s.targets()) == 3


def test_street5_maps_person_to_pedestrian(cs_root, tmp_path):
    data = json.loads(convert_cityscapes(cs_root, "val", tmp_path / "s5.json", "street5").read_text())
    assert [c["name"] for c in data["categories"]] == ["car", "pedestrian", "truck", "bus", "rider"]
    got = sorted((a["image_id"], a["category_id"], a["iscrowd"]) for a in data["annotations"])
    assert got == [(1, 1, 0), (1, 1, 0), (1, 2, 0), (1, 2, 1), (2, 5, 0)]  # motorcycle dropped


def test_errors(cs_root, tmp_path):
    with pytest.raises(ValueError, match="unknown class set"):
        convert_cityscapes(cs_root, "val", tmp_path / "x.json", "all")
    with pytest.raises(DatasetError, match="no \\*_gtFine_instanceIds.png"):
        convert_cityscapes(cs_root, "train", tmp_path / "x.json")
    (cs_root / "leftImg8bit" / "val" / "aachen" / "aachen_000001_000019_leftImg8bit.png").unlink()
    with pytest.raises(DatasetError, match="aachen_000001_000019_leftImg8bit.png"):
        convert_cityscapes(cs_root, "val", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
