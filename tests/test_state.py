"""Records and state (issue 15): check-then-append under one lock in the pipeline, unwritable results / work
directories detected before training, broken checkpoints named in the error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness import pipeline
from harness.config import make_config
from harness.pipeline import run_variant
from harness.validate import CheckpointError, load_checkpoint


@pytest.mark.slow
def test_two_identical_runs_at_once_write_one_record(tmp_path, monkeypatch):
    """The second command evaluates while the first does (neither saw a record at its start): one record."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    cfg = make_config("solov2", "smoke")
    real_eval = pipeline.evaluate_model
    nested = []

    def eval_and_race(*a, **k):
        out = real_eval(*a, **k)
        if not nested:  # the other process finishes first, between this one's check and its append
            nested.append(1)
            run_variant("s", "v", cfg, do_time=False, progress=False)
        return out

    monkeypatch.setattr(pipeline, "evaluate_model", eval_and_race)
    run_variant("s", "v", cfg, do_time=False, progress=False)
    lines = Path("results/s/runs.jsonl").read_text().splitlines()
    assert nested and len(lines) == 1


def test_unwritable_results_directory_is_detected_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    Path("results").write_text("a file where the results directory should be")
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("trained before checking the output"))
    with pytest.raises(ValueError, match=r"results directory results/s is not writable \(Not a directory\)"):
        run_variant("s", "v", make_config("solov2", "smoke"), do_time=False, progress=False)


def test_work_dir_pointing_at_a_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wd").write_text("x")
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=r"work directory \(\$SEGBENCH_WORK_DIR or work_dirs\) .*wd exists but is "
                                         r"not a directory"):
        pipeline.ensure_trained(make_config("solov2", "smoke"), progress=False)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"garbage" * 10])
def test_broken_checkpoint_names_the_file(tmp_path, content):
    p = tmp_path / "model_final.pth"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"{p}: (empty|truncated or corrupt) checkpoint"):
        load_checkpoint(p)


def test_truncated_real_checkpoint_and_wrong_content_name_the_file(tmp_path):
    p = tmp_path / "last.pth"
    torch.save({"model": {"w": torch.zeros(100)}}, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{p}: truncated or corrupt checkpoint"):
        load_checkpoint(p, weights_only=False)
    torch.save([1, 2, 3], p)
    with pytest.raises(CheckpointError, match=rf"{p}: not a training checkpoint"):
        load_checkpoint(p, weights_only=False, key="model")


def test_load_weights_names_the_checkpoint(tmp_path):
    from harness.train import load_weights
    (tmp_path / "model_final.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="model_final.pth: empty checkpoint file"):
        load_weights(torch.nn.Linear(2, 2), tmp_path)
    torch.save({"other": torch.zeros(1)}, tmp_path / "model_final.pth")
    with pytest.raises(RuntimeError, match="model_final.pth: weights do not fit the model"):
        load_weights(torch.nn.Linear(2, 2), tmp_path)


def test_a_leftover_empty_comparison_does_not_break_make_reports(tmp_path, monkeypatch):
    import json as _json

    from harness.studies import regenerate_reports
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "bad").mkdir(parents=True)
    (tmp_path / "results" / "bad" / "compare.json").write_text(_json.dumps({"methods": ["solov2"], "seeds": 0}))
    with pytest.warns(UserWarning, match=r"compare.json: no records or an invalid comparison spec"):
        assert regenerate_reports(["bad"]) == []


def test_broken_pretrained_and_semantic_checkpoints_name_the_file(tmp_path):
    from methods.backbones import _load_pretrained
    from methods.casnet import _read_state_dict
    bad = tmp_path / "weights.pth"
    for content in (b"", b"garbage" * 5):
        bad.write_bytes(content)
        with pytest.raises(RuntimeError, match=rf"pretrained weights file {bad}: truncated or corrupt"):
            _load_pretrained(torch.nn.Linear(1, 1), "resnet18", str(bad))
        with pytest.raises(ValueError, match=rf"semantic_checkpoint {bad}: truncated or corrupt"):
            _read_state_dict(str(bad))
