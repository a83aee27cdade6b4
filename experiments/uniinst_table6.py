"""UniInst Table 6: with and without the auxiliary many-to-one loss."""
from __future__ import annotations

import pandas as pd

from experiments._uniinst_common import NOTE_SCALE
from harness.studies import ReportSpec, Study, Variant, claim_row, default_report, paper_vs_ours, records_frame

PAPER = {"w/o aux": {"AP": 37.1, "AP50": 56.9, "AP75": 40.1}, "w/ aux": {"AP": 37.9, "AP50": 58.0, "AP75": 40.9}}
VARIANTS = (Variant("w/o aux", "uniinst", overrides=("method.use_aux=false",)),
            Variant("w/ aux", "uniinst", overrides=("method.use_aux=true",)))


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records, metrics=("AP", "AP50", "AP75"))
    table = paper_vs_ours(df, PAPER, ["AP", "AP50", "AP75"], ["w/o aux", "w/ aux"], baseline="w/o aux")
    claims = pd.DataFrame([claim_row(df, "the auxiliary many-to-one loss raises AP", "w/ aux", "w/o aux", "AP",
                                     PAPER["w/ aux"]["AP"] - PAPER["w/o aux"]["AP"])])
    return ReportSpec(tables=[("Paper vs ours", table), ("Claims", claims)], notes=[NOTE_SCALE],
                      figure=default_report(study, records).figure)


STUDY = Study(name="uniinst_table6", title="UniInst Table 6: auxiliary loss", source="uniinst.md, Table 6",
              variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=3, paper_numbers=PAPER,
              build_report=build_report)
