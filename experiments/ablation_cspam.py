"""Where does CSPAM's AP go?  Diagnostic rows beside the paper's "+CSPAM" row of Table 1.

Not a table of the paper: the paper's section 2.1 leaves the position attention module's details open,
and at the quick profile the literal reading ("+CSPAM" in ``ablation_table1``) loses most of the AP.  This
study separates the candidates, each a single change on the SOLOv2 baseline, same profile and seeds as
Table 1 (the baseline and "+CSPAM" runs are shared with ``ablation_table1``):

* "+CSPAM": the default reading (``cspam_theta_on="residual"``, PyTorch's init of the PAM convs): DANet /
  SAGAN's identity-at-initialisation residual X + theta * concat(T1, T2), theta = 0, so the block starts as
  the plain CSP stages and learns how much attention to add.
* "+CSPAM (literal: theta on T1)": the paper's sentence read literally (``cspam_theta_on="reduced"``, the
  backbone's kaiming init on the PAM convs, the build of this row until 2026-12-02): theta scales the
  reduced map T1, so at initialisation the stage output is replaced by the attention path T2 alone, which
  passes a C/8-channel bottleneck.  With the quick profile's narrow ResNet (C3 = 32, C4 = 64 channels)
  that is 4 and 8 channels; with the paper's ResNet-50 (512, 1024) it is 64 and 128.
* "+CSPAM (theta on attention)": ``cspam_theta_on="attention"``: the module starts as the reduced map T1
  (still C/8 channels, the rest zeros) and learns how much attention to add.
* "+CSPAM (no PAM)": the cross-stage partial stages with Mish alone (``cspam_pam_after=()``).
"""
from __future__ import annotations

import pandas as pd

from experiments.ablation_table1 import PAPER as TABLE1_PAPER
from harness.studies import (
    ReportSpec,
    Study,
    Variant,
    default_report,
    diff_stats,
    fmt_diff,
    paper_vs_ours,
    records_frame,
)

BASELINE = "baseline (SOLOv2)"
VARIANTS = (
    Variant(BASELINE, "solov2", overrides=("method.use_cspam=false", "method.use_twfpn_csmf=false",
                                           "method.use_aml=false")),
    Variant("+CSPAM", "solov2", overrides=("method.use_cspam=true", "method.use_twfpn_csmf=false",
                                           "method.use_aml=false")),
    Variant("+CSPAM (literal: theta on T1)", "solov2",
            overrides=("method.use_cspam=true", "method.use_twfpn_csmf=false", "method.use_aml=false",
                       "method.cspam_theta_on=reduced", "method.cspam_pam_init=kaiming")),
    Variant("+CSPAM (theta on attention)", "solov2",
            overrides=("method.use_cspam=true", "method.use_twfpn_csmf=false", "method.use_aml=false",
                       "method.cspam_theta_on=attention", "method.cspam_pam_init=kaiming")),
    Variant("+CSPAM (no PAM)", "solov2",
            overrides=("method.use_cspam=true", "method.use_twfpn_csmf=false", "method.use_aml=false",
                       "method.cspam_pam_after=[]")),
)
PAPER = {k: v for k, v in TABLE1_PAPER.items() if k in (BASELINE, "+CSPAM")}


def build_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records, metrics=("AP", "APs"))
    names = [v.name for v in VARIANTS]
    table = paper_vs_ours(df, PAPER, ["AP", "APs"], names, baseline=BASELINE)
    rows = []
    for a, b, what in (("+CSPAM (no PAM)", BASELINE, "CSP stages + Mish, no attention"),
                       ("+CSPAM", "+CSPAM (no PAM)", "the PAM as a residual (default reading)"),
                       ("+CSPAM (literal: theta on T1)", "+CSPAM (no PAM)", "the PAM as the sentence reads literally"),
                       ("+CSPAM (theta on attention)", "+CSPAM (no PAM)", "the PAM with theta on T2")):
        d, hw, p = diff_stats(df[df["variant"] == a]["AP"].tolist(), df[df["variant"] == b]["AP"].tolist())
        rows.append({"change": what, "rows": f"{a} − {b}", "ΔAP (ours)": fmt_diff(d, hw, p)})
    notes = [
        "Not a table of the paper: diagnostic rows that split the '+CSPAM' row of Table 1 into its parts "
        "(experiments/ablation_cspam.py says what each row builds). The paper's numbers exist only for the "
        "baseline and '+CSPAM'.",
        "Paper: COCO, ResNet-50-FPN, GPU training. Ours: synthetic `shapes-coco` at the quick profile (narrow "
        "ResNet, 16-128 channels, from scratch, CPU): the PAM's C/8 reduction leaves 4 channels on C3 and 8 on C4 "
        "here, 64 and 128 on the paper's ResNet-50.",
    ]
    return ReportSpec(tables=[("CSPAM diagnostics: paper vs ours", table),
                              ("Which part of CSPAM moves AP", pd.DataFrame(rows))], notes=notes,
                      figure=default_report(study, records).figure)


STUDY = Study(name="ablation_cspam", title="CSPAM diagnostics: CSP stages, PAM, theta placement",
              source="improved-solov2-location-attention.md, section 2.1 (diagnostic, beside Table 1)",
              variants=VARIANTS, dataset="shapes-coco", profile="quick", seeds=3, paper_numbers=PAPER,
              build_report=build_report)
