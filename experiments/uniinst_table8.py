"""UniInst Table 8: inference speed by the timing protocol, the NMS time shown separately.

fp32 on every device; fp16 (the paper's 'half' rows) only where CUDA is present, marked not measured
otherwise.  Speed is measured on the runs of the study (quick profile); the post-processing stage of the
timing protocol is the NMS + decoding time.
"""
from __future__ import annotations

import pandas as pd

from experiments._uniinst_common import TABLE1_METHODS, available
from harness.studies import ReportSpec, Study, Variant, records_frame, summary_table, timing_note

PAPER = {"maskrcnn": {"AP": 37.5, "FPS": 17.5, "ms/img": 57.1}, "solov2": {"AP": 38.8, "FPS": 18.5, "ms/img": 54.0},
         "condinst": {"AP": 37.8, "FPS": 20.4, "ms/img": 49.0}, "condinst fp16": {"FPS": 31.8, "ms/img": 31.4},
         "uniinst": {"AP": 39.0, "FPS": 21.1, "ms/img": 47.5}, "uniinst fp16": {"FPS": 37.2, "ms/img": 26.9}}
METHODS = available(TABLE1_METHODS)
VARIANTS = tuple(Variant(name=m, method=m, time=True) for m in METHODS) + tuple(
    Variant(name=f"{m} fp16", method=m, time=True, overrides=("timing.fp16=true",))
    for m in ("condinst", "uniinst") if m in METHODS)


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records, metrics=("AP",))
    rows = []
    for r in records:
        st = (r.get("timing") or {}).get("stages") or {}
        rows.append({"variant": r["variant"], "seed": r["seed"],
                     "forward ms": st.get("forward", {}).get("median_ms"),
                     "post-process (NMS) ms": st.get("postprocess", {}).get("median_ms")})
    stage = pd.DataFrame(rows)
    df = df.merge(stage, on=["variant", "seed"], how="left")
    ours = summary_table(df, ["AP", "ms/img", "FPS", "forward ms", "post-process (NMS) ms"])
    for i, v in enumerate(ours["variant"]):
        recs = [r for r in records if r["variant"] == v]
        if recs and all((r.get("timing") or {}).get("not_measured") for r in recs):
            ours.loc[i, ["ms/img", "FPS", "forward ms", "post-process (NMS) ms"]] = "not measured (fp16 needs CUDA)"
    paper = pd.DataFrame([{"method": k, **v} for k, v in PAPER.items()])
    return ReportSpec(tables=[("Ours", ours), ("Paper Table 8 (V100)", paper)], notes=timing_note(records),
                      figure=None)


STUDY = Study(name="uniinst_table8", title="UniInst Table 8: inference speed", source="uniinst.md, Table 8",
              variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=1, paper_numbers=PAPER,
              build_report=build_report, reuse_records=False)
