"""UniInst Table 1: mask AP and AR with NMS, without NMS, and the difference, on the same trained runs.

Each method is trained once per seed and evaluated twice: with its own NMS (Mask R-CNN and CondInst: box
NMS; SOLOv2: Matrix NMS; UniInst: mask NMS) and with none.  The paper's claim: UniInst loses 0.2 AP
without NMS, the many-to-one methods about 19 (CondInst 19.4, SOLOv2 19.7).
"""
from __future__ import annotations

import pandas as pd

from experiments._compute import EQUAL_FLOPS_MASKRCNN, EQUAL_FLOPS_NAME
from experiments._uniinst_common import NMS_KIND, NOTE_SCALE, TABLE1_METHODS, available
from harness.studies import (
    ReportSpec,
    Study,
    Variant,
    diff_stats,
    fmt_diff,
    fmt_signed_ci,
    health_verdict,
    records_frame,
)
from harness.verdicts import verdict

PAPER = {  # AP w/ NMS, w/o NMS; AR w/ NMS, w/o NMS
    "maskrcnn": (37.2, 10.3, 44.6, 49.7),
    "solov2": (37.6, 17.9, 49.9, 50.8),
    "condinst": (37.5, 18.1, 48.7, 52.2),
    "uniinst": (38.5, 38.3, 53.2, 54.4),
}
METHODS = available(TABLE1_METHODS)
# row name -> method: every method at equal iterations, and Mask R-CNN at the single-stage methods' training FLOPs
ROWS = {m: m for m in METHODS} | ({EQUAL_FLOPS_NAME: "maskrcnn"} if "maskrcnn" in METHODS else {})
VARIANTS = tuple(Variant(name=m, method=m, postprocess=(NMS_KIND[m], "none")) for m in METHODS) + tuple(
    Variant(name=EQUAL_FLOPS_NAME, method="maskrcnn", postprocess=(NMS_KIND["maskrcnn"], "none"),
            profile_overrides=EQUAL_FLOPS_MASKRCNN) for _ in ROWS if _ == EQUAL_FLOPS_NAME)


def _paired(df: pd.DataFrame, m: str, metric: str) -> list[float]:
    """Per-seed (w/o NMS - w/ NMS) of ``metric`` for method m (paired by seed: same trained weights)."""
    a = df[df["variant"] == f"{m}[none]"].set_index("seed")[metric]
    b = df[df["variant"] == f"{m}[{NMS_KIND[ROWS[m]]}]"].set_index("seed")[metric]
    common = sorted(set(a.index) & set(b.index))
    return [float(a[s] - b[s]) for s in common]


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    from harness.report import fmt_mean_ci
    from harness.stats import mean_ci
    df = records_frame(records, metrics=("AP", "AR100"))
    rows, drops = [], {}
    for m in ROWS:
        row = {"method": m, "NMS": NMS_KIND[ROWS[m]]}
        p = PAPER.get(ROWS[m])
        for metric, (pw, pwo) in (("AP", p[:2]), ("AR100", p[2:])):
            w = df[df["variant"] == f"{m}[{NMS_KIND[ROWS[m]]}]"][metric].tolist()
            wo = df[df["variant"] == f"{m}[none]"][metric].tolist()
            d = _paired(df, m, metric)
            if metric == "AP":
                drops[m] = d
            row[f"paper {metric} w/"] = pw
            row[f"paper {metric} w/o"] = pwo
            row[f"paper Δ{metric}"] = f"{pwo - pw:+.1f}"
            row[f"ours {metric} w/"] = fmt_mean_ci(*mean_ci(w)) if w else "n/m"
            row[f"ours {metric} w/o"] = fmt_mean_ci(*mean_ci(wo)) if wo else "n/m"
            row[f"ours Δ{metric}"] = fmt_signed_ci(*mean_ci(d)) if d else "n/m"
        rows.append(row)
    claims = []
    if "uniinst" in drops:
        for m in [x for x in ROWS if x != "uniinst"]:
            if not drops.get(m):
                continue
            # is UniInst's AP loss smaller than method m's? (difference of paired drops, Welch)
            d, hw, p = diff_stats(drops["uniinst"], drops[m])
            paper_d = (PAPER["uniinst"][1] - PAPER["uniinst"][0]) - (PAPER[ROWS[m]][1] - PAPER[ROWS[m]][0])
            rows_of = [v for v in df["variant"].unique() if v.split("[")[0] in ("uniinst", m)]
            claims.append({"claim (paper)": f"UniInst loses less AP without NMS than {m} (Δ_uniinst − Δ_{m})",
                           "paper": f"{paper_d:+.1f}", "ours": fmt_diff(d, hw, p),
                           "verdict": health_verdict(df, rows_of) or verdict(d, hw, p, paper_d)})
        m_u, hw_u = mean_ci(drops["uniinst"])
        small = hw_u is not None and hw_u == hw_u and abs(m_u) + hw_u < 2.0
        claims.append({"claim (paper)": "UniInst's own loss without NMS is small (paper: −0.2 AP)",
                       "paper": "-0.2", "ours": fmt_signed_ci(m_u, hw_u),
                       "verdict": "reproduced" if small else ("not reproduced" if hw_u is not None and hw_u == hw_u
                                                             and abs(m_u) - hw_u > 2.0
                                                             else "inconclusive at this scale")})
    notes = [NOTE_SCALE,
             "Δ = w/o NMS − w/ NMS per seed on the same trained weights (paired), mean ± 95 % CI.",
             "'Small' for UniInst's own loss means the whole 95 % CI of its AP change lies within ±2 AP."]

    def figure(fig):
        ax = fig.add_subplot(1, 1, 1)
        names = [m for m in ROWS if drops.get(m)]
        ours = [mean_ci(drops[m]) for m in names]
        ax.barh(names, [o[0] for o in ours], xerr=[(o[1] if o[1] == o[1] and o[1] else 0) for o in ours],
                color="#4C72B0", capsize=3, label="ours (95% CI)")
        ax.scatter([PAPER[ROWS[m]][1] - PAPER[ROWS[m]][0] for m in names], names, marker="x", color="#C44E52", zorder=3,
                   label="paper")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel("AP change when NMS is removed (points)")
        ax.legend(fontsize=8)
        ax.invert_yaxis()

    return ReportSpec(tables=[("AP and AR with and without NMS", pd.DataFrame(rows)),
                              ("Claims", pd.DataFrame(claims))], notes=notes, figure=figure)


STUDY = Study(name="uniinst_table1", title="UniInst Table 1: with and without NMS",
              source="uniinst.md, Table 1", variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=3,
              paper_numbers=PAPER, build_report=build_report)
