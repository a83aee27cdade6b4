"""Tests of harness.validate (issue 15): RLE counts, polygon bounds, image sizes and modes, GT validation
shared by the loader and ``evaluate --gt``, max_dets != 100, annotation id 0, bad GT entries in evaluation."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data.coco import DatasetError, InstanceDataset
from harness.evaluate import coco_segm_eval, run_inference
from harness.validate import (
    DataWarning,
    check_inference_size,
    load_rgb,
    rle_counts,
    validate_gt,
)

REPO = Path(__file__).resolve().parents[1]
H = W = 20


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def box(y0, y1, x0, x1, h=H, w=W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def gt_dict() -> dict:
    a, b = box(2, 10, 2, 10), box(12, 18, 12, 18)
    return {"images": [{"id": 1, "height": H, "width": W, "file_name": "1.png"}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]],
                 "area": 64.0, "bbox": [2, 2, 8, 8], "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 1, "segmentation": rle(b), "area": float(b.sum()),
                 "bbox": [12, 12, 6, 6], "iscrowd": 0}]}, a, b


def det(m, score, img=1, cat=1) -> dict:
    return {"image_id": img, "category_id": cat, "segmentation": rle(m), "score": score}


# ---------------------------------------------------------------------------------------------
# RLE counts
def test_rle_counts_decode_like_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = rng.random((h, w)) < rng.random()
        counts = rle_counts(rle(m)["counts"])
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)  # column-major runs 0, 1, 0, ...
        assert flat.size == h * w
        assert (flat.reshape(w, h).T == m).all()


def test_truncated_prediction_rle_is_refused_before_pycocotools():
    gt, a, b = gt_dict()
    r = det(np.eye(H, dtype=bool), 0.9)
    r["segmentation"]["counts"] = r["segmentation"]["counts"][:-3]
    code = (f"import json,sys; sys.path.insert(0, {str(REPO)!r})\n"
            "from harness.evaluate import coco_segm_eval\n"
            "try:\n    coco_segm_eval(json.loads(sys.argv[1]), json.loads(sys.argv[2]))\n"
            "except ValueError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(gt), json.dumps([r])], capture_output=True,
                         text=True, timeout=60)  # a hang would time out here
    assert "ERR" in out.stdout and "result 0 (image 1)" in out.stdout, out.stdout + out.stderr
    assert "add up to" in out.stdout or "truncated" in out.stdout


def test_gt_rle_counts_must_add_up_to_image_size():
    gt, a, b = gt_dict()
    gt["annotations"][1]["segmentation"]["counts"] = rle(box(0, 5, 0, 5, h=10, w=10))["counts"]
    with pytest.raises(DatasetError, match=r"ground truth: annotation 2: RLE counts add up to 100 pixels, not "
                                           r"height x width = 400"):
        coco_segm_eval(gt, [det(a, 0.9)])
    gt["annotations"][1]["segmentation"] = {"size": [H, W], "counts": [10, 5]}
    with pytest.raises(DatasetError, match="annotation 2: RLE counts add up to 15"):
        validate_gt(gt, "x.json")


def test_rle_size_as_strings_is_an_error_naming_the_id():
    gt, a, b = gt_dict()
    gt["annotations"][1]["segmentation"]["size"] = ["20", "20"]
    with pytest.raises(DatasetError, match=r"x.json: annotation 2: RLE size must be two integers"):
        validate_gt(gt, "x.json")
    with pytest.raises(ValueError, match=r"result 0 \(image 1\): RLE size must be two integers"):
        r = det(a, 0.5)
        r["segmentation"]["size"] = ["20", "20"]
        coco_segm_eval(gt_dict()[0], [r])


# ---------------------------------------------------------------------------------------------
# bounded allocations
@pytest.mark.parametrize("coord, pattern", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
                                            (1e12, "far outside"), ("3", "must be numbers")])
def test_absurd_polygon_coordinates_are_refused(coord, pattern):
    gt, a, b = gt_dict()
    gt["annotations"][0]["segmentation"] = [[2, 2, coord, 2, 10, 10, 2, 10]]
    with pytest.raises(DatasetError, match=rf"annotation 1: .*{pattern}"):
        validate_gt(gt, "x.json")


def test_polygons_too_long_to_rasterise_are_refused():
    gt, a, b = gt_dict()
    gt["annotations"][0]["segmentation"] = [[0, 0, 79, 79] * 100_000]  # 400k edges, each 79 px
    with pytest.raises(DatasetError, match="too long to rasterise"):
        validate_gt(gt, "x.json")


@pytest.mark.parametrize("value", [None, "640", 0, -5, 1.5, 10**8])
def test_image_size_null_string_or_huge_is_an_error(value):
    gt, a, b = gt_dict()
    gt["images"][0]["width"] = value
    with pytest.raises(DatasetError, match=r"x.json: image 1: (width must be a positive integer|.*exceeds the limit)"):
        validate_gt(gt, "x.json")


def test_image_id_as_string_is_an_error():
    gt, a, b = gt_dict()
    gt["images"][0]["id"] = "1"
    with pytest.raises(DatasetError, match=r"x.json: image id must be an integer, got '1'"):
        validate_gt(gt, "x.json")


def test_inference_refuses_masks_too_large_for_memory():
    with pytest.raises(ValueError, match=r"image 7: 8000x6000 px with up to 100 predictions would hold 17.9 GiB"):
        check_inference_size(6000, 8000, 100, "image 7")
    check_inference_size(480, 640, 100, "image 7")  # COCO-sized: fine

    class Big:  # a dataset of one 8000 x 6000 image; run_inference must stop before predict
        cat_ids = [1]

        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise AssertionError("loaded the image before checking its size")

        def image_size(self, i):
            return 6000, 8000

        image_ids = [7]

    class M:
        training = False

        class cfg:
            max_per_img = 100

        def to(self, d):
            return self

        def eval(self):
            return self

        def train(self, mode=True):
            return self

    with pytest.raises(ValueError, match="image 7: 8000x6000 px"):
        run_inference(M(), Big(), device="cpu", progress=False)


# ---------------------------------------------------------------------------------------------
# image modes
def _save(tmp_path, img: Image.Image, name: str) -> Path:
    p = tmp_path / name
    img.save(p)
    return p


def test_image_modes_convert_to_8bit_rgb(tmp_path):
    grey16 = np.array([[0, 257 * 100], [65535, 257 * 10]], np.uint16)
    p16 = _save(tmp_path, Image.fromarray(grey16), "g16.png")
    assert Image.open(p16).mode.startswith("I")
    out = load_rgb(p16, "img")
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[..., 0].tolist() == [[0, 100], [255, 10]]  # PIL's convert("RGB") would give 255 for all but 0
    pi = _save(tmp_path, Image.fromarray(grey16.astype(np.int32), mode="I"), "i32.tif")
    assert load_rgb(pi, "img")[..., 1].tolist() == [[0, 100], [255, 10]]
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    assert load_rgb(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"), "img")[0, 0].tolist() == [200, 0, 0]
    la = Image.fromarray(np.full((2, 2, 2), 77, np.uint8), "LA")
    assert load_rgb(_save(tmp_path, la, "la.png"), "img")[0, 0].tolist() == [77, 77, 77]
    p = Image.new("P", (2, 2), 1)
    p.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    p.info["transparency"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's "Palette images with Transparency" warning is a wrong decode
        assert load_rgb(_save(tmp_path, p, "p.png"), "img")[0, 0].tolist() == [10, 20, 30]
    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))
    assert load_rgb(_save(tmp_path, cmyk, "c.jpg"), "img")[0, 0].tolist() == [255, 255, 255]
    one = Image.new("1", (2, 2), 1)
    assert load_rgb(_save(tmp_path, one, "b.png"), "img")[0, 0].tolist() == [255, 255, 255]
    assert load_rgb(_save(tmp_path, Image.new("L", (2, 2), 9), "l.png"), "img")[0, 0].tolist() == [9, 9, 9]


def test_float_images_and_corrupt_files_are_refused_naming_the_file(tmp_path):
    pf = _save(tmp_path, Image.fromarray(np.ones((2, 2), np.float32), mode="F"), "f.tif")
    with pytest.raises(DatasetError, match=r"f.tif.*mode F"):
        load_rgb(pf, f"image file {pf}")
    good = _save(tmp_path, Image.new("RGB", (64, 64), (1, 2, 3)), "t.png")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DatasetError, match=r"trunc.png.*cannot read the image"):
        load_rgb(trunc, f"image file {trunc}")
    garbage = tmp_path / "g.jpg"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match=r"g.jpg.*cannot read the image"):
        load_rgb(garbage, f"image file {garbage}")


def test_dataset_names_file_and_image_id_of_a_corrupt_image(tmp_path):
    gt, a, b = gt_dict()
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    (tmp_path / "1.png").write_bytes(b"\x89PNG garbage")
    ds = InstanceDataset(tmp_path / "ann.json", tmp_path)
    with pytest.raises(DatasetError, match=r"1.png of image id 1: cannot read the image"):
        ds[0]


# ---------------------------------------------------------------------------------------------
# evaluate --gt runs the loader's validation; bad GT entries in evaluation
def test_evaluate_gt_refuses_duplicate_annotation_ids_like_the_loader(tmp_path):
    gt, a, b = gt_dict()
    gt["annotations"][1]["id"] = 1
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    (tmp_path / "preds.json").write_text(json.dumps([det(a, 0.9)]))
    with pytest.raises(DatasetError, match="duplicate annotation id 1"):
        InstanceDataset(tmp_path / "ann.json", tmp_path, use_file_check=False)
    out = subprocess.run([sys.executable, "-m", "harness", "evaluate", "--gt", str(tmp_path / "ann.json"),
                          "--predictions", str(tmp_path / "preds.json")], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{tmp_path / 'ann.json'}: duplicate annotation id 1" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("segm", [[], None, "absent", {}, [[1, 1, 5, 5]]])
def test_gt_without_usable_segmentation_counts_as_missed_in_evaluation(segm):
    gt, a, b = gt_dict()
    if segm == "absent":
        gt["annotations"][1].pop("segmentation")
    else:
        gt["annotations"][1]["segmentation"] = segm
    with pytest.warns(DataWarning, match=r"ground truth repaired for evaluation: (no_segmentation|degenerate_polygon)"
                                         r"=1 \(ids \[2\]"):
        out = coco_segm_eval(gt, [det(a, 0.9)])
    # one of two GT found: recall 0.5 at every threshold, precision 1 up to it -> 51 of 101 points
    assert out["AP"] == pytest.approx(100 * 51 / 101, abs=1e-6)


def test_missing_area_is_computed_and_counted():
    gt, a, b = gt_dict()
    ref = coco_segm_eval(copy.deepcopy(gt), [det(a, 0.9), det(b, 0.8)])
    del gt["annotations"][1]["area"]
    with pytest.warns(DataWarning, match=r"area_computed=1 \(ids \[2\]"):
        out = coco_segm_eval(gt, [det(a, 0.9), det(b, 0.8)])
    assert out["stats"] == ref["stats"]
    gt["annotations"][1]["area"] = "big"
    with pytest.raises(DatasetError, match="annotation 2: area must be a non-negative finite number"):
        coco_segm_eval(gt, [det(a, 0.9)])


def test_annotation_id_zero_is_remapped_with_a_warning():
    gt, a, b = gt_dict()
    gt["annotations"][0]["id"] = 0
    with pytest.warns(DataWarning, match=r"id_zero_remapped=1 .*annotation id 0 renumbered to 3"):
        out = coco_segm_eval(gt, [det(a, 0.9), det(b, 0.8)])
    assert out["AP"] == pytest.approx(100.0, abs=1e-9)  # pycocotools alone: the id-0 match reads as unmatched


# ---------------------------------------------------------------------------------------------
# max_dets other than 100
def _many_dets_case(n_gt: int = 150, size: int = 64):
    """One image with ``n_gt`` one-pixel-apart GT squares and a prediction for each (descending score)."""
    rng = np.random.default_rng(1)
    anns, dets = [], []
    k = 0
    for y in range(0, size, 5):
        for x in range(0, size, 5):
            if k == n_gt:
                break
            m = box(y, y + 4, x, x + 4, h=size, w=size)
            k += 1
            anns.append({"id": k, "image_id": 1, "category_id": 1, "segmentation": rle(m), "area": 16.0,
                         "bbox": [x, y, 4, 4], "iscrowd": 0})
            dets.append(det(m if rng.random() < 0.8 else np.roll(m, 2, axis=1), float(rng.random())))
    gt = {"images": [{"id": 1, "height": size, "width": size, "file_name": "x"}],
          "categories": [{"id": 1, "name": "a"}], "annotations": anns}
    return gt, dets


@pytest.mark.parametrize("max_dets", [10, 300])
def test_max_dets_other_than_100_matches_faster_coco_eval(max_dets):
    gt, dets = _many_dets_case()
    out = coco_segm_eval(gt, dets, max_dets=max_dets, per_class=False)
    assert not math.isnan(out["AP"])
    fce = pytest.importorskip("faster_coco_eval")
    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster
    g = FCOCO(copy.deepcopy(gt))
    d = g.loadRes(copy.deepcopy(dets))
    ev = COCOeval_faster(g, d, iouType="segm", print_function=lambda *a, **k: None)
    ev.params.maxDets = [1, 10, max_dets]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert fce is not None
    np.testing.assert_allclose(out["stats"], np.asarray(ev.stats[:12], float), atol=1e-12)


def test_max_dets_hand_computed():
    gt, _ = _many_dets_case(n_gt=150)
    # every prediction exact, descending scores: recall min(max_dets, 150) / 150 at precision 1
    exact = [det(mask_utils.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}).astype(bool),
                 1.0 - i / 1000) for i, a in enumerate(gt["annotations"])]
    out10 = coco_segm_eval(gt, exact, max_dets=10, per_class=False)
    # 10 of 150 found, precision 1: recall 1/15 -> recall points 0.00..0.06 (7 of 101)
    assert out10["AP"] == pytest.approx(100 * 7 / 101, abs=1e-6)
    assert out10["AR100"] == pytest.approx(100 * 10 / 150, abs=1e-6)
    out300 = coco_segm_eval(gt, exact, max_dets=300, per_class=False)
    assert out300["AP"] == pytest.approx(100.0, abs=1e-6)
    assert out300["AR10"] == pytest.approx(100 * 10 / 150, abs=1e-6)


def test_corrupt_header_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    import struct
    import zlib
    p = _save(tmp_path, Image.new("L", (32, 24), 5), "big.png")
    data = bytearray(p.read_bytes())
    data[16:24] = struct.pack(">II", 12_000, 10_000)  # IHDR width, height: 120 M px (PIL itself stops at 179 M)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    p.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"big.png: 12000x10000 px exceeds the limit"):
        load_rgb(p, f"image file {p}")
    with pytest.raises(DatasetError, match=r"big.png is 12000x10000 \(WxH\) but the JSON says 32x24"):
        load_rgb(p, f"image file {p}", (24, 32))
