"""The disk memo of derived numbers (harness/memo.py): computed once per key, code and data files; never read
across a change of any of them."""
import os

import pytest

from harness import memo
from harness.config import make_config


def test_disk_memo_computes_once_per_key_and_code(tmp_path, monkeypatch):
    monkeypatch.delenv(memo.NO_MEMO_ENV, raising=False)
    calls = []

    def compute(v):
        return lambda: (calls.append(v), v)[1]

    assert memo.disk_memo("k", "a", compute(1.5), tmp_path) == 1.5
    assert memo.disk_memo("k", "a", compute(9.0), tmp_path) == 1.5  # stored: not computed again
    assert memo.disk_memo("k", "b", compute(None), tmp_path) is None  # another key
    assert memo.disk_memo("k", "b", compute(2.0), tmp_path) is None  # None is a value too
    assert calls == [1.5, None]
    monkeypatch.setattr(memo, "code_fingerprint", lambda: "other code")
    assert memo.disk_memo("k", "a", compute(3.0), tmp_path) == 3.0  # the code changed: computed again
    monkeypatch.setenv(memo.NO_MEMO_ENV, "1")
    assert memo.disk_memo("k", "a", compute(4.0), tmp_path) == 4.0
    assert calls == [1.5, None, 3.0, 4.0]
    # a torn file is computed again and replaced
    monkeypatch.delenv(memo.NO_MEMO_ENV)
    (path,) = [p for p in (tmp_path / "derived" / "k").iterdir() if '"value": 3.0' in p.read_text()]
    path.write_text('{"value": ')
    assert memo.disk_memo("k", "a", compute(5.0), tmp_path) == 5.0
    assert memo.disk_memo("k", "a", compute(6.0), tmp_path) == 5.0


def test_code_fingerprint_covers_methods_and_harness():
    a = memo.code_fingerprint()
    assert len(a) == 40 and a == memo.code_fingerprint()


def test_data_fingerprint_follows_the_annotation_file(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text("{}")
    cfg = make_config("solov2", "smoke", dataset=f"coco:{ann}:{tmp_path}")
    before = memo.data_fingerprint(cfg.data)
    assert str(ann.resolve()) in before
    os.utime(ann, ns=(1, 1))
    assert memo.data_fingerprint(cfg.data) != before
    assert memo.data_fingerprint(make_config("solov2", "smoke").data) == ""  # a synthetic preset names no file


def test_ceiling_and_training_flops_come_from_the_memo_in_a_new_process(tmp_path, monkeypatch):
    """The second call (a new process: the in-process caches are cleared) reads the disk: no model is built."""
    from harness import ceiling, cost
    monkeypatch.delenv(memo.NO_MEMO_ENV, raising=False)
    cfg = make_config("solov2", "smoke", overrides=[f"data.cache_dir={tmp_path}"])
    first = (ceiling.ceiling_ap(cfg), cost.train_gflops_per_iter(cfg))
    assert first[0] > 0 and first[1] > 0
    ceiling._ceiling_ap.cache_clear()
    cost._gflops.cache_clear()
    monkeypatch.setattr(ceiling, "_ceiling_ap", lambda *a: pytest.fail("ceiling computed again"))
    monkeypatch.setattr(cost, "_gflops", lambda *a: pytest.fail("FLOPs counted again"))
    assert (ceiling.ceiling_ap(cfg), cost.train_gflops_per_iter(cfg)) == first
