"""The resolution ceiling of a method's mask representation on a dataset (issue 13).

``python -m harness ceiling --method M --dataset D --profile P`` scores the ground truth of D's val split
passed through M's mask representation (``methods.oracle.OracleCeiling``: stride-4 binary targets upsampled
back for SOLOv2 / CondInst / UniInst / CASNet, 28 x 28 RoI masks pasted back for Mask R-CNN, in its
``roi_convention``'s coordinates) at P's input
size, with score 1: the best mask AP that any model of that representation can reach there.  A method's AP
near its ceiling says the profile, not the method, limits it; the run-health check (``harness.health``)
flags such rows.  Records go to ``results/ceiling/runs.jsonl`` (variant = ``M``, or ``M (soft)`` for the
soft stride-4 variant: the area fractions kept, what a network could output at best; ``M (torchvision RoI)``
for Mask R-CNN with ``roi_convention=torchvision``, whose records before 2026-12-04 are named ``M``: their
``method.representation`` is "roi28" either way).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import methods
from harness.config import ExperimentConfig, make_config

STUDY = "ceiling"


def representation_of(method: str) -> str:
    """The mask representation (``Method.mask_representation``) of a registered method or preset."""
    name = methods.PRESETS[method][0] if method in methods.PRESETS else method
    return getattr(methods.METHODS[name], "mask_representation", "stride4")


def ceiling_config(cfg: ExperimentConfig, *, soft: bool = False) -> ExperimentConfig:
    """The ``oracle_ceiling`` config that scores ``cfg``'s val data through ``cfg``'s mask representation."""
    rep = representation_of(cfg.method.name)
    if rep == "roi28_aligned" and getattr(cfg.method, "roi_convention", "detectron2") == "torchvision":
        rep = "roi28"
    if soft and rep == "stride4":
        rep = "stride4_soft"
    base = make_config("oracle_ceiling", cfg.profile, overrides=[f"method.representation={rep}",
                                                                  f"method.mask_resize={cfg.data.mask_resize}"])
    return replace(base, data=cfg.data, eval=cfg.eval, seed=0)


def run_ceiling(method: str, profile: str, *, dataset: str | None = None, val_dataset: str | None = None,
                overrides: list[str] | None = None, soft: bool = False, progress: bool = True,
                results_root=None) -> dict:
    """Evaluate (or read the record of) the ceiling of ``method`` at ``profile``; returns the record."""
    from harness.pipeline import run_variant
    cfg = make_config(method, profile, dataset=dataset, val_dataset=val_dataset, overrides=overrides or [])
    ccfg = ceiling_config(cfg, soft=soft)
    label = (f"{method} (soft)" if soft and ccfg.method.representation == "stride4_soft" else
             f"{method} (torchvision RoI)" if ccfg.method.representation == "roi28" else method)
    recs = run_variant(STUDY, label, ccfg, do_time=False, progress=progress,
                       **({"results_root": results_root} if results_root else {}))
    return recs[-1]


@lru_cache(maxsize=32)
def _ceiling_ap(method: str, data_json: str, eval_json: str, profile: str) -> float | None:
    import json

    from harness.config import DataConfig, EvalConfig
    from harness.evaluate import evaluate_results, run_inference
    from harness.pipeline import build_split
    data = DataConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(data_json).items()})
    ev = EvalConfig(**json.loads(eval_json))
    cfg = replace(make_config(method, profile), data=data, eval=ev)
    ccfg = ceiling_config(cfg, soft=True)
    val_ds = build_split(ccfg, "val")
    from harness.train import resolve_num_classes
    ccfg = resolve_num_classes(ccfg, val_ds)
    model = methods.build_method(ccfg.method).eval()
    import torch
    results = run_inference(model, val_ds, device=torch.device("cpu"), batch_size=ccfg.eval.batch_size,
                            progress=False, size_divisor=ccfg.data.size_divisor)
    return evaluate_results(val_ds, results, ccfg.eval).get("AP")


def ceiling_ap(cfg: ExperimentConfig) -> float | None:
    """Mask AP of ``cfg``'s representation on ``cfg``'s val data (computed once, kept on disk by
    ``harness.memo.disk_memo``; no record).

    The representation's own ceiling: soft stride-4 values for the single-stage methods (what their stride-4
    output can hold; the binary training targets cap lower, ``run_ceiling(..., soft=False)``), 28 x 28 RoI masks
    for Mask R-CNN.  This is the ceiling of the run-health rule."""
    import dataclasses
    import json

    from harness.memo import data_fingerprint, disk_memo
    args = (cfg.method.name, json.dumps(dataclasses.asdict(cfg.data), sort_keys=True),
            json.dumps(dataclasses.asdict(cfg.eval), sort_keys=True), cfg.profile)
    return disk_memo("ceiling_ap", json.dumps([*args, data_fingerprint(cfg.data)]), lambda: _ceiling_ap(*args),
                     cfg.data.cache_dir)
