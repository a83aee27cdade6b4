"""UniInst Table 5: 3DMF x centre-ness x prediction re-ranking (the paper's five rows)."""
from __future__ import annotations

import pandas as pd

from experiments._uniinst_common import NOTE_SCALE
from harness.studies import ReportSpec, Study, Variant, claim_row, default_report, paper_vs_ours, records_frame

ROWS = [  # (3dmf, centerness, rerank), AP, AP50, AP75
    ((0, 0, 0), (35.6, 56.0, 38.2)), ((1, 0, 0), (36.4, 57.2, 39.0)), ((0, 1, 0), (33.5, 51.7, 36.0)),
    ((0, 0, 1), (36.8, 56.2, 39.6)), ((1, 0, 1), (37.9, 58.0, 40.9)),
]


def name(lv) -> str:
    parts = [n for n, x in zip(("3DMF", "centre-ness", "re-ranking"), lv) if x]
    return "plain" if not parts else "+" + " +".join(parts)


VARIANTS = tuple(Variant(name=name(lv), method="uniinst",
                         overrides=(f"method.use_3dmf={bool(lv[0])}", f"method.use_centerness={bool(lv[1])}",
                                    f"method.use_rerank={bool(lv[2])}"))
                 for lv, _ in ROWS)
PAPER = {name(lv): dict(zip(("AP", "AP50", "AP75"), v)) for lv, v in ROWS}


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records, metrics=("AP", "AP50", "AP75"))
    table = paper_vs_ours(df, PAPER, ["AP", "AP50", "AP75"], [v.name for v in VARIANTS], baseline="plain")
    claims = pd.DataFrame([
        claim_row(df, f"{text} (AP, vs the plain row)", v, "plain", "AP", PAPER[v]["AP"] - PAPER["plain"]["AP"])
        for v, text in (("+3DMF", "3DMF raises AP"), ("+re-ranking", "re-ranking raises AP"),
                        ("+centre-ness", "a centre-ness branch lowers AP"),
                        ("+3DMF +re-ranking", "3DMF and re-ranking together raise AP"))])
    fig = default_report(study, records).figure
    return ReportSpec(tables=[("Paper vs ours; Δ from the plain row", table), ("Claims", claims)],
                      notes=[NOTE_SCALE, "Every row is its own training (the toggles change the trained network or "
                             "its losses), so differences are Welch tests over seeds."], figure=fig)


STUDY = Study(name="uniinst_table5", title="UniInst Table 5: 3DMF, centre-ness, re-ranking",
              source="uniinst.md, Table 5", variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=3,
              paper_numbers=PAPER, build_report=build_report)
