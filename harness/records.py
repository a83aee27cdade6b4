"""Run records: ``results/<study>/runs.jsonl``, one JSON object per line per (run, evaluation).

After mmdetection's metafiles and pytest-benchmark's saved JSON: every number a report shows comes
from a record, and a record carries everything needed to know what produced it (config, code
version, environment, data).  Several processes (seeds, DDP ranks, studies run side by side) may
append to the same file: ``append_record`` takes a ``filelock`` lock and writes the whole line with
one ``os.write`` on an ``O_APPEND`` descriptor, then fsyncs, so lines never interleave or tear.

Schema (``SCHEMA_VERSION`` 1), field -> type:

=============  ================  ==========================================================
schema_version int               ``SCHEMA_VERSION``
run_id         str               identifies the run (training); several records may share it
study          str               experiment file / results directory name
variant        str               the study's variant name (e.g. ``+cspam``)
method         str               registered method name
seed           int
kind           str               "eval" | "time" | "train" | "stats" | ...
git_sha        str               HEAD commit, "unknown" outside a git checkout
git_dirty      bool              uncommitted changes to tracked files
started_utc    str               ISO 8601, e.g. ``2025-01-31T12:00:00Z``
config         dict              ``harness.config.to_flat`` of the experiment config
env            dict              ``env_info()``: torch, cuda, device, threads, python, platform
data           dict              dataset (spec), split, n_images, stats (dict or None)
metrics        dict              name -> number / None / nested dict (e.g. per_class)
timing         dict | None       protocol + figures (``harness.timing``)
params         int | None        parameter count
flops          number | None     FLOPs per image
train          dict | None       run_dir, iterations, wall_s, threads, train_hash, weights_id, diagnostics
=============  ================  ==========================================================

Optional: ``eval_wall_s`` (number, seconds of inference + metrics + timing for this record; absent in
records written before it existed); ``copied_from`` (str, ``"<study>/<variant>"``: the record is another
study's evaluation of the same run with the same inference settings, copied by ``harness.pipeline`` instead of
evaluating again).

Records are strict JSON (``allow_nan=False``): ``make_record`` turns NaN / inf into ``None``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from harness.config import is_config, to_flat

SCHEMA_VERSION = 1
RECORDS_FILE = "runs.jsonl"

_NUMBER = (int, float)
# field -> (allowed types, may be None)
SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "schema_version": ((int,), False),
    "run_id": ((str,), False),
    "study": ((str,), False),
    "variant": ((str,), False),
    "method": ((str,), False),
    "seed": ((int,), False),
    "kind": ((str,), False),
    "git_sha": ((str,), False),
    "git_dirty": ((bool,), False),
    "started_utc": ((str,), False),
    "config": ((dict,), False),
    "env": ((dict,), False),
    "data": ((dict,), False),
    "metrics": ((dict,), False),
    "timing": ((dict,), True),
    "params": ((int,), True),
    "flops": (_NUMBER, True),
    "train": ((dict,), True),
}
DATA_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "dataset": ((str,), False), "split": ((str,), False), "n_images": ((int,), False),
    "stats": ((dict,), True),
}
ENV_FIELDS = ("torch", "cuda", "device", "threads", "python", "platform")


def records_path(study: str, root: str | os.PathLike = "results") -> Path:
    """``<root>/<study>/runs.jsonl``."""
    return Path(root) / study / RECORDS_FILE


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a ``Z`` suffix, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def env_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """The software / hardware environment of this process.

    Args:
        device: the device the figures were measured on; default CUDA device 0 when present, else cpu.
    Returns:
        ``{"torch", "torchvision", "cuda" (CUDA runtime version or None), "cudnn", "device" (GPU name
        or CPU description), "device_type", "threads" (torch intra-op), "cpu_count", "cpu_model" (the CPU's
        model name, so that wall times of untimed runs say which machine made them), "python", "platform"}``.
    """
    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:  # pragma: no cover
        tv = None
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine() or "cpu"
    return {
        "torch": torch.__version__,
        "torchvision": tv,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": name,
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        return None


def git_info(repo_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"git_sha": HEAD commit or "unknown", "git_dirty": bool}`` of ``repo_dir`` (default: this
    checkout).  Read-only: uses ``git --no-optional-locks`` so it never writes the index."""
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parents[1]
    git = ["git", "--no-optional-locks", "-C", str(cwd)]
    try:
        sha = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             timeout=30).stdout.strip()
        status = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": "unknown", "git_dirty": False}
    return {"git_sha": sha, "git_dirty": bool(status.strip())}


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN / inf -> None, tuples -> lists, numpy / torch values -> Python numbers / lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "ndim") and hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        value = value.tolist()
        if isinstance(value, list):
            return _clean(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def make_record(*, study: str, variant: str, method: str, seed: int, config: Any, metrics: dict,
                kind: str = "eval", data: dict | None = None, timing: dict | None = None,
                params: int | None = None, flops: float | None = None, train: dict | None = None,
                run_id: str | None = None, started_utc: str | None = None, env: dict | None = None,
                git: dict | None = None, eval_wall_s: float | None = None) -> dict:
    """Build and validate a record.

    Args:
        study, variant, method, seed, kind: identity of the row.
        config: an ``ExperimentConfig`` (flattened with ``harness.config.to_flat``) or a flat dict.
        metrics: metric name -> value (NaN -> None).
        data: ``{"dataset", "split", "n_images", "stats"}``; default an empty placeholder
            (``dataset=""``, ``split=""``, ``n_images=0``, ``stats=None``).
        timing, params, flops, train: optional sections (None when not measured).
        run_id: default a random 12-hex id.
        started_utc: default now.
        eval_wall_s: seconds this evaluation took (written only when given).
        env: default ``env_info()``; git: default ``git_info()``.
    Returns:
        the record dict (JSON-safe).
    Raises:
        ValueError: the record does not match the schema (see ``validate_record``).
    """
    flat = to_flat(config) if is_config(config) else dict(config)
    git = git if git is not None else git_info()
    rec = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id or uuid.uuid4().hex[:12],
        "study": study,
        "variant": variant,
        "method": method,
        "seed": int(seed),
        "kind": kind,
        "git_sha": git["git_sha"],
        "git_dirty": bool(git["git_dirty"]),
        "started_utc": started_utc or utc_now(),
        "config": flat,
        "env": env if env is not None else env_info(),
        "data": data if data is not None else {"dataset": "", "split": "", "n_images": 0, "stats": None},
        "metrics": metrics,
        "timing": timing,
        "params": None if params is None else int(params),
        "flops": flops,
        "train": train,
    }
    if eval_wall_s is not None:
        rec["eval_wall_s"] = float(eval_wall_s)
    rec = _clean(rec)
    validate_record(rec)
    return rec


def _type_name(types: tuple[type, ...], nullable: bool) -> str:
    names = [t.__name__ for t in types] + (["None"] if nullable else [])
    return " or ".join(names)


def _check_fields(obj: dict, schema: dict, prefix: str) -> None:
    for key, (types, nullable) in schema.items():
        if key not in obj:
            raise ValueError(f"record is missing field '{prefix}{key}'")
        value = obj[key]
        if value is None and nullable:
            continue
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            raise ValueError(f"record field '{prefix}{key}' must be {_type_name(types, nullable)}, "
                             f"got {type(value).__name__} ({value!r:.60})")


def validate_record(rec: Any) -> None:
    """Check ``rec`` against the schema (module docstring).

    Raises:
        ValueError: naming the missing or mistyped field, an unsupported ``schema_version``, an env
            without its keys, a nested (not flattened) config, or a value that is not strict JSON
            (NaN, inf, a non-JSON type).
    """
    if not isinstance(rec, dict):
        raise ValueError(f"a record must be a JSON object, got {type(rec).__name__}")
    _check_fields(rec, SCHEMA, "")
    if rec["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"record schema_version {rec['schema_version']} is not supported "
                         f"(this code reads {SCHEMA_VERSION})")
    nested = [k for k, v in rec["config"].items() if isinstance(v, dict)]
    if nested:
        raise ValueError(f"record field 'config' must be flattened (harness.config.to_flat); "
                         f"'config.{nested[0]}' is a dict")
    _check_fields(rec["data"], DATA_FIELDS, "data.")
    missing = [k for k in ENV_FIELDS if k not in rec["env"]]
    if missing:
        raise ValueError(f"record is missing field(s) {', '.join('env.' + k for k in missing)}")
    for key, value in rec["metrics"].items():
        if not (value is None or isinstance(value, (int, float, dict, list, str))):
            raise ValueError(f"record field 'metrics.{key}' must be a number, None or dict, "
                             f"got {type(value).__name__}")
    try:
        json.dumps(rec, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"record is not strict JSON: {e}") from None


def _is_torn(line: str) -> bool:
    """A line cut short by a crashed writer: a JSON object whose text stops before its end (the parser runs
    out of input, or out of an unterminated string), not a line with garbage in it."""
    text = line.strip()
    if not text.startswith('{"') or text.endswith("}"):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e.pos >= len(text) - 1 or e.msg.startswith("Unterminated string")
    return False


def append_record(path: str | os.PathLike, rec: dict, *, unique: Callable[[dict], Any] | None = None) -> bool:
    """Validate ``rec`` and append it as one line to ``path`` (created with its directories).

    Safe for concurrent writers: an exclusive ``filelock`` on ``<path>.lock``; the line (with its
    newline) goes out in a single ``os.write`` on an ``O_APPEND`` descriptor, then ``fsync``.  A torn
    last line left by a crashed writer (no closing brace, no newline) is moved to ``<path>.torn`` and cut
    from the file, with a warning naming the file and line; a complete last line without its newline is
    terminated.

    Args:
        unique: a key function; when given, the file is read under the same lock and ``rec`` is not written
            if a record with the same key is already there ("check, then append" as one step, so two
            identical commands at once write one record).
    Returns:
        True when the record was written, False when ``unique`` found it already there.
    Raises:
        ValueError: ``rec`` is invalid.
        OSError: the file cannot be written (the message names it).
    """
    validate_record(rec)
    line = (json.dumps(rec, sort_keys=True, allow_nan=False, separators=(",", ":")) + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        _repair_torn_tail(path)
        if unique is not None and path.is_file():
            want = unique(rec)
            if any(unique(r) == want for r in read_records(path, validate=False)):
                return False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
            written = os.write(fd, line)
            while written < len(line):  # regular files take the whole buffer; be safe anyway
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
    return True


def _repair_torn_tail(path: Path) -> None:
    """Under the lock: move a torn last line (no newline, not a closed JSON object) to ``<path>.torn``."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    tail = data[cut:].decode("utf-8", errors="replace")
    if not _is_torn(tail):
        return
    lineno = data[:cut].count(b"\n") + 1
    with open(str(path) + ".torn", "ab") as f:
        f.write(data[cut:] + b"\n")
    with open(path, "r+b") as f:
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(f"{path}:{lineno}: torn last line (a writer crashed mid-write) moved to {path}.torn; "
                  f"the {lineno - 1} lines before it are kept", RecordWarning,
                  stacklevel=3)


def read_records(path: str | os.PathLike | Iterable[str | os.PathLike], *,
                 validate: bool = True) -> list[dict]:
    """All records of one JSONL file (or of several, concatenated in the given order).

    Blank lines are skipped.  A torn line (a JSON object cut short by a writer that crashed mid-write; the
    one-``os.write`` append makes this a last line, or one that an older version terminated) is skipped
    with a ``RecordWarning`` naming the file and line; the intact records are all returned.

    Raises:
        FileNotFoundError: a missing file.
        ValueError: a line that is not JSON (and not torn) or not a valid record, naming the file and line.
    """
    if not isinstance(path, (str, os.PathLike)):
        return [rec for p in path for rec in read_records(p, validate=validate)]
    path = Path(path)
    out = []
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a records file") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if validate:
                    validate_record(rec)
            except json.JSONDecodeError as e:
                if _is_torn(line):
                    warnings.warn(f"{path}:{lineno}: torn line skipped (a writer crashed mid-write; "
                                  "the other records are kept)", RecordWarning, stacklevel=2)
                    continue
                raise ValueError(f"{path}:{lineno}: {e}") from None
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            out.append(rec)
    return out


class RecordWarning(UserWarning):
    """A torn records line skipped or moved aside."""


__all__ = ["RECORDS_FILE", "SCHEMA", "SCHEMA_VERSION", "append_record", "env_info", "git_info",
           "RecordWarning", "make_record", "read_records", "records_path", "utc_now", "validate_record"]
