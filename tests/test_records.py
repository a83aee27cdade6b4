"""Tests of harness.records: schema validation, round trip, concurrent appends, error locations."""
from __future__ import annotations

import json
import multiprocessing as mp
import re

import numpy as np
import pytest

from harness.config import make_config
from harness.records import (
    ENV_FIELDS,
    SCHEMA,
    RecordWarning,
    append_record,
    env_info,
    git_info,
    make_record,
    read_records,
    records_path,
    validate_record,
)

ENV = {"torch": "2.x", "cuda": None, "device": "cpu", "threads": 2, "python": "3.11", "platform": "linux"}
GIT = {"git_sha": "0" * 40, "git_dirty": False}


def record(**kw) -> dict:
    args = dict(study="s", variant="base", method="oracle", seed=0, config={"method.name": "oracle"},
                metrics={"AP": 41.2}, env=ENV, git=GIT, run_id="r0", started_utc="2025-01-01T00:00:00Z",
                data={"dataset": "coco:a.json:img", "split": "val", "n_images": 50, "stats": None})
    args.update(kw)
    return make_record(**args)


def test_make_record_from_config_round_trips(tmp_path):
    cfg = make_config("oracle", "smoke", seed=3)
    rec = make_record(study="study1", variant="base", method="oracle", seed=3, config=cfg,
                      metrics={"AP": 100.0, "APm": float("nan"), "AR1": np.float32(0.5),
                               "per_class": {"person": 100.0, "cat": None}},
                      timing={"protocol": "mmdet", "fps": 12.5}, params=0, flops=None,
                      train={"run_dir": "runs/x", "iterations": 0, "wall_s": 0.0, "train_hash": "abc"})
    assert rec["config"]["method.name"] == "oracle" and rec["config"]["seed"] == 3
    assert rec["metrics"]["APm"] is None  # NaN -> None: records are strict JSON
    assert type(rec["metrics"]["AR1"]) is float and rec["metrics"]["AR1"] == 0.5
    assert set(ENV_FIELDS) <= set(rec["env"]) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["started_utc"])
    assert set(rec) == set(SCHEMA)
    path = records_path("study1", tmp_path)
    assert path == tmp_path / "study1" / "runs.jsonl"
    append_record(path, rec)
    append_record(path, record(kind="time", metrics={}, timing={"fps": 3.0}))
    back = read_records(path)
    assert back[0] == rec and back[1]["kind"] == "time" and len(back) == 2
    assert path.read_text().count("\n") == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("seed"), "missing field 'seed'"),
    (lambda r: r.update(seed="0"), "field 'seed' must be int, got str"),
    (lambda r: r.update(seed=True), "field 'seed' must be int, got bool"),
    (lambda r: r.update(git_dirty=1), "field 'git_dirty' must be bool"),
    (lambda r: r.update(timing=[1]), "field 'timing' must be dict or None"),
    (lambda r: r.update(schema_version=99), "schema_version 99 is not supported"),
    (lambda r: r["data"].pop("n_images"), "missing field 'data.n_images'"),
    (lambda r: r["env"].pop("torch"), "env.torch"),
    (lambda r: r["metrics"].update(AP=float("nan")), "not strict JSON"),
    (lambda r: r["metrics"].update(AP=object()), "metrics.AP"),
    (lambda r: r["config"].update(method={"name": "x"}), "'config.method' is a dict"),
])
def test_validate_record_names_the_bad_field(mutate, message):
    rec = record()
    validate_record(rec)
    mutate(rec)
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_record(rec)


def test_append_rejects_invalid_records(tmp_path):
    rec = record()
    rec.pop("metrics")
    with pytest.raises(ValueError, match="missing field 'metrics'"):
        append_record(tmp_path / "runs.jsonl", rec)
    assert not (tmp_path / "runs.jsonl").exists()


def test_read_records_names_file_and_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    good = json.dumps(record())
    bad_schema = json.dumps({**record(), "seed": "x"})
    path.write_text(good + "\n\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"runs\.jsonl:3: "):
        read_records(path)
    path.write_text(good + "\n" + bad_schema + "\n")
    with pytest.raises(ValueError, match=r"runs\.jsonl:2: record field 'seed'"):
        read_records(path)
    assert len(read_records(path, validate=False)) == 2
    other = tmp_path / "other.jsonl"
    other.write_text(good + "\n")
    assert len(read_records([other, other])) == 2


def test_append_after_a_torn_line_keeps_the_new_record_intact(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(record(run_id="before")) + "\n" + '{"schema_version": 1, "run_')  # died mid-line
    with pytest.warns(RecordWarning, match=r"runs\.jsonl:2: torn last line .* moved to .*runs\.jsonl\.torn"):
        append_record(path, record(run_id="after"))
    assert [r["run_id"] for r in read_records(path)] == ["before", "after"]
    assert (tmp_path / "runs.jsonl.torn").read_text() == '{"schema_version": 1, "run_\n'


def test_torn_last_line_is_skipped_with_a_warning_and_intact_records_kept(tmp_path):
    path = tmp_path / "runs.jsonl"
    full = json.dumps(record(run_id="a"), sort_keys=True)
    path.write_text(full + "\n" + json.dumps(record(run_id="b")) + "\n" + full[: len(full) // 2])
    with pytest.warns(RecordWarning, match=r"runs\.jsonl:3: torn line skipped"):
        recs = read_records(path)
    assert [r["run_id"] for r in recs] == ["a", "b"]
    path.write_text(full + "\n" + full[:40] + "\n" + full + "\n")  # terminated by an older append_record
    with pytest.warns(RecordWarning, match=r"runs\.jsonl:2: torn line skipped"):
        assert len(read_records(path)) == 2


def test_unique_append_is_check_and_append_in_one_step(tmp_path):
    """Two identical runs at once: each checks for the record and appends under one lock -> one record."""
    import multiprocessing as mp
    path = tmp_path / "runs.jsonl"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_unique_writer, args=(str(path), i)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = read_records(path)
    assert len(recs) == 1
    assert append_record(path, record(run_id="same"), unique=lambda r: r["run_id"]) is False
    assert append_record(path, record(run_id="other"), unique=lambda r: r["run_id"]) is True


def _unique_writer(path: str, i: int) -> None:
    append_record(path, record(run_id="same", metrics={"AP": float(i)}), unique=lambda r: r["run_id"])


def _writer(path: str, writer: int, n: int) -> None:
    for i in range(n):
        append_record(path, record(run_id=f"w{writer}-{i}", metrics={"AP": float(i), "pad": "x" * 20000}))


def test_concurrent_appends_from_two_processes_lose_nothing(tmp_path):
    path = tmp_path / "runs.jsonl"
    n = 60
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, n)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    recs = read_records(path)
    assert len(recs) == 2 * n
    assert sorted(r["run_id"] for r in recs) == sorted(f"w{w}-{i}" for w in range(2) for i in range(n))
    for w in range(2):  # each writer's records stay in its own order
        mine = [r["metrics"]["AP"] for r in recs if r["run_id"].startswith(f"w{w}-")]
        assert mine == [float(i) for i in range(n)]


def test_env_and_git_info(tmp_path):
    env = env_info("cpu")
    assert set(ENV_FIELDS) <= set(env) and env["device_type"] == "cpu" and env["threads"] >= 1
    info = git_info()
    assert re.fullmatch(r"[0-9a-f]{40}", info["git_sha"]) and isinstance(info["git_dirty"], bool)
    assert git_info(tmp_path) == {"git_sha": "unknown", "git_dirty": False}  # not a repository
