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
    claims = []
    fp32 = {r["variant"]: (r.get("timing") or {}).get("ms_per_img") for r in records
            if not (r.get("timing") or {}).get("not_measured")}
    for other in ("condinst", "solov2", "maskrcnn"):
        p_ratio = PAPER[other]["ms/img"] / PAPER["uniinst"]["ms/img"]
        a, b = fp32.get("uniinst"), fp32.get(other)
        ratio = b / a if a and b else None
        claims.append({"claim (paper)": f"UniInst (no NMS) is faster than {other}",
                       "paper ms/img ratio": f"{p_ratio:.2f}",
                       "ours ms/img ratio": f"{ratio:.2f}" if ratio else "not measured",
                       "verdict": "not measured" if ratio is None else
                       f"inconclusive at this scale (within ±{TIE * 100:.0f} %)" if abs(ratio - 1) < TIE else
                       "reproduced" if ratio > 1 else "not reproduced"})
    notes = timing_note(records) + [
        "Claims: ratio = the other method's median ms/img over UniInst's (> 1: UniInst faster), fp32, same "
        f"session. One timing run of each (no CI): differences under {TIE * 100:.0f} % are treated as timing noise "
        "of a CPU."]
    return ReportSpec(tables=[("Ours", ours), ("Paper Table 8 (V100)", paper), ("Claims", pd.DataFrame(claims))],
                      notes=notes, figure=None)


TIE = 0.05  # relative ms/img difference below which one CPU timing run cannot tell two methods apart


STUDY = Study(name="uniinst_table8", title="UniInst Table 8: inference speed", source="uniinst.md, Table 8",
              variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=1, paper_numbers=PAPER,
              build_report=build_report, reuse_records=False)
