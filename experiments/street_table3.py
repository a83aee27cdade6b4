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
    per_run = records_frame(records, metrics=("AP",))
    for c in CLASSES:  # one row per record, in record order; a class without a value is NaN, not 0
        per_run[c] = pd.to_numeric(pd.Series([(r["metrics"].get("per_class") or {}).get(c) for r in records],
                                             index=per_run.index, dtype=object), errors="coerce")
    rows = []
    for name in PAPER:
        sub = per_run[per_run["variant"] == name]
        row = {"method": name}
        for col in ("AP",) + CLASSES:
            row[f"paper {col}"] = PAPER[name][col]
            vals = sub[col].dropna().tolist()
            row[f"ours {col}"] = fmt_mean_ci(*mean_ci(vals)) if vals else "n/m"
        rows.append(row)
    df = pd.DataFrame(rows)
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
        means = per_run.groupby("variant")[list(CLASSES)].mean()  # NaN (no value) left out, not counted as 0
        names = [n for n in PAPER if n in means.index]
        w = 0.8 / max(1, len(names))
        for k, n in enumerate(names):
            ax.bar(x + k * w, means.loc[n].to_numpy(), w, label=n)
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
