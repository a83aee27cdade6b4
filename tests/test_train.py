"""Training engine: schedule, resume after SIGKILL (same weights), NaN stop, records written once, DDP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.config import TrainConfig, make_config
from harness.train import TrainingDiverged, lr_factor

REPO = Path(__file__).resolve().parents[1]


def test_lr_schedule_hand_computed():
    tc = TrainConfig(base_lr=0.1, warmup_iters=10, warmup_factor=0.01, steps=(20, 30), gamma=0.1, max_iter=40)
    assert lr_factor(0, tc) == pytest.approx(0.01)
    assert lr_factor(5, tc) == pytest.approx(0.01 * 0.5 + 0.5)
    assert lr_factor(10, tc) == pytest.approx(1.0)
    assert lr_factor(20, tc) == pytest.approx(0.1)
    assert lr_factor(35, tc) == pytest.approx(0.01)


def _env(tmp_path):
    env = dict(os.environ)
    env["SEGBENCH_WORK_DIR"] = str(tmp_path / "work_dirs")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


TRAIN_ARGS = ["-m", "harness", "train", "--method", "solov2", "--profile", "smoke", "--no-progress",
              "--set", "train.max_iter=12", "--set", "train.checkpoint_period=1",
              "--set", "train.deterministic=true", "--set", "train.threads=1", "--set", "train.device=cpu",
              "--no-time"]


def _only_run(work: Path) -> Path:
    runs = [p for p in work.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    # uninterrupted reference run
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run([sys.executable, *TRAIN_ARGS], cwd=ref, env=_env(ref), check=True, capture_output=True)
    ref_run = _only_run(ref / "work_dirs")

    # the same run killed with SIGKILL once a checkpoint exists, then resumed
    kil = tmp_path / "killed"
    kil.mkdir()
    env = _env(kil)
    proc = subprocess.Popen([sys.executable, *TRAIN_ARGS], cwd=kil, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ck = list((kil / "work_dirs").glob("*/checkpoints/last.pth"))
        if ck:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = _only_run(kil / "work_dirs")
    assert not (run / "final.json").exists(), "the run finished before it could be killed"
    state = torch.load(run / "checkpoints" / "last.pth", weights_only=False)
    assert 1 <= state["iteration"] < 12
    out = subprocess.run([sys.executable, *TRAIN_ARGS], cwd=kil, env=env, check=True, capture_output=True,
                         text=True)
    fin = json.loads((run / "final.json").read_text())
    assert fin["iterations"] == 12 and fin["resumed_from"] >= 1

    a = torch.load(ref_run / "model_final.pth", weights_only=True)
    b = torch.load(run / "model_final.pth", weights_only=True)
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert diff <= 1e-5, diff

    # same metrics, and the record written exactly once even when the command is run again
    subprocess.run([sys.executable, *TRAIN_ARGS], cwd=kil, env=env, check=True, capture_output=True)
    recs_k = [json.loads(x) for x in (kil / "results" / "runs" / "runs.jsonl").read_text().splitlines()]
    recs_r = [json.loads(x) for x in (ref / "results" / "runs" / "runs.jsonl").read_text().splitlines()]
    assert len(recs_k) == 1 and len(recs_r) == 1
    assert recs_k[0]["metrics"]["AP"] == pytest.approx(recs_r[0]["metrics"]["AP"], abs=1e-9)
    assert "AP" in out.stdout


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path, monkeypatch):
    from harness.train import train
    monkeypatch.chdir(tmp_path)
    cfg = make_config("solov2", "smoke", overrides=["train.max_iter=6", "train.checkpoint_period=2",
                                                    "train.device=cpu"])
    import methods.solov2 as solo

    calls = {"n": 0}
    orig = solo.SOLOv2.forward

    def poisoned(self, images, targets):
        calls["n"] += 1
        out = orig(self, images, targets)
        if calls["n"] == 4:
            out = {**out, "loss_mask": out["loss_mask"] * float("nan")}
        return out

    monkeypatch.setattr(solo.SOLOv2, "forward", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="iteration 3"):
        train(cfg, run_dir, progress=False)
    state = torch.load(run_dir / "checkpoints" / "last.pth", weights_only=False)
    assert state["iteration"] == 2
    assert not (run_dir / "final.json").exists()


@pytest.mark.slow
def test_ddp_two_ranks_identical_and_eval_counts_each_image_once(tmp_path):
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(REPO / "tests" / "ddp_worker.py"), str(tmp_path)]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pth", weights_only=True)
    b = torch.load(tmp_path / "rank1.pth", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ev = json.loads((tmp_path / "eval.json").read_text())
    flat = sorted(i for s in ev["shards"] for i in s)
    assert flat == list(range(ev["n_val"]))  # every val image exactly once
    assert ev["AP"] == pytest.approx(100.0)  # a duplicated or missing image would lower the oracle's AP


def test_the_ram_cache_changes_no_sample_and_no_weight(tmp_path, monkeypatch):
    """data.ram_cache_mb keeps decoded samples in memory: each image is decoded once, a transform working in place on
    what it gets cannot reach the cache, and a run trained with the cache ends with the same weights as one
    without (the augmentation's random draws are the same), so the field is rightly left out of the run hash."""
    from dataclasses import replace

    from harness.config import train_hash
    from harness.data.coco import InstanceDataset
    from harness.train import build_train_dataset, train
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    base = make_config("solov2", "smoke", overrides=[
        "train.max_iter=6", "train.threads=1", "train.device=cpu", "train.deterministic=true", "data.train_images=8",
        "train.batch_size=4", "train.health_eval_images=0"])
    cached, uncached = (replace(base, data=replace(base.data, ram_cache_mb=mb)) for mb in (64, 0))
    assert train_hash(cached) == train_hash(uncached)

    ds = build_train_dataset(cached)
    loads = []
    real_load = InstanceDataset.load
    monkeypatch.setattr(InstanceDataset, "load", lambda self, i: loads.append(i) or real_load(self, i))
    first = ds._load_cached(3)
    first.image.zero_()  # a transform working in place on its copy
    first.masks.zero_()
    again = ds._load_cached(3)
    assert loads == [3]  # decoded once
    fresh = real_load(ds, 3)
    assert torch.equal(again.image, fresh.image) and torch.equal(again.masks, fresh.masks)
    assert again.image.any() and again.masks.any()
    monkeypatch.setattr(InstanceDataset, "load", real_load)

    weights = []
    for cfg, name in ((cached, "cached"), (uncached, "uncached")):  # 6 iterations x 4 = 3 epochs of the 8 images
        res = train(cfg, tmp_path / name, progress=False)
        weights.append(res.model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
