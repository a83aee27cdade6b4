"""Saved predictions, training curves and the report figures drawn from them (harness.curves, harness.figures)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.curves import CurveLog, loss_curve_figure, publish_curves, published, read_curve
from harness.figures import qualitative_figure, report_figures
from harness.predictions import predictions_name


def test_curve_log_one_row_per_iteration_and_resume_drops_later_rows(tmp_path):
    path = tmp_path / "train_curve.csv"
    log = CurveLog(path)
    for it in range(1, 8):
        log.log(it, 0.01 * it, {"loss_a": torch.tensor(1.0 / it), "loss_b": torch.tensor(2.0)})
    rows = read_curve(path)
    assert [r["iter"] for r in rows] == list(range(1, 8))
    assert rows[1]["loss"] == pytest.approx(2.5) and rows[1]["lr"] == pytest.approx(0.02)
    CurveLog(path, start_iter=4).log(5, 0.5, {"loss_a": 0.0, "loss_b": 0.0})  # resumed from the iteration-4 checkpoint
    assert [r["iter"] for r in read_curve(path)] == [1, 2, 3, 4, 5]
    run = tmp_path / "run"
    run.mkdir()
    path.rename(run / "train_curve.csv")
    (run / "ap_curve.json").write_text(json.dumps([{"iter": 5, "AP": 1.0}]))
    publish_curves(run, tmp_path / "curves", "r1")
    loss, ap = published(tmp_path / "curves", "r1")
    assert [r["iter"] for r in loss] == [5] and ap == [{"iter": 5, "AP": 1.0}]
    assert published(tmp_path / "curves", "nope") == ([], [])
    from matplotlib.figure import Figure
    loss_curve_figure({"m": (loss, ap)})(Figure())


def test_predictions_file_name():
    assert predictions_name("solov2[matrix]", 2) == "predictions-solov2_matrix-s2.json"


def test_figures_without_saved_files_give_notes_not_errors():
    recs = [{"variant": "solov2", "method": "solov2", "seed": 0, "run_id": "x", "data": {"dataset": "shapes-coco"},
             "config": {}}]
    draw, _, _, notes = qualitative_figure(recs)
    assert draw is None and "no saved predictions" in notes[0]
    figs, notes = report_figures(recs)
    assert figs == [] and len(notes) == 2


@pytest.mark.slow
def test_real_pennfudan_smoke_end_to_end(tmp_path, monkeypatch, shared_data):
    """The study at the smoke profile: predictions kept, qualitative + curve figures drawn, reports regenerate
    byte for byte from the saved files."""
    if not (shared_data / "pennfudan" / "PedMasks").is_dir():
        pytest.skip("Penn-Fudan not in the shared data")
    from harness.studies import regenerate_reports, run_study
    (tmp_path / "repo").mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent)
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    md, _ = run_study("real_pennfudan", profile="smoke", seeds=1, progress=False, variants=["solov2", "oracle"])
    # a study at another profile than its own (real) keeps its records apart: results/real_pennfudan@smoke/
    recs = [json.loads(x) for x in Path("results/real_pennfudan@smoke/runs.jsonl").read_text().splitlines()]
    assert {r["variant"] for r in recs} == {"solov2[matrix]", "solov2[none]", "oracle"}
    assert all(Path(r["data"]["predictions"]).is_file() for r in recs)
    assert all(r["data"]["stats"]["split_rule"].startswith("val iff crc32") for r in recs)
    text = Path(md).read_text()
    assert "real_pennfudan@smoke_qualitative.png" in text and "real_pennfudan@smoke_curves.png" in text
    assert "Missing" in text and "uniinst: seeds 0, 1, 2" in text
    files = sorted(Path("reports").iterdir())
    first = [p.read_bytes() for p in files]
    regenerate_reports(["real_pennfudan@smoke"])
    assert [p.read_bytes() for p in files] == first
    # a clean checkout has no predictions files (git-ignored), only their committed subset: the same figure
    store = Path("results/real_pennfudan@smoke/figure_predictions.json")
    subset = json.loads(store.read_text())
    assert len(subset["image_ids"]) == 4 and {v["variant"] for v in subset["runs"].values()} == {"solov2[matrix]"}
    assert all(d["score"] >= subset["score_thr"] and d["image_id"] in subset["image_ids"]
               for v in subset["runs"].values() for d in v["detections"])
    for r in recs:
        Path(r["data"]["predictions"]).unlink()
    regenerate_reports(["real_pennfudan@smoke"])
    assert [p.read_bytes() for p in files] == first
    store.unlink()
    regenerate_reports(["real_pennfudan@smoke"])
    assert "no saved predictions" in Path(md).read_text()


def test_figure_store_is_the_records_own_study_not_a_copied_records_source():
    from harness.figures import _figure_store
    recs = [{"study": "real_pennfudan", "variant": "solov2[matrix]", "seed": 0, "copied_from": "main_real/solov2",
             "data": {"predictions": "results/main_real/predictions-solov2-s0.json"}},
            {"study": "real_pennfudan", "variant": "uniinst[mask]", "seed": 0,
             "data": {"predictions": "results/real_pennfudan/predictions-uniinst_mask-s0.json"}}]
    assert _figure_store(recs) == Path("results/real_pennfudan/figure_predictions.json")
    assert _figure_store([{"variant": "x", "seed": 0}]) is None


def test_a_blank_column_title_gives_the_highest_score_of_the_image():
    from harness.figures import SCORE_THR, _column_title, _top_scores
    dets = [{"image_id": 1, "score": SCORE_THR / 2}, {"image_id": 1, "score": SCORE_THR / 4},
            {"image_id": 2, "score": 0.9}, {"image_id": 3, "score": 0.5}]
    top = _top_scores(dets, [1, 2, 7])
    assert top == {1: SCORE_THR / 2, 2: 0.9}  # image 3 not asked for, image 7 without detections
    assert _column_title("uniinst", 0, top.get(1)) == f"uniinst (0; top score {SCORE_THR / 2:.2f})"
    assert _column_title("uniinst", 1, top.get(2)) == "uniinst (1)"
    assert _column_title("uniinst", 0, top.get(7)) == "uniinst (0)"  # nothing predicted at all


def test_one_figure_draws_the_variants_of_one_val_set():
    """quick_profile_tradeoff evaluates 128- and 192-px canvases: their masks cannot be drawn on the same images
    (the figure failed with "The image and the masks must have the same height and width")."""
    from harness.figures import _same_val_set

    def rec(size):
        return {"data": {"dataset": "shapes-coco"}, "config": {"data.image_size": size, "data.val_images": 200,
                                                                "data.test_short_side": size}}
    picked = {"a128": rec(128), "b192": rec(192), "c192": rec(192), "d128": rec(128)}
    kept, other = _same_val_set(picked)  # the first record's (the study's main row), even when outnumbered
    assert list(kept) == ["a128", "d128"] and other == ["b192", "c192"]
    kept, other = _same_val_set({"b192": rec(192), "a128": rec(128)})
    assert list(kept) == ["b192"] and other == ["a128"]
    assert _same_val_set({"a": rec(128)}) == ({"a": rec(128)}, [])
