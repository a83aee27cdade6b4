"""Saved predictions and per-run curves, written by ``harness.pipeline.run_variant`` beside each evaluation.

* Each evaluation's COCO results (compressed RLE, the input of COCOeval) are kept as
  ``results/<study>/predictions-<variant>-s<seed>.json`` (git-ignored: ``results/**/predictions*.json``); the
  record names the file in ``data.predictions``, so figures (``harness.figures``) and anyone else can recompute
  from it.  A newer evaluation of the same (variant, seed) replaces the file, as its record replaces the older one
  in reports.
* ``run_curves``: the run's loss curve (and, at the profiles in ``AP_CURVE_PROFILES``, mask AP of every weight
  snapshot on the val set) published under ``results/<study>/curves/`` (``harness.curves``); the AP points also
  go into the record (``train.ap_curve``).
"""
from __future__ import annotations

import re
from pathlib import Path

AP_CURVE_PROFILES = ("real",)


def predictions_name(variant: str, seed: int) -> str:
    """``predictions-<variant>-s<seed>.json`` with ``[`` / ``]`` and other odd characters made ``_``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", variant).strip("_")
    return f"predictions-{safe}-s{int(seed)}.json"


def save_predictions(study_dir: Path, variant: str, seed: int, results: list[dict]) -> str:
    """Write ``results`` to ``study_dir / predictions_name(...)``; returns the path as a POSIX string as given
    (relative when ``study_dir`` is)."""
    from harness.evaluate import save_results
    path = Path(study_dir) / predictions_name(variant, seed)
    save_results(path, results)
    return path.as_posix()


def run_curves(cfg, run_dir: Path, val_ds, device, study_dir: Path, run_id: str) -> list[dict] | None:
    """Publish a run's curves to ``study_dir/curves``; returns the AP-vs-iteration points (or None)."""
    from harness.curves import ap_curve, publish_curves, snapshots
    points = None
    if cfg.profile in AP_CURVE_PROFILES and snapshots(run_dir):
        points = ap_curve(cfg, run_dir, val_ds, device)
    publish_curves(run_dir, Path(study_dir) / "curves", run_id)  # run_id: the training run (any post-processing)
    return points
