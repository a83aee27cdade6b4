"""Instance-id PNG datasets (harness.data.masks_png): Penn-Fudan conversion, the hash split, bad input,
``pennfudan:`` / ``masks:`` specs through build_dataset, and the oracle's AP 100 on Penn-Fudan val."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.config import DataConfig
from harness.data import build_dataset, parse_spec
from harness.data.coco import DatasetError
from harness.data.masks_png import SPLIT_RULE, convert_masks, convert_pennfudan, split_of


def _pennfudan(shared_data: Path) -> Path:
    root = shared_data / "pennfudan"
    if not (root / "PedMasks").is_dir():
        pytest.skip(f"Penn-Fudan not found at {root} (set SEGBENCH_SHARED_DATA)")
    return root


def _toy(tmp: Path, n: int = 3, size=(20, 16)) -> tuple[Path, Path]:
    img_dir, mask_dir = tmp / "img", tmp / "mask"
    img_dir.mkdir()
    mask_dir.mkdir()
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), 100, np.uint8)).save(img_dir / f"im{i}.png")
        m = np.zeros((size[1], size[0]), np.uint8)
        m[2:6, 2:8] = 1
        m[8:14, 10:18] = 2
        Image.fromarray(m).save(mask_dir / f"im{i}_mask.png")
    return img_dir, mask_dir


def test_pennfudan_instance_count_equals_nonzero_mask_ids(shared_data, tmp_path):
    root = _pennfudan(shared_data)
    masks = sorted((root / "PedMasks").glob("*.png"))
    expected = sum(int((np.unique(np.asarray(Image.open(p))) > 0).sum()) for p in masks)
    info = convert_pennfudan(root, tmp_path / "all.json", "all")
    data = json.loads((tmp_path / "all.json").read_text())
    assert info["n_instances"] == len(data["annotations"]) == expected == 366
    assert len(data["images"]) == 150 and data["categories"] == [{"id": 1, "name": "person", "supercategory": "person"}]
    a = data["annotations"][0]
    assert a["iscrowd"] == 0 and a["category_id"] == 1 and isinstance(a["segmentation"]["counts"], str)
    assert data["info"]["split_rule"] == SPLIT_RULE
    tr = convert_pennfudan(root, tmp_path / "tr.json", "train")
    va = convert_pennfudan(root, tmp_path / "va.json", "val")
    assert tr["n_images"] + va["n_images"] == 150 and 25 <= va["n_images"] <= 40
    assert tr["n_instances"] + va["n_instances"] == 366


def test_area_and_tight_box_from_the_mask(tmp_path):
    img_dir, mask_dir = _toy(tmp_path, n=1)
    convert_masks(img_dir, mask_dir, tmp_path / "a.json", class_name="thing")
    anns = json.loads((tmp_path / "a.json").read_text())["annotations"]
    assert [(a["area"], a["bbox"]) for a in anns] == [(24, [2.0, 2.0, 6.0, 4.0]), (48, [10.0, 8.0, 8.0, 6.0])]


def test_split_is_a_function_of_the_name_only():
    assert split_of("FudanPed00001") == split_of("FudanPed00001")
    names = [f"x{i}" for i in range(1000)]
    assert 150 < sum(split_of(n) == "val" for n in names) < 250
    assert [split_of(n) for n in names[::-1]] == [split_of(n) for n in names][::-1]


def test_bad_input_names_the_file(tmp_path):
    img_dir, mask_dir = _toy(tmp_path)
    (mask_dir / "im1_mask.png").unlink()
    with pytest.raises(DatasetError, match="im1_mask.png"):
        convert_masks(img_dir, mask_dir, tmp_path / "o.json")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask_dir / "im1_mask.png")
    with pytest.raises(DatasetError, match=r"im1_mask.png is 5x5 .*im1.png is 20x16"):
        convert_masks(img_dir, mask_dir, tmp_path / "o.json")
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(mask_dir / "im1_mask.png")
    with pytest.raises(DatasetError, match="im1_mask.png: expected a single-channel"):
        convert_masks(img_dir, mask_dir, tmp_path / "o.json")
    with pytest.raises(DatasetError, match="not found"):
        convert_masks(tmp_path / "nope", mask_dir, tmp_path / "o.json")


def test_declared_instance_without_pixels_is_a_counted_skip(tmp_path):
    img_dir, mask_dir = _toy(tmp_path, n=2)
    info = convert_masks(img_dir, mask_dir, tmp_path / "o.json", expected_ids=lambda stem: 3)
    assert info["skipped"]["empty_instance"] == 2 and info["skipped_ids"] == ["im0#3", "im1#3"]
    assert info["n_instances"] == 4


def test_masks_spec_through_build_dataset(tmp_path):
    img_dir, mask_dir = _toy(tmp_path, n=12)
    spec = f"masks:{img_dir}:{mask_dir}:widget"
    assert parse_spec(spec).class_name == "widget"
    cfg = DataConfig(test_short_side=32, cache_dir=str(tmp_path / "cache"))
    splits = {s: build_dataset(spec, s, cfg, train=False) for s in ("train", "val")}
    assert len(splits["train"]) + len(splits["val"]) == 12
    assert splits["train"].class_names == ["widget"]
    info = splits["train"].info()
    assert info["split"] == "train" and info["split_rule"] == SPLIT_RULE
    sample = splits["train"][0]
    assert sample.masks.shape[0] == 2 and min(sample.size) == 32
    with pytest.raises(ValueError, match="masks:IMGDIR:MASKDIR"):
        parse_spec("masks:onlyone")


def test_oracle_ap_is_100_on_pennfudan_val(shared_data, tmp_path):
    from harness.config import EvalConfig
    from harness.evaluate import evaluate_results, run_inference
    from methods import build_method, method_config
    root = _pennfudan(shared_data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = build_dataset(f"pennfudan:{root}", "val", DataConfig(test_short_side=64, cache_dir=str(tmp_path)),
                           train=False)
    results = run_inference(build_method(method_config("oracle")), ds, device="cpu", progress=False)
    out = evaluate_results(ds, results, EvalConfig(per_class=False))
    assert out["AP"] == 100.0


def test_data_stats_and_overlap_pairs_on_pennfudan(shared_data, tmp_path, capsys):
    import contextlib
    import io

    from pycocotools.coco import COCO

    from experiments.real_pennfudan import overlap_images
    from harness import cli_data
    root = _pennfudan(shared_data)
    parser = __import__("argparse").ArgumentParser()
    cli_data.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "stats", f"pennfudan:{root}", "--json", "--set",
                              f"data.cache_dir={tmp_path}"])
    assert args.func(args) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["images"] == 35 and st["instances"] == 78
    convert_pennfudan(root, tmp_path / "all.json", "all")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "all.json"))
    assert len(overlap_images(coco, 0.5)) == 1  # Penn-Fudan has one pair of pedestrian boxes with IoU > 0.5


def test_real_pennfudan_says_when_its_timings_shared_the_cores():
    """The study's ms/img column is flagged as no speed comparison when a timing's load exceeded its threads."""
    from experiments.real_pennfudan import _timing_load_note

    def rec(load):
        return {"env": {"cpu_count": 2}, "timing": {"protocol": {"threads": 2, "load_avg_1m": load}}}

    loaded = _timing_load_note([rec(1.0), rec(3.1), {"env": {"cpu_count": 2}}])
    assert len(loaded) == 1
    assert "1.0–3.1 on 2 cores over the 2 timed records" in loaded[0]
    assert "not a speed comparison" in loaded[0]
    idle = _timing_load_note([rec(1.0), rec(2.2)])
    assert "1.0–2.2" in idle[0] and "not a speed comparison" not in idle[0]
    assert _timing_load_note([{"env": {"cpu_count": 2}}]) == []
