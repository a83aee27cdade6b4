"""Train -> evaluate -> time -> record, for one configured variant; shared by the CLI and the studies.

A *variant* is one ExperimentConfig (method config + data + schedule + seed).  ``run_variant``
trains it unless a finished run with the same ``train_hash`` exists (``harness.runs``), evaluates
it once per post-processing kind asked for (no retraining), optionally times it, and appends one
record per evaluation to ``results/<study>/runs.jsonl``.  A record whose key (run, variant,
post-processing, val dataset, kind, protocol, inference-only settings) is already in the file is not
written again, so an interrupted study resumes where it stopped and never duplicates rows; changing an
inference-only setting (CASNet's ``seed_thr``, SOLOv2's ``score_thr``) re-evaluates the same trained run.
With ``reuse=True`` an identical evaluation recorded by another study is copied (``copied_from``) instead
of being trained and evaluated again.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from filelock import FileLock

import methods
from harness import distributed as dist_utils
from harness.config import ExperimentConfig, to_flat, train_hash
from harness.data.synthetic import generator_version
from harness.health import complete_final_point, final_point_missing, reusable_results
from harness.predictions import run_curves, save_predictions
from harness.runs import WORK_DIR_ENV, is_finished, read_final, run_dir_for, run_id_for, weights_id
from harness.timing import count_flops, count_params, time_inference
from harness.train import load_weights, resolve_num_classes, train
from harness.validate import check_writable_dir


def build_split(cfg: ExperimentConfig, split: str):
    """The train dataset (split "train") or the evaluation dataset (split "val") of ``cfg``."""
    from harness.data import build_dataset
    if split == "train":
        return build_dataset(cfg.data.dataset, "train", cfg.data, train=True)
    spec = cfg.data.val_dataset or cfg.data.dataset
    return build_dataset(spec, "val", cfg.data, train=False)


def check_same_classes(train_ds, val_ds) -> None:
    if list(train_ds.class_names) != list(val_ds.class_names):
        raise ValueError(
            f"train dataset {train_ds.name!r} and val dataset {val_ds.name!r} have different classes "
            f"({len(train_ds.class_names)} vs {len(val_ds.class_names)}); a model cannot be evaluated on "
            "classes it was not trained for")


def is_trainable(cfg: ExperimentConfig) -> bool:
    return getattr(methods.METHODS[cfg.method.name], "trainable", True)


def resolve_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with ``num_classes`` (and CASNet's ``num_stuff``) filled from the training (or val) dataset."""
    return resolve_num_classes(cfg, build_split(cfg, "train" if is_trainable(cfg) else "val"))


def ensure_trained(cfg: ExperimentConfig, *, progress: bool = True, train_ds=None, val_ds=None,
                   defer_final_health: bool = False) -> tuple[ExperimentConfig, Path | None]:
    """Resolve ``num_classes``, then train the run unless it is finished. Returns (cfg, run_dir).

    ``train_ds`` / ``val_ds``: the training / val split when the caller has already built it.
    ``defer_final_health``: ``train``'s; for a caller that evaluates the run next (``run_variant``).
    """
    if not is_trainable(cfg):
        return resolve_config(cfg), None
    train_ds = train_ds if train_ds is not None else build_split(cfg, "train")
    cfg = resolve_num_classes(cfg, train_ds)
    run_dir = run_dir_for(cfg)
    check_writable_dir(run_dir.parent, f"work directory (${WORK_DIR_ENV} or work_dirs)")
    if not is_finished(run_dir):
        # two processes of a sharded study may need the same run (CASNet's separated variant trains its
        # semantic model on demand): the second waits for the first, then finds the run finished.  DDP ranks
        # train one run together, so under torchrun there is no lock.
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = (contextlib.nullcontext() if int(os.environ.get("WORLD_SIZE", "1")) > 1
                else FileLock(str(run_dir.parent / f"{run_dir.name}.lock")))
        with lock:
            if not is_finished(run_dir):
                train(cfg, run_dir, progress=progress, dataset=train_ds, val_dataset=val_ds,
                      defer_final_health=defer_final_health)
    return cfg, run_dir


def load_model(cfg: ExperimentConfig, run_dir: Path | None, device: torch.device):
    model = methods.build_method(cfg.method)
    if run_dir is not None:
        load_weights(model, run_dir)
    return model.to(device).eval()


def evaluate_model(model, cfg: ExperimentConfig, val_ds, device: torch.device, *, progress: bool = True,
                   protocol: str = "coco") -> tuple[dict, list[dict]]:
    """Inference over ``val_ds`` (sharded across DDP ranks, gathered so each image counts once) + metrics.

    ``protocol`` "coco" (COCO segm) or "ochuman" (the OCHuman protocol).
    """
    from harness.evaluate import evaluate_results, ochuman_eval, run_inference, shard_indices
    world, rank = dist_utils.world_size(), dist_utils.rank()
    indices = shard_indices(len(val_ds), rank, world)
    results = run_inference(model, val_ds, device=device, batch_size=cfg.eval.batch_size,
                            progress=progress and rank == 0, indices=indices, size_divisor=cfg.data.size_divisor)
    gathered = dist_utils.all_gather_objects(results)
    results = [r for part in gathered for r in part]
    if protocol == "ochuman":
        metrics = ochuman_eval(val_ds.coco, results)
    else:
        metrics = evaluate_results(val_ds, results, cfg.eval)
    return metrics, results


EVAL_FIELDS = ("eval.backend", "eval.max_dets", "eval.per_class", "data.test_short_side", "data.val_images")


def inference_fingerprint(flat: dict, method: str | None) -> str:
    """The settings, besides the trained weights and ``postprocess``, that decide an evaluation's numbers.

    ``flat``: a record's flattened config.  The method's ``INFERENCE_ONLY`` fields (e.g. CASNet's ``seed_thr``,
    SOLOv2's ``score_thr``) and ``EVAL_FIELDS``; a field missing from an older record counts at its current
    default.  A ``*_checkpoint`` path counts by its last two components (run directory / file), so the same
    run found under another work-dir root is the same evaluation.  Returns a canonical JSON string.
    """
    import methods as _methods
    from harness.config import DataConfig, EvalConfig
    defaults = {f"eval.{f.name}": f.default for f in fields(EvalConfig)}
    defaults.update({f"data.{f.name}": f.default for f in fields(DataConfig)})
    keys = list(EVAL_FIELDS)
    cls = _methods.METHODS.get(method) if method else None
    if cls is not None:
        mdef = {f.name: f.default for f in fields(cls.Config)}
        for name in cls.Config.INFERENCE_ONLY:
            if name != "postprocess":  # a separate part of the record key
                keys.append(f"method.{name}")
                defaults[f"method.{name}"] = mdef.get(name)
    out = {}
    for k in keys:
        v = flat.get(k, defaults.get(k))
        if k.endswith("_checkpoint") and isinstance(v, str) and v:
            v = "/".join(Path(v).parts[-2:])
        out[k] = list(v) if isinstance(v, tuple) else v
    return json.dumps(out, sort_keys=True, default=str)


def _record_key(rec: dict) -> tuple:
    """What makes two eval records the same evaluation: the run, the variant name, the post-processing, the val
    dataset, the record kind, the protocol and ``inference_fingerprint`` (inference-only settings such as CASNet's
    ``seed_thr``: changing one re-evaluates the same trained run)."""
    cfg = rec.get("config") or {}
    return (rec.get("run_id"), rec.get("variant"), cfg.get("method.postprocess"),
            rec.get("data", {}).get("dataset"), rec.get("kind"), rec.get("data", {}).get("protocol", "coco"),
            inference_fingerprint(cfg, rec.get("method")))


def _eval_probe(run_id: str, variant: str, vcfg: ExperimentConfig, val_name: str, protocol: str) -> dict:
    """The fields of an eval record that ``_record_key`` reads, for a record not yet made."""
    return {"run_id": run_id, "variant": variant, "config": to_flat(vcfg), "method": vcfg.method.name,
            "data": {"dataset": val_name, "protocol": protocol}, "kind": "eval"}


def _reuse_key(rec: dict) -> tuple:
    """``_record_key`` without the variant name: the same evaluation recorded by another study."""
    k = _record_key(rec)
    return k[:1] + k[2:]


def other_studies_evals(study: str, results_root: Path) -> list[dict]:
    """The original (not copied) eval records of every study under ``results_root`` except ``study``."""
    from harness.records import read_records
    return [r for path in sorted(Path(results_root).glob("*/runs.jsonl")) if path.parent.name != study
            for r in read_records(path) if r.get("kind") == "eval" and not r.get("copied_from")]


def find_in_other_studies(probe: dict, candidates: list[dict], weights: str | None = None) -> dict | None:
    """The record among ``candidates`` (``other_studies_evals``) that is the same evaluation as ``probe`` (same
    run, post-processing, val dataset, protocol and inference settings), or None.  The newest one wins.

    ``weights``: the ``weights_id`` of the run's weights when they are here; then only a record of those weights
    counts (when they are not here, any record of the run does: nothing here could be paired with it wrongly).
    """
    want = _reuse_key(probe)
    found = [r for r in candidates if _reuse_key(r) == want and (weights is None or _weights_of(r) == weights)]
    return max(found, key=lambda r: r.get("started_utc", ""), default=None)


def _variant_records(path: Path, run_id: str, variant: str) -> list[dict]:
    from harness.records import read_records
    return [r for r in read_records(path) if r.get("run_id") == run_id and r.get("variant", "").startswith(variant)]


def _unique_key(rec: dict) -> tuple:
    """What ``append_record`` checks under its lock: the same evaluation (``_record_key``) of the same weights."""
    return _record_key(rec), _weights_of(rec)


def _weights_of(rec: dict) -> str | None:
    return (rec.get("train") or {}).get("weights_id")


def existing_keys(path: Path, current_weights: dict[str, str] | None = None) -> set:
    """``_record_key`` of the records in ``path``.

    ``current_weights``: run_id -> ``weights_id`` of runs whose weights are here; a record of such a run made from
    other weights (the run trained again after its work dir was lost, or a record older than ``weights_id``) is
    left out, so it is evaluated again on these weights and never paired with records of them.
    """
    from harness.records import read_records
    if not Path(path).is_file():
        return set()
    current_weights = current_weights or {}
    return {_record_key(r) for r in read_records(path)
            if r.get("run_id") not in current_weights or _weights_of(r) == current_weights[r.get("run_id")]}


def _diagnostics(final: dict, cfg: ExperimentConfig) -> dict:
    """The run's health diagnostics (``harness.health``) plus the ceiling of its representation on ``cfg``'s val data.

    Runs trained before the diagnostics existed have none: ``{"recorded": False}`` then (ceiling still given).
    """
    from harness.ceiling import ceiling_ap
    from harness.cost import train_gflops_per_iter
    diag = dict(final.get("diagnostics") or {"recorded": False})
    try:  # training compute: FLOPs of one iteration (forward + backward) x the iterations trained
        diag["train_gflops_per_iter"] = train_gflops_per_iter(cfg)
        diag["train_pflops"] = diag["train_gflops_per_iter"] * int(final.get("iterations") or 0) / 1e6
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as e:
        diag["train_gflops_per_iter"] = None
        diag["cost_error"] = str(e)
    try:
        diag["ceiling"] = ceiling_ap(cfg)
        diag["ceiling_kind"] = "representation"  # soft stride-4 / 28x28 RoI (harness.ceiling.ceiling_ap)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as e:  # a dataset the oracle cannot read
        diag["ceiling"] = None
        diag["ceiling_error"] = str(e)
    return diag


def run_variant(study: str, variant: str, cfg: ExperimentConfig, *, postprocess: list[str] | None = None,
                do_time: bool = True, progress: bool = True, results_root: Path | None = None,
                protocol: str = "coco", force: bool = False, panoptic: bool = False,
                reuse: bool = False) -> list[dict]:
    """Train (or reuse) ``cfg``, evaluate once per post-processing kind, time, and record.

    ``reuse``: copy an identical evaluation from another study's records (``find_in_other_studies``) when it
    carries what this one needs (timing when ``do_time``, PQ when ``panoptic``).  Off for studies whose timings
    must come from one session (speed tables).

    Returns the records of this variant (new and already present).
    """
    from harness.records import append_record, env_info, make_record, records_path, utc_now
    t_start = utc_now()
    path = records_path(study, results_root or "results")
    if dist_utils.is_main():  # before any training: an unwritable results directory would lose the evaluation
        check_writable_dir(path.parent, "results directory")
    val_ds = build_split(cfg, "val")
    train_ds = build_split(cfg, "train") if is_trainable(cfg) else None
    pps = postprocess or [cfg.method.postprocess]
    resolved = resolve_num_classes(cfg, train_ds if train_ds is not None else val_ds)
    local_wid = weights_id(run_dir_for(resolved)) if is_trainable(resolved) else None
    current = {run_id_for(resolved): local_wid} if local_wid else {}
    keys = set() if force else existing_keys(path, current)

    def vname_of(pp: str) -> str:
        return variant if len(pps) == 1 else f"{variant}[{pp}]"

    def probe(pp: str) -> dict:
        vcfg = replace(resolved, method=replace(resolved.method, postprocess=pp))
        return _eval_probe(run_id_for(vcfg), vname_of(pp), vcfg, val_ds.name, protocol)

    def probe_key(pp: str) -> tuple:
        return _record_key(probe(pp))

    if reuse and not force and dist_utils.is_main():
        # the same evaluation already recorded by another study (e.g. the Table 1 baseline inside a diagnostic
        # study): copied, with the variant renamed and its origin kept, instead of training and evaluating again
        candidates = None
        for pp in pps:
            if probe_key(pp) in keys:
                continue
            if candidates is None:
                candidates = other_studies_evals(study, results_root or Path("results"))
            other = find_in_other_studies(probe(pp), candidates, local_wid)
            if other is not None and (not do_time or other.get("timing")) and (
                    not panoptic or "PQ" in (other.get("metrics") or {})):
                rec = dict(other, study=study, variant=vname_of(pp),
                           copied_from=f"{other['study']}/{other['variant']}")
                append_record(path, rec, unique=_unique_key)
                keys.add(_record_key(rec))
    if keys and all(probe_key(pp) in keys for pp in pps):  # everything recorded: nothing to train or evaluate
        return _variant_records(path, run_id_for(resolved), variant)
    cfg, run_dir = ensure_trained(cfg, progress=progress, train_ds=train_ds, val_ds=val_ds, defer_final_health=True)
    wid = local_wid or (weights_id(run_dir) if run_dir is not None else None)
    if wid and not local_wid and not force:
        # trained just now (or by a process beside this one): records of other weights no longer count
        keys = existing_keys(path, {run_id_for(cfg): wid})
    device = dist_utils.resolve_device(cfg.train.device if cfg.train.device != "auto" else "auto")
    if train_ds is not None:
        check_same_classes(train_ds, val_ds)
    model = None
    out = []
    final = read_final(run_dir) if run_dir is not None else {}
    for pp in pps:
        vcfg = replace(cfg, method=replace(cfg.method, postprocess=pp))
        vname = vname_of(pp)
        rid = run_id_for(vcfg)
        if probe_key(pp) in keys:
            continue
        t_eval = time.perf_counter()
        if model is None:
            model = load_model(cfg, run_dir, device)
        model.cfg = vcfg.method  # post-processing is a config field read at predict time
        metrics, results = evaluate_model(model, vcfg, val_ds, device, progress=progress, protocol=protocol)
        if run_dir is not None and dist_utils.is_main() and final_point_missing(final, cfg):
            # the run's 100 % health point, left to this evaluation by ensure_trained(defer_final_health=True)
            same = reusable_results(cfg, vcfg, dist_utils.world_size())
            final = complete_final_point(run_dir, final, cfg, model, val_ds, device, results if same else None)
        pred_file = save_predictions(path.parent, vname, vcfg.seed, results) if dist_utils.is_main() else None
        if panoptic:
            from harness.panoptic_eval import evaluate_panoptic
            metrics.update(evaluate_panoptic(model, val_ds, device, size_divisor=cfg.data.size_divisor,
                                             progress=progress))
        timing = None
        if do_time and is_trainable(cfg):  # oracles read the GT: timing them measures nothing
            tdev = dist_utils.resolve_device(vcfg.timing.device)
            timing = time_inference(model, val_ds, vcfg.timing, tdev, size_divisor=cfg.data.size_divisor)
            model.to(device)
        if not dist_utils.is_main():
            continue
        h = w = cfg.data.test_short_side
        curve = run_curves(cfg, run_dir, val_ds, device, path.parent, rid) if run_dir is not None else None
        rec = make_record(
            study=study, variant=vname, run_id=rid, method=vcfg.method.name, seed=vcfg.seed,
            config=to_flat(vcfg), metrics=metrics, timing=timing,
            data={"dataset": val_ds.name, "split": "val", "n_images": len(val_ds), "protocol": protocol,
                  "stats": val_ds.info(),
                  "train_dataset": cfg.data.dataset if run_dir is not None else None,
                  "generator_version": generator_version(cfg.data.dataset, val_ds.name),
                  "predictions": pred_file},
            params=count_params(model), flops=count_flops(model, h, w, device),
            train={"run_dir": str(run_dir) if run_dir else None, "iterations": final.get("iterations"),
                   "wall_s": final.get("wall_s"), "train_hash": train_hash(cfg), "weights_id": wid,
                   **({"threads": final["threads"]} if final.get("threads") else {}),
                   **({"diagnostics": _diagnostics(final, vcfg)} if run_dir is not None else {}),
                   **({"ap_curve": curve} if curve else {})},
            kind="eval", started_utc=t_start, env=env_info(device), eval_wall_s=time.perf_counter() - t_eval)
        append_record(path, rec, unique=_unique_key)  # a process beside this one may have recorded it meanwhile
        keys.add(_record_key(rec))
    if dist_utils.is_main() and path.is_file():
        out = _variant_records(path, run_id_for(cfg), variant)
    return out
