"""Hooks the evaluate CLI calls for trained runs (``python -m harness evaluate --run RUN``)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path


def evaluate_run(args) -> int:
    """Evaluate a trained run on its val dataset (or ``--val-dataset``) and print the metrics."""
    from harness import distributed as dist_utils
    from harness.config import apply_overrides
    from harness.evaluate import save_results
    from harness.pipeline import build_split, evaluate_model, load_model
    from harness.runs import load_run_config, resolve_run
    if getattr(args, "postprocess", None):
        from harness.cli_extra import check_postprocess
        check_postprocess(args.postprocess)
    run_dir = resolve_run(args.run)
    cfg = apply_overrides(load_run_config(run_dir), getattr(args, "overrides", None) or [])
    if getattr(args, "val_dataset", None):
        cfg = replace(cfg, data=replace(cfg.data, val_dataset=args.val_dataset))
    if getattr(args, "postprocess", None):
        cfg = replace(cfg, method=replace(cfg.method, postprocess=args.postprocess))
    device = dist_utils.resolve_device(cfg.train.device)
    model = load_model(cfg, run_dir, device)
    ds = build_split(cfg, "val")
    protocol = "ochuman" if getattr(args, "ochuman", False) else "coco"
    metrics, results = evaluate_model(model, cfg, ds, device, protocol=protocol)
    pred_path = save_results(Path(run_dir) / f"predictions_{cfg.method.postprocess}.json", results)
    show = {k: v for k, v in metrics.items() if k not in ("per_class", "stats")}
    print(json.dumps(show, indent=2))
    wrote = [str(pred_path)]
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
        wrote.append(str(args.json))
    print("wrote: " + ", ".join(wrote))
    return 0
