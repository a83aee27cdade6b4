"""``python -m harness ceiling``: the resolution ceiling of a method's mask representation (issue 13)."""
from __future__ import annotations

import argparse


def cmd_ceiling(args) -> int:
    from harness.ceiling import run_ceiling
    names = [m.strip() for m in args.method.split(",") if m.strip()]
    if not names:
        print("error: --method needs at least one method name")
        return 2
    for name in names:
        for soft in ((False, True) if args.soft else (False,)):
            rec = run_ceiling(name, args.profile, dataset=args.dataset, val_dataset=args.val_dataset,
                              overrides=args.overrides, soft=soft, progress=not args.no_progress)
            m = rec["metrics"]
            rep = rec["config"]["method.representation"]
            print(f"ceiling {rec['variant']} ({rep}, {rec['data']['dataset']}, profile {args.profile}, "
                  f"short side {rec['config']['data.test_short_side']}): AP {m['AP']:.1f} AP50 {m['AP50']:.1f} "
                  f"AP75 {m['AP75']:.1f} APs {m['APs']:.1f} APm {m['APm']:.1f} APl {m['APl']:.1f}")
    print("records: results/ceiling/runs.jsonl")
    return 0


def cmd_validity(args) -> int:
    from harness.validity import METHODS, run_validity
    names = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(METHODS)
    md, _ = run_validity(args.profile, n_images=args.images, dataset=args.dataset, method_names=names,
                         progress=not args.no_progress, canvas=args.canvas)
    print(f"report: {md}; records: results/validity/runs.jsonl, results/ceiling/runs.jsonl")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from harness.cli import _add_common
    p = sub.add_parser("ceiling", help="AP of the ground truth passed through a method's mask representation")
    _add_common(p)
    p.add_argument("--soft", action="store_true", help="also the soft stride-4 variant (area fractions kept)")
    p.set_defaults(func=cmd_ceiling)

    from harness.catalog import PROFILES
    p = sub.add_parser("validity", help="positives per GT and representation ceilings of every method at a profile "
                                        "-> reports/validity.md")
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--methods", default=None, help="comma-separated (default: every trainable method)")
    p.add_argument("--dataset", default=None, help="training / val dataset spec (default: the profile's)")
    p.add_argument("--images", type=int, default=200, help="training images the assigners see (default 200)")
    p.add_argument("--canvas", type=int, default=None,
                   help="quick profile only: measure on this synthetic canvas instead of the profile's (128 or 192 px, "
                        "object-size settings scaled to it: harness.config.quick_canvas_overrides)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_validity)
