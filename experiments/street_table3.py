"""Improved SOLOv2, Table 3: per-class AP on street scenes (car, pedestrian, truck, bus, rider).

Paper: improved-solov2-location-attention.md Table 3 (Cityscapes, ResNet-50-FPN).  Here: the synthetic
``shapes-street`` preset (the same 5 classes); on real Cityscapes, convert with
``python -m harness data convert-cityscapes ROOT --split train --out train.json --classes street5`` (and
val) and run ``python -m harness study street_table3 --set data.dataset=coco:train.json:IMGDIR
--set data.val_dataset=coco:val.json:IMGDIR``.
"""
from __future__ import annotations

import pandas as pd

from harness.studies import ReportSpec, Study, Variant, claim_row, records_frame

CLASSES = ("car", "pedestrian", "truck", "bus", "rider")
PAPER = {
    "maskrcnn": dict(zip(("AP",) + CLASSES, (30.0, 37.1, 16.5, 41.3, 39.2, 15.7))),
    "yolact (not implemented)": dict(zip(("AP",) + CLASSES, (26.8, 34.1, 12.7, 37.2, 37.6, 12.2))),
    "solov2": dict(zip(("AP",) + CLASSES, (28.3, 35.1, 13.5, 39.3, 39.6, 13.8))),
    "solov2_improved": dict(zip(("AP",) + CLASSES, (31.5, 38.5, 16.0, 42.4, 44.3, 15.8))),
}
METHODS = ("maskrcnn", "solov2", "solov2_improved")


def _variants():
    import methods
    return tuple(Variant(name=m, method=m) for m in METHODS if m in methods.available())


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    from harness.report import fmt_mean_ci
    from harness.stats import mean_ci
    rows = []
    for name in PAPER:
        recs = [r for r in records if r["variant"] == name]
        row = {"method": name}
        for col in ("AP",) + CLASSES:
            row[f"paper {col}"] = PAPER[name][col]
            if col == "AP":
                vals = [r["metrics"]["AP"] for r in recs]
            else:
                vals = [(r["metrics"].get("per_class") or {}).get(col) for r in recs]
                vals = [v for v in vals if v is not None]
            row[f"ours {col}"] = fmt_mean_ci(*mean_ci(vals)) if vals else "n/m"
        rows.append(row)
    df = pd.DataFrame(rows)
    per_run = records_frame(records, metrics=("AP",))
    for c in CLASSES:  # same order as the records
        per_run[c] = [(r["metrics"].get("per_class") or {}).get(c) for r in records]
    imp, base = PAPER["solov2_improved"], PAPER["solov2"]
    claims = pd.DataFrame([
        claim_row(per_run, f"the improved SOLOv2 beats SOLOv2 on {'mask AP' if m == 'AP' else m + ' AP'}",
                  "solov2_improved", "solov2", m, imp[m] - base[m]) for m in ("AP",) + CLASSES])
    notes = ["Paper: Cityscapes val, ResNet-50-FPN. Ours: synthetic shapes-street, quick profile. "
             "YOLACT is not implemented in this suite (shown for reference only).",
             "`solov2_improved` has all three toggles of the paper on (CSPAM, TWFPN + CSMF, AML); which of them moves "
             "AP at this scale is the factorial of Table 1 (`reports/ablation_table1.md`)."]

    def figure(fig):
        import numpy as np
        ax = fig.add_subplot(1, 1, 1)
        x = np.arange(len(CLASSES))
        names = [n for n in PAPER if any(r["variant"] == n for r in records)]
        w = 0.8 / max(1, len(names))
        for k, n in enumerate(names):
            recs = [r for r in records if r["variant"] == n]
            # a class without a value (no instance of it in the val split) is a gap, not a zero
            means = [np.nanmean([np.nan if (v := (r["metrics"].get("per_class") or {}).get(c)) is None else v
                                 for r in recs]) for c in CLASSES]
            ax.bar(x + k * w, means, w, label=n)
        ax.set_xticks(x + w * (len(names) - 1) / 2, CLASSES)
        ax.set_ylabel("mask AP (ours, mean over seeds)")
        ax.legend(fontsize=8)
    return ReportSpec(tables=[("Per-class AP: paper vs ours", df), ("Claims", claims)], notes=notes, figure=figure)


STUDY = Study(
    name="street_table3",
    title="Improved SOLOv2, Table 3: per-class AP on street scenes",
    source="improved-solov2-location-attention.md, Table 3",
    variants=_variants(),
    dataset="shapes-street",
    profile="quick",
    seeds=3,
    paper_numbers=PAPER,
    build_report=build_report,
)
