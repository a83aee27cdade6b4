"""CASNet Table I: instance segmentation AP / AP50, joint vs separated training, beside the other methods."""
from __future__ import annotations

import pandas as pd

from experiments._casnet_common import NOTE_SCALE, SEPARATED_NOTE, casnet_variants
from harness.readings import ReadingClaim
from harness.studies import (
    ReportSpec,
    Study,
    Variant,
    claim_row,
    default_report,
    paper_vs_ours,
    records_frame,
)

PAPER = {"casnet (joint)": {"AP": 32.8, "AP50": 56.6}, "casnet (separated)": {"AP": 36.3, "AP50": 59.9},
         "maskrcnn": {"AP": 31.5}}
OTHERS = ("solov2", "condinst", "uniinst", "maskrcnn")


def _variants():
    import methods
    return casnet_variants("instance") + tuple(Variant(m, m) for m in OTHERS if m in methods.available())


VARIANTS = _variants()


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records, metrics=("AP", "AP50"))
    order = [v.name for v in VARIANTS if v.name != "semantic model"]
    table = paper_vs_ours(df, PAPER, ["AP", "AP50"], order, baseline="casnet (joint)")
    claims = pd.DataFrame([claim_row(df, "separated training beats joint training (mask AP)", "casnet (separated)",
                                     "casnet (joint)", "AP", 3.5)])
    notes = [NOTE_SCALE, SEPARATED_NOTE, "Paper AP50 values as extracted from a scrambled PDF table.",
             "The paper's Mask R-CNN row (31.5, ResNet-50 without COCO pre-training) is from its text."]
    return ReportSpec(tables=[("Instance segmentation: paper vs ours", table), ("Claims", claims)], notes=notes,
                      figure=default_report(study, [r for r in records if r["variant"] != "semantic model"]).figure)


# `python -m harness study casnet_table1 --readings`: the box-probability loss and the positives of an instance
# whose centre area it does not own (both rows trained with them), and the seed threshold (inference only, the
# same weights), harness/readings.py
READING_CLAIMS = (
    ReadingClaim("separated training beats joint training (mask AP)", "casnet (separated)", "casnet (joint)", "AP",
                 3.5, ("prob_loss", "seed_thr", "positive_fallback"), apply_to_baseline=True),
)

STUDY = Study(name="casnet_table1", title="CASNet Table I: instance segmentation", source="casnet.md, Table I",
              variants=VARIANTS, dataset="shapes-street", profile="quick", seeds=3, paper_numbers=PAPER,
              build_report=build_report)
