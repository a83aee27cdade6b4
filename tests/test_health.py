"""Run health (harness/health.py): hand-computed diagnostics, the verdict rule, positives per GT on real
assignments, and the diagnostics a training record carries."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import methods
from harness.config import make_config
from harness.health import HealthTracker, health_iterations, health_reasons, late_ap_gain, loss_stats
from harness.studies import claim_row, health_verdict, record_health, records_frame, run_health_table


def test_loss_stats_by_hand(tmp_path):
    log = tmp_path / "train_log.jsonl"
    # loss = 2 - 0.01 * it, logged every 10 iterations of 100; iteration 90 logged twice (a resume): last counts
    lines = [{"iter": i, "loss": 2 - 0.01 * i} for i in range(10, 101, 10)] + [{"iter": 90, "loss": 1.1}]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    st = loss_stats(log, 100)  # last 20 %: iterations 90 and 100 -> mean 1.05, slope -0.01 per it
    assert st["final_loss"] == pytest.approx(1.05)
    assert st["loss_slope_per_1k"] == pytest.approx(-10.0)
    assert loss_stats(tmp_path / "missing.jsonl", 100) == {"final_loss": None, "loss_slope_per_1k": None}


def test_health_iterations_and_tracker_round_trip(tmp_path):
    assert health_iterations(1200, (0.5, 0.75, 1.0)) == {600: "0.5", 900: "0.75", 1200: "1"}
    t = HealthTracker(tmp_path)
    t.add_positives(torch.tensor([3, 0, 5]))
    t.add_positives(None)  # a method that reports nothing adds nothing
    t.ap_points["0.5"] = 12.0
    t.save()
    again = HealthTracker(tmp_path)  # a resumed run starts from what was saved
    s = again.summary(tmp_path, 100)
    assert (s["n_gt_seen"], s["positives_per_gt"], s["zero_positive_frac"]) == (3, pytest.approx(8 / 3),
                                                                                 pytest.approx(1 / 3))
    assert s["ap_points"] == {"0.5": 12.0}


def test_health_reasons_each_rule():
    ok = {"zero_positive_frac": 0.05, "ap_points": {"0.5": 10.0, "0.75": 20.0, "1": 22.0}, "ceiling": 80.0}
    assert health_reasons(ok, 30.0) == [] and late_ap_gain(ok) == pytest.approx(2.0)
    assert health_reasons(None, 30.0) == [] and health_reasons({"recorded": False}, 30.0) == []
    starved = dict(ok, zero_positive_frac=0.118)
    assert "11.8 % of GT instances got no positive" in health_reasons(starved, 30.0)[0]
    rising = dict(ok, ap_points={"0.75": 20.0, "1": 22.5})
    assert "not converged" in health_reasons(rising, 30.0)[0]
    capped = dict(ok, ceiling=64.6)
    assert "within 10 % of its ceiling 64.6" in health_reasons(capped, 58.2)[0]
    assert health_reasons(capped, 58.0) == []  # 58.0 < 0.9 * 64.6 = 58.14
    dead = dict(ok, ap_points={"0.5": 0.0, "0.75": 0.0, "1": 0.4})  # a mask branch that never left its plateau
    assert "learned nothing" in health_reasons(dead, 0.3)[0]
    assert health_reasons(dict(ok, ap_points={"0.5": 0.0, "0.75": 0.2, "1": 1.0}), 1.2) == []  # 1.0 is learning


def _rec(variant, seed, ap, diag):
    return {"variant": variant, "method": "solov2", "seed": seed, "run_id": f"{variant}-{seed}",
            "metrics": {"AP": ap},
            "train": {"weights_id": f"w{variant}{seed}", "run_dir": f"work_dirs/{variant}-{seed}", "diagnostics": diag}}


def test_a_row_failing_health_makes_the_verdict_inconclusive():
    good = {"zero_positive_frac": 0.0, "ap_points": {"0.75": 20.0, "1": 20.5}, "ceiling": 80.0}
    starved = dict(good, zero_positive_frac=0.12)
    recs = [_rec("base", s, 20.0 + 0.1 * s, good) for s in range(3)]
    recs_ok = recs + [_rec("new", s, 30.0 + 0.1 * s, good) for s in range(3)]
    recs_bad = recs + [_rec("new", s, 30.0 + 0.1 * s, starved if s == 1 else good) for s in range(3)]
    healthy = claim_row(records_frame(recs_ok, metrics=("AP",)), "new beats base", "new", "base", "AP", 1.0)
    assert healthy["verdict"] == "reproduced"
    sick = claim_row(records_frame(recs_bad, metrics=("AP",)), "new beats base", "new", "base", "AP", 1.0)
    assert sick["verdict"].startswith("inconclusive: run health (new seed 1: 12.0 % of GT instances got no positive")
    table = run_health_table(recs_bad)
    row = table.set_index("variant").loc["new"]
    assert row["zero-positive %"] == "4.0" and "no positive" in row["health"]
    assert table.set_index("variant").loc["base"]["health"] == "ok"
    old = run_health_table([_rec("old", 0, 10.0, None)])
    assert old.iloc[0]["health"].startswith("not recorded")
    # a method that does not train (the oracle) has nothing to check, which is not an old record
    oracle = {"variant": "oracle", "method": "oracle", "seed": 0, "run_id": "oracle-0", "metrics": {"AP": 100.0},
              "train": {"iterations": None, "run_dir": None, "wall_s": None, "weights_id": None}}
    assert run_health_table([oracle]).iloc[0]["health"] == "no training (nothing to check)"
    assert health_verdict(pd.DataFrame({"variant": [], "seed": [], "health": []}), ["x"]) is None


def test_a_semantic_only_model_is_not_judged_by_the_instance_rules():
    """CASNet's "semantic model" (beta = gamma = 0) trains no instance head: its AP is 0 and its positives unused."""
    starved_dead = {"zero_positive_frac": 0.103, "ap_points": {"0.5": 0.0, "0.75": 0.0, "1": 0.0}, "ceiling": 65.9}
    sem = dict(_rec("semantic model", 0, 0.0, starved_dead), method="casnet",
               config={"method.name": "casnet", "method.beta": 0.0, "method.gamma": 0.0})
    inst = dict(sem, variant="casnet (joint)", config={"method.name": "casnet", "method.beta": 1.0,
                                                        "method.gamma": 1.0})
    assert record_health(sem) == () and len(record_health(inst)) == 2
    table = run_health_table([sem, inst]).set_index("variant")
    assert table.loc["semantic model"]["health"].startswith("n/a: semantic model")
    assert "no positive" in table.loc["casnet (joint)"]["health"]


def _positives(name: str, soi: tuple[int, ...] | None, n_images: int = 24) -> torch.Tensor:
    """Positives per GT of ``name``'s own assigner at the quick profile on shapes-coco train images."""
    from harness.data.types import collate
    from harness.pipeline import build_split
    over = ["data.train_images=24"] + ([f"method.sizes_of_interest={list(soi)}"] if soi else [])
    cfg = make_config(name, "quick", overrides=over)
    ds = build_split(cfg, "train")
    cfg = make_config(name, "quick", overrides=over + [f"method.num_classes={len(ds.cat_ids)}"])
    model = methods.build_method(cfg.method)
    counts = []
    for start in range(0, n_images, 8):
        batch = collate([ds[i] for i in range(start, start + 8)], cfg.data.size_divisor)
        with torch.no_grad():
            model(batch.images, batch.targets)
        counts.append(model.last_positives_per_gt)
    return torch.cat(counts)


@pytest.mark.slow
def test_condinst_positives_per_gt_with_the_stride_rule_and_without():
    """Sizes of interest in stride units give every object positives; scaled with the image (the code before
    2026-12-02) they starve objects (issue 13: 1.2 per object, 11.8 % never positive on 300 images)."""
    new = _positives("condinst", None)
    old = _positives("condinst", (10, 20, 40, 80))
    assert float((new == 0).float().mean()) <= 0.05 and float(new.float().mean()) > 4.0, new.tolist()
    assert float((old == 0).float().mean()) > 0.05 and float(old.float().mean()) < 2.0, old.tolist()


@pytest.mark.slow
def test_training_record_carries_diagnostics(tmp_path, monkeypatch):
    from harness.pipeline import run_variant
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    cfg = make_config("condinst", "smoke")
    rec = run_variant("h", "v", cfg, do_time=False, progress=False)[-1]
    diag = rec["train"]["diagnostics"]
    assert set(diag["ap_points"]) == {"0.5", "0.75", "1"}
    assert diag["n_gt_seen"] > 0 and diag["positives_per_gt"] > 0 and 0 <= diag["zero_positive_frac"] <= 1
    assert diag["final_loss"] is not None and diag["ceiling"] is not None and 0 < diag["ceiling"] <= 100
    assert Path(rec["train"]["run_dir"], "health.json").is_file()


def test_health_evaluation_does_not_change_the_trained_weights(tmp_path, monkeypatch):
    """The subset AP at 50 / 75 / 100 % runs inside the training loop; it must consume no random numbers and
    change no state: the same run with and without it ends in identical weights."""
    from harness.train import train
    monkeypatch.chdir(tmp_path)
    weights = []
    for n in (0, 2):
        cfg = make_config("solov2", "smoke", overrides=[f"train.health_eval_images={n}", "train.max_iter=6",
                                                        "train.steps=(5,)", "train.threads=1"])
        train(cfg, tmp_path / f"run{n}", progress=False)
        weights.append(torch.load(tmp_path / f"run{n}" / "model_final.pth"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert json.loads((tmp_path / "run2" / "final.json").read_text())["diagnostics"]["ap_points"].keys() == {
        "0.5", "0.75", "1"}


def test_quick_profile_lr_steps_fall_before_the_late_health_point():
    """The convergence rule compares the subset AP at 75 % and 100 % of the schedule; an lr step between them makes
    every run 'still rising' (the quick profile's steps at 83 / 96 % did: SOLOv2 19.4 -> 26.0)."""
    for profile in ("quick",):
        tc = make_config("solov2", profile).train
        late = min(it for it, label in health_iterations(tc.max_iter, tc.health_points).items() if label == "0.75")
        assert max(tc.steps) < late, (profile, tc.steps, late)


def test_the_deferred_final_health_point_is_the_in_loop_one(tmp_path, monkeypatch):
    """A study job trains with the 100 % health point left to its evaluation (``defer_final_health``): the record,
    ``final.json`` and ``health.json`` then hold the same three points as a run that scored it in the loop, and
    the health subset is not predicted a second time."""
    from harness import evaluate, pipeline
    from harness.train import train
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    cfg = make_config("solov2", "smoke", overrides=["train.health_eval_images=2", "train.max_iter=6",
                                                    "train.steps=(5,)", "train.threads=1", "method.score_thr=0.0"])
    inloop = train(cfg, tmp_path / "inloop", progress=False).final["diagnostics"]["ap_points"]
    assert inloop.keys() == {"0.5", "0.75", "1"}
    calls = []
    real = evaluate.run_inference
    monkeypatch.setattr(evaluate, "run_inference", lambda *a, **k: (calls.append(k.get("indices")), real(*a, **k))[1])
    (rec,) = pipeline.run_variant("s", "v", cfg, do_time=False, progress=False)
    assert rec["train"]["diagnostics"]["ap_points"] == inloop
    run_dir = Path(rec["train"]["run_dir"])
    assert json.loads((run_dir / "final.json").read_text())["diagnostics"]["ap_points"] == inloop
    assert json.loads((run_dir / "health.json").read_text())["ap_points"] == inloop
    # in the loop: the subset (images 0, 1) at 50 and 75 %; then the whole val split (4 images) once, and no third
    # prediction of the subset (the ceiling's oracle, if not read from the disk memo, predicts with indices=None)
    assert calls.count([0, 1]) == 2 and calls.count(list(range(4))) == 1


def test_health_subset_ap_scored_from_a_whole_split_evaluation_equals_its_own_inference():
    """``subset_ap(..., results=...)`` with the results of the whole val split (more images than the subset) gives the
    number that predicting the subset gives: the ground truth through SOLOv2's soft stride-4 representation, whose
    AP is far from 0 and from 100, so that a mismatch of images or areas would show."""
    from harness.ceiling import ceiling_config
    from harness.evaluate import run_inference
    from harness.health import subset_ap
    from harness.pipeline import build_split
    from harness.train import resolve_num_classes
    cfg = make_config("solov2", "smoke", overrides=["data.val_images=6"])
    ccfg = ceiling_config(cfg, soft=True)
    val = build_split(ccfg, "val")
    ccfg = resolve_num_classes(ccfg, val)
    model = methods.build_method(ccfg.method).eval()
    everything = run_inference(model, val, device="cpu", progress=False)
    assert {r["image_id"] for r in everything} - set(val.image_ids[:3])  # results beyond the subset
    own = subset_ap(model, val, 3, ccfg, "cpu")
    assert 1.0 < own < 99.0
    assert subset_ap(model, val, 3, ccfg, "cpu", results=everything) == own
