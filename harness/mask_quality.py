"""Mask quality per ground-truth instance: a diagnostic for a low AP (are the masks coarse, or missing?).

For every eval record of a study whose predictions file is on disk (``results/<study>/predictions-*.json``,
git-ignored: it exists where the evaluation ran), each val ground-truth instance's best mask IoU over all the
run's detections on its image (any score), and their summary:

    python -m harness.mask_quality real_pennfudan [--variants casnet[box],solov2[matrix]] [--seed 0]

prints one row per record: GT instances, detections, median best IoU, the fraction of GTs with a best IoU above
0.5 and above 0.75.  AP50 well above AP with few GTs above 0.75 means the masks find the objects but are coarse;
few GTs above 0.5 means objects are missed.  Crowd annotations are left out.  IoU is pycocotools' RLE mask IoU.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np


def best_iou_per_gt(coco, dets: list[dict]) -> np.ndarray:
    """Best mask IoU of each non-crowd GT of ``coco`` (float64, one per GT, 0 where its image has no detection)
    over the detections (COCO results dicts with RLE ``segmentation``) on its image."""
    from pycocotools import mask as mask_utils
    by_image = collections.defaultdict(list)
    for d in dets:
        by_image[d["image_id"]].append(d["segmentation"])
    best: list[float] = []
    for image_id in sorted(coco.getImgIds()):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])) if not a.get("iscrowd", 0)]
        if not anns:
            continue
        preds = by_image.get(image_id, [])
        if not preds:
            best += [0.0] * len(anns)
            continue
        gts = [coco.annToRLE(a) for a in anns]
        iou = np.asarray(mask_utils.iou(preds, gts, [0] * len(gts)), dtype=np.float64).reshape(len(preds), len(gts))
        best += iou.max(axis=0).tolist()
    return np.asarray(best, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    from harness.evaluate import load_results
    from harness.figures import _val_dataset
    ap = argparse.ArgumentParser(prog="python -m harness.mask_quality", description=__doc__.splitlines()[0])
    ap.add_argument("study")
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: every eval record)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    path = Path("results") / args.study / "runs.jsonl"
    if not path.is_file():
        print(f"{path}: no records", file=sys.stderr)
        return 2
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    wanted = {v for v in args.variants.split(",") if v}
    rows = []
    for r in recs:
        pred = (r.get("data") or {}).get("predictions")
        if r.get("kind", "eval") != "eval" or (wanted and r["variant"] not in wanted):
            continue
        if (args.seed is not None and r["seed"] != args.seed) or r["method"].startswith("oracle"):
            continue
        if not (pred and Path(pred).is_file()):
            print(f"skipped {r['variant']} seed {r['seed']}: predictions file {pred} absent", file=sys.stderr)
            continue
        dets = load_results(pred)
        best = best_iou_per_gt(_val_dataset(r).coco, dets)
        rows.append((r["variant"], r["seed"], round(r["metrics"]["AP"], 1), len(best), len(dets),
                     round(float(np.median(best)), 2), round(float((best > 0.5).mean()), 2),
                     round(float((best > 0.75).mean()), 2)))
    if not rows:
        print("no eval record with its predictions file", file=sys.stderr)
        return 1
    from tabulate import tabulate
    print(tabulate(rows, headers=["variant", "seed", "AP", "GTs", "detections", "median best IoU",
                                  "GTs > 0.5", "GTs > 0.75"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
