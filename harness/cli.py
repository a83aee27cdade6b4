"""``python -m harness``: train | evaluate | time | compare | study | report | data | gpu-check.

Every subcommand has ``--help``; bad usage exits with code 2 (argparse), a failed run with 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import catalog, cli_extra
from harness.catalog import PROFILES


def _add_common(p: argparse.ArgumentParser, *, methods_flag: str = "--method") -> None:
    if methods_flag == "--method":
        p.add_argument("--method", required=True, help=f"one of: {', '.join(catalog.METHODS)}")
    p.add_argument("--profile", default="quick", choices=PROFILES, help="config profile (default: quick)")
    p.add_argument("--dataset", default=None,
                   help="training dataset: shapes-coco | shapes-ochuman | shapes-street | coco:ANN.json:IMGDIR "
                        "| ochuman:ANN.json:IMGDIR (default: the profile's)")
    p.add_argument("--val-dataset", default=None, help="evaluation dataset spec (default: val split of --dataset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set method.alpha=0.8 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_train(args) -> int:
    from harness.config import make_config
    from harness.pipeline import run_variant
    cfg = make_config(args.method, args.profile, dataset=args.dataset, val_dataset=args.val_dataset,
                      seed=args.seed, overrides=args.overrides)
    if args.no_eval:
        from harness.pipeline import ensure_trained
        cfg, run_dir = ensure_trained(cfg, progress=not args.no_progress)
        print(f"wrote: run {run_dir}")
        return 0
    recs = run_variant(args.study, args.method, cfg, do_time=not args.no_time, progress=not args.no_progress)
    from harness import distributed as dist_utils
    if dist_utils.is_main():
        for r in recs:
            m = r["metrics"]
            print(f"{r['run_id']}: AP {m['AP']:.2f} AP50 {m['AP50']:.2f} AP75 {m['AP75']:.2f}")
        print(f"wrote: records results/{args.study}/runs.jsonl; run {(recs[0].get('train') or {}).get('run_dir')}"
              if recs else f"wrote: records results/{args.study}/runs.jsonl")
    return 0


def cmd_time(args) -> int:
    from dataclasses import replace

    from harness import distributed as dist_utils
    from harness.config import apply_overrides
    from harness.pipeline import build_split, load_model
    from harness.runs import load_run_config, resolve_run
    from harness.timing import count_flops, count_params, time_inference
    if args.postprocess:
        cli_extra.check_postprocess(args.postprocess)
    run_dir = resolve_run(args.run)
    cfg = apply_overrides(load_run_config(run_dir), args.overrides)
    if args.postprocess:
        cfg = replace(cfg, method=replace(cfg.method, postprocess=args.postprocess))
    device = dist_utils.resolve_device(cfg.timing.device)
    model = load_model(cfg, run_dir, device)
    ds = build_split(cfg, "val")
    res = time_inference(model, ds, cfg.timing, device, size_divisor=cfg.data.size_divisor,
                         progress=not args.no_progress)
    res["params"] = count_params(model)
    res["flops"] = count_flops(model, cfg.data.test_short_side, cfg.data.test_short_side, device)
    _print_timing(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote: {args.json}")
    return 0


def _print_timing(res: dict) -> None:
    from tabulate import tabulate
    p = res["protocol"]
    print(f"timing protocol v{p['version']}: batch 1, warm-up {p['warmup_iters']}, {p['num_images']} images, "
          f"{p['precision']}, device {p['device_name']} ({p['device']}), {p['threads']} threads, "
          f"torch {p['torch']}, data loading excluded")
    if res.get("not_measured"):
        print(f"not measured: {res['not_measured']}")
        return
    rows = [[s, v["median_ms"], v["mean_ms"], v["p90_ms"]] for s, v in res["stages"].items()]
    print(tabulate(rows, headers=["stage", "median ms", "mean ms", "p90 ms"], floatfmt=".2f"))
    print(f"FPS {res['fps']:.1f}  params {res.get('params', 0):,}  FLOPs {res.get('flops', 0) / 1e9:.3f} G")


def cmd_compare(args) -> int:
    from harness.studies import run_compare
    names = cli_extra.check_methods(args.methods)
    pps = cli_extra.check_postprocess(args.postprocess)
    cli_extra.check_count(args.seeds, "--seeds")
    if args.launcher != "local" or args.jobs > 1 or args.dry_run:
        from harness.launch import launch_compare
        return launch_compare(args, names, pps)
    md = run_compare(names, study=args.study, profile=args.profile, dataset=args.dataset,
                     val_dataset=args.val_dataset, seeds=args.seeds, overrides=args.overrides, postprocess=pps,
                     do_time=not args.no_time, progress=not args.no_progress, protocol=args.protocol)
    if md:
        print(md)
    print(f"wrote: reports/{args.study}.md, records results/{args.study}/runs.jsonl")
    return 0


def cmd_study(args) -> int:
    from harness.studies import run_study
    if args.readings and (args.launcher != "local" or args.jobs > 1 or args.dry_run):
        print("error: --readings runs in this process (use --shard I/N to share it between processes)",
              file=sys.stderr)
        return 2
    args.only_seeds_list = None
    if args.only_seeds is not None:
        try:
            args.only_seeds_list = sorted({int(x) for x in args.only_seeds.split(",") if x.strip()})
            if not args.only_seeds_list or min(args.only_seeds_list) < 0:
                raise ValueError
        except ValueError:
            print(f"error: --only-seeds expects comma-separated seeds >= 0, got {args.only_seeds!r}", file=sys.stderr)
            return 2
    if args.launcher != "local" or args.jobs > 1 or args.dry_run:
        from harness.launch import launch_study
        return launch_study(args)
    try:
        i, n = (int(x) for x in args.shard.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except ValueError:
        print(f"error: --shard expects I/N with 0 <= I < N, got {args.shard!r}", file=sys.stderr)
        return 2
    cli_extra.check_study(args.name)
    cli_extra.check_count(args.seeds, "--seeds")
    if args.readings:
        from harness.readings import run_readings
        out = run_readings(args.name, seeds=args.seeds, progress=not args.no_progress, overrides=args.overrides,
                           only_report=args.report_only, shard=(i, n), profile=args.profile,
                           variants=[v.strip() for v in (args.variants or "").split(",") if v.strip()] or None)
        if out:
            print(f"wrote: {out[0]}")
        return 0
    paths = run_study(args.name, profile=args.profile, seeds=args.seeds, progress=not args.no_progress,
              only_report=args.report_only, overrides=args.overrides, shard=(i, n),
              variants=cli_extra.split_list(args.variants, "--variants") if args.variants is not None else None,
              only_seeds=args.only_seeds_list)
    if paths:
        print("wrote: " + ", ".join(str(p) for p in paths if p) + f"; records results/{Path(paths[0]).stem}/runs.jsonl")
    return 0


def cmd_report(args) -> int:
    from harness.studies import regenerate_reports
    paths = regenerate_reports(args.names or None)
    for p in paths:
        print(p)
    print(f"wrote: {len(paths)} report files")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a method (then evaluate, time and record it)")
    _add_common(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--study", default="runs", help="records go to results/<study>/runs.jsonl")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--no-time", action="store_true", help="skip the timing protocol")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("time", help="time a trained run by the timing protocol")
    p.add_argument("--run", required=True, help="run directory or run id (work_dirs/<run_id>)")
    p.add_argument("--postprocess", default=None, help="post-processing variant to time")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", default=None, help="also write the result as JSON here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_time)

    p = sub.add_parser("compare", help="train what is missing, evaluate, time, and write a comparison report",
                       epilog=cli_extra.compare_epilog())
    p.add_argument("--methods", required=True, help=f"comma-separated method names: {', '.join(catalog.METHODS)}")
    _add_common(p, methods_flag="--methods")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    p.add_argument("--postprocess", default=None,
                   help="comma-separated post-processing variants evaluated on the same trained run "
                        f"({', '.join(catalog.POSTPROCESS)})")
    p.add_argument("--study", default="compare", help="results/<study>/runs.jsonl and reports/<study>.md")
    p.add_argument("--protocol", default="coco", choices=["coco", "ochuman"], help="evaluation protocol")
    p.add_argument("--no-time", action="store_true", help="skip the timing protocol")
    from harness.launch import add_launcher_args
    add_launcher_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("study", help="run a study of experiments/ (train missing runs, report)",
                       epilog=cli_extra.study_epilog())
    p.add_argument("name", help=f"study name: {', '.join(catalog.studies())}")
    p.add_argument("--profile", default=None, choices=PROFILES)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report from records")
    p.add_argument("--shard", default="0/1", metavar="I/N",
                   help="run only shard I of N of the (variant, seed) runs (variants rotate over the shards from "
                   "seed to seed), to share a study between processes")
    p.add_argument("--readings", action="store_true",
                   help="run the study's claims under every open reading (harness/readings.py) -> "
                        "reports/<study>_readings.md")
    p.add_argument("--variants", default=None, metavar="A,B",
                   help="run only these variants (comma-separated names as in the study); the report covers all")
    p.add_argument("--only-seeds", default=None, metavar="S,T",
                   help="run only these seeds (of 0 .. SEEDS-1); the report covers all")
    p.add_argument("--no-progress", action="store_true")
    from harness.launch import add_launcher_args
    add_launcher_args(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("list", help="methods and presets, studies (variants, seeds), dataset specs, profiles")
    p.set_defaults(func=cli_extra.cmd_list)

    p = sub.add_parser("report", help="regenerate reports from records (byte-identical for the same records)")
    p.add_argument("names", nargs="*", help="study names (default: every study with records)")
    p.set_defaults(func=cmd_report)

    from harness import cli_data, cli_eval, cli_gpu, cli_validity
    cli_data.register(sub)
    cli_validity.register(sub)
    cli_gpu.register(sub)
    ev = cli_eval.register(sub)
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="with --run: config override, e.g. --set method.score_thr=0.05")
    ev.add_argument("--val-dataset", default=None, help="with --run: evaluate on this dataset spec instead")
    ev.add_argument("--postprocess", default=None, help="with --run: post-processing variant (matrix, mask, none, ...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return cli_extra.guarded(args.func, args)  # user errors: one "error: ..." line, exit 2 (usage) or 1
