"""gpu-check (harness/gpu_check.py): one-line skip without CUDA, the CPU self-test of every step, records that
UniInst Table 8's report reads its fp16 rows from, and (on CUDA) a short real run."""
import json
from pathlib import Path

import pytest
import torch

from harness import gpu_check
from harness.cli import main as cli_main


def test_skips_with_one_line_and_exit_0_without_cuda(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli_main(["gpu-check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [gpu_check.SKIP_MESSAGE] and "skipped" in out
    assert not (tmp_path / "results").exists()


def test_cpu_without_dry_is_a_usage_error(capsys):
    assert cli_main(["gpu-check", "--device", "cpu"]) == 2


def test_random_images_are_samples_the_harness_takes():
    from harness.data.types import collate
    ds = gpu_check.RandomImages(3, (40, 56), num_classes=5)
    s = ds[1]
    assert s.image.shape == (3, 40, 56) and s.image.dtype == torch.uint8 and ds[1] is s
    assert s.masks.shape[1:] == (40, 56) and s.masks.flatten(1).any(1).all()
    assert s.labels.max() < 5 and s.boxes.shape == (s.masks.shape[0], 4)
    batch = collate([ds[0], ds[1]])
    assert batch.images.shape == (2, 3, 64, 64)
    assert torch.equal(gpu_check.RandomImages(3, (40, 56), num_classes=5)[1].image, s.image)  # deterministic


def test_paper_check_config_uses_the_paper_input_size():
    cc = gpu_check.CheckConfig.paper()
    assert cc.image_hw == (800, 1333) and cc.train_iters == 50 and cc.nms_masks == 500 and cc.budget_s < 8 * 60
    cfg = gpu_check.method_config("uniinst", cc)
    assert cfg.profile == "paper" and cfg.method.pretrained == "" and cfg.method.num_classes == 80
    assert cfg.train.amp and cfg.train.max_iter == 50 and cfg.data.test_short_side == 800
    assert "solov2_improved" in gpu_check.check_methods(cc) and "oracle" not in gpu_check.check_methods(cc)


@pytest.mark.slow
def test_dry_self_test_runs_every_step_on_the_cpu(tmp_path, capsys):
    rc = cli_main(["gpu-check", "--device", "cpu", "--dry", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "gpu-check on " in out and "FAILED" not in out
    recs = [json.loads(x) for x in (tmp_path / "gpu_check" / "runs.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in recs}
    assert kinds == {"train", "time", "nms", "ddp"}
    methods_timed = {r["method"] for r in recs if r["kind"] == "time"}
    assert methods_timed == set(gpu_check.check_methods(gpu_check.CheckConfig.dry_run()))
    assert len({r["data"]["session"] for r in recs}) == 1
    (ddp,) = [r for r in recs if r["kind"] == "ddp"]
    assert ddp["metrics"]["ok"] and len(set(ddp["metrics"]["param_checksums"])) == 1
    (nms,) = [r for r in recs if r["kind"] == "nms"]
    assert nms["metrics"]["matrix_max_abs_diff_vs_cpu"] == 0.0


def _timing(ms: float, precision: str, device_name: str) -> dict:
    protocol = {"version": 1, "batch_size": 1, "warmup_iters": 5, "num_images": 100, "precision": precision,
                "device": "cuda:0", "device_name": device_name, "threads": 16, "torch": "2.x", "stages": []}
    stages = {s: {"median_ms": ms / (2 if s != "total" else 1), "mean_ms": ms, "p90_ms": ms, "min_ms": ms, "n": 100}
              for s in ("preprocess", "forward", "postprocess", "total")}
    return {"protocol": protocol, "stages": stages, "ms_per_img": ms, "fps": 1000.0 / ms, "precision": precision}


def _gpu_record(variant: str, ms: float, session: str, device_type: str = "cuda", name: str = "NVIDIA H200"):
    from harness.records import make_record
    env = {"torch": "2.x", "cuda": "12", "device": name, "device_type": device_type, "threads": 16,
           "python": "3", "platform": "linux"}
    return make_record(study="gpu_check", variant=variant, method=variant.split(" ")[0], seed=0, kind="time",
                       config={"data.test_short_side": 800, "data.max_size": 1333}, metrics={"ok": True},
                       timing=_timing(ms, "fp16" if "fp16" in variant else "fp32", name), env=env,
                       data={"dataset": "random-800x1333", "split": "", "n_images": 8, "stats": None,
                             "session": session})


def test_uniinst_table8_reads_fp16_rows_from_the_newest_gpu_check_session(tmp_path, monkeypatch):
    from harness.records import append_record, make_record, records_path
    from harness.studies import load_study, write_study_report
    monkeypatch.chdir(tmp_path)
    study = load_study("uniinst_table8")
    for v in study.variants:  # the study's own (CPU) records: fp16 not measured
        fp16 = v.name.endswith("fp16")
        timing = ({"protocol": _timing(1, "fp16", "cpu")["protocol"], "stages": {}, "ms_per_img": None, "fps": None,
                   "precision": "fp16", "not_measured": "fp16 needs CUDA"} if fp16 else _timing(20.0, "fp32", "cpu"))
        append_record(records_path(study.name), make_record(
            study=study.name, variant=v.name, method=v.method, seed=0, config={"method.postprocess": "default"},
            metrics={"AP": 10.0}, timing=timing,
            data={"dataset": "d", "split": "val", "n_images": 1, "stats": None}))
    md, _ = write_study_report(study)
    assert "GPU: gpu-check" not in Path(md).read_text()  # no gpu_check record: no GPU table

    old, new = "2026-01-01T00:00:00Z-aaaaaa", "2026-12-02T07:00:00Z-bbbbbb"
    gpu = records_path("gpu_check")
    for variant, ms in (("condinst", 40.0), ("condinst fp16", 25.0), ("uniinst", 38.0), ("uniinst fp16", 20.0)):
        append_record(gpu, _gpu_record(variant, ms, new))
        append_record(gpu, _gpu_record(variant, ms * 3, old, name="Older GPU"))  # an older session: not used
    append_record(gpu, _gpu_record("uniinst fp16", 1.0, "2027-01-01T00:00:00Z-cccccc", device_type="cpu"))  # dry
    text = Path(write_study_report(study)[0]).read_text()
    assert "GPU: gpu-check on NVIDIA H200 (paper input size, random weights)" in text
    assert "Older GPU" not in text and "not measured (fp16 needs CUDA); GPU table below" in text
    # condinst 40 / 25 = 1.60 (paper 49.0 / 31.4 = 1.56); uniinst 38 / 20 = 1.90 (paper 1.77)
    flat = " ".join(text.split())
    assert "| condinst | 40.0 | 25.0 | 25.0 | 40.0 | 1.60 |" in flat
    assert "| uniinst | 38.0 | 26.3 | 20.0 | 50.0 | 1.90 |" in flat
    assert "| uniinst is faster in fp16 than in fp32 | 1.77 | 1.90 | reproduced |" in flat
    assert f"session {new}" in text
    # the report is a function of the records: regenerated, the same bytes
    assert Path(write_study_report(study)[0]).read_text() == text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_short_gpu_check_on_cuda(tmp_path):
    cc = gpu_check.CheckConfig.paper(num_images=5, train_iters=3, methods=("uniinst",), nms_repeats=3)
    rows = gpu_check.run_check(cc)
    assert all(r["ok"] for r in rows), [r.get("error") for r in rows]
    assert {r["check"] for r in rows} >= {"train amp", "time fp32", "time fp16", "matrix vs greedy"}
    assert gpu_check.write_records(rows, tmp_path, torch.device("cuda")).is_file()
