"""CASNet Table IV: panoptic quality with ground-truth semantics (all / things / stuff)."""
from __future__ import annotations

from functools import partial

import pandas as pd

from experiments._casnet_common import NOTE_SCALE, casnet_variants
from experiments.casnet_table2 import PAPER as TABLE2_PAPER
from experiments.casnet_table3 import upper_bound_figure
from harness.studies import ReportSpec, Study, claim_row, records_frame

PAPER = {"all": (84.8, 94.6, 89.1), "things": (67.3, 90.7, 74.2), "stuff": (97.4, 97.4, 100.0)}
VARIANTS = tuple(v for v in casnet_variants("panoptic", gt_semantics=True)
                 if v.name in ("casnet (joint)", "casnet (GT semantics)"))


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    from harness.report import fmt_mean_ci
    from harness.stats import mean_ci
    df = records_frame(records, metrics=("PQ", "SQ", "RQ", "PQ_things", "SQ_things", "RQ_things", "PQ_stuff",
                                         "SQ_stuff", "RQ_stuff"))
    rows, bars = [], {}
    for group, suffix in (("all", ""), ("things", "_things"), ("stuff", "_stuff")):
        row = {"category": group}
        for k, m in enumerate(("PQ", "SQ", "RQ")):
            row[f"paper {m}"] = PAPER[group][k]
            for v in ("casnet (GT semantics)", "casnet (joint)"):
                vals = [x for x in df[df["variant"] == v][m + suffix].tolist() if x is not None and x == x]
                row[f"ours {m} {v.split('(')[1][:-1]}"] = fmt_mean_ci(*mean_ci(vals)) if vals else "n/m"
                if m == "PQ":
                    bars[(f"PQ {group}", v)] = mean_ci(vals) if vals else (float("nan"), None)
        rows.append(row)
    claims = pd.DataFrame([claim_row(df, "with GT semantics PQ is above the joint model's (the upper bound)",
                                     "casnet (GT semantics)", "casnet (joint)", "PQ",
                                     PAPER["all"][0] - TABLE2_PAPER["casnet (joint)"]["PQ"])])
    return ReportSpec(tables=[("Panoptic quality with ground-truth semantics", pd.DataFrame(rows)),
                              ("Claims", claims)],
                      notes=[NOTE_SCALE, "Paper effect: Table IV's PQ with GT semantics minus Table II's joint PQ. "
                             "Same trained weights for both columns, so the difference is tested paired by seed."],
                      figure=partial(upper_bound_figure, bars, metric="PQ"))


STUDY = Study(name="casnet_table4", title="CASNet Table IV: PQ with ground-truth semantics",
              source="casnet.md, Table IV", variants=VARIANTS, dataset="shapes-street", profile="quick", seeds=3,
              paper_numbers=PAPER, build_report=build_report)
