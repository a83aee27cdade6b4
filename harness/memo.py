"""Numbers derived from a config by a deterministic computation, kept on disk for the next process.

Every record of a study carries a run's training FLOPs (``harness.cost.train_gflops_per_iter``) and its
representation's ceiling (``harness.ceiling.ceiling_ap``).  Both are functions of the config and of the code alone,
yet each study job is its own process (``harness.launch``) and computed them again: about 3.5 s of a 4-5 min quick
profile job.  ``disk_memo`` keeps such a number in ``<data.cache_dir>/derived/<kind>/<key hash>.json``.

The key hashes the caller's key (the config fields the number depends on, and ``data_fingerprint``: size and
modification time of the annotation files the config names) together with ``code_fingerprint()``: the contents
of every ``.py`` file of ``methods/`` and ``harness/`` and the torch version.  Any code change
therefore computes the number again; nothing can be read that the current code would not compute.  Delete the
folder to drop them all; ``SEGBENCH_NO_MEMO=1`` computes every number afresh (and stores nothing).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

NO_MEMO_ENV = "SEGBENCH_NO_MEMO"
_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha1 (hex) of the torch version and of every ``methods/**.py`` and ``harness/**.py`` file (path and bytes)."""
    import torch
    h = hashlib.sha1(torch.__version__.encode())
    for pkg in ("methods", "harness"):
        for path in sorted((_ROOT / pkg).rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def data_fingerprint(data_cfg) -> str:
    """Size and modification time of every existing file named in ``data_cfg.dataset`` / ``val_dataset``
    (``coco:ANN:IMGDIR`` and the like), so that a number derived from a user's annotation file is computed
    again when the file changes.  The synthetic presets name no file: the generator is code (``code_fingerprint``).
    """
    parts = []
    for spec in (data_cfg.dataset, data_cfg.val_dataset):
        for piece in str(spec or "").split(":"):
            path = Path(piece)
            if piece and path.is_file():
                st = path.stat()
                parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    return ";".join(parts)


def disk_memo(kind: str, key: str, compute: Callable[[], float | None], cache_dir: str | os.PathLike):
    """``compute()``, or the value it returned for the same ``key`` and code before (a JSON number or null).

    Args:
        kind: a folder name for this sort of number (e.g. "train_gflops").
        key: what the number depends on besides the code, as a string (e.g. the config as sorted JSON).
        compute: computes the number; called when it is not stored (and always with ``SEGBENCH_NO_MEMO=1``).
        cache_dir: the root (``DataConfig.cache_dir``); the number lives in ``cache_dir/derived/kind/``.
    Returns:
        the number (float or None).  A stored file that cannot be read is computed again and replaced.
    """
    if os.environ.get(NO_MEMO_ENV):
        return compute()
    digest = hashlib.sha1(f"{code_fingerprint()}\n{key}".encode()).hexdigest()
    path = Path(cache_dir) / "derived" / kind / f"{digest}.json"
    try:
        return json.loads(path.read_text())["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    try:
        from harness.runs import atomic_write_text
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"kind": kind, "key": key, "value": value}) + "\n")
    except OSError:  # a read-only cache: the number is still right, only not kept
        pass
    return value
