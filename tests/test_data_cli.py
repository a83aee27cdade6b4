"""The ``data`` subcommand: stats / generate / convert-cityscapes, --help and bad usage."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from harness import cli_data


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness")
    cli_data.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_stats_shows_overlap_density(tmp_path, capsys):
    common = ["--profile", "smoke", "--set", f"data.cache_dir={tmp_path}", "--set", "data.image_size=128"]
    assert _run(["data", "stats", "shapes-ochuman", "--json", "--set", "data.val_images=20", *common]) == 0
    occl = json.loads(capsys.readouterr().out)
    assert _run(["data", "stats", "shapes-coco", "--json", "--set", "data.val_images=20", *common]) == 0
    coco = json.loads(capsys.readouterr().out)
    assert occl["images"] == coco["images"] == 20
    assert occl["overlap_density"] >= 0.6 and coco["overlap_density"] <= 0.05
    assert _run(["data", "stats", "shapes-coco", "--set", "data.val_images=20", *common]) == 0
    assert "overlap density (pairs IoU>0.5 / image)" in capsys.readouterr().out


def test_stats_on_tiny_coco(shared_data, capsys):
    root = shared_data / "tiny_coco"
    spec = f"coco:{root / 'annotations' / 'instances_train2017.json'}:{root / 'train2017'}"
    assert _run(["data", "stats", spec, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["images"], st["instances"], st["crowd"]) == (50, 470, 5)


def test_generate_prints_paths_and_timing(tmp_path, capsys):
    argv = ["data", "generate", "shapes-street", "--n-images", "3", "--image-size", "48", "--cache-dir",
            str(tmp_path), "--quiet", "--seed", "1"]
    assert _run(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 3 and out["seed"] == 1 and out["wall_s"] >= 0
    assert len(json.loads(open(out["ann_file"]).read())["images"]) == 3


def test_convert_cityscapes(tmp_path, capsys):
    for sub, suffix, arr in (("gtFine", "_gtFine_instanceIds.png", np.full((4, 4), 26001, np.uint16)),
                             ("leftImg8bit", "_leftImg8bit.png", np.zeros((4, 4, 3), np.uint8))):
        d = tmp_path / sub / "val" / "c"
        d.mkdir(parents=True)
        Image.fromarray(arr).save(d / f"c_0{suffix}")
    out = tmp_path / "o.json"
    assert _run(["data", "convert-cityscapes", str(tmp_path), "--split", "val", "--out", str(out),
                 "--classes", "street5"]) == 0
    assert json.loads(out.read_text())["annotations"][0]["category_id"] == 1  # car


@pytest.mark.parametrize("argv", [
    ["data"], ["data", "stats"], ["data", "stats", "x", "--split", "test"], ["data", "generate", "shapes-foo"],
    ["data", "convert-cityscapes", "root"], ["data", "convert-cityscapes", "r", "--out", "o", "--classes", "x"],
])
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv)
    assert e.value.code == 2


@pytest.mark.parametrize("argv", [["data", "--help"], ["data", "stats", "--help"], ["data", "generate", "--help"],
                                  ["data", "convert-cityscapes", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv)
    assert e.value.code == 0 and "usage" in capsys.readouterr().out


def test_main_reports_bad_spec_and_bad_override(capsys):
    assert cli_data.main(["data", "stats", "imagenet"]) == 1
    assert "valid specs" in capsys.readouterr().err
    assert cli_data.main(["data", "stats", "shapes-coco", "--set", "train.max_iter=3"]) == 1
    assert cli_data.main(["data", "stats", "shapes-coco", "--set", "data.nope=3"]) == 1
    assert "valid keys" in capsys.readouterr().err
