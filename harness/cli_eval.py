"""``python -m harness evaluate``: score a COCO results JSON, or (``--run``) a trained run.

Two modes:

* ``--gt ANN.json --predictions RESULTS.json`` scores a predictions file against a COCO ground
  truth and prints ``COCOeval.stats[0..11]`` (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs,
  ARm, ARl) exactly as pycocotools computes them, in [0, 1] to 12 decimals, next to their x100
  value; ``--ochuman`` applies the OCHuman protocol, ``--per-class`` adds per-class AP, ``--json OUT``
  writes the metrics dict (with the raw ``stats``; undefined x100 metrics as null).
* ``--run RUN`` evaluates a trained run; it is handled by ``harness.cli_hooks.evaluate_run(args)``
  (imported lazily, owned by the harness CLI).

Also runnable alone: ``python -m harness.cli_eval --gt ... --predictions ...``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""``harness.evaluate.STAT_NAMES`` (here so that ``--help`` does not import torch)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``evaluate`` options (shared by the subcommand and the standalone entry point)."""
    files = parser.add_argument_group("score a predictions file")
    files.add_argument("--gt", metavar="ANN.json", help="COCO-format ground-truth annotations")
    files.add_argument("--predictions", metavar="RESULTS.json", help="COCO results JSON (segm, RLE)")
    parser.add_argument("--run", metavar="RUN", default=None,
                        help="evaluate a trained run (run directory) instead of --gt/--predictions")
    parser.add_argument("--backend", choices=("pycocotools", "faster"), default="pycocotools",
                        help="COCOeval implementation (default: pycocotools, the reference)")
    parser.add_argument("--per-class", action="store_true", help="also print per-class mask AP")
    parser.add_argument("--class-agnostic", action="store_true",
                        help="match predictions to ground truth of any class (COCOeval useCats=0): with the default "
                             "scoring beside it, shows how much of the AP the classification costs")
    parser.add_argument("--ochuman", action="store_true",
                        help="OCHuman protocol: category 1 only; APs/m/l bucket by BOX area")
    parser.add_argument("--json", metavar="OUT", default=None, help="write the metrics as JSON")
    parser.set_defaults(func=run_evaluate)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "evaluate", help="COCO mask AP of a predictions file (or of a trained run with --run)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def format_metrics(metrics: dict) -> str:
    """The 12 COCOeval numbers (x100 and raw) and, when present, per-class AP, as text lines."""
    lines = [f"{'metric':<8}{'x100':>9}  COCOeval.stats"]
    for name, stat in zip(STAT_NAMES, metrics["stats"]):
        pct = f"{100.0 * stat:9.3f}" if stat >= 0 else f"{'n/a':>9}"
        lines.append(f"{name:<8}{pct}  {stat:.12f}")
    if "AR" in metrics:
        lines.append("(OCHuman: AR = AR100; APs/APm/APl bucket by box area)")
    per_class = metrics.get("per_class")
    if per_class:
        width = max(len(n) for n in per_class)
        lines.append("per-class mask AP (x100; '-' = no ground truth):")
        lines += [f"  {n:<{width}} {('-' if ap is None else f'{ap:6.2f}'):>6}" for n, ap in per_class.items()]
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``evaluate``: returns the process exit code (0 ok, 2 usage / input error)."""
    if getattr(args, "run", None):
        from harness import cli_hooks  # the lead's module: evaluates a trained run

        return int(cli_hooks.evaluate_run(args) or 0)
    if not args.gt or not args.predictions:
        print("evaluate: give --gt ANN.json and --predictions RESULTS.json (or --run RUN)", file=sys.stderr)
        return 2
    if args.class_agnostic and (args.per_class or args.ochuman):
        print("evaluate: --class-agnostic has no classes to score per class, nor OCHuman's single one",
              file=sys.stderr)
        return 2
    from harness.evaluate import coco_segm_eval, ochuman_eval
    try:
        if args.ochuman:
            metrics = ochuman_eval(args.gt, args.predictions, backend=args.backend)
        else:
            metrics = coco_segm_eval(args.gt, args.predictions, backend=args.backend, per_class=args.per_class,
                                     use_cats=not args.class_agnostic)
    except (ValueError, OSError, ImportError) as e:  # DatasetError, bad results, unreadable files
        where = f"{e.filename}: " if isinstance(e, OSError) and e.filename else ""
        print(f"evaluate: {where}{e.strerror if isinstance(e, OSError) and e.strerror else e}", file=sys.stderr)
        return 2
    print(f"{metrics['n_results']} results in {args.predictions} vs {args.gt} "
          f"({'OCHuman' if args.ochuman else 'COCO'} segm{', class-agnostic' if args.class_agnostic else ''}, "
          f"backend {args.backend})")
    print(format_metrics(metrics))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        strict = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
        out.write_text(json.dumps(strict, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.cli_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
