"""COCO-format loading: real tiny_coco / OCHuman files, and every bad-input rule of harness/data/coco.py."""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from harness.config import DataConfig
from harness.data import DatasetError, DataWarning, InstanceDataset, build_dataset, parse_spec
from harness.data.types import collate


# ---------------------------------------------------------------------------------------------
# real data
def _tiny_coco(shared: Path, split: str) -> InstanceDataset:
    root = shared / "tiny_coco"
    return InstanceDataset(root / "annotations" / f"instances_{split}2017.json", root / f"{split}2017",
                           name=f"tiny_coco/{split}")


@pytest.mark.parametrize("split,n_inst", [("train", 470), ("val", 382)])
def test_tiny_coco_counts(shared_data, split, n_inst):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # the real files have nothing to skip
        ds = _tiny_coco(shared_data, split)
    info = ds.info()
    assert (info["n_images"], info["n_instances"], info["n_crowd"]) == (50, n_inst, 5)
    assert len(ds) == 50 and len(ds.image_ids) == 50 and ds.image_ids == sorted(ds.image_ids)
    assert len(ds.class_names) == 80 and ds.cat_ids == sorted(ds.cat_ids)
    assert ds.cat_ids[:3] == [1, 2, 3] and ds.cat_ids[-1] == 90  # COCO ids with gaps
    assert ds.class_names[0] == "person" and ds.stuff_names == []
    assert len(ds.coco.getAnnIds()) == n_inst


def test_tiny_coco_sample_contract(shared_data):
    ds = _tiny_coco(shared_data, "val")
    crowd_idx = next(i for i in range(len(ds)) if ds.image_ids[i] in
                     {a["image_id"] for a in ds.coco.dataset["annotations"] if a["iscrowd"]})
    s = ds[crowd_idx]
    n, (h, w) = s.masks.shape[0], s.orig_size
    assert s.image.dtype == torch.uint8 and s.image.shape == (3, h, w)
    assert s.masks.dtype == torch.bool and s.masks.shape == (n, h, w)
    assert s.labels.dtype == torch.int64 and s.boxes.dtype == torch.float32 and s.boxes.shape == (n, 4)
    assert s.iscrowd.dtype == torch.bool and bool(s.iscrowd.any())
    assert int(s.labels.max()) < 80
    # crowd annotations are in the Sample, dropped from training targets
    assert len(s.targets()) == n - int(s.iscrowd.sum())
    # labels map back to the GT category ids of this image
    gt = ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=s.image_id))
    assert sorted(ds.cat_ids[i] for i in s.labels.tolist()) == sorted(a["category_id"] for a in gt)
    # boxes are the masks' tight boxes, (x2, y2) exclusive like pycocotools' toBbox of the RLE
    k = int(torch.nonzero(s.iscrowd)[0])
    ys, xs = torch.nonzero(s.masks[k], as_tuple=True)
    assert s.boxes[k].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    x, y, bw, bh = mask_utils.toBbox(ds.coco.annToRLE([a for a in gt if a["iscrowd"]][0])).tolist()
    assert s.boxes[k].tolist() == [x, y, x + bw, y + bh]


def test_tiny_coco_through_build_dataset_and_collate(shared_data):
    root = shared_data / "tiny_coco"
    spec = f"coco:{root / 'annotations' / 'instances_val2017.json'}:{root / 'val2017'}"
    ds = build_dataset(spec, "val", DataConfig(test_short_side=64, max_size=96), train=False)
    assert ds.name == spec and ds.ann_file == root / "annotations" / "instances_val2017.json"
    samples = [ds[0], ds[1]]
    for s in samples:
        assert min(s.size) == 64 or max(s.size) == 96
        assert s.masks.shape[-2:] == s.size and s.orig_size != s.size
    batch = collate(samples, size_divisor=32)
    assert batch.images.shape[0] == 2 and batch.images.shape[-1] % 32 == 0


def test_ochuman_sample_loads(shared_data):
    root = shared_data / "ochuman_sample"
    ds = build_dataset(f"ochuman:{root / 'test_ochuman.json'}:{root}", "val",
                       DataConfig(test_short_side=64, max_size=128), train=False)
    assert ds.class_names == ["person"] and ds.cat_ids == [1]
    assert ds.info()["n_images"] == 3 and ds.info()["n_instances"] == 5
    assert sum(len(ds[i].masks) for i in range(len(ds))) == 5
    s = ds[ds.image_ids.index(1)]
    assert s.orig_size == (864, 900) and s.size == (64, 67)
    # string RLE counts decode to the right mask: area at full size matches pycocotools
    full = ds.load(ds.image_ids.index(1))
    rle = ds.coco.annToRLE(ds.coco.anns[1])
    assert int(full.masks[0].sum()) == int(mask_utils.area(rle))
    assert ds.coco.anns[1]["area"] == 356725  # OCHuman: box area kept as is in the GT


def test_ochuman_missing_segmentation_is_counted_and_kept_for_eval(shared_data, tmp_path):
    root = shared_data / "ochuman_sample"
    data = json.loads((root / "test_ochuman.json").read_text())
    data["annotations"][1].pop("segmentation")  # annotation id 2: a box without a mask
    data["annotations"][2]["segmentation"] = []  # id 3
    ann = tmp_path / "och.json"
    ann.write_text(json.dumps(data))
    with pytest.warns(DataWarning, match=r"no_segmentation=2 \(ids \[2, 3\]\)"):
        ds = build_dataset(f"ochuman:{ann}:{root}", "val", DataConfig(test_short_side=32), train=False)
    assert ds.skipped["no_segmentation"] == [2, 3]
    assert ds.info()["n_instances"] == 3 and len(ds.coco.getAnnIds()) == 5
    assert len(ds[ds.image_ids.index(2)].masks) == 0


def test_ochuman_rejects_other_categories(shared_data, tmp_path):
    root = shared_data / "ochuman_sample"
    data = json.loads((root / "test_ochuman.json").read_text())
    data["categories"].append({"id": 2, "name": "dog"})
    ann = tmp_path / "och.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="single category person"):
        build_dataset(f"ochuman:{ann}:{root}", "val", DataConfig(), train=False)


# ---------------------------------------------------------------------------------------------
# hand-made files
def _square(x: float, y: float, s: float) -> list[float]:
    return [x, y, x + s, y, x + s, y + s, x, y + s]


def _base() -> dict:
    return {
        "images": [{"id": 7, "file_name": "a.png", "height": 12, "width": 16},
                   {"id": 3, "file_name": "b.png", "height": 10, "width": 10}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "segmentation": [_square(2, 2, 4)], "iscrowd": 0,
             "bbox": [2, 2, 4, 4], "area": 16},
            {"id": 2, "image_id": 7, "category_id": 9, "segmentation": [_square(8, 4, 6)], "iscrowd": 0,
             "bbox": [8, 4, 6, 6], "area": 36},
        ],
        "categories": [{"id": 9, "name": "nine"}, {"id": 5, "name": "five"}],
    }


def _write(tmp_path: Path, data: dict | str, modes=("RGB", "L")) -> tuple[Path, Path]:
    img_dir = tmp_path / "img"
    img_dir.mkdir(exist_ok=True)
    if isinstance(data, dict):
        for im, mode in zip(data["images"], modes):
            Image.new(mode, (im["width"], im["height"]), color=128 if mode == "L" else None
                      ).save(img_dir / im["file_name"])
    ann = tmp_path / "ann.json"
    ann.write_text(data if isinstance(data, str) else json.dumps(data))
    return ann, img_dir


def test_hand_made_dataset_labels_boxes_and_modes(tmp_path):
    ann, img_dir = _write(tmp_path, _base(), modes=("RGBA", "L"))
    ds = InstanceDataset(ann, img_dir)
    assert ds.cat_ids == [5, 9] and ds.class_names == ["five", "nine"] and ds.image_ids == [3, 7]
    empty, s = ds[0], ds[1]
    assert empty.image.shape == (3, 10, 10) and empty.masks.shape == (0, 10, 10)
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)
    assert int(empty.image[0, 0, 0]) == int(empty.image[2, 0, 0]) == 128  # grayscale -> RGB
    assert s.image.shape == (3, 12, 16)  # RGBA -> RGB
    assert s.labels.tolist() == [0, 1]
    # pycocotools rasterises the polygon square x, y in [2, 6] to pixels 2..5, so the box (x2, y2
    # exclusive) equals the polygon's extent
    assert s.boxes.tolist() == [[2.0, 2.0, 6.0, 6.0], [8.0, 4.0, 14.0, 10.0]]


def test_uncompressed_and_compressed_rle(tmp_path):
    data = _base()
    m = np.zeros((12, 16), np.uint8, order="F")
    m[1:4, 10:15] = 1
    rle = mask_utils.encode(m)
    data["annotations"][0]["segmentation"] = {"size": [12, 16], "counts": rle["counts"].decode()}
    runs, flat, cur, n = [], m.flatten(order="F"), 0, 0  # uncompressed RLE: column-major run lengths
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    data["annotations"][1].update(segmentation={"size": [12, 16], "counts": runs}, iscrowd=1)
    ann, img_dir = _write(tmp_path, data)
    s = InstanceDataset(ann, img_dir)[1]
    assert torch.equal(s.masks[0], torch.from_numpy(m.astype(bool)))
    assert torch.equal(s.masks[1], torch.from_numpy(m.astype(bool)))
    assert s.iscrowd.tolist() == [False, True] and len(s.targets()) == 1


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 7"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate annotation id 1"),
    (lambda d: d["annotations"][1].update(category_id=4), "annotation 2 has unknown category id 4"),
    (lambda d: d["annotations"][1].update(image_id=99), "annotation 2 refers to unknown image id 99"),
    (lambda d: d.update(images=[], annotations=[]), "empty"),
    (lambda d: d.pop("categories"), "'categories'"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]), "annotation 1: polygon"),
    (lambda d: d["annotations"][0].update(segmentation="abc"), "annotation 1: unsupported"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [5, 5], "counts": "abc"}),
     r"annotation 1: RLE size \[5, 5\]"),
])
def test_errors_name_the_id(tmp_path, edit, match):
    data = _base()
    edit(data)
    ann, img_dir = _write(tmp_path, _base())  # images of the valid file
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=match):
        InstanceDataset(ann, img_dir)


def test_malformed_json_names_the_file(tmp_path):
    ann, img_dir = _write(tmp_path, '{"images": [')
    with pytest.raises(DatasetError, match=r"ann\.json: malformed JSON"):
        InstanceDataset(ann, img_dir)


def test_missing_image_names_file_and_id(tmp_path):
    ann, img_dir = _write(tmp_path, _base())
    (img_dir / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"b\.png of image id 3 not found"):
        InstanceDataset(ann, img_dir)


def test_image_size_mismatch_names_file_and_id(tmp_path):
    ann, img_dir = _write(tmp_path, _base())
    Image.new("RGB", (9, 9)).save(img_dir / "b.png")
    ds = InstanceDataset(ann, img_dir)
    with pytest.raises(DatasetError, match=r"b\.png of image id 3 is 9x9"):
        ds[0]


def test_counted_skips_warn_once_with_ids(tmp_path):
    data = _base()
    extra = [
        {"id": 10, "segmentation": [[1, 1, 3, 3]]},  # 2 points only
        {"id": 11, "segmentation": [[1, 1, 3, 3], _square(1, 1, 2)]},  # one short part: dropped
        {"id": 12, "segmentation": [[1, 1, 5, 5, 9, 9]]},  # collinear: zero area
        {"id": 13, "segmentation": [_square(1, 1, 2)], "bbox": [40, 40, 3, 3]},  # box outside
        {"id": 14, "segmentation": [_square(1, 1, 2)], "bbox": [-5, 1, 9, 3]},  # box partly outside
        {"id": 15, "segmentation": None},
    ]
    for e in extra:
        data["annotations"].append({"image_id": 7, "category_id": 5, "iscrowd": 0, **e})
    ann, img_dir = _write(tmp_path, data)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = InstanceDataset(ann, img_dir)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert len(msgs) == 1
    assert "degenerate_polygon=1 (ids [10])" in msgs[0] and "zero_area=1 (ids [12])" in msgs[0]
    assert "box_outside_image=1 (ids [13])" in msgs[0] and "(ids [14])" in msgs[0]
    assert ds.skipped == {"no_segmentation": [15], "degenerate_polygon": [10], "box_outside_image": [13],
                          "zero_area": [12]}
    assert ds.clipped == [14]
    s = ds[1]
    assert len(s.masks) == 4  # ids 1, 2, 11, 14
    assert ds.info()["n_instances"] == 4 and ds.info()["skipped"]["zero_area"] == 1
    assert len(ds.coco.getAnnIds()) == 8  # the GT keeps everything


def test_parse_spec_and_unknown_name():
    assert parse_spec("shapes-coco").kind == "synthetic"
    p = parse_spec("coco:/a/b.json:/a/imgs")
    assert (p.kind, p.ann_file, p.img_dir) == ("coco", "/a/b.json", "/a/imgs")
    with pytest.raises(ValueError, match="valid specs: shapes-coco, shapes-ochuman, shapes-street"):
        parse_spec("imagenet")
    with pytest.raises(ValueError, match="malformed dataset spec"):
        parse_spec("coco:only.json")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("voc:a:b", "val", DataConfig(), train=False)
    with pytest.raises(ValueError, match="split"):
        build_dataset("shapes-coco", "test", DataConfig(), train=False)


def test_dataset_is_deep_copyable_and_lazy_coco(tmp_path):
    ann, img_dir = _write(tmp_path, _base())
    ds = InstanceDataset(ann, img_dir)
    assert ds._coco is None  # not built until asked
    clone = copy.deepcopy(ds)
    assert clone.image_ids == ds.image_ids and torch.equal(clone[1].masks, ds[1].masks)
