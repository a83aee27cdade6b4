"""CASNet Table II: panoptic quality (PQ, SQ, RQ, PQ_th, PQ_st, mIoU, AP), joint vs separated."""
from __future__ import annotations

import pandas as pd

from experiments._casnet_common import NOTE_SCALE, SEPARATED_NOTE, casnet_variants
from harness.studies import ReportSpec, Study, claim_row, default_report, paper_vs_ours, records_frame

METRICS = ("PQ", "SQ", "RQ", "PQ_things", "PQ_stuff", "mIoU", "AP")
PAPER = {"casnet (joint)": {"PQ": 59.0, "SQ": 81.0, "RQ": 71.5, "PQ_things": 47.8, "PQ_stuff": 67.2,
                            "mIoU": 79.5, "AP": 28.6},
         "casnet (separated)": {"PQ": 66.1, "SQ": 83.3, "RQ": 78.4, "PQ_things": 53.6, "PQ_stuff": 75.2}}
VARIANTS = casnet_variants("panoptic")


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records, metrics=METRICS)
    order = ["casnet (joint)", "casnet (separated)"]
    table = paper_vs_ours(df, PAPER, list(METRICS), order)
    claims = pd.DataFrame([claim_row(df, "separated training beats joint training (PQ)", order[1], order[0], "PQ",
                                     7.1)])
    notes = [NOTE_SCALE, SEPARATED_NOTE,
             "PQ / SQ / RQ by harness/panoptic.py (hotcoco when installed), in percent; mIoU read off the panoptic "
             "maps. Paper columns other than PQ are as extracted from a scrambled PDF table."]
    return ReportSpec(tables=[("Panoptic segmentation: paper vs ours", table), ("Claims", claims)], notes=notes,
                      figure=default_report(study, [r for r in records if r["variant"] in order]).figure)


STUDY = Study(name="casnet_table2", title="CASNet Table II: panoptic segmentation", source="casnet.md, Table II",
              variants=VARIANTS, dataset="shapes-street", profile="quick", seeds=3, paper_numbers=PAPER,
              build_report=build_report)
