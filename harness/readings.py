"""Open readings: where a paper is silent or ambiguous, the values a careful engineer could pick (issue 13).

``READINGS`` lists, per method, each config field whose value is a reading of the paper rather than a fact of
it: its values, the default and why (the sentence and the reference code it follows).  The default is the
method config's own default (a test holds them equal), never a value no study would use.

``python -m harness study NAME --readings`` runs a study's claims again under every alternative value
(``run_readings``): for each claim the study declares in ``READING_CLAIMS`` (experiments/<study>.py: a row,
its baseline, the metric, the paper's effect and the readings that bear on it), the row is trained with each
alternative value, 3 seeds, and ``reports/<study>_readings.md`` says, per claim, the verdict under every reading
and whether it holds under all of them or flips.  Records: ``results/<study>_readings/runs.jsonl``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Reading:
    """One open reading.

    Attributes:
        method: registered method whose config has ``field``.
        field: config field (``method.<field>``).
        values: every value a study may run (the default among them).
        default: the config default.
        why: the paper's sentence and the reference code the default follows.
        requires: a toggle that must be on for the field to matter (e.g. ``use_cspam``), or "".
    """

    method: str
    field: str
    values: tuple
    default: object
    why: str
    requires: str = ""

    def alternatives(self) -> tuple:
        return tuple(v for v in self.values if v != self.default)


READINGS: tuple[Reading, ...] = (
    Reading("solov2", "cspam_theta_on", ("residual", "reduced", "attention"), "residual",
            "Sec. 2.1: 'T1 is multiplied by the adaptive weight factor theta ... set to 0 at the beginning'. Literally "
            "(reduced) the block starts as the attention path alone; DANet's PAM_Module / SAGAN, whose device 'theta "
            "= 0 at the beginning' is, start as the identity: out = gamma * attention + x (residual).", "use_cspam"),
    Reading("solov2", "cspam_pam_init", ("default", "kaiming"), "default",
            "The paper gives no init; DANet's PAM convs keep PyTorch's default init (the backbone's kaiming fan-out "
            "init applied to them was this code's until 2026-12-02).", "use_cspam"),
    Reading("solov2", "cspam_logit_scale", ("none", "sqrt"), "none",
            "Sec. 2.1: 'P is transposed and multiplied with A, after softmax': no scale, as DANet; a transformer "
            "divides by sqrt(C1).", "use_cspam"),
    Reading("solov2", "cspam_csp_width", ("half", "full"), "half",
            "Sec. 2.1: 'the number of parameters of the convolutional layers is reduced' (half-width blocks); "
            "timm's cspresnet50 keeps ResNet's 3x3 widths.", "use_cspam"),
    Reading("solov2", "cspam_min_reduced_channels", (1, 16), 1,
            "Sec. 2.1: 'reduce the channel dimension C to 1/8' (C1 = C / 8, 4-8 channels in the narrow quick-profile "
            "ResNet; 64-128 in ResNet-50); a floor of 16 keeps the attention from working on 4 channels.",
            "use_cspam"),
    Reading("solov2", "aml_dice_form", ("squared", "linear"), "squared",
            "Eq. 2 prints sum(m) + sum(g) in the dice denominator; AML replaces SOLOv2's dice, whose reference code "
            "(AdelaiDet / mmdet) sums squares; a different dice form would be a second change the paper does not "
            "claim.", "use_aml"),
    Reading("solov2", "aml_centroid_units", ("normalized", "mask_px"), "normalized",
            "Eq. 2 gives no unit for the centroids C_P, C_G; in stride-4 mask pixels the centroid term is ~30x the "
            "dice (loss ~77, AP 0.0), so normalised image coordinates are the only unit a study uses.", "use_aml"),
    Reading("casnet", "prob_loss", ("focal", "bce"), "focal",
            "Eq. 3 writes a weighted BCE with w_n = 1 over all locations (~0.5 % positive); the paper cites FCOS for "
            "the centre probability, whose code trains it with focal loss normalised by the positives."),
    Reading("casnet", "positive_fallback", ("nearest_owned", "none"), "nearest_owned",
            "Sec. III.B puts the box-probability positives in a small area around the box centre (FCOS) and is "
            "silent on an instance whose centre lies on another instance's visible mask; with ownership by "
            "masks such an instance has no positive at all under none (10 % of shapes-street's GT, so every row "
            "failed run health); nearest_owned gives it the location it owns nearest to its box centre (2.1 % "
            "left: objects between stride-4 sample points), as every detector the paper builds on gives each "
            "instance a positive (FCOS: the locations of its box; Panoptic-DeepLab: its centre). Default since "
            "2026-12-05."),
    Reading("maskrcnn", "roi_convention", ("detectron2", "torchvision"), "detectron2",
            "Not a sentence of any paper but the baseline's code: the Mask R-CNN that CondInst, UniInst and SOLOv2 "
            "compare with is detectron2's / mmdetection's (RoIAlign aligned=True, masks pasted with continuous box "
            "coordinates); torchvision's MaskRCNN pools with aligned=False and pastes into the whole-pixel box + 1, "
            "half a pixel off on each side, which on the quick profile's 11-64 px objects caps the ceiling at "
            "81.9 AP (100.0 with detectron2's)."),
    Reading("casnet", "seed_thr", (0.1, 0.5, 0.05), 0.1,
            "Sec. III.C: seeds 'e.g. 0.5'; the quick / smoke profiles use 0.1, the score threshold the other methods "
            "are evaluated with (inference only: the same weights)."),
)


def readings_of(method: str) -> list[Reading]:
    return [r for r in READINGS if r.method == method]


@dataclass(frozen=True)
class ReadingClaim:
    """A claim of a study re-run under the readings: ``row`` − ``baseline`` on ``metric`` (the paper: ``effect``),
    with ``row`` trained under each alternative of each reading in ``readings`` (field names of ``READINGS``);
    ``dataset`` runs it on another training set than the study's (e.g. AML on shapes-ochuman)."""

    claim: str
    row: str
    baseline: str
    metric: str
    effect: float
    readings: tuple[str, ...]
    dataset: str | None = None
    extra_overrides: tuple[str, ...] = field(default_factory=tuple)
    apply_to_baseline: bool = False  # the reading changes both rows (e.g. CASNet's loss in joint and separated)


def _base_method(name: str) -> str:
    import methods
    return methods.PRESETS[name][0] if name in methods.PRESETS else name


def reading_variants(study, claims) -> list[tuple]:
    """(variant, reading label, claim) of every run the readings mode needs: the baseline and the row at the
    defaults (label "default"), and the row under each alternative value."""
    by_name = {v.name: v for v in study.variants}
    out, seen = [], set()
    for c in claims:
        suffix = f" @ {c.dataset}" if c.dataset else ""
        for name in (c.baseline, c.row):
            v = by_name[name]
            vv = replace(v, name=name + suffix, overrides=v.overrides + c.extra_overrides)
            if vv.name not in seen:
                seen.add(vv.name)
                out.append((vv, "default", c))
        row = by_name[c.row]
        for fname in c.readings:
            (rd,) = [r for r in READINGS if r.field == fname and r.method == _base_method(row.method)]
            for alt in rd.alternatives():
                label = f"{fname}={alt}"
                for v in (row, by_name[c.baseline]) if c.apply_to_baseline else (row,):
                    vv = replace(v, name=f"{v.name}{suffix} [{label}]",
                                 overrides=v.overrides + c.extra_overrides + (f"method.{fname}={alt}",))
                    if vv.name not in seen:
                        seen.add(vv.name)
                        out.append((vv, label, c))
    return out


def readings_name(study_name: str) -> str:
    """``<study>_readings`` (``<study>_readings@<profile>`` for a study at another profile)."""
    base, at, profile = study_name.partition("@")
    return f"{base}_readings" + (f"@{profile}" if at else "")


def run_readings(name: str, *, seeds: int | None = None, progress: bool = True, overrides=None,
                 only_report: bool = False, shard: tuple[int, int] = (0, 1), profile: str | None = None,
                 variants: list[str] | None = None):
    """Train / evaluate what ``study NAME --readings`` needs and write ``reports/<NAME>_readings.md``.

    Raises:
        KeyError: the study declares no ``READING_CLAIMS``.
    """
    import importlib

    from harness.config import make_config
    from harness.pipeline import run_variant
    from harness.studies import at_profile, load_study, resolve_references, shard_of
    study = at_profile(load_study(name), profile)
    mod = importlib.import_module(f"experiments.{study.name.partition('@')[0]}")
    claims = getattr(mod, "READING_CLAIMS", None)
    if not claims:
        raise KeyError(f"study {name!r} declares no READING_CLAIMS (experiments/{study.name}.py); studies with "
                       "reading claims: ablation_table1, casnet_table1")
    rname = readings_name(study.name)
    jobs = reading_variants(study, claims)
    n_seeds = seeds if seeds is not None else study.seeds
    from harness.studies import join_variant_names
    variants = join_variant_names(variants, [j[0].name for j in jobs])
    unknown = [v for v in (variants or []) if v not in {j[0].name for j in jobs}]
    if unknown:
        raise KeyError(f"--readings has no variant {unknown[0]!r}; its variants: {', '.join(j[0].name for j in jobs)}")
    if not only_report:
        k = 0
        for seed in range(n_seeds):
            for j, (v, _label, c) in enumerate(jobs):
                k += 1
                if shard_of(j, seed, shard[1]) != shard[0] or (variants and v.name not in variants):
                    continue
                cfg = make_config(v.method, study.profile, dataset=c.dataset or study.dataset,
                                  val_dataset=None if c.dataset else (study.val_dataset or None), seed=seed,
                                  overrides=list(study.overrides) + list(v.overrides) + list(overrides or ()))
                cfg = resolve_references(study, cfg, study.profile, tuple(overrides or ()), progress)
                if progress:
                    print(f"[readings {k} / {n_seeds * len(jobs)}] {v.name} seed {seed}", flush=True)
                run_variant(rname, v.name, cfg, postprocess=list(v.postprocess) if v.postprocess else None,
                            do_time=False, progress=progress, protocol=v.protocol, reuse=True)
    if shard[0] != 0:
        return None
    return write_readings_report(study, claims, jobs, n_seeds)


def readings_summary(ran: list[tuple[str, str, float]], n_readings: int, paper_effect: float) -> str:
    """The "→ overall" line of one claim: does its verdict hold under every reading, or flip?

    ``ran``: (reading label, verdict, our effect) of each reading with runs; ``n_readings``: readings registered
    for the claim (the default included).  A verdict *flips* only when one reading reproduces the claim and
    another does not (``reproduced`` against ``not reproduced``); an inconclusive reading (too few seeds, too
    noisy, or failed run health) does not flip a decided one, it leaves the question open under that reading.
    The line also says whether our effect has the paper's sign under every reading.
    """
    from harness.verdicts import NOT_REPRODUCED, REPRODUCED
    if not ran:
        return "not run"
    by = {v: [lab for lab, vv, _ in ran if vv == v] for v in dict.fromkeys(vv for _, vv, _ in ran)}
    partial = "" if len(ran) == n_readings else f" ({len(ran)} of {n_readings} readings run)"
    effects = [d for _, _, d in ran if d == d]
    same = sum((d > 0) == (paper_effect > 0) for d in effects)
    sign = ("; ours has the paper's sign under every reading" if effects and same == len(effects) else
            "; ours has the opposite sign to the paper's under every reading" if effects and same == 0 else
            f"; ours has the paper's sign under {same} of {len(effects)} readings" if effects else "")
    if REPRODUCED in by and NOT_REPRODUCED in by:
        return (f"flips with the reading: reproduced under {', '.join(by[REPRODUCED])}; not reproduced under "
                f"{', '.join(by[NOT_REPRODUCED])}{partial}{sign}")
    if len(by) == 1:
        (v,) = by
        if v not in (REPRODUCED, NOT_REPRODUCED):
            return f"{v} under every reading run{partial}{sign}"
        return f"holds under every reading run: {v}{partial}{sign}"
    decided = REPRODUCED if REPRODUCED in by else NOT_REPRODUCED if NOT_REPRODUCED in by else None
    if decided is None:
        return "; ".join(f"{v} under {', '.join(labs)}" for v, labs in by.items()) + f"{partial}{sign}"
    rest = "; ".join(f"{v} under {', '.join(labs)}" for v, labs in by.items() if v != decided)
    return (f"{decided} under {', '.join(by[decided])}, and no reading gives the opposite verdict ({rest})"
            f"{partial}{sign}")


def write_readings_report(study, claims, jobs, n_seeds: int):
    import pandas as pd

    from harness.records import records_path
    from harness.report import write_report
    from harness.studies import (
        claim_row,
        current_profile_records,
        records_frame,
        run_health_table,
        study_records,
        variant_diff,
    )
    rname = readings_name(study.name)
    records, drift_note = current_profile_records(
        study, [r for r in study_records(rname) if (r.get("config") or {}).get("profile") == study.profile])
    # a reading whose value became the default (CASNet's positive_fallback=nearest_owned, 2026-12-05) is no longer a
    # row: its records stay in runs.jsonl as history, the default row now shows those runs
    current = {v.name for v, _, _ in jobs}
    gone = sorted({r["variant"] for r in records if r["variant"] not in current})
    if gone:
        records = [r for r in records if r["variant"] in current]
        drift_note = drift_note + [f"Readings no longer in the registry (a value that became the default, or one "
                                   f"dropped) are left out: {', '.join(gone)} (history in runs.jsonl)."]
    df = records_frame(records, metrics=("AP", "APs", "AP50", "AP75"))
    rows, registry = [], []
    for c in claims:
        suffix = f" @ {c.dataset}" if c.dataset else ""
        base = c.baseline + suffix
        labels = ["default"] + list(dict.fromkeys(lab for v, lab, cc in jobs if cc is c and lab != "default"))
        ran = []  # (reading label, verdict, our effect) of every reading with runs
        for lab in labels:
            row = c.row + suffix if lab == "default" else f"{c.row}{suffix} [{lab}]"
            b = base if lab == "default" or not c.apply_to_baseline else f"{base} [{lab}]"
            r = claim_row(df, c.claim, row, b, c.metric, c.effect)
            n = int((df["variant"] == row).sum()) if len(df) else 0
            rows.append({"claim (paper)": c.claim + suffix, "reading": lab, "runs": n, "paper": r["paper"],
                         "ours": r["ours"], "verdict": r["verdict"]})
            if n and int((df["variant"] == b).sum()):
                ran.append((lab, r["verdict"], variant_diff(df, row, b, c.metric)[0]))
        summary = readings_summary(ran, len(labels), c.effect)
        rows.append({"claim (paper)": c.claim + suffix, "reading": "→ overall", "runs": "", "paper": "", "ours": "",
                     "verdict": summary})
    for rd in READINGS:
        if any(rd.field in c.readings for c in claims):
            registry.append({"method": rd.method, "field": f"method.{rd.field}", "default": str(rd.default),
                             "alternatives": ", ".join(map(str, rd.alternatives())), "why the default": rd.why})
    expected = len(jobs) * n_seeds
    notes = ([] if len(records) >= expected else
             [f"Incomplete: {len(records)} of the {expected} evaluations are recorded; `python -m harness study "
              f"{study.name} --readings` runs the missing ones (finished runs and records are reused)."]) + [
        f"Each claim of `{study.name}` re-run with its row trained under every alternative value of the readings "
        "that bear on it (one field changed at a time, the rest at the defaults), same profile, seeds 0.."
        f"{n_seeds - 1}; the default row and its baseline are the study's own configs (copied from its records when "
        "identical). Verdict rule and run health as in every report (harness/verdicts.py, harness/health.py).",
        "Registry of the readings: harness/readings.py (the table below).",
    ]
    tables = [("Claims under every reading", pd.DataFrame(rows)), ("The readings", pd.DataFrame(registry)),
              ("Run health", run_health_table(records))]
    return write_report(rname, tables, notes, None, title=f"{study.title}: reading sensitivity",
                        sources=[records_path(rname)], warnings=drift_note,
                        command=f"python -m harness study {study.name.partition('@')[0]} --readings"
                        + (f" --profile {study.profile}" if "@" in study.name else ""))
