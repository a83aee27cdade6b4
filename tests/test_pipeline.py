"""The pipeline's record keys: an inference-only setting re-evaluates the same trained run (never a stale
record counted as current), a repeated call records nothing, and another study's identical evaluation is
copied instead of evaluated again."""
import json
from pathlib import Path

import pytest

import harness.pipeline as pipeline
from harness.config import make_config, to_flat
from harness.pipeline import inference_fingerprint, run_variant


def test_fingerprint_tracks_inference_only_fields_and_ignores_training_fields():
    a = to_flat(make_config("casnet", "smoke", overrides=["method.seed_thr=0.5"]))
    b = to_flat(make_config("casnet", "smoke", overrides=["method.seed_thr=0.1"]))
    c = to_flat(make_config("casnet", "smoke", overrides=["method.seed_thr=0.5", "train.max_iter=7"]))
    assert inference_fingerprint(a, "casnet") != inference_fingerprint(b, "casnet")
    assert inference_fingerprint(a, "casnet") == inference_fingerprint(c, "casnet")
    # a field an older record lacks counts at its default
    d = to_flat(make_config("casnet", "smoke", overrides=["method.tie_iou_eps=0.05"]))
    d_old = {k: v for k, v in d.items() if k != "method.tie_iou_eps"}
    assert inference_fingerprint(d_old, "casnet") == inference_fingerprint(d, "casnet")
    # the same semantic model under another work-dir root is the same evaluation; another run is not
    e1 = dict(a, **{"method.semantic_checkpoint": "/tmp/x/work_dirs/casnet-abc-s0/model_final.pth"})
    e2 = dict(a, **{"method.semantic_checkpoint": "work_dirs/casnet-abc-s0/model_final.pth"})
    e3 = dict(a, **{"method.semantic_checkpoint": "work_dirs/casnet-def-s0/model_final.pth"})
    assert inference_fingerprint(e1, "casnet") == inference_fingerprint(e2, "casnet")
    assert inference_fingerprint(e1, "casnet") != inference_fingerprint(e3, "casnet")
    # eval settings count too
    f = to_flat(make_config("casnet", "smoke", overrides=["eval.max_dets=10"]))
    assert inference_fingerprint(f, "casnet") != inference_fingerprint(to_flat(make_config("casnet", "smoke")),
                                                                       "casnet")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_changed_inference_setting_re_evaluates_without_retraining_and_reuse_copies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    trains = []
    real_train = pipeline.train
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: (trains.append(1), real_train(*a, **k))[1])
    evals = []
    real_eval = pipeline.evaluate_model
    monkeypatch.setattr(pipeline, "evaluate_model", lambda *a, **k: (evals.append(1), real_eval(*a, **k))[1])

    cfg = make_config("solov2", "smoke", overrides=["method.score_thr=0.1"])
    run_variant("s", "v", cfg, do_time=False, progress=False)
    run_variant("s", "v", cfg, do_time=False, progress=False)  # recorded: nothing new
    path = Path("results/s/runs.jsonl")
    assert (len(trains), len(evals), len(_lines(path))) == (1, 1, 1)

    cfg2 = make_config("solov2", "smoke", overrides=["method.score_thr=0.3"])
    run_variant("s", "v", cfg2, do_time=False, progress=False)  # same run, new inference setting
    recs = _lines(path)
    assert (len(trains), len(evals), len(recs)) == (1, 2, 2)
    assert recs[0]["run_id"] == recs[1]["run_id"]
    assert [r["config"]["method.score_thr"] for r in recs] == [0.1, 0.3]

    # another study with reuse: the identical evaluation is copied, nothing trained or evaluated
    run_variant("other", "renamed", cfg2, do_time=False, progress=False, reuse=True)
    (copied,) = _lines(Path("results/other/runs.jsonl"))
    assert (len(trains), len(evals)) == (1, 2)
    assert copied["variant"] == "renamed" and copied["study"] == "other" and copied["copied_from"] == "s/v"
    assert copied["metrics"] == recs[1]["metrics"]
    # without reuse (speed tables), or when timing is asked and the other record has none, it evaluates itself
    run_variant("third", "v", cfg2, do_time=False, progress=False)
    assert len(evals) == 3
    monkeypatch.setattr(pipeline, "time_inference", lambda *a, **k: {"ms_per_img": 1.0, "fps": 1000.0})
    run_variant("fourth", "v", cfg2, do_time=True, progress=False, reuse=True)
    assert len(evals) == 4 and "copied_from" not in _lines(Path("results/fourth/runs.jsonl"))[0]

    # the run trained again (here: its weights changed on disk): records of the old weights no longer count for
    # it, in this study or as a source to copy from
    import torch

    from harness.runs import weights_id
    run_dir = Path(recs[0]["train"]["run_dir"])
    assert recs[1]["train"]["weights_id"] == weights_id(run_dir)
    state = torch.load(run_dir / "model_final.pth", weights_only=True)
    state = {k: (v + 0.5 if v.is_floating_point() else v) for k, v in state.items()}
    torch.save(state, run_dir / "model_final.pth")
    run_variant("s", "v", cfg2, do_time=False, progress=False)
    recs = _lines(path)
    assert len(evals) == 5 and len(recs) == 3 and recs[2]["train"]["weights_id"] == weights_id(run_dir)
    run_variant("fifth", "v", cfg2, do_time=False, progress=False, reuse=True)
    assert _lines(Path("results/fifth/runs.jsonl"))[0]["copied_from"] == "s/v"  # the new weights' record
    assert _lines(Path("results/fifth/runs.jsonl"))[0]["train"]["weights_id"] == weights_id(run_dir)
