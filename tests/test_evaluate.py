"""Tests of harness.evaluate and harness.cli_eval: hand-computed AP on tiny synthetic cases, result
validation, the CLI against pycocotools run directly (1e-9), faster-coco-eval parity, OCHuman."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy import ndimage

from harness import cli_eval
from harness.config import EvalConfig
from harness.data.types import Sample
from harness.evaluate import (
    STAT_NAMES,
    coco_segm_eval,
    evaluate_results,
    instances_to_coco_results,
    load_results,
    ochuman_eval,
    run_inference,
    save_results,
    shard_indices,
)
from methods.base import Instances, Method


def shared_data_dir() -> Path:
    env = os.environ.get("SEGBENCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _tiny_coco_val() -> Path:
    ann = shared_data_dir() / "tiny_coco" / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        pytest.skip(f"shared test data not found at {ann} (set SEGBENCH_SHARED_DATA)")
    return ann


# ---------------------------------------------------------------------------------------------
# tiny synthetic ground truth: 10 x 10 images, masks given as boolean arrays
H = W = 10


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def box_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def make_gt(anns: list[tuple[int, int, np.ndarray, int]], n_images: int = 2, n_cats: int = 2) -> dict:
    """anns: (image_id, category_id, mask, iscrowd)."""
    out = []
    for i, (img, cat, m, crowd) in enumerate(anns, start=1):
        out.append({"id": i, "image_id": img, "category_id": cat, "segmentation": rle(m),
                    "area": float(m.sum()), "bbox": list(mask_utils.toBbox(rle(m))), "iscrowd": crowd})
    return {"images": [{"id": i, "height": H, "width": W, "file_name": f"{i}.jpg"} for i in range(1, n_images + 1)],
            "categories": [{"id": c, "name": f"class{c}"} for c in range(1, n_cats + 1)],
            "annotations": out}


def det(img: int, cat: int, m: np.ndarray, score: float) -> dict:
    return {"image_id": img, "category_id": cat, "segmentation": rle(m), "score": score}


A = box_mask(0, 4, 0, 4)  # 16 px
B = box_mask(6, 10, 6, 10)  # 16 px, disjoint from A


# pycocotools computes precision as tp / (tp + fp + eps): with one TP that is 1 / (1 + 2.2e-16), so
# "100" below is 100 to 1e-9, not bit-exact (the oracle test on tiny_coco is bit-exact)
P100 = pytest.approx(100.0, abs=1e-9)


def test_one_gt_one_perfect_prediction_is_100():
    gt = make_gt([(1, 1, A, 0)])
    out = coco_segm_eval(gt, [det(1, 1, A, 0.9)])
    assert out["AP"] == P100 and out["AP50"] == P100 and out["AP75"] == P100
    assert out["APs"] == P100 and math.isnan(out["APm"]) and math.isnan(out["APl"])  # no medium / large GT
    assert out["stats"][4] == -1.0 and out["stats"][5] == -1.0
    assert out["AR1"] == 100.0 and out["AR100"] == 100.0
    assert out["per_class"] == {"class1": P100, "class2": None}  # class2 has no GT


def test_false_positive_ranked_first_halves_ap():
    # FP (score 0.9, disjoint from the GT) then TP (0.8): precision 1/2 at recall 1, interpolated
    # precision 0.5 at all 101 recall points and all IoU thresholds -> AP 50.
    gt = make_gt([(1, 1, A, 0)])
    out = coco_segm_eval(gt, [det(1, 1, B, 0.9), det(1, 1, A, 0.8)])
    assert out["AP"] == pytest.approx(50.0, abs=1e-9)
    assert out["AP50"] == pytest.approx(50.0, abs=1e-9)
    # the same FP ranked last costs nothing (precision 1 up to recall 1)
    assert coco_segm_eval(gt, [det(1, 1, B, 0.7), det(1, 1, A, 0.8)])["AP"] == P100


def test_missed_instance_gives_51_of_101_recall_points():
    # two GT, one found: precision 1 for recall thresholds 0.00..0.50 (51 of 101), 0 above
    gt = make_gt([(1, 1, A, 0), (2, 1, B, 0)])
    out = coco_segm_eval(gt, [det(1, 1, A, 0.9)])
    assert out["AP"] == pytest.approx(100.0 * 51 / 101, abs=1e-9)
    assert out["AR100"] == pytest.approx(50.0, abs=1e-12)


def test_partial_overlap_counts_at_three_of_ten_iou_thresholds():
    # prediction = 10 of the 16 GT pixels: IoU 10/16 = 0.625 -> TP at 0.50, 0.55, 0.60 only
    gt = make_gt([(1, 1, A, 0)])
    pred = box_mask(0, 2, 0, 4) | box_mask(2, 3, 0, 2)
    assert pred.sum() == 10 and (pred & A).sum() == 10
    out = coco_segm_eval(gt, [det(1, 1, pred, 0.9)])
    assert out["AP50"] == P100 and out["AP75"] == 0.0
    assert out["AP"] == pytest.approx(30.0, abs=1e-9)


def test_detection_on_crowd_region_is_ignored_not_a_false_positive():
    gt = make_gt([(1, 1, A, 0), (1, 1, B, 1)])
    out = coco_segm_eval(gt, [det(1, 1, B, 0.9), det(1, 1, A, 0.8)])
    assert out["AP"] == P100


def test_class_agnostic_matching_with_use_cats_false():
    gt = make_gt([(1, 1, A, 0)])
    wrong_class = [det(1, 2, A, 0.9)]
    assert coco_segm_eval(gt, wrong_class)["AP"] == 0.0
    agnostic = coco_segm_eval(gt, wrong_class, use_cats=False)
    assert agnostic["AP"] == P100 and "per_class" not in agnostic


def test_img_ids_and_cat_ids_restrict_the_evaluation():
    gt = make_gt([(1, 1, A, 0), (2, 1, B, 0), (2, 2, A, 0)])
    res = [det(1, 1, A, 0.9), det(2, 2, A, 0.9)]
    assert coco_segm_eval(gt, res, img_ids=[1], per_class=False)["AP"] == P100
    assert coco_segm_eval(gt, res, cat_ids=[2], class_names=["two"])["per_class"] == {"two": P100}


def test_no_results_gives_zeros_not_a_crash():
    gt = make_gt([(1, 1, A, 0)])
    out = coco_segm_eval(gt, [])
    assert out["AP"] == 0.0 and out["AR100"] == 0.0 and out["n_results"] == 0
    assert out["per_class"]["class1"] == 0.0 and out["per_class"]["class2"] is None


def test_results_are_not_mutated():
    gt = make_gt([(1, 1, A, 0)])
    res = [det(1, 1, A, 0.9)]
    before = json.dumps(res, sort_keys=True)
    coco_segm_eval(gt, res)
    assert json.dumps(res, sort_keys=True) == before


@pytest.mark.parametrize("bad, pattern", [
    ({"image_id": 99}, r"preds\.json.*image ids not in the ground truth.*\[99\]"),
    ({"category_id": 7}, r"category ids not in the ground truth.*\[7\]"),
    ({"segmentation": {"size": [H, W], "counts": "not an rle!"}}, r"result 1 \(image 1\).*RLE counts"),
    ({"segmentation": {"size": [5, 5], "counts": rle(A)["counts"]}}, r"result 1 .*size \[5, 5\]"),
    ({"segmentation": [[0, 0, 1, 1, 2, 0]]}, r"result 1 .*compressed RLE dict"),
    ({"score": float("nan")}, r"result 1 .*score"),
])
def test_invalid_results_raise_naming_file_and_result(tmp_path, bad, pattern):
    gt = make_gt([(1, 1, A, 0)])
    res = [det(1, 1, A, 0.9), {**det(1, 1, B, 0.5), **bad}]
    path = save_results(tmp_path / "preds.json", res)
    with pytest.raises(ValueError, match=pattern):
        coco_segm_eval(gt, path)


def test_max_dets_sets_the_detection_budget():
    gt = make_gt([(1, 1, A, 0)])
    res = [det(1, 1, box_mask(9, 10, i, i + 1), 0.9 - 0.01 * i) for i in range(10)] + [det(1, 1, A, 0.5)]
    assert coco_segm_eval(gt, res, max_dets=10)["AR100"] == 0.0  # the TP is the 11th detection
    assert coco_segm_eval(gt, res, max_dets=11)["AR100"] == 100.0
    with pytest.raises(ValueError, match="max_dets must be >= 10"):
        coco_segm_eval(gt, res, max_dets=5)


def test_missing_key_raises():
    gt = make_gt([(1, 1, A, 0)])
    with pytest.raises(ValueError, match=r"result 0 .*lacks \['score'\]"):
        coco_segm_eval(gt, [{k: v for k, v in det(1, 1, A, 0.9).items() if k != "score"}])


# ---------------------------------------------------------------------------------------------
# conversion and files
def test_instances_to_coco_results_round_trip():
    masks = torch.zeros((2, 6, 7), dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4:, :] = True
    inst = Instances(masks, torch.tensor([0.9, 0.4]), torch.tensor([1, 0]))
    res = instances_to_coco_results(inst, 42, [3, 8])
    assert [r["category_id"] for r in res] == [8, 3]
    assert [r["image_id"] for r in res] == [42, 42]
    assert res[0]["score"] == pytest.approx(0.9)
    assert isinstance(res[0]["segmentation"]["counts"], str) and res[0]["segmentation"]["size"] == [6, 7]
    json.dumps(res)
    for r, m in zip(res, masks):
        seg = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(seg).astype(bool), m.numpy())
    assert instances_to_coco_results(Instances.empty(6, 7), 1, [3]) == []
    with pytest.raises(ValueError, match="image 42: labels \\[2\\]"):
        instances_to_coco_results(Instances(masks, torch.tensor([0.9, 0.4]), torch.tensor([2, 0])), 42, [3, 8])


def test_save_and_load_results(tmp_path):
    res = [det(1, 1, A, 0.9)]
    path = save_results(tmp_path / "sub" / "r.json", res)
    assert load_results(path) == res
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="bad.json: COCO results must be a JSON list"):
        load_results(tmp_path / "bad.json")


def test_shard_indices_partition():
    shards = [shard_indices(10, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10)) and shards[1] == [1, 4, 7]
    with pytest.raises(ValueError):
        shard_indices(10, 3, 3)


# ---------------------------------------------------------------------------------------------
# run_inference / evaluate_results with a stub dataset and a stub method
class StubDataset:
    """Two images of different size; `gt` dict as ground truth."""

    def __init__(self, gt: dict):
        self.coco = COCO()
        self.coco.dataset = gt
        self.coco.createIndex()
        self.image_ids = [1, 2]
        self.cat_ids = [1, 2]
        self.class_names = ["class1", "class2"]
        self.sizes = {1: (12, 16), 2: (20, 8)}  # input frame, differs from the 10 x 10 original

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> Sample:
        image_id = self.image_ids[i]
        h, w = self.sizes[image_id]
        return Sample(image=torch.zeros((3, h, w), dtype=torch.uint8), masks=torch.zeros((0, h, w), dtype=torch.bool),
                      labels=torch.zeros((0,), dtype=torch.int64), boxes=torch.zeros((0, 4)),
                      iscrowd=torch.zeros((0,), dtype=torch.bool), image_id=image_id, orig_size=(H, W))


class StubMethod(Method):
    """Predicts mask A with class 0 on every image; records what predict receives."""

    def __init__(self, wrong_size: bool = False):
        super().__init__(cfg=None)
        self.calls: list = []
        self.wrong_size = wrong_size

    def forward_test(self, images):
        assert not self.training and not torch.is_grad_enabled()
        return images.shape[0]

    def postprocess(self, raw, image_sizes, orig_sizes):
        self.calls.append((list(image_sizes), list(orig_sizes)))
        h, w = (H + 1, W) if self.wrong_size else (H, W)
        m = torch.zeros((1, h, w), dtype=torch.bool)
        m[0, :4, :4] = True
        return [Instances(m, torch.tensor([0.9]), torch.tensor([0])) for _ in range(raw)]


def test_run_inference_batches_and_converts():
    gt = make_gt([(1, 1, A, 0), (2, 1, B, 0)])
    ds, method = StubDataset(gt), StubMethod()
    method.train()
    res = run_inference(method, ds, device="cpu", batch_size=2, progress=False)
    assert method.training  # mode restored
    assert method.calls == [([(12, 16), (20, 8)], [(H, W), (H, W)])]
    assert [r["image_id"] for r in res] == [1, 2] and {r["category_id"] for r in res} == {1}
    out = evaluate_results(ds, res, EvalConfig())
    # image 1: TP; image 2: FP on an image whose GT B is missed -> recall 1/2, precision 1 up to 0.5
    assert out["AP"] == pytest.approx(100.0 * 51 / 101, abs=1e-9)
    shard = run_inference(StubMethod(), ds, device="cpu", indices=[1], progress=False)
    assert [r["image_id"] for r in shard] == [2]


def test_run_inference_rejects_masks_not_at_original_size():
    ds = StubDataset(make_gt([(1, 1, A, 0)]))
    with pytest.raises(ValueError, match=r"image 1: masks are \(11, 10\), expected the original size \(10, 10\)"):
        run_inference(StubMethod(wrong_size=True), ds, device="cpu", progress=False)


def test_run_inference_gives_oracles_the_batch_ground_truth():
    ds = StubDataset(make_gt([(1, 1, A, 0)]))
    seen = []

    class GTStub(StubMethod):
        uses_ground_truth = True

        def set_ground_truth(self, coco, image_ids, cat_ids):
            seen.append((coco is ds.coco, list(image_ids), list(cat_ids)))

    run_inference(GTStub(), ds, device="cpu", batch_size=1, progress=False)
    assert seen == [(True, [1], [1, 2]), (True, [2], [1, 2])]


# ---------------------------------------------------------------------------------------------
# real data: predictions derived from tiny_coco val GT, CLI vs pycocotools, faster parity
@pytest.fixture(scope="module")
def perturbed_predictions(tmp_path_factory) -> tuple[Path, Path]:
    """tiny_coco val GT turned into predictions: dropped (20%), dilated / eroded / shifted masks,
    wrong classes, duplicates and extra false positives, with random scores."""
    ann = _tiny_coco_val()
    coco = COCO(str(ann))
    rng = np.random.default_rng(0)
    cats = sorted(coco.getCatIds())
    res = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        for a in coco.imgToAnns.get(image_id, []):
            if a["iscrowd"] or rng.random() < 0.2:
                continue
            m = coco.annToMask(a).astype(bool)
            kind = rng.integers(0, 4)
            x, y, w, h = (int(v) for v in a["bbox"])
            crop = (slice(max(y - 4, 0), y + h + 5), slice(max(x - 4, 0), x + w + 5))  # morphology near the mask
            if kind == 1:
                m[crop] = ndimage.binary_dilation(m[crop], iterations=int(rng.integers(1, 4)))
            elif kind == 2:
                m[crop] = ndimage.binary_erosion(m[crop], iterations=int(rng.integers(1, 3)))
            elif kind == 3:
                m = np.roll(m, shift=(int(rng.integers(-5, 6)), int(rng.integers(-5, 6))), axis=(0, 1))
            cat = a["category_id"] if rng.random() > 0.1 else int(rng.choice(cats))
            res.append({"image_id": image_id, "category_id": cat, "segmentation": rle(m),
                        "score": float(rng.random())})
            if rng.random() < 0.1:  # duplicate
                res.append({**res[-1], "score": float(rng.random())})
        for _ in range(int(rng.integers(0, 3))):  # false positives
            h, w = info["height"], info["width"]
            y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
            m = np.zeros((h, w), bool)
            m[y:y + int(rng.integers(5, 20)), x:x + int(rng.integers(5, 60))] = True
            res.append({"image_id": image_id, "category_id": int(rng.choice(cats)), "segmentation": rle(m),
                        "score": float(rng.random() * 0.5)})
    path = save_results(tmp_path_factory.mktemp("preds") / "preds.json", res)
    return ann, path


def _pycocotools_stats(ann: Path, preds: Path) -> list[float]:
    gt = COCO(str(ann))
    dt = gt.loadRes(str(preds))
    ev = COCOeval(gt, dt, iouType="segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return [float(s) for s in ev.stats]


def test_cli_matches_pycocotools_to_1e9(perturbed_predictions, tmp_path, capsys):
    ann, preds = perturbed_predictions
    expected = _pycocotools_stats(ann, preds)
    capsys.readouterr()
    assert 0.1 < expected[0] < 0.9  # a non-trivial case

    parser = argparse.ArgumentParser(prog="harness")
    cli_eval.register(parser.add_subparsers(dest="command"))
    out_json = tmp_path / "metrics.json"
    args = parser.parse_args(["evaluate", "--gt", str(ann), "--predictions", str(preds), "--per-class",
                              "--json", str(out_json)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    got = {}
    for line in printed.splitlines():
        m = re.match(r"^(\w+)\s+(?:[\d.]+|n/a)\s+(-?\d+\.\d{12})$", line)
        if m and m.group(1) in STAT_NAMES:
            got[m.group(1)] = float(m.group(2))
    assert list(got) == list(STAT_NAMES)
    for name, exp in zip(STAT_NAMES, expected):
        assert abs(got[name] - exp) <= 1e-9, name
    saved = json.loads(out_json.read_text())
    assert len(saved["stats"]) == 12
    assert all(abs(a - b) <= 1e-9 for a, b in zip(saved["stats"], expected))
    assert saved["AP"] == pytest.approx(100 * expected[0], abs=1e-9)
    assert "person" in saved["per_class"] and "per-class mask AP" in printed


def test_cli_modes(tmp_path, capsys, monkeypatch):
    assert cli_eval.main(["--gt", "x.json"]) == 2
    assert "give --gt ANN.json and --predictions" in capsys.readouterr().err
    assert cli_eval.main(["--gt", str(tmp_path / "missing.json"), "--predictions", "p.json"]) == 2
    assert "missing.json" in capsys.readouterr().err
    called = []
    hooks = types.ModuleType("harness.cli_hooks")
    hooks.evaluate_run = lambda args: called.append(args.run) or 0
    monkeypatch.setitem(sys.modules, "harness.cli_hooks", hooks)
    assert cli_eval.main(["--run", "runs/x"]) == 0 and called == ["runs/x"]


def test_cli_class_agnostic_scores_a_wrong_class_as_a_match(tmp_path, capsys):
    """``evaluate --class-agnostic``: the right mask with the wrong class is 0 AP per class and 100 without classes."""
    gt, preds = tmp_path / "gt.json", tmp_path / "preds.json"
    gt.write_text(json.dumps(make_gt([(1, 1, A, 0)])))
    preds.write_text(json.dumps([det(1, 2, A, 0.9)]))
    out = tmp_path / "m.json"
    assert cli_eval.main(["--gt", str(gt), "--predictions", str(preds), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == 0.0
    assert cli_eval.main(["--gt", str(gt), "--predictions", str(preds), "--class-agnostic", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == P100 and "class-agnostic" in capsys.readouterr().out
    assert cli_eval.main(["--gt", str(gt), "--predictions", str(preds), "--class-agnostic", "--per-class"]) == 2


def test_faster_backend_matches_pycocotools(perturbed_predictions):
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval not installed")
    ann, preds = perturbed_predictions
    results = load_results(preds)
    before = json.dumps(results)
    ref = coco_segm_eval(ann, results, backend="pycocotools")
    fast = coco_segm_eval(ann, results, backend="faster")
    assert json.dumps(results) == before  # neither backend mutates the results
    assert np.allclose(ref["stats"], fast["stats"], rtol=0, atol=1e-9)
    assert ref["per_class"].keys() == fast["per_class"].keys()
    for name, ap in ref["per_class"].items():
        assert (ap is None and fast["per_class"][name] is None) or abs(ap - fast["per_class"][name]) < 1e-9
    assert coco_segm_eval(ann, [], backend="faster")["AP"] == 0.0


def test_ochuman_protocol_on_the_sample():
    ann = shared_data_dir() / "ochuman_sample" / "test_ochuman.json"
    if not ann.is_file():
        pytest.skip(f"shared test data not found at {ann}")
    gt = json.loads(ann.read_text())
    perfect = [{"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"], "score": 1.0}
               for a in gt["annotations"]]
    out = ochuman_eval(ann, perfect)
    assert out["AP"] == 100.0 and out["AR"] == 100.0 and "per_class" not in out
    # 5 people, 4 found: recall 0.8 -> precision 1 at 81 of 101 recall points; AR = 80
    out = ochuman_eval(ann, perfect[:4])
    assert out["AP"] == pytest.approx(100.0 * 81 / 101, abs=1e-9)
    assert out["AR"] == pytest.approx(80.0, abs=1e-9)
    with pytest.raises(ValueError, match="category ids not in the ground truth"):
        ochuman_eval(ann, [{**perfect[0], "category_id": 2}])
