"""Run health: is a training run sound enough for its numbers to decide a verdict? (issue 13)

Every training run records ``diagnostics`` (``final.json`` -> the record's ``train.diagnostics``):

* ``positives_per_gt`` / ``zero_positive_frac``: positives per ground-truth instance from the method's own
  assigner (``Method.last_positives_per_gt``, set by every training forward: SOLOv2's grid cells, CondInst's
  FCOS locations, UniInst's OYOR matches, CASNet's box-probability centre cells, Mask R-CNN's RPN anchors),
  averaged over every instance the run trained on, and the fraction of instances that never got one.
* ``final_loss`` and ``loss_slope_per_1k``: the mean total loss over the last 20 % of the iterations and its
  least-squares slope there (per 1,000 iterations), from ``train_log.jsonl``.
* ``ap_points``: mask AP on a fixed val subset (the first ``train.health_eval_images`` images of the val split)
  at 50 / 75 / 100 % of the schedule (``train.health_points``).  A study's job (``harness.pipeline.run_variant``)
  trains with ``defer_final_health=True``: the 100 % point is then scored from the evaluation that follows
  (the final weights are the 100 % weights; ``complete_final_point``), which saves predicting the subset twice.
* ``ceiling``: the AP of the ground truth passed through the method's mask representation on the record's
  val data (``harness.ceiling``), added when the record is written.

``health_reasons(diag)`` applies the rule a verdict needs (``harness.studies.claim_row``): a row is
"inconclusive: run health" when a run's zero-positive fraction exceeds 5 %, its subset AP still rose by more
than 2 points from 75 % to 100 % of the schedule (not converged), its AP lies within 10 % of its ceiling
(the representation, not the method, bounds it), or its subset AP stayed below 1 at every health point (the run
learned nothing: e.g. SOLOv2 seed 6 on the 192-px canvas with warm-up 300, whose mask branch never left its dice
plateau while its category branch learned; a method that fails under our schedule in some seeds is not shown to
fail).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

HEALTH_FILE = "health.json"
MAX_ZERO_POSITIVE_FRAC = 0.05
MAX_LATE_AP_GAIN = 2.0
CEILING_MARGIN = 0.10
MIN_LEARNED_AP = 1.0  # subset AP below this at every health point: the run learned nothing


class HealthTracker:
    """Accumulates a run's diagnostics while it trains; persisted in ``run_dir/health.json`` at every checkpoint so
    that a resumed run keeps what it had counted (counts since the last checkpoint are counted again, as the
    iterations after it are trained again)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / HEALTH_FILE
        self.n_gt = 0
        self.n_pos = 0
        self.n_zero = 0
        self.ap_points: dict[str, float] = {}
        self._saved = {"n_gt": 0, "n_pos": 0, "n_zero": 0, "ap_points": {}}
        if self.path.is_file():
            self._saved = json.loads(self.path.read_text())
            self.n_gt, self.n_pos, self.n_zero = (int(self._saved[k]) for k in ("n_gt", "n_pos", "n_zero"))
            self.ap_points = dict(self._saved.get("ap_points", {}))

    def add_positives(self, counts: torch.Tensor | None) -> None:
        """counts: Tensor[G] int64, positives of each GT instance of one batch (None: the method reports none)."""
        if counts is None:
            return
        c = counts.detach().cpu().long()
        self.n_gt += int(c.numel())
        self.n_pos += int(c.sum())
        self.n_zero += int((c == 0).sum())

    def save(self) -> None:
        from harness.runs import atomic_write_text
        atomic_write_text(self.path, json.dumps({"n_gt": self.n_gt, "n_pos": self.n_pos, "n_zero": self.n_zero,
                                                 "ap_points": self.ap_points}, indent=2) + "\n")

    def summary(self, run_dir: Path, max_iter: int) -> dict:
        out = {"n_gt_seen": self.n_gt,
               "positives_per_gt": self.n_pos / self.n_gt if self.n_gt else None,
               "zero_positive_frac": self.n_zero / self.n_gt if self.n_gt else None,
               "ap_points": dict(sorted(self.ap_points.items(), key=lambda kv: float(kv[0])))}
        out.update(loss_stats(Path(run_dir) / "train_log.jsonl", max_iter))
        return out


def health_iterations(max_iter: int, points: tuple[float, ...]) -> dict[int, str]:
    """{iteration: label} for the fractions ``points`` of the schedule (label: the fraction, e.g. "0.75")."""
    return {max(1, int(round(p * max_iter))): f"{p:g}" for p in points}


def subset_ap(model, val_ds, n_images: int, cfg, device, results: list[dict] | None = None) -> float:
    """Mask AP (COCO, ``cfg.eval``) of ``model`` on the first ``n_images`` images of ``val_ds``.

    ``results``: COCO results of (at least) those images from an evaluation already made with the same model and
    ``cfg`` (``reusable_results``): scored as they are instead of predicting the subset again.
    """
    from harness.evaluate import coco_segm_eval, run_inference
    n = min(n_images, len(val_ds))
    if results is None:
        results = run_inference(model, val_ds, device=device, batch_size=cfg.eval.batch_size, progress=False,
                                indices=list(range(n)), size_divisor=cfg.data.size_divisor)
    info = val_ds.coco.dataset.get("info")
    area_scale = float(info.get("coco_area_scale", 1.0)) if isinstance(info, dict) else 1.0
    metrics = coco_segm_eval(val_ds.coco, results, backend=cfg.eval.backend, per_class=False,
                             class_names=list(val_ds.class_names), img_ids=[val_ds.image_ids[i] for i in range(n)],
                             cat_ids=list(val_ds.cat_ids), max_dets=cfg.eval.max_dets, area_scale=area_scale)
    return float(metrics["AP"])


def final_point(tc) -> tuple[int, str] | None:
    """(iteration, label) of the health point at the end of the schedule (``train.health_points`` holding 1.0),
    or None when there is none (or run health is off)."""
    if tc.health_eval_images <= 0:
        return None
    label = health_iterations(tc.max_iter, tc.health_points).get(tc.max_iter)
    return (tc.max_iter, label) if label is not None else None


def final_point_missing(final: dict, cfg) -> str | None:
    """The label of the end-of-schedule health point when a finished run's ``final.json`` lacks it (a run trained
    with ``train(..., defer_final_health=True)`` whose evaluation has not scored it yet), else None."""
    diag = final.get("diagnostics")
    end = final_point(cfg.train)
    if not diag or end is None or int(final.get("iterations") or 0) != end[0]:
        return None
    return None if end[1] in (diag.get("ap_points") or {}) else end[1]


def reusable_results(cfg_trained, cfg_eval, world: int) -> bool:
    """Whether an evaluation made with ``cfg_eval`` predicted the health subset exactly as the health point of the
    run trained with ``cfg_trained`` would: the same method config (post-processing included) and the subset's
    images in the same inference batches (batch size 1, or one process and a batch size dividing the subset)."""
    bs = cfg_eval.eval.batch_size
    return (cfg_eval.method == cfg_trained.method and cfg_eval.eval == cfg_trained.eval
            and cfg_eval.data == cfg_trained.data
            and (bs == 1 or (world == 1 and cfg_trained.train.health_eval_images % bs == 0)))


def complete_final_point(run_dir: Path, final: dict, cfg, model, val_ds, device,
                         results: list[dict] | None = None) -> dict:
    """Score the deferred end-of-schedule health point of a finished run and write it to ``health.json`` and
    ``final.json``; returns the updated ``final``.

    The weights at the end of the schedule are the final weights, so the point is the subset AP of the model the
    evaluation loaded: taken from that evaluation's ``results`` when they are ``reusable_results`` (no second
    inference; the same number as ``subset_ap`` on the model, tested), else predicted again with ``model.cfg`` set
    to the training method config.
    """
    from harness.runs import atomic_write_text
    label = final_point_missing(final, cfg)
    if label is None:
        return final
    n = cfg.train.health_eval_images
    if results is not None:
        ap = subset_ap(model, val_ds, n, cfg, device, results=results)
    else:
        saved = model.cfg
        model.cfg = cfg.method
        try:
            ap = subset_ap(model, val_ds, n, cfg, device)
        finally:
            model.cfg = saved
    run_dir = Path(run_dir)
    tracker = HealthTracker(run_dir)
    tracker.ap_points[label] = ap
    tracker.save()
    diag = dict(final["diagnostics"])
    diag["ap_points"] = dict(sorted({**(diag.get("ap_points") or {}), label: ap}.items(),
                                    key=lambda kv: float(kv[0])))
    final = {**final, "diagnostics": diag}
    atomic_write_text(run_dir / "final.json", json.dumps(final, indent=2) + "\n")
    return final


def loss_stats(log_path: Path, max_iter: int) -> dict:
    """Mean total loss over the last 20 % of the iterations and its least-squares slope (per 1k iterations).

    ``train_log.jsonl`` may hold lines written twice after a resume: the last line of each iteration counts.
    """
    if not log_path.is_file():
        return {"final_loss": None, "loss_slope_per_1k": None}
    by_iter: dict[int, float] = {}
    for line in log_path.read_text().splitlines():
        try:
            rec = json.loads(line)
            by_iter[int(rec["iter"])] = float(rec["loss"])
        except (ValueError, KeyError, TypeError):
            continue
    tail = sorted((i, v) for i, v in by_iter.items() if i > 0.8 * max_iter)
    if not tail:
        return {"final_loss": None, "loss_slope_per_1k": None}
    its = np.array([i for i, _ in tail], dtype=float)
    vals = np.array([v for _, v in tail], dtype=float)
    slope = float(np.polyfit(its, vals, 1)[0] * 1000.0) if len(tail) >= 2 else None
    return {"final_loss": float(vals.mean()), "loss_slope_per_1k": slope}


def late_ap_gain(diag: dict) -> float | None:
    """Subset AP at 100 % minus at 75 % of the schedule (None when either is missing)."""
    pts = (diag or {}).get("ap_points") or {}
    a, b = pts.get("0.75"), pts.get("1")
    return None if a is None or b is None else float(b) - float(a)


def health_reasons(diag: dict | None, ap: float | None = None) -> list[str]:
    """Why a run's numbers cannot decide a verdict (empty: healthy, or nothing recorded to judge by).

    Args:
        diag: a record's ``train.diagnostics`` (may lack keys: older records).
        ap: the record's mask AP, compared with ``diag["ceiling"]``.
    """
    if not diag:
        return []
    out = []
    z = diag.get("zero_positive_frac")
    if z is not None and z > MAX_ZERO_POSITIVE_FRAC:
        out.append(f"{100 * z:.1f} % of GT instances got no positive (> {100 * MAX_ZERO_POSITIVE_FRAC:.0f} %)")
    gain = late_ap_gain(diag)
    if gain is not None and gain > MAX_LATE_AP_GAIN:
        out.append(f"AP still rose {gain:+.1f} from 75 % to 100 % of the schedule (> {MAX_LATE_AP_GAIN:g}: "
                   "not converged)")
    pts = [float(v) for v in (diag.get("ap_points") or {}).values() if v is not None]
    if pts and max(pts) < MIN_LEARNED_AP:
        out.append(f"subset AP below {MIN_LEARNED_AP:g} at every health point ({', '.join(f'{v:.1f}' for v in pts)}): "
                   "the run learned nothing")
    ceil = diag.get("ceiling")
    if ceil is not None and ap is not None and not math.isnan(ap) and ap >= (1 - CEILING_MARGIN) * ceil:
        out.append(f"AP {ap:.1f} within {100 * CEILING_MARGIN:.0f} % of its ceiling {ceil:.1f}")
    return out
