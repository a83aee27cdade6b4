"""Run directories: where a training run keeps its config, log, checkpoints and final marker.

Layout (``work_dirs/`` is git-ignored; records that reference a run live in ``results/``)::

    work_dirs/<run_id>/
        config.json          resolved, flattened ExperimentConfig (saved before training starts)
        train_log.jsonl      one line per logged iteration (loss terms, lr, img/s)
        train_curve.csv      every iteration: lr, loss, loss terms (harness.curves)
        checkpoints/model_iter<N>.pth  weights at every checkpoint (AP-vs-iteration; ap_curve.json)
        checkpoints/last.pth model, optimizer, scheduler, iteration, RNG states (atomic replace)
        model_final.pth      final weights (state_dict)
        final.json           written last: marks the run finished (iterations, wall_s, train_hash)

``run_id = <method>-<train_hash>-s<seed>``: the same training config always maps to the same
directory, so ``compare`` reuses a finished run and resumes an unfinished one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from harness.config import ExperimentConfig, from_flat, to_flat, train_hash

WORK_DIR_ENV = "SEGBENCH_WORK_DIR"


def work_root() -> Path:
    return Path(os.environ.get(WORK_DIR_ENV, "work_dirs"))


def run_id_for(cfg: ExperimentConfig) -> str:
    return f"{cfg.method.name}-{train_hash(cfg)}-s{cfg.seed}"


def run_dir_for(cfg: ExperimentConfig, root: Path | None = None) -> Path:
    return (root or work_root()) / run_id_for(cfg)


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "final.json").is_file()


def read_final(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "final.json").read_text())


def weights_id(run_dir: Path) -> str | None:
    """Identity of a finished run's trained weights: sha256 of ``model_final.pth`` (first 16 hex digits), or None
    when the run has no final weights.

    The ``run_id`` names a training *config*; a run trained again (its work dir lost) from the same config is a
    different set of weights unless training is bit-deterministic, so records also carry this identity and the
    pipeline never pairs a record of one training with a record of another (``harness.pipeline``).
    """
    import hashlib
    path = Path(run_dir) / "model_final.pth"
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_config(run_dir: Path, cfg: ExperimentConfig) -> None:
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(to_flat(cfg), indent=2, sort_keys=True) + "\n")


def load_run_config(run_dir: Path) -> ExperimentConfig:
    """The ExperimentConfig saved in ``run_dir/config.json``.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run directory (the message names it).
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: {path} is missing")
    return from_flat(json.loads(path.read_text()))


def resolve_run(run: str) -> Path:
    """A run given as a directory path or as a run id under ``work_root()``."""
    p = Path(run)
    if p.is_dir():
        return p
    q = work_root() / run
    if q.is_dir():
        return q
    raise FileNotFoundError(f"run {run!r} not found (neither a directory nor {q})")
