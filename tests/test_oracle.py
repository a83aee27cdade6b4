"""Tests of methods.oracle: the oracle scores exactly 100 mask AP on tiny_coco val through the whole
harness (run_inference -> COCO results -> COCOeval); oracle_jitter is seeded and degrades as set."""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from harness.config import EvalConfig
from harness.data.types import Sample
from harness.evaluate import coco_segm_eval, evaluate_results, run_inference
from methods import METHODS, build_method, method_config
from methods.oracle import OracleJitterConfig


def shared_data_dir() -> Path:
    env = os.environ.get("SEGBENCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _val_ann() -> Path:
    ann = shared_data_dir() / "tiny_coco" / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        pytest.skip(f"shared test data not found at {ann} (set SEGBENCH_SHARED_DATA)")
    return ann


class GTOnlyDataset:
    """tiny_coco val with 8 x 8 placeholder images: the oracles never look at pixels."""

    def __init__(self, ann: Path, n_images: int | None = None):
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(ann))
        self.cat_ids = sorted(self.coco.getCatIds())
        self.class_names = [self.coco.cats[c]["name"] for c in self.cat_ids]
        self.image_ids = sorted(self.coco.getImgIds())[:n_images]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int) -> Sample:
        info = self.coco.imgs[self.image_ids[i]]
        return Sample(image=torch.zeros((3, 8, 8), dtype=torch.uint8), masks=torch.zeros((0, 8, 8), dtype=torch.bool),
                      labels=torch.zeros((0,), dtype=torch.int64), boxes=torch.zeros((0, 4)),
                      iscrowd=torch.zeros((0,), dtype=torch.bool), image_id=info["id"],
                      orig_size=(info["height"], info["width"]))


@pytest.fixture(scope="module")
def val_dataset() -> GTOnlyDataset:
    return GTOnlyDataset(_val_ann())


def test_oracles_are_registered_untrainable_ground_truth_methods():
    for name in ("oracle", "oracle_jitter"):
        method = build_method(method_config(name))
        assert type(method) is METHODS[name]
        assert method.trainable is False and method.uses_ground_truth is True
        assert list(method.parameters()) == []
        with pytest.raises(RuntimeError, match="cannot be trained"):
            method(torch.zeros(1, 3, 8, 8), [])
        with pytest.raises(RuntimeError, match="call set_ground_truth"):
            method.predict(torch.zeros(1, 3, 8, 8), [(8, 8)])


@pytest.mark.parametrize("field, value", [("drop_prob", 1.5), ("dup_prob", -0.1), ("score_noise", 2.0),
                                          ("jitter_px", -1)])
def test_oracle_jitter_config_validation(field, value):
    with pytest.raises(ValueError, match=f"method.{field}"):
        OracleJitterConfig(**{field: value})


def test_oracle_mask_ap_is_exactly_100_on_tiny_coco_val(val_dataset):
    method = build_method(method_config("oracle"))
    results = run_inference(method, val_dataset, device="cpu", batch_size=4, progress=False)
    n_gt = sum(1 for a in val_dataset.coco.dataset["annotations"] if not a["iscrowd"])
    assert len(results) == n_gt and {r["score"] for r in results} == {1.0}
    out = evaluate_results(val_dataset, results, EvalConfig())
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
        assert out[name] == 100.0, name
    # per class, pycocotools' precision tp / (tp + fp + eps) is 1 - 2e-16 for a class with one instance
    assert all(ap is None or ap == pytest.approx(100.0, abs=1e-9) for ap in out["per_class"].values())
    assert out["per_class"]["person"] == 100.0 and sum(ap is not None for ap in out["per_class"].values()) > 30


def test_predict_checks_batch_and_original_size(val_dataset):
    method = build_method(method_config("oracle"))
    image_id = val_dataset.image_ids[0]
    info = val_dataset.coco.imgs[image_id]
    with pytest.raises(ValueError, match=r"image ids \[-7\] are not in the ground truth"):
        method.set_ground_truth(val_dataset.coco, [image_id, -7], val_dataset.cat_ids)
    method.set_ground_truth(val_dataset.coco, [image_id], val_dataset.cat_ids)
    with pytest.raises(RuntimeError, match="got 1 image ids but the batch has 2 images"):
        method.predict(torch.zeros(2, 3, 8, 8), [(8, 8)] * 2)
    with pytest.raises(ValueError, match=f"image {image_id}: COCO size"):
        method.predict(torch.zeros(1, 3, 8, 8), [(8, 8)], [(info["height"] + 1, info["width"])])
    (inst,) = method.predict(torch.zeros(1, 3, 8, 8), [(8, 8)], [(info["height"], info["width"])])
    anns = [a for a in val_dataset.coco.imgToAnns[image_id] if not a["iscrowd"]]
    assert inst.masks.shape == (len(anns), info["height"], info["width"]) and inst.masks.dtype == torch.bool
    assert np.array_equal(inst.masks[0].numpy(), val_dataset.coco.annToMask(anns[0]).astype(bool))
    assert inst.labels[0].item() == val_dataset.cat_ids.index(anns[0]["category_id"])


def _jitter_results(dataset, batch_size: int = 1, **cfg) -> list[dict]:
    method = build_method(replace(method_config("oracle_jitter"), **cfg))
    return run_inference(method, dataset, device="cpu", batch_size=batch_size, progress=False)


def test_oracle_jitter_is_seeded_and_independent_of_batching():
    ds = GTOnlyDataset(_val_ann(), n_images=6)
    a = _jitter_results(ds, batch_size=1)
    assert a == _jitter_results(ds, batch_size=3)
    assert a != _jitter_results(ds, batch_size=1, seed=1)
    scores = [r["score"] for r in a]
    assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1


def test_oracle_jitter_degradations(val_dataset):
    ds = GTOnlyDataset(_val_ann(), n_images=10)
    n_gt = sum(1 for i in ds.image_ids for a in ds.coco.imgToAnns[i] if not a["iscrowd"])
    exact = _jitter_results(ds, drop_prob=0.0, dup_prob=0.0, jitter_px=0, score_noise=0.0)
    assert len(exact) == n_gt
    ids = ds.image_ids
    assert coco_segm_eval(ds.coco, exact, img_ids=ids)["AP"] == 100.0
    assert _jitter_results(ds, drop_prob=1.0) == []
    dups = _jitter_results(ds, drop_prob=0.0, dup_prob=1.0, jitter_px=0, score_noise=0.0)
    assert len(dups) == 2 * n_gt
    # duplicates score below every original (score * u < 1): they cost no AP but are there
    assert coco_segm_eval(ds.coco, dups, img_ids=ids)["AP"] == 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        default = coco_segm_eval(ds.coco, _jitter_results(ds), img_ids=ids)
    assert 30.0 < default["AP"] < 100.0 and default["AP50"] > default["AP75"]


def test_oracle_with_the_data_layer():
    """Through the real data layer when it is present (harness.data.build_dataset)."""
    data = pytest.importorskip("harness.data")
    if not hasattr(data, "build_dataset"):
        pytest.skip("harness.data.build_dataset not available yet")
    from harness.config import DataConfig

    ann = _val_ann()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = data.build_dataset(f"coco:{ann}:{ann.parent.parent / 'val2017'}", "val",
                                DataConfig(test_short_side=64, max_size=128), train=False)
    idx = list(range(4))
    results = run_inference(build_method(method_config("oracle")), ds, device="cpu", indices=idx,
                            progress=False)
    out = coco_segm_eval(ds.coco, results, img_ids=[ds.image_ids[i] for i in idx],
                         class_names=ds.class_names, cat_ids=ds.cat_ids)
    assert out["AP"] == 100.0


def test_jitter_on_the_mask_box_equals_whole_image_morphology():
    from scipy import ndimage

    method = build_method(method_config("oracle_jitter", jitter_px=3))
    rng = np.random.default_rng(0)
    radii = set()
    for t in range(60):
        mask = np.zeros((30, 40), np.uint8)
        y, x = int(rng.integers(0, 30)), int(rng.integers(0, 40))  # boxes touching the borders too
        mask[max(y - 5, 0):y + 5, max(x - 7, 0):x + 7] = 1
        radius = int(np.random.default_rng(t).integers(-3, 4))
        radii.add(radius)
        if radius > 0:
            expected = ndimage.binary_dilation(mask, iterations=radius)
        elif radius < 0:
            expected = ndimage.binary_erosion(mask, iterations=-radius)
        else:
            expected = mask
        got = method._jitter(mask, np.random.default_rng(t))
        assert np.array_equal(got.astype(bool), expected.astype(bool)), (t, radius)
    assert radii == {-3, -2, -1, 0, 1, 2, 3}
