"""UniInst Table 8: inference speed by the timing protocol, the NMS time shown separately.

fp32 on every device; fp16 (the paper's 'half' rows) only where CUDA is present, marked not measured
otherwise.  Speed is measured on the runs of the study (quick profile); the post-processing stage of the
timing protocol is the NMS + decoding time.  When ``results/gpu_check/runs.jsonl`` holds a CUDA session of
``python -m harness gpu-check`` (every method at the paper input size, random weights, fp32 and fp16 by the same
protocol), its newest session adds a GPU table with the fp16 rows and the fp16-vs-fp32 claims.
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
    gpu_table, gpu_claims, gpu_notes = gpu_check_tables()
    for i, v in enumerate(ours["variant"]):
        recs = [r for r in records if r["variant"] == v]
        if recs and all((r.get("timing") or {}).get("not_measured") for r in recs):
            ours.loc[i, ["ms/img", "FPS", "forward ms", "post-process (NMS) ms"]] = (
                "not measured (fp16 needs CUDA); GPU table below" if gpu_table is not None
                else "not measured (fp16 needs CUDA)")
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
    tables = [("Ours", ours), ("Paper Table 8 (V100)", paper), ("Claims", pd.DataFrame(claims))]
    if gpu_table is not None:
        tables += [(gpu_notes[0], gpu_table), ("Claims (GPU, fp16)", gpu_claims)]
        notes += gpu_notes[1:]
    return ReportSpec(tables=tables, notes=notes, figure=None)


def gpu_check_tables(root: str = "results") -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """The fp32 / fp16 rows of the newest CUDA session in ``<root>/gpu_check/runs.jsonl`` (``harness.gpu_check``):
    (table, fp16 claims, [table title, notes...]), or (None, None, []) when there is none."""
    from harness.records import read_records, records_path
    path = records_path("gpu_check", root)
    if not path.is_file():
        return None, None, []
    recs = [r for r in read_records(path) if r.get("kind") == "time" and (r.get("env") or {}).get("device_type") ==
            "cuda" and (r.get("metrics") or {}).get("ok") and (r.get("data") or {}).get("session")]
    if not recs:
        return None, None, []
    session = max(r["data"]["session"] for r in recs)  # sessions start with their UTC time
    by_variant = {r["variant"]: r for r in recs if r["data"]["session"] == session}
    rows, claims = [], []
    for m in METHODS:
        t32, t16 = by_variant.get(m, {}).get("timing") or {}, by_variant.get(f"{m} fp16", {}).get("timing") or {}
        if not t32 and not t16:
            continue
        ms32, ms16 = t32.get("ms_per_img"), t16.get("ms_per_img")
        speedup = ms32 / ms16 if ms32 and ms16 else None
        post = lambda t: ((t.get("stages") or {}).get("postprocess") or {}).get("median_ms")  # noqa: E731
        rows.append({"method": m, "fp32 ms/img": fmt_num(ms32), "fp32 FPS": fmt_num(t32.get("fps")),
                     "fp16 ms/img": fmt_num(ms16), "fp16 FPS": fmt_num(t16.get("fps")),
                     "fp16 speed-up": fmt_num(speedup, 2), "post-process fp32 / fp16 ms":
                     f"{fmt_num(post(t32))} / {fmt_num(post(t16))}",
                     "paper fp32 ms/img": fmt_num(PAPER.get(m, {}).get("ms/img")),
                     "paper fp16 ms/img": fmt_num(PAPER.get(f"{m} fp16", {}).get("ms/img"))})
        if f"{m} fp16" in PAPER:
            p_ratio = PAPER[m]["ms/img"] / PAPER[f"{m} fp16"]["ms/img"]
            claims.append({"claim (paper)": f"{m} is faster in fp16 than in fp32", "paper fp32/fp16 ratio":
                           f"{p_ratio:.2f}", "ours fp32/fp16 ratio": fmt_num(speedup, 2),
                           "verdict": "not measured" if speedup is None else
                           f"inconclusive (within ±{TIE * 100:.0f} %)" if abs(speedup - 1) < TIE else
                           "reproduced" if speedup > 1 else "not reproduced"})
    if not rows:
        return None, None, []
    any_rec = next(iter(by_variant.values()))
    p = (any_rec.get("timing") or {}).get("protocol") or {}
    cfg = any_rec.get("config") or {}
    title = f"GPU: gpu-check on {p.get('device_name', '?')} (paper input size, random weights)"
    notes = [f"GPU table: `python -m harness gpu-check`, session {session} (records `{path}`), on "
             f"{p.get('device_name', '?')}, torch {p.get('torch', '?')}, timing protocol v{p.get('version', '?')}: "
             f"batch 1, {p.get('warmup_iters', '?')} warm-up, {p.get('num_images', '?')} timed images of "
             f"{cfg.get('data.test_short_side', '?')} x {cfg.get('data.max_size', '?')} px, fp32 and fp16 autocast. "
             "Random initial weights (the paper profile's networks, untrained): forward times are the networks', "
             "post-processing times depend on how many candidates an untrained model passes and are not a trained "
             "model's."]
    return pd.DataFrame(rows), pd.DataFrame(claims), [title] + notes


def fmt_num(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


TIE = 0.05  # relative ms/img difference below which one CPU timing run cannot tell two methods apart


STUDY = Study(name="uniinst_table8", title="UniInst Table 8: inference speed", source="uniinst.md, Table 8",
              variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=1, paper_numbers=PAPER,
              build_report=build_report, reuse_records=False)
