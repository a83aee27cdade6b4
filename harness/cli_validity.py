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


def register(sub: argparse._SubParsersAction) -> None:
    from harness.cli import _add_common
    p = sub.add_parser("ceiling", help="AP of the ground truth passed through a method's mask representation")
    _add_common(p)
    p.add_argument("--soft", action="store_true", help="also the soft stride-4 variant (area fractions kept)")
    p.set_defaults(func=cmd_ceiling)
