"""CASNet Table III: per-class instance AP with ground-truth semantics (the method's upper bound)."""
from __future__ import annotations

from functools import partial

import pandas as pd

from experiments._casnet_common import NOTE_SCALE, casnet_variants
from harness.studies import ReportSpec, Study, claim_row, records_frame

CLASSES = ("car", "pedestrian", "truck", "bus", "rider")
# paper Table III (Cityscapes, AP with GT semantics); pedestrian = Cityscapes person
PAPER_AP = {"pedestrian": 50.6, "rider": 66.3, "car": 57.2, "truck": 56.0, "bus": 70.8, "average (8 classes)": 57.4}
SHOWN = ("casnet (joint)", "casnet (GT semantics)")
VARIANTS = tuple(v for v in casnet_variants("instance", gt_semantics=True) if v.name != "casnet (separated)"
                 and v.name != "semantic model")


def upper_bound_figure(bars: dict, fig, *, metric: str = "mask AP") -> None:
    """Grouped bars per class: the joint model's AP and the same weights with GT semantics (mean ± 95 % CI)."""
    import numpy as np
    ax = fig.add_subplot(1, 1, 1)
    groups = list(dict.fromkeys(c for c, _ in bars))
    y = np.arange(len(groups))
    for k, (v, color) in enumerate(zip(SHOWN, ("#4C72B0", "#DD8452"))):
        means = [bars[(c, v)][0] for c in groups]
        errs = [0.0 if bars[(c, v)][1] is None or bars[(c, v)][1] != bars[(c, v)][1] else bars[(c, v)][1]
                for c in groups]
        ax.barh(y + (k - 0.5) * 0.4, means, height=0.4, xerr=errs, capsize=3, color=color, label=v)
    ax.set_yticks(y, [g.replace("AP (all classes)", "all classes") for g in groups])
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (mean ± 95% CI over seeds)")
    ax.set_title("CASNet: predicted vs ground-truth semantics (same weights)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.subplots_adjust(left=0.16, bottom=0.24)


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    from harness.report import fmt_mean_ci
    from harness.stats import mean_ci
    rows, bars = [], {}
    for c in CLASSES + ("AP (all classes)",):
        row = {"class": c, "paper (GT semantics)": PAPER_AP.get(c, "–")}
        for v in SHOWN:
            recs = [r for r in records if r["variant"] == v]
            vals = [r["metrics"]["AP"] if c.startswith("AP") else (r["metrics"].get("per_class") or {}).get(c)
                    for r in recs]
            vals = [x for x in vals if x is not None]
            row[f"ours {v}"] = fmt_mean_ci(*mean_ci(vals)) if vals else "n/m"
            bars[(c, v)] = mean_ci(vals) if vals else (float("nan"), None)
        rows.append(row)
    df = records_frame(records, metrics=("AP",))
    claims = pd.DataFrame([claim_row(df, "with GT semantics AP is above the joint model's (the upper bound)",
                                     "casnet (GT semantics)", "casnet (joint)", "AP", 57.4 - 32.8)])
    return ReportSpec(tables=[("Per-class AP with ground-truth semantics", pd.DataFrame(rows)), ("Claims", claims)],
                      notes=[NOTE_SCALE, "Same trained weights for both columns: GT semantics replace only the "
                             "semantic head's output at inference."], figure=partial(upper_bound_figure, bars))


STUDY = Study(name="casnet_table3", title="CASNet Table III: AP with ground-truth semantics",
              source="casnet.md, Table III", variants=VARIANTS, dataset="shapes-street", profile="quick", seeds=3,
              paper_numbers=PAPER_AP, build_report=build_report)
