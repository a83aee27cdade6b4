"""Studies: a named set of variants x seeds, run through ``harness.pipeline`` and reported.

A study lives in ``experiments/<name>.py`` as a module-level ``STUDY = Study(...)``: base dataset and
profile, its variants (method + config overrides + post-processing kinds), seeds, the paper's
numbers, and a ``build_report(study, records) -> ReportSpec`` (default: a comparison table).  The
report step reads only the records file, so ``python -m harness report`` regenerates every report
byte-identically from committed records.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.config import make_config

COMPARE_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


@dataclass(frozen=True)
class Variant:
    """One row of a study.

    Attributes:
        name: row name in the report (unique within the study).
        method: registered method or preset name.
        overrides: ``section.key=value`` strings applied on top of the profile.
        postprocess: post-processing kinds evaluated on the same trained run (None = the method's own).
        time: run the timing protocol.
        val_dataset: evaluation dataset spec overriding the study's.
        protocol: "coco" or "ochuman".
    """

    name: str
    method: str
    overrides: tuple[str, ...] = ()
    postprocess: tuple[str, ...] | None = None
    time: bool = False
    val_dataset: str | None = None
    protocol: str = "coco"
    panoptic: bool = False
    # overrides applied only at a given profile, ((profile, (overrides...)), ...): e.g. a schedule cut to another
    # method's training FLOPs, whose iteration count depends on the profile's own
    profile_overrides: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass
class ReportSpec:
    tables: list[tuple[str, pd.DataFrame]]
    notes: list[str] = field(default_factory=list)
    figure: Callable | None = None


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    source: str  # the paper and table reproduced
    variants: tuple[Variant, ...]
    dataset: str = "shapes-coco"
    val_dataset: str = ""
    profile: str = "quick"
    seeds: int = 3
    overrides: tuple[str, ...] = ()
    paper_numbers: dict = field(default_factory=dict)
    build_report: Callable | None = None
    # copy an identical evaluation recorded by another study instead of evaluating again (``run_variant``'s
    # ``reuse``); False where timings must come from this study's own session (speed tables)
    reuse_records: bool = True

    def configs(self, profile: str | None = None, seeds: int | None = None, extra: tuple[str, ...] = ()):
        """Yield (variant, seed, ExperimentConfig) in run order (seed-major, so partial studies are balanced)."""
        profile = profile or self.profile
        for seed in range(seeds if seeds is not None else self.seeds):
            for v in self.variants:
                cfg = make_config(v.method, profile, dataset=self.dataset,
                                  val_dataset=v.val_dataset or self.val_dataset or None, seed=seed,
                                  overrides=list(self.overrides) + list(v.overrides)
                                  + list(dict(v.profile_overrides).get(profile, ())) + list(extra))
                yield v, seed, cfg


def load_study(name: str) -> Study:
    """``experiments.<name>.STUDY``; ``<name>@<profile>`` is that study at another profile (``at_profile``).

    Raises KeyError listing the known studies."""
    if "@" in name:
        base, _, profile = name.partition("@")
        return at_profile(load_study(base), profile)
    mod_name = name.replace("-", "_")
    try:
        mod = importlib.import_module(f"experiments.{mod_name}")
    except ModuleNotFoundError as e:
        if e.name != f"experiments.{mod_name}":
            raise
        raise KeyError(f"unknown study {name!r}; known: {', '.join(known_studies())}") from None
    return mod.STUDY


def at_profile(study: Study, profile: str | None) -> Study:
    """``study`` run at ``profile``: when that is not the study's own profile, a study named ``<name>@<profile>``
    whose records and report live apart (``results/<name>@<profile>/``, ``reports/<name>@<profile>.md``), so that
    records of one profile never enter another profile's table (e.g. ``make ablation-table1 PROFILE=smoke``).

    Raises KeyError for an unknown profile."""
    from dataclasses import replace

    from harness.config import PROFILES
    if profile is None or profile == study.profile:
        return study
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    base = study.name.partition("@")[0]
    return replace(study, name=f"{base}@{profile}", profile=profile)


def known_studies() -> list[str]:
    import experiments
    return sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_"))


def shard_of(variant_index: int, seed: int, n: int) -> int:
    """The shard (of ``n``) that runs variant ``variant_index`` (among the selected variants) at ``seed``.

    ``(variant_index + seed) % n``: the variants rotate over the shards from seed to seed, so a slow variant
    (e.g. Mask R-CNN, ~4x a SOLOv2 run) does not land on the same shard at every seed, as it did with a plain
    round-robin over the seed-major job list whenever the number of variants is a multiple of ``n``.
    """
    return (variant_index + seed) % n


class StudyProgress:
    """``[study] run k / N: variant V, seed S; elapsed ..., ETA ...`` on stderr before each run of a study.

    The ETA is the mean duration of the runs that did work so far (a run already recorded takes under a
    second and is left out of the mean) times the runs left; "ETA unknown" until one run has done work.
    """

    def __init__(self, study: str, total: int, shard: tuple[int, int] = (0, 1), out=None) -> None:
        import time
        self.study, self.total, self.shard, self.k = study, total, shard, 0
        self.t0 = time.perf_counter()
        self.t_run = self.t0
        self.worked: list[float] = []
        self.out = out

    def _fmt(self, s: float) -> str:
        s = int(round(s))
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

    def line(self, variant: str, seed: int, now: float) -> str:
        left = self.total - self.k + 1
        eta = (f"ETA {self._fmt(sum(self.worked) / len(self.worked) * left)}" if self.worked else "ETA unknown")
        sh = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard[1] > 1 else ""
        return (f"[{self.study}{sh}] run {self.k} / {self.total}: variant {variant}, seed {seed}; "
                f"elapsed {self._fmt(now - self.t0)}, {eta}")

    def start(self, variant: str, seed: int) -> str:
        import sys
        import time
        self.k += 1
        self.t_run = time.perf_counter()
        msg = self.line(variant, seed, self.t_run)
        print(msg, file=self.out or sys.stderr, flush=True)
        return msg

    def done(self) -> None:
        import time
        d = time.perf_counter() - self.t_run
        if d >= 1.0:
            self.worked.append(d)


def join_variant_names(pieces: list[str] | None, names: list[str]) -> list[str] | None:
    """``--variants`` pieces (the text split at commas, each stripped) re-joined where a study's variant name itself
    holds a comma (e.g. "1500 it, steps 1000 / 1100 (...)"): consecutive pieces that together spell a name in
    ``names`` become that name; a piece that is part of no name stays as it is (the caller reports it unknown)."""
    if not pieces:
        return pieces
    out, i = [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):  # the longest run of pieces that is a name
            if j - i > 1 and any(sep.join(pieces[i:j]) in names for sep in (", ", ",")):
                out.append(next(sep.join(pieces[i:j]) for sep in (", ", ",") if sep.join(pieces[i:j]) in names))
                i = j
                break
        else:
            out.append(pieces[i])
            i += 1
    return out


def run_study(name: str, *, profile: str | None = None, seeds: int | None = None, progress: bool = True,
              only_report: bool = False, overrides: list[str] | None = None,
              shard: tuple[int, int] = (0, 1), variants: list[str] | None = None,
              only_seeds: list[int] | None = None) -> tuple[Path, Path] | None:
    """Run every (variant, seed) of study ``name`` not yet recorded, then write its report.

    ``variants``: run only these variants (names as in the study; the report still covers all of them).
    ``only_seeds``: run only these seeds (e.g. the ones missing where older records of the others stand under
    another run hash); the report still covers every seed.
    Raises KeyError naming an unknown variant and listing the study's variants.

    ``shard=(i, n)``: this process takes the runs ``shard_of`` gives to i, so n processes (e.g. one per core,
    each with ``--set train.threads=1``) share a study; records are appended under a file lock.
    Only shard 0 writes the report (after its own runs; run ``report`` again once all shards finish).
    """
    study = at_profile(load_study(name), profile)
    names = [v.name for v in study.variants]
    variants = join_variant_names(variants, names)
    unknown = [v for v in (variants or []) if v not in names]
    if unknown:
        raise KeyError(f"study {name!r} has no variant {unknown[0]!r}; its variants: {', '.join(names)}")
    if not only_report:
        jobs = [job for job in study.configs(profile, seeds, tuple(overrides or ()))
                if (not variants or job[0].name in variants) and (only_seeds is None or job[1] in only_seeds)]
        order = {n: j for j, n in enumerate(dict.fromkeys(job[0].name for job in jobs))}
        mine = [job for job in jobs if shard_of(order[job[0].name], job[1], shard[1]) == shard[0]]
        eta = StudyProgress(study.name, len(mine), shard)
        for v, seed, cfg in mine:
            eta.start(v.name, seed)
            run_one(study, v, cfg, profile, tuple(overrides or ()), progress)
            eta.done()
    if shard[0] != 0:
        return None
    return write_study_report(study)


def run_one(study: Study, v: Variant, cfg, profile: str | None, extra: tuple[str, ...], progress: bool,
            reuse: bool | None = None) -> list[dict]:
    """One job of a study: (variant, seed) trained if needed, evaluated and recorded (``run_variant``).

    Idempotent: a job whose records exist records nothing, so any launcher (``harness.launch``) may run it again.
    ``reuse``: None = the study's ``reuse_records``.
    """
    from harness.pipeline import run_variant
    cfg = resolve_references(study, cfg, profile, extra, progress)
    return run_variant(study.name, v.name, cfg, postprocess=list(v.postprocess) if v.postprocess else None,
                       do_time=v.time, progress=progress, protocol=v.protocol, panoptic=v.panoptic,
                       reuse=study.reuse_records if reuse is None else reuse)


def resolve_references(study: Study, cfg, profile, extra, progress: bool):
    """Replace ``method.semantic_checkpoint="@<variant>"`` by the final weights of that variant's run at the
    same seed, training it first if needed (CASNet's separated mode: a separately trained semantic model)."""
    from dataclasses import replace

    from harness.pipeline import ensure_trained
    ref = getattr(cfg.method, "semantic_checkpoint", "")
    if not ref or not ref.startswith("@"):
        return cfg
    target = ref[1:]
    for v, seed, rcfg in study.configs(profile, None, extra):
        if v.name == target and seed == cfg.seed:
            _, run_dir = ensure_trained(rcfg, progress=progress)
            return replace(cfg, method=replace(cfg.method, semantic_checkpoint=str(run_dir / "model_final.pth")))
    raise KeyError(f"study {study.name}: semantic_checkpoint refers to unknown variant {target!r}")


def is_stale_synthetic(rec: dict) -> bool:
    """Whether ``rec`` was evaluated (or trained) on a synthetic preset made by an older generator.

    Records before ``data.generator_version`` was written have none and count as stale.
    """
    from harness.data.synthetic import generator_version
    data = rec.get("data") or {}
    current = generator_version(data.get("dataset"), (rec.get("config") or {}).get("data.dataset"))
    return current is not None and data.get("generator_version") != current


def study_records(study_name: str) -> list[dict]:
    """The records of a study, the latest one per (variant, seed, post-processing, dataset, protocol, kind).

    A variant re-run under a changed config (e.g. a profile whose defaults changed) appends a new record; the
    reports use the newest and the file keeps the history.  Records on synthetic data made by an older
    dataset generator (``is_stale_synthetic``) are history only: they never enter a report.
    """
    from harness.records import read_records, records_path
    path = records_path(study_name)
    if not path.is_file():
        return []
    try:  # records of another profile than the study's never enter its report
        own_profile = load_study(study_name).profile
    except KeyError:  # a comparison (``compare --study``): no profile of its own
        own_profile = None
    latest: dict[tuple, dict] = {}
    for r in read_records(path):
        if is_stale_synthetic(r):
            continue
        if own_profile is not None and (r.get("config") or {}).get("profile", own_profile) != own_profile:
            continue
        key = (r["variant"], r["seed"], (r.get("config") or {}).get("method.postprocess"),
               (r.get("data") or {}).get("dataset"), (r.get("data") or {}).get("protocol"), r.get("kind"))
        latest.pop(key, None)
        latest[key] = r
    return list(latest.values())


def canonical_order(study: Study, records: list[dict]) -> list[dict]:
    """``records`` in the order a sequential run writes them: seed-major, then the study's variant order (a record's
    variant is "name" or "name[post-processing]"); records of one (seed, variant) keep their file order.

    Jobs run side by side (``harness.launch``) append in the order they finish; sorting here makes the report the
    same whatever the launcher.
    """
    index = {v.name: i for i, v in enumerate(study.variants)}
    return sorted(records, key=lambda r: (r["seed"], index.get(r["variant"].split("[")[0], len(index))))


SCHEDULE_KEYS = ("train.max_iter", "train.batch_size", "train.base_lr", "train.warmup_iters", "train.warmup_factor",
                 "train.steps", "data.image_size", "data.train_images", "data.train_short_sides")


def schedule_of(rec: dict, skip: set[str] | frozenset = frozenset()) -> tuple[tuple[str, str], ...]:
    """The training schedule a record's run was trained with: ``(key, value as str)`` over ``SCHEDULE_KEYS``
    minus ``skip``."""
    c = rec.get("config") or {}
    return tuple((k, str(c.get(k))) for k in SCHEDULE_KEYS if k not in skip)


def mixed_schedule_note(study: Study, records: list[dict]) -> list[str]:
    """A warning when the rows of a study rest on runs trained with different schedules.

    Keys a variant sets itself (its ``overrides`` and its ``profile_overrides`` at the study's profile, e.g. the
    equal-FLOPs Mask R-CNN's cut schedule) are left out: those differ by design.  A mix arises when a
    profile's defaults change (e.g. the quick profile's warm-up, 100 -> 300 iterations on 2026-12-01) and only
    part of a study has been run again: each (variant, seed) shows its newest record, so old and new coexist.
    """
    from collections import Counter
    own = {v.name: {o.split("=", 1)[0] for o in v.overrides + study.overrides
                     + tuple(dict(v.profile_overrides).get(study.profile, ()))} for v in study.variants}
    counts: dict[str, Counter] = {k: Counter() for k in SCHEDULE_KEYS}
    for r in records:  # a record's variant is "name" or "name[post-processing]"
        for k, val in schedule_of(r, own.get(r["variant"].split("[")[0], set())):
            counts[k][val] += 1
    mixed = {k: v for k, v in counts.items() if len(v) > 1}
    if not mixed:
        return []
    parts = [" / ".join(f"{k}={val}: {n} records" for val, n in v.items()) for k, v in mixed.items()]
    return [f"Mixed schedules: these rows combine runs trained with different settings ({'; '.join(parts)}), "
            f"e.g. records made before a profile default changed; `python -m harness study {study.name}` trains "
            "and evaluates the missing runs of the current settings."]


# what a profile fixes for a run besides its schedule: the object-size hyper-parameters it scales (SCALE_RULES)
PROFILE_KEYS = SCHEDULE_KEYS + ("method.scale_ranges", "method.num_grids", "method.anchor_sizes",
                                "method.sizes_of_interest")


def record_profile_drift(study: Study, records: list[dict]) -> list[tuple]:
    """Per record, the ``(key, recorded, current)`` settings (JSON text) in which it differs from the config its
    variant gets today at the study's profile (``study.configs``: the profile's current defaults, the study's and
    the variant's overrides), over ``PROFILE_KEYS``; ``()`` where it does not differ or cannot be compared (another
    profile, a variant the study no longer has, a method no longer known).

    They differ when a profile's defaults changed after the record was made (e.g. the quick profile's canvas,
    128 -> 192 px and back on 2026-12-04, or its schedule, 1200 -> 1500 iterations on 2026-12-02).
    """
    import json

    from harness.config import to_flat
    try:
        current = {v.name: json.loads(json.dumps(to_flat(cfg), default=list))
                   for v, _seed, cfg in study.configs(seeds=1)}
    except (KeyError, ValueError):  # a method or dataset no longer known: nothing to compare with
        return [()] * len(records)
    out = []
    for r in records:
        # "name", "name[post-processing]" or a reading's "name [@ dataset] [field=value]" (its PROFILE_KEYS are the
        # name's)
        c, cur = r.get("config") or {}, current.get(r["variant"].split("[")[0].split(" @ ")[0].strip())
        if cur is None or c.get("profile") != study.profile:
            out.append(())
            continue
        diffs = [(k, json.dumps(c[k]), json.dumps(cur[k])) for k in PROFILE_KEYS
                 if k in c and k in cur and c[k] != cur[k]]
        if mask_resize_mode(c) != mask_resize_mode(cur):
            diffs.append(("data.mask_resize", json.dumps(mask_resize_mode(c)), json.dumps(mask_resize_mode(cur))))
        out.append(tuple(diffs))
    return out


def mask_resize_mode(c: dict) -> str | None:
    """How a flat config's training resized its masks: ``data.mask_resize``, or the legacy "nearest" for records
    made before the field (2026-12-04); None where no image is resized (the mode decides nothing, so two such
    configs never differ in it)."""
    return None if _identity_resize(c) else c.get("data.mask_resize", "nearest")


def current_profile_records(study: Study, records: list[dict]) -> tuple[list[dict], list[str]]:
    """The records a report may show, and its "Earlier profile" warning.

    A report never mixes two definitions of one profile: once any record of the current definition exists, the
    records of an earlier one are left out (they stay in ``runs.jsonl`` as history) and the warning counts them; a
    study not yet run again keeps its records, and the warning names the settings they were trained at.
    """
    from collections import Counter
    drift = record_profile_drift(study, records)
    old = [d for d in drift if d]
    if not old:
        return records, []
    rerun = f"`python -m harness study {study.name.partition('@')[0]}` (or the report's own command)"
    if len(old) < len(records):
        kept = [r for r, d in zip(records, drift) if not d]
        plural = "s" if len(old) != 1 else ""
        return kept, [f"Earlier profile: {len(old)} record{plural} made before the {study.profile} profile's defaults "
                      f"changed are left out (history in runs.jsonl), so that the rows are of one profile; {rerun} "
                      "trains the runs still missing at the current one."]
    diffs: Counter = Counter(x for d in old for x in d)
    parts = [f"{k} was {was}, now {now} ({n} record{'s' if n != 1 else ''})"
             for (k, was, now), n in diffs.most_common(6)]
    return records, [f"Earlier profile: {len(old)} of the {len(records)} records were made before the "
                     f"{study.profile} profile's defaults changed: {'; '.join(parts)}"
                     f"{' ...' if len(diffs) > 6 else ''}. Their numbers are those runs' at the settings recorded; "
                     f"{rerun} trains the current profile's runs, which replace them."]


# config keys that never decide a run's weights (or that differ by design within a variant)
_NOT_TRAINING = ("seed", "profile", "train.device", "train.threads", "data.num_workers", "data.val_dataset",
                 "data.val_images", "data.test_short_side", "data.ram_cache_mb", "method.num_classes")


# (field prefix, the toggle without which those fields decide nothing): SOLOv2's improved-SOLOv2 components
_TOGGLED_FIELDS = (("method.cspam_", "method.use_cspam"), ("method.aml_", "method.use_aml"))


def _identity_resize(c: dict) -> bool:
    """Whether a record's training never resized an image (``harness.config.resize_is_identity`` on its flat
    config): then its ``data.mask_resize``, or the lack of one in records made before the field, decides nothing."""
    from harness.config import resize_is_identity
    return resize_is_identity(c.get("data.dataset"), c.get("data.image_size"), c.get("data.train_short_sides"),
                              c.get("data.max_size"))


def mixed_config_note(records: list[dict]) -> list[str]:
    """A warning when one row of a study rests on runs of different training configs (beyond the seed).

    E.g. a method default that changed (CSPAM's reading, 2026-12-02) while only some seeds were run again: each
    (variant, seed) shows its newest record, so the row would silently average two builds.  Inference-only
    fields (``INFERENCE_ONLY``: post-processing, thresholds) are left out.
    """
    import methods
    configs: dict[str, list[dict]] = {}  # variant -> the training fields of each of its records
    for r in records:
        c = r.get("config") or {}
        mcls = methods.METHODS.get(c.get("method.name"))
        inf = {f"method.{f}" for f in (mcls.Config.INFERENCE_ONLY if mcls is not None else ())}
        train = {k: json.dumps(v, sort_keys=True, default=str) for k, v in c.items()
                 if k.split(".")[0] in ("method", "data", "train") and k not in _NOT_TRAINING and k not in inf}
        # absent in records made before the field: the legacy mode; nothing where no image is resized
        train["data.mask_resize"] = json.dumps(mask_resize_mode(c) or "(no resize)")
        for prefix, toggle in _TOGGLED_FIELDS:  # a component's fields decide nothing while it is off
            if c.get(toggle) is False:
                train = {k: v for k, v in train.items() if not k.startswith(prefix)}
        configs.setdefault(r["variant"].split("[")[0], []).append(train)
    by_variant: dict[str, dict[str, set]] = {}
    for variant, cs in configs.items():
        union = set().union(*cs)
        # a key some records lack (written by newer code only) counts as a difference
        by_variant[variant] = {k: {c.get(k, "(absent)") for c in cs} for k in union}
    out = []
    for variant, keys in by_variant.items():
        diff = sorted(k for k, vals in keys.items() if len(vals) > 1 and k not in SCHEDULE_KEYS)
        if diff:
            out.append(f"Mixed configs: row '{variant}' combines runs that differ in {', '.join(diff[:6])}"
                       f"{' ...' if len(diff) > 6 else ''} (records made before a default changed); its numbers "
                       "average two builds until every seed is run again.")
    return out


def write_study_report(study: Study) -> tuple[Path, Path]:
    from harness.records import records_path
    from harness.report import write_report
    records, drift_note = current_profile_records(study, canonical_order(study, study_records(study.name)))
    if not records:
        raise FileNotFoundError(f"study {study.name!r} has no records ({records_path(study.name)}); run it first")
    spec = (study.build_report or default_report)(study, records)
    expected = sum(len(v.postprocess or (None,)) for v in study.variants) * study.seeds
    status = [] if len(records) >= expected else [
        f"Incomplete: {len(records)} of the {expected} evaluations of this study ({study.seeds} seeds) are recorded; "
        f"`python -m harness study {study.name}` runs the missing ones (finished runs and records are reused)."]
    status += drift_note + mixed_schedule_note(study, records) + mixed_config_note(records)
    from harness.figures import report_figures
    extra, fig_notes = report_figures(records)
    notes = ([f"Reproduces: {study.source}; {len(records)} records."] + spec.notes + training_notes(records)
             + scale_notes(records) + compute_notes(records) + launch_notes(study) + [HEALTH_NOTE] + fig_notes)
    tables = list(spec.tables) + [("Run health", run_health_table(records))]
    return write_report(study.name, tables, notes, spec.figure, title=study.title,
                        sources=[records_path(study.name)], command=f"python -m harness report {study.name}",
                        warnings=status, figures=extra)  # "Incomplete" / "Mixed ..." warnings at the top


# ---------------------------------------------------------------------------------------------
# tables from records
def records_frame(records: list[dict], metrics=COMPARE_METRICS) -> pd.DataFrame:
    """One row per record: variant, method, seed, metrics, ms/img, FPS, params, GFLOPs."""
    rows = []
    for r in records:
        row = {"variant": r["variant"], "method": r["method"], "seed": r["seed"], "run_id": r.get("run_id"),
               "weights_id": (r.get("train") or {}).get("weights_id")}
        for m in metrics:
            row[m] = (r.get("metrics") or {}).get(m)
        t = r.get("timing") or {}
        row["ms/img"] = t.get("ms_per_img")
        row["FPS"] = t.get("fps")
        row["params (M)"] = r["params"] / 1e6 if r.get("params") is not None else None
        row["GFLOPs"] = r["flops"] / 1e9 if r.get("flops") else None
        row["health"] = record_health(r)
        rows.append(row)
    return pd.DataFrame(rows)


def record_ceiling(rec: dict) -> float | None:
    """The representation ceiling of a record's run on its val data: ``train.diagnostics.ceiling`` when it is the
    representation's (``ceiling_kind``), else the matching record of ``results/ceiling/`` (soft stride-4 / RoI), else
    None.  (Records of the first runs of 2026-12-02 carry the binary-target ceiling instead.)"""
    diag = (rec.get("train") or {}).get("diagnostics") or {}
    if diag.get("ceiling_kind") == "representation":
        return diag.get("ceiling")
    return _ceiling_lookup().get(_ceiling_key(rec))


def _ceiling_key(rec: dict) -> tuple:
    from harness.ceiling import representation_of
    c = rec.get("config") or {}
    try:
        rep = representation_of(rec["method"])
    except KeyError:
        return ()
    rep = "stride4_soft" if rep == "stride4" else rep
    if rep == "roi28_aligned" and c.get("method.roi_convention", "torchvision") == "torchvision":
        rep = "roi28"  # Mask R-CNN trained before 2026-12-04 (no field) or with torchvision's RoI coordinates
    return (rep, (rec.get("data") or {}).get("dataset"), c.get("data.test_short_side"), c.get("profile"))


_CEILINGS: dict[tuple, dict] = {}


def _ceiling_lookup() -> dict:
    """(representation, val dataset, short side, profile) -> ceiling AP, from ``results/ceiling/runs.jsonl``
    (read once per file version)."""
    from harness.records import read_records, records_path
    path = records_path("ceiling")
    if not path.is_file():
        return {}
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _CEILINGS:
        table = {}
        for r in read_records(path):
            c = r["config"]
            table[(c["method.representation"], r["data"]["dataset"], c["data.test_short_side"], c["profile"])] = (
                r["metrics"]["AP"])
        _CEILINGS[key] = table
    return _CEILINGS[key]


def semantic_only(rec: dict) -> bool:
    """Whether a record's run trains no instance output (its method Config's ``trains_no_instances``: CASNet's
    "semantic model", beta = gamma = 0).  Its positives and mask AP judge nothing (its AP is 0 by design)."""
    import methods
    c = rec.get("config") or {}
    m = methods.METHODS.get(c.get("method.name"))
    return m is not None and m.Config.trains_no_instances(c)


def record_health(rec: dict) -> tuple[str, ...]:
    """The run-health reasons (``harness.health.health_reasons``) of one record; () when healthy or unknown, and for
    a semantic-only run (``semantic_only``), which the instance rules do not apply to."""
    from harness.health import health_reasons
    if semantic_only(rec):
        return ()
    diag = (rec.get("train") or {}).get("diagnostics")
    if diag:
        diag = dict(diag, ceiling=record_ceiling(rec))
    return tuple(health_reasons(diag, (rec.get("metrics") or {}).get("AP")))


def health_failures(df: pd.DataFrame, variants) -> list[str]:
    """"variant: reason" for every record of ``variants`` in ``df`` (a ``records_frame``) that fails run health."""
    out = []
    if "health" not in df.columns:
        return out
    for v in variants:
        for _, row in df[df["variant"] == v].iterrows():
            for reason in row["health"] or ():
                item = f"{v} seed {row['seed']}: {reason}"
                if item not in out:
                    out.append(item)
    return out


def health_verdict(df: pd.DataFrame, variants) -> str | None:
    """"inconclusive: run health (...)" when a run of ``variants`` fails the health rule, else None."""
    fails = health_failures(df, variants)
    if not fails:
        return None
    return f"inconclusive: run health ({'; '.join(fails[:2])}{' ...' if len(fails) > 2 else ''})"


def _fmt_opt(x, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else format(x, spec)


def _health_text(recs: list[dict], diags: list[dict], recorded: list[dict], reasons: list[str]) -> str:
    """The "health" cell of a run-health row: the failed rules, "ok", or why there is nothing to judge."""
    if reasons:
        return "; ".join(reasons)
    if recs and all(semantic_only(r) for r in recs):
        return "n/a: semantic model (beta = gamma = 0, no instance head trained)"
    if recorded:
        return "ok"
    if recs and all(not (r.get("train") or {}).get("run_dir") for r in recs):
        return "no training (nothing to check)"  # e.g. the oracle
    if recs and not diags or any(not d.get("recorded", True) for d in diags):
        return "not recorded (trained before 2026-12-02)"
    return "–"


def run_health_table(records: list[dict]) -> pd.DataFrame:
    """The "Run health" table of a report: per row (variant), over its records' trained runs (means over seeds):
    positives per GT, zero-positive fraction, final loss and its slope, subset AP at 50 / 75 / 100 % of the
    schedule, the representation's ceiling on the val data, the AP, and the health verdict."""
    import numpy as np
    rows = []
    by_variant: dict[str, list[dict]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], []).append(r)
    for v, recs in by_variant.items():
        diags = [(r.get("train") or {}).get("diagnostics") for r in recs]
        diags = [d for d in diags if d]
        rec = [d for d in diags if d.get("recorded", True)]

        def mean(key, sub=None, _rec=rec):
            vals = [(d.get(key) or {}).get(sub) if sub else d.get(key) for d in _rec]
            vals = [float(x) for x in vals if x is not None]
            return float(np.mean(vals)) if vals else None
        ceil = [record_ceiling(r) for r in recs if (r.get("train") or {}).get("diagnostics")]
        ceil = [c for c in ceil if c is not None]
        reasons = sorted({x for r in recs for x in record_health(r)})
        aps = [(r.get("metrics") or {}).get("AP") for r in recs]
        aps = [a for a in aps if a is not None]
        zp = mean("zero_positive_frac")
        walls = [(r.get("train") or {}).get("wall_s") for r in recs]
        walls = [w for w in walls if w]
        rows.append({
            "variant": v, "runs": len(recs),
            "positives / GT": _fmt_opt(mean("positives_per_gt"), ".1f"),
            "zero-positive %": _fmt_opt(None if zp is None else 100 * zp, ".1f"),
            "final loss": _fmt_opt(mean("final_loss"), ".3f"),
            "loss slope / 1k it": _fmt_opt(mean("loss_slope_per_1k"), "+.3f"),
            "AP@50 %": _fmt_opt(mean("ap_points", "0.5"), ".1f"),
            "AP@75 %": _fmt_opt(mean("ap_points", "0.75"), ".1f"),
            "AP@100 %": _fmt_opt(mean("ap_points", "1"), ".1f"),
            "ceiling AP": _fmt_opt(float(np.mean(ceil)) if ceil else None, ".1f"),
            "AP": _fmt_opt(float(np.mean(aps)) if aps else None, ".1f"),
            "train GFLOPs / it": _fmt_opt(mean("train_gflops_per_iter"), ".2f"),
            "train TFLOPs": _fmt_opt(None if mean("train_pflops") is None else 1000 * mean("train_pflops"), ".1f"),
            "train wall": f"{float(np.mean(walls)) / 60:.1f} min" if walls else "–",
            "health": _health_text(recs, diags, rec, reasons),
        })
    return pd.DataFrame(rows)


HEALTH_NOTE = ("Run health (harness/health.py): positives per GT from the method's own assigner over every training "
               "iteration, the final 20 % of the loss curve, mask AP on the first `train.health_eval_images` val "
               "images "
               "at 50 / 75 / 100 % of the schedule, and the ceiling (the ground truth through the method's mask "
               "representation, `python -m harness ceiling`). A claim whose rows fail (zero-positive > 5 %, AP still "
               "rising > 2 from 75 % to 100 %, AP within 10 % of the ceiling, or subset AP below 1 at every point: "
               "learned nothing) reads 'inconclusive: run health'. "
               "The subset AP is on fewer images than the table's AP, so it is noisier. Training cost: FLOPs of one "
               "iteration (forward + backward, `harness/cost.py`, convolutions and matmuls only: RoIAlign, matching "
               "and NMS are not counted, which is why Mask R-CNN's wall time is ~5x a single-stage run's at about "
               "the same FLOPs) x iterations, and each run's measured training wall time.")


def summary_table(df: pd.DataFrame, columns: list[str], order: list[str] | None = None) -> pd.DataFrame:
    """Mean ± 95 % CI over seeds per variant, formatted as strings (n shown)."""
    from harness.report import fmt_mean_ci
    from harness.stats import mean_ci
    out = []
    variants = order or list(dict.fromkeys(df["variant"]))
    for v in variants:
        sub = df[df["variant"] == v]
        if sub.empty:
            continue
        row = {"variant": v, "n": len(sub)}
        for c in columns:
            vals = [x for x in sub[c].tolist() if x is not None and x == x]
            if not vals:
                row[c] = "n/m"
                continue
            mean, hw = mean_ci(vals)
            row[c] = fmt_mean_ci(mean, hw)
        out.append(row)
    return pd.DataFrame(out)


_SIZE_KEYS = {"solov2": ("method.scale_ranges", "method.num_grids"), "condinst": ("method.sizes_of_interest",),
              "maskrcnn": ("method.anchor_sizes",)}


def scale_notes(records: list[dict]) -> list[str]:
    """The object-size rule of each method shown (``harness.config.SCALE_RULES``) and the values its records were
    trained with (so a report of records made under an older rule says so)."""
    from harness.config import scale_rules_note
    methods_seen = list(dict.fromkeys(r["method"] for r in records))
    rule = scale_rules_note(methods_seen)
    if not rule:
        return []
    used = []
    for m in methods_seen:
        for k in _SIZE_KEYS.get(m, ()):
            vals = sorted({json.dumps((r.get("config") or {}).get(k)) for r in records if r["method"] == m})
            used.append(f"`{m}` {k.split('.')[1]} {' / '.join(vals)}")
    return [rule + (" Values in these records: " + "; ".join(used) + "." if used else "")]


def training_notes(records: list[dict]) -> list[str]:
    """How the runs were trained, stated plainly (profile, data, iterations, wall time, from scratch)."""
    seen = {}
    for r in records:
        c = r.get("config", {})
        # the schedule is part of the key: a study whose records mix schedules (e.g. records from before the quick
        # profile's warm-up changed) shows one note per schedule instead of hiding the mix
        key = (r["method"], c.get("profile"), c.get("data.dataset"), schedule_of(r))
        tr = r.get("train") or {}
        if key in seen or tr.get("iterations") is None:
            continue
        seen[key] = (f"`{r['method']}`: profile {c.get('profile')}, trained on `{c.get('data.dataset')}` for "
                     f"{tr.get('iterations')} iterations x batch {c.get('train.batch_size')} "
                     f"(lr {c.get('train.base_lr')}, warm-up {c.get('train.warmup_iters')} it) from "
                     f"{'scratch' if not c.get('method.pretrained') else c.get('method.pretrained')} "
                     f"(backbone {c.get('method.backbone')}), images resized to short side "
                     f"{c.get('data.train_short_sides')} (test {c.get('data.test_short_side')}), "
                     f"{tr.get('wall_s', 0) / 60:.1f} min on "
                     f"{_device_of(r)}.")
    legacy = sorted({r["method"] for r in records if (r.get("train") or {}).get("iterations")  # trained runs only
                     and mask_resize_mode(r.get("config") or {}) == "nearest"})
    if legacy:  # trained before 2026-12-04's aligned mask resize
        seen["legacy-resize"] = (
            f"Mask resize: the runs of {', '.join(f'`{m}`' for m in legacy)} resized their training masks with "
            "torch's legacy nearest (torchvision's Mask default until 2026-12-04, `data.mask_resize` absent or "
            "'nearest'), which shifts a mask by about (scale - 1) / 2 px against the bilinearly resized image; "
            "the harness now resizes with 'nearest-exact' (reports/validity.md gives both ceilings). Training "
            "them again (new run hashes) would use it.")
    return list(seen.values())


def compute_notes(records: list[dict]) -> list[str]:
    """The compute behind a report, summed from its records: training (each distinct trained run once, by
    its own clock, including runs another study trained first) and evaluation + timing."""
    trains = {}
    for r in records:
        tr = r.get("train") or {}
        if tr.get("train_hash") and tr.get("wall_s") is not None:
            trains[(tr["train_hash"], r["seed"])] = float(tr["wall_s"])
    evals = [float(r["eval_wall_s"]) for r in records if r.get("eval_wall_s") is not None]
    if not trains and not evals:
        return []
    text = (f"Compute: {len(trains)} trained runs, {sum(trains.values()) / 60:.1f} min of training summed over "
            "runs (each run's own clock; processes side by side overlap, so this is not the wall time)")
    if evals:
        text += f"; {sum(evals) / 60:.1f} min of evaluation + timing over {len(evals)} of the {len(records)} records"
    return [text + "."]


def launch_notes(study: Study, root: str | Path = "results") -> list[str]:
    """The study's wall time: the latest launch in ``<root>/<study>/launches.jsonl`` (``harness.launch.
    record_launch``) that ran every job of the study at its seeds, trained every one of its runs and lost none.
    Launches that reused finished runs or ran part of the study measure less than the study and are not shown."""
    from harness.launch import LAUNCHES_FILE
    from harness.records import read_records
    path = Path(root) / study.name / LAUNCHES_FILE
    if not path.is_file():
        return []
    jobs = len(study.variants) * study.seeds
    full = [r for r in read_records(path, validate=False)  # a torn last line is skipped with a warning
            if r.get("jobs") == jobs and not r.get("failed") and r.get("runs")
            and r.get("runs_trained") == r.get("runs")]
    if not full:
        return []
    r = max(full, key=lambda x: x.get("started_utc", ""))
    threads = r.get("threads_per_job") or "torch's default"
    return [f"Wall time of the whole study (`{path}`, the latest launch that trained every run): "
            f"{r['wall_s'] / 60:.1f} min for {r['jobs']} jobs ({r['runs']} runs trained) on {r['processes']} "
            f"processes x {threads} thread(s), started {r.get('started_utc', '?')} on {r.get('cpu_model') or '?'} "
            f"({r.get('cpu_count', '?')} cores, load average {r.get('load_avg_1m_at_start', '?')} at the start), "
            f"commit {str(r.get('git_sha', '?'))[:7]}{' (uncommitted changes)' if r.get('git_dirty') else ''}; "
            "`python -m harness study NAME --jobs N` (the `make` targets with `JOBS=N`) appends such a line."]


def _device_of(r: dict) -> str:
    t = (r.get("timing") or {}).get("protocol") or {}
    if t.get("device_name"):
        return t["device_name"]
    env = r.get("env") or {}
    if env.get("device_type") == "cpu" and env.get("cpu_model"):  # records since 2026-12-04
        return f"{env['cpu_model']} ({env.get('cpu_count', '?')} cores)"
    return f"{env.get('device_type', '?')} ({env.get('cpu_count', '?')} cores)"


def timing_note(records: list[dict]) -> list[str]:
    for r in records:
        t = r.get("timing")
        if t and t.get("protocol"):
            p = t["protocol"]
            return [f"Timing: protocol v{p['version']}, batch 1, {p['warmup_iters']} warm-up images discarded, "
                    f"{p['num_images']} timed, {p['precision']}, on {p['device_name']} ({p['threads']} threads), "
                    f"torch {p['torch']}; data loading excluded; ms/img is the median of pre-processing + "
                    "forward + post-processing (see docs/timing.md)."
                    + (f" Machine load (1-min average) when timing started: {p['load_avg_1m']:.1f} on "
                       f"{(r.get('env') or {}).get('cpu_count', '?')} cores"
                       " (it includes the same process's training or evaluation just before, so "
                       "a value near the thread count alone does not mean other work); CPU timings taken beside other "
                       "work are inflated."
                       if p.get("load_avg_1m") is not None else "")]
    return []


def default_report(study: Study, records: list[dict]) -> ReportSpec:
    df = records_frame(records)
    cols = list(COMPARE_METRICS) + ["ms/img", "FPS", "params (M)", "GFLOPs"]
    table = summary_table(df, cols)
    notes = timing_note(records)
    if (df["n" if "n" in df else "seed"].nunique() if not df.empty else 0) < 2:
        notes.append("One seed per row: no confidence interval.")

    def figure(fig):
        from harness.report import ci_label, fit_title, label_bars
        from harness.stats import mean_ci
        ax = fig.add_subplot(1, 1, 1)
        names = list(dict.fromkeys(df["variant"]))
        means, errs, ns = [], [], []
        for v in names:
            vals = [x for x in df[df["variant"] == v]["AP"].tolist() if x is not None]
            m, hw = mean_ci(vals)
            means.append(m)
            errs.append(0.0 if hw is None or hw != hw else hw)
            ns.append(len(vals))
        bars = ax.barh(names, means, xerr=errs, color="#4C72B0", capsize=3)
        label_bars(ax, bars)
        ax.set_xlabel(ci_label(ns))
        ax.invert_yaxis()
        fit_title(ax, study.title)
        fig.tight_layout()
    return ReportSpec(tables=[("Results", table)], notes=notes, figure=figure)


def _compare_study(study: str, spec: dict) -> Study:
    variants = tuple(Variant(name=n, method=n, postprocess=tuple(spec["postprocess"]) if spec["postprocess"] else None,
                             time=spec["do_time"], protocol=spec["protocol"]) for n in spec["methods"])
    return Study(name=study, title=f"Comparison: {', '.join(spec['methods'])} on {spec['dataset']}",
                 source="user comparison", variants=variants, dataset=spec["dataset"],
                 val_dataset=spec["val_dataset"] or "", profile=spec["profile"], seeds=spec["seeds"],
                 overrides=tuple(spec["overrides"]))


def run_compare(names: list[str], *, study: str = "compare", profile: str = "quick", dataset: str | None = None,
                val_dataset: str | None = None, seeds: int = 1, overrides: list[str] | None = None,
                postprocess: list[str] | None = None, do_time: bool = True, progress: bool = True,
                protocol: str = "coco", runner: Callable | None = None) -> str:
    """``python -m harness compare``: run each method x seed, then write reports/<study>.md + .png.

    The invocation is saved as ``results/<study>/compare.json`` so that ``python -m harness report`` can
    regenerate the report from the records alone.  ``runner(study, spec)``: runs the jobs instead of this
    process (``harness.launch``).
    """
    from harness.pipeline import run_variant
    spec = {"methods": list(names), "dataset": dataset or make_config(names[0], profile).data.dataset,
            "val_dataset": val_dataset, "profile": profile, "seeds": seeds, "overrides": list(overrides or ()),
            "postprocess": list(postprocess) if postprocess else None, "do_time": do_time, "protocol": protocol}
    st = _compare_study(study, spec)
    if runner is not None:
        runner(st, spec)
    for v, _seed, cfg in st.configs() if runner is None else ():
        run_variant(st.name, v.name, cfg, postprocess=list(v.postprocess) if v.postprocess else None,
                    do_time=v.time, progress=progress, protocol=v.protocol)
    write_compare_spec(study, spec)
    md, _ = write_compare_report(study, spec)
    return Path(md).read_text()


def write_compare_spec(study: str, spec: dict) -> None:
    """Save a comparison's invocation (with its val dataset's name) as ``results/<study>/compare.json``."""
    import json

    from harness.pipeline import build_split
    from harness.records import records_path
    from harness.runs import atomic_write_text
    st = _compare_study(study, spec)
    spec["val_name"] = build_split(next(iter(st.configs(seeds=1)))[2], "val").name
    atomic_write_text(records_path(study).parent / "compare.json", json.dumps(spec, indent=2, sort_keys=True) + "\n")


def write_compare_report(study: str, spec: dict) -> tuple[Path, Path | None]:
    """The report of a ``compare`` invocation (its variants only), from the records."""
    from harness.records import records_path
    from harness.report import write_report
    st = _compare_study(study, spec)
    keep = {v.name for v in st.variants}
    records, drift_note = current_profile_records(st, canonical_order(st, [
        r for r in study_records(study) if r["variant"].split("[")[0] in keep
        and r.get("data", {}).get("dataset") == spec["val_name"]]))
    rspec = default_report(st, records)
    from harness.figures import ap_curve_table, convergence_notes, report_figures
    extra, fig_notes = report_figures(records)
    fig_notes = convergence_notes(records) + fig_notes
    curve = ap_curve_table(records)
    tables = list(rspec.tables) + ([("Mask AP on val at the weight snapshots (AP-vs-iteration)", curve)]
                                   if curve is not None else []) + [("Run health", run_health_table(records))]
    notes = rspec.notes + training_notes(records) + scale_notes(records) + [HEALTH_NOTE] + fig_notes
    if spec["profile"] == "real":
        from harness.profile_real import rule_note
        notes.append(rule_note())
    cmd = (f"python -m harness compare --methods {','.join(spec['methods'])} --dataset {spec['dataset']} "
           f"--profile {spec['profile']} --study {study}"
           + (f" --val-dataset {spec['val_dataset']}" if spec["val_dataset"] else "")
           + (f" --seeds {spec['seeds']}" if spec["seeds"] != 1 else "")
           + (f" --postprocess {','.join(spec['postprocess'])}" if spec["postprocess"] else "")
           + (f" --protocol {spec['protocol']}" if spec["protocol"] != "coco" else "")
           + "".join(f" --set {shlex.quote(o)}" for o in spec["overrides"]))
    return write_report(study, tables, notes, rspec.figure, title=st.title, sources=[records_path(study)],
                        command=cmd, figures=extra, warnings=drift_note)


def regenerate_reports(names: list[str] | None = None) -> list[Path]:
    """Regenerate the reports of ``names`` (default: every study and every saved comparison with records)."""
    import json

    from harness.records import records_path
    studies = set(known_studies())
    root = records_path("x").parent.parent
    compares = {p.parent.name for p in root.glob("*/compare.json")}
    readings = {p.parent.name for p in root.glob("*_readings/runs.jsonl") if p.parent.name[:-9] in studies}
    out: list[Path] = []
    special = {"validity"} if (root / "validity" / "runs.jsonl").is_file() else set()
    for n in names or sorted(studies | compares | readings | special):
        if n == "validity":
            from harness.validity import write_validity_report
            out.extend(p for p in write_validity_report() if p)
            continue
        if n in studies or (n.partition("@")[0] in studies and n.partition("@")[2]):
            study = load_study(n)
            if study_records(study.name):
                out.extend(p for p in write_study_report(study) if p)
        elif n in compares:
            spec_path = root / n / "compare.json"
            try:
                spec = json.loads(spec_path.read_text())
                ok = isinstance(spec, dict) and int(spec.get("seeds", 0)) >= 1 and bool(spec.get("methods"))
            except (ValueError, TypeError):
                ok = False
            if not ok or not study_records(n):  # e.g. left by `compare --seeds 0` before it was refused
                import warnings
                warnings.warn(f"{spec_path}: no records or an invalid comparison spec; its report is skipped",
                              stacklevel=2)
                continue
            out.extend(p for p in write_compare_report(n, spec) if p)
        elif n.endswith("_readings") and n[: -len("_readings")] in studies:
            from harness.readings import run_readings
            out.extend(p for p in run_readings(n[: -len("_readings")], only_report=True, progress=False) or () if p)
        else:
            raise KeyError(f"no study or saved comparison named {n!r}; known: {', '.join(sorted(studies | compares))}")
    return out


# ---------------------------------------------------------------------------------------------
# paper-vs-ours helpers shared by the study modules in experiments/
def metric_values(df: pd.DataFrame, variant: str, metric: str) -> list[float]:
    sub = df[df["variant"] == variant]
    return [float(x) for x in sub[metric].tolist() if x is not None and x == x]


def diff_stats(a: list[float], b: list[float]) -> tuple[float, float | None, float | None]:
    """mean(a) - mean(b) with a Welch 95 % CI half-width and p-value (None when either has < 2 values)."""
    from harness.stats import welch
    if not a or not b:
        return float("nan"), None, None
    if len(a) < 2 or len(b) < 2:
        return sum(a) / len(a) - sum(b) / len(b), None, None
    w = welch(a, b)
    return w.diff, (w.ci_high - w.ci_low) / 2.0, w.p


def same_weights_by_seed(df: pd.DataFrame, a: str, b: str) -> bool:
    """Whether variants ``a`` and ``b`` are, seed for seed, evaluations of the same trained weights (same run and,
    where recorded, the same ``weights_id``), with the same >= 2 seeds: then their difference is tested paired."""
    if "run_id" not in df.columns:
        return False
    sa = df[df["variant"] == a].set_index("seed")
    sb = df[df["variant"] == b].set_index("seed")
    if len(sa) < 2 or sa.index.has_duplicates or sb.index.has_duplicates or set(sa.index) != set(sb.index):
        return False
    for seed in sa.index:
        ra, rb = sa.loc[seed], sb.loc[seed]
        if ra["run_id"] is None or ra["run_id"] != rb["run_id"]:
            return False
        wa, wb = ra.get("weights_id"), rb.get("weights_id")
        if wa is not None and wb is not None and wa != wb:
            return False
    return True


def variant_diff(df: pd.DataFrame, a: str, b: str, metric: str) -> tuple[float, float | None, float | None, bool]:
    """mean(a) − mean(b) on ``metric`` with a 95 % CI half-width and p: paired by seed (``harness.stats.paired``)
    when the two variants evaluate the same trained weights per seed (``same_weights_by_seed``), Welch otherwise.
    Returns (difference, half-width, p, paired)."""
    from harness.stats import paired
    if same_weights_by_seed(df, a, b):
        both = pd.concat({"a": df[df["variant"] == a].set_index("seed")[metric],
                          "b": df[df["variant"] == b].set_index("seed")[metric]}, axis=1).astype(float).dropna()
        if len(both) >= 2:
            r = paired(both["a"].to_numpy(), both["b"].to_numpy())
            hw = (r.ci_high - r.ci_low) / 2.0
            return r.diff, hw, (r.p if r.p == r.p else None), True
    d, hw, p = diff_stats(metric_values(df, a, metric), metric_values(df, b, metric))
    return d, hw, p, False


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def fmt_signed_ci(mean: float, hw: float | None) -> str:
    """"+1.2 ± 0.4" (no ± part without a half width)."""
    if mean != mean:
        return "n/m"
    return f"{mean:+.1f}" + (f" ± {hw:.1f}" if hw is not None and hw == hw else "")


def fmt_diff(d: float, hw: float | None, p: float | None, paired: bool = False) -> str:
    """"+1.2 ± 0.4 (p=0.010)"; ", paired" inside the parentheses for a paired-by-seed test."""
    if d != d:
        return "n/m"
    s = f"{d:+.1f}"
    if hw is not None:
        s += f" ± {hw:.1f}"
    if p is not None:
        s += f" (p={p:.3f}" + (", paired)" if paired else ")")
    elif paired:
        s += " (paired)"
    return s


def paper_vs_ours(df: pd.DataFrame, paper: dict, metrics: list[str], order: list[str],
                  baseline: str | None = None) -> pd.DataFrame:
    """Rows in ``order``: the paper's value and ours (mean ± 95 % CI over seeds) per metric, and, when
    ``baseline`` is given, the difference from the baseline row (paper vs ours ± CI and p: paired by seed when both
    rows evaluate the same trained weights, Welch otherwise; ``variant_diff``)."""
    from harness.report import fmt_mean_ci
    from harness.stats import mean_ci
    rows = []
    for v in order:
        row = {"variant": v, "n": len(df[df["variant"] == v])}
        for m in metrics:
            vals = metric_values(df, v, m)
            pv = (paper.get(v) or {}).get(m)
            row[f"paper {m}"] = fmt(pv)
            row[f"ours {m}"] = fmt_mean_ci(*mean_ci(vals)) if vals else "n/m"
            if baseline is not None and v != baseline:
                pb = (paper.get(baseline) or {}).get(m)
                row[f"paper Δ{m}"] = f"{pv - pb:+.1f}" if pv is not None and pb is not None else "–"
                row[f"ours Δ{m}"] = fmt_diff(*variant_diff(df, v, baseline, m))
        rows.append(row)
    return pd.DataFrame(rows)


def claim_row(df: pd.DataFrame, claim: str, variant: str, baseline: str, metric: str,
              paper_effect: float) -> dict:
    """One row of a report's claims table: the paper's effect (``variant`` − ``baseline`` on ``metric``),
    ours (mean difference ± 95 % CI, p; paired by seed on the same weights, else Welch: ``variant_diff``) and the
    verdict of ``harness.verdicts.verdict``."""
    from harness.verdicts import verdict
    d, hw, p, is_paired = variant_diff(df, variant, baseline, metric)
    health = health_verdict(df, (variant, baseline))
    return {"claim (paper)": claim, "paper": f"{paper_effect:+.1f}", "ours": fmt_diff(d, hw, p, is_paired),
            "verdict": "not measured" if d != d else health or verdict(d, hw, p, paper_effect)}
