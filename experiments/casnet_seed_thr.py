"""CASNet's seed threshold: instance AP of the same trained joint models at several ``seed_thr``.

Not a table of the paper.  Section III.C takes seeds where the box probability exceeds a threshold
("e.g. 0.5").  ``seed_thr`` is read only at inference, so every row evaluates the same weights (the
"casnet (joint)" runs of ``casnet_table1``); the quick profile's value (0.1) is the one marked.
"""
from __future__ import annotations

import pandas as pd

from experiments._casnet_common import NOTE_SCALE
from harness.studies import ReportSpec, Study, Variant, records_frame, summary_table

THRESHOLDS = (0.5, 0.3, 0.2, 0.1, 0.05)
CLASSES = ("car", "pedestrian", "truck", "bus", "rider")
VARIANTS = tuple(Variant(f"seed_thr={t}", "casnet", overrides=("method.mode=instance", f"method.seed_thr={t}"))
                 for t in THRESHOLDS)


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    from harness.stats import mean_ci
    df = records_frame(records, metrics=("AP", "AP50", "AP75"))
    for c in CLASSES:
        df[f"AP {c}"] = [((r.get("metrics") or {}).get("per_class") or {}).get(c) for r in records]
    names = [v.name for v in VARIANTS]
    table = summary_table(df, ["AP", "AP50", "AP75"] + [f"AP {c}" for c in CLASSES], order=names)

    def figure(fig):
        ax = fig.add_subplot(1, 1, 1)
        for col, style in (("AP", "o-"), ("AP50", "s--")):
            means, errs, xs = [], [], []
            for t, v in zip(THRESHOLDS, names):
                vals = [x for x in df[df["variant"] == v][col].tolist() if x is not None]
                if vals:
                    m, hw = mean_ci(vals)
                    xs.append(t)
                    means.append(m)
                    errs.append(0.0 if hw is None or hw != hw else hw)
            ax.errorbar(xs, means, yerr=errs, fmt=style, capsize=3, label=f"mask {col}")
        ax.axvline(0.5, color="grey", ls=":", lw=1)
        ax.text(0.5, ax.get_ylim()[0], " paper's example 0.5", color="grey", va="bottom")
        ax.set_xlabel("seed_thr (box probability)")
        ax.set_ylabel("mean ± 95% CI over seeds")
        ax.set_title("CASNet: seed threshold, same trained joint models")
        ax.legend()

    notes = [NOTE_SCALE, "Every row evaluates the same trained weights (seed_thr is read only at inference); "
             "the quick profile uses 0.1 (methods/casnet.py, CASNetConfig.seed_thr)."]
    return ReportSpec(tables=[("Instance AP by seed threshold (casnet joint, instance mode)", pd.DataFrame(table))],
                      notes=notes, figure=figure)


STUDY = Study(name="casnet_seed_thr", title="CASNet: seed threshold sweep (post-processing only)",
              source="casnet.md, section III.C (not a table of the paper)", variants=VARIANTS,
              dataset="shapes-street", profile="quick", seeds=3,
              paper_numbers={"seed_thr=0.5": {"note": "the paper's example threshold"}},
              build_report=build_report)
