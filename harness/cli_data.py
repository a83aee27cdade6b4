"""``python -m harness data ...``: dataset statistics, synthetic generation, Cityscapes conversion.

``harness.cli`` calls ``register(subparsers)``; each leaf parser sets ``func=<callable(args) -> int>``.
This module also runs alone: ``python -m harness.cli_data data stats shapes-ochuman``.

Examples::

    python -m harness data stats shapes-ochuman --split val --profile quick
    python -m harness data stats coco:ann.json:imgs --json
    python -m harness data generate shapes-coco --n-images 1000 --image-size 128
    python -m harness data convert-cityscapes ROOT --split val --out cs_val.json --classes street5
    python -m harness data convert-pennfudan ../shared/data/pennfudan --out pf_val.json --split val
    python -m harness data stats pennfudan:../shared/data/pennfudan
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from harness.catalog import CITYSCAPES_CLASS_SETS, DATASET_SPECS, PROFILES, SYNTHETIC_PRESETS


def data_config(profile: str, overrides: list[str]):
    """The ``DataConfig`` of ``profile`` with ``data.key=value`` overrides.

    Raises:
        ValueError: unknown profile, or an override outside ``data.*`` / a bad value.
    """
    from harness.config import ExperimentConfig, apply_overrides, profile_data_config
    from methods.config import MethodConfig
    data = profile_data_config(profile)
    bad = [o for o in overrides if not o.strip().startswith("data.")]
    if bad:
        raise ValueError(f"only data.* keys can be set here, got {bad}")
    cfg = ExperimentConfig(method=MethodConfig(name="none"), data=data, profile=profile)
    return apply_overrides(cfg, overrides).data


def _cmd_stats(args: argparse.Namespace) -> int:
    from harness.data import build_dataset
    from harness.data.stats import dataset_stats, format_stats

    data_cfg = data_config(args.profile, args.set)
    ds = build_dataset(args.dataset, args.split, data_cfg, train=False)
    stats = dataset_stats(ds)
    if args.shapes:
        from harness.data.stats import mask_shape_stats
        stats["mask_shapes"] = mask_shape_stats(ds)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from harness.data import split_seed
    from harness.data.synthetic import generate

    data_cfg = data_config(args.profile, [])
    n_images = args.n_images or (data_cfg.train_images if args.split == "train" else data_cfg.val_images)
    image_size = args.image_size or data_cfg.image_size
    seed = args.seed if args.seed is not None else split_seed(args.preset, args.split)
    cache_dir = args.cache_dir or data_cfg.cache_dir
    t0, c0 = time.perf_counter(), time.process_time()
    ann_file, img_dir = generate(args.preset, args.split, n_images, image_size, seed, cache_dir,
                                 use_tqdm=not args.quiet)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"ann_file": str(ann_file), "img_dir": str(img_dir), "n_images": n_images,
                      "image_size": image_size, "seed": seed, "wall_s": round(wall_s, 3),
                      "cpu_s": round(cpu_s, 3)}))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from harness.data.cityscapes import convert_cityscapes

    out = convert_cityscapes(args.root, args.split, args.out, args.classes)
    print(out)
    return 0


def _cmd_convert_pennfudan(args: argparse.Namespace) -> int:
    from harness.data.masks_png import convert_pennfudan

    info = convert_pennfudan(args.root, args.out, args.split)
    print(json.dumps({"out": args.out, **info}))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` command (with ``stats``, ``generate``, ``convert-cityscapes``) to ``subparsers``."""
    VALID_SPECS, CLASS_SETS, PRESETS = DATASET_SPECS, CITYSCAPES_CLASS_SETS, SYNTHETIC_PRESETS  # noqa: N806

    data = subparsers.add_parser("data", help="dataset statistics, synthetic generation, conversion",
                                 description="Dataset tools.")
    sub = data.add_subparsers(dest="data_command", required=True,
                              metavar="{stats,generate,convert-cityscapes,convert-pennfudan}")

    st = sub.add_parser("stats", help="instances, classes, size mix, overlap density of a dataset",
                        description="Statistics of a dataset's ground truth (see harness/data/stats.py).")
    st.add_argument("dataset", metavar="DATASET", help=f"dataset spec: {', '.join(VALID_SPECS)}")
    st.add_argument("--split", choices=("train", "val"), default="val", help="synthetic split (default val)")
    st.add_argument("--profile", choices=PROFILES, default="quick", help="data sizes of this profile")
    st.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                    help="override a data config field (repeatable), e.g. data.val_images=50")
    st.add_argument("--json", action="store_true", help="print JSON instead of tables")
    st.add_argument("--shapes", action="store_true",
                    help="also the GT masks split in pieces and the thin ones, over all and over the small GT "
                         "(decodes every mask)")
    st.set_defaults(func=_cmd_stats)

    gen = sub.add_parser("generate", help="generate a synthetic dataset into the cache",
                         description="Generate (or reuse) a synthetic dataset; prints paths and timing.")
    gen.add_argument("preset", metavar="PRESET", choices=PRESETS, help=f"one of {', '.join(PRESETS)}")
    gen.add_argument("--split", choices=("train", "val"), default="train")
    gen.add_argument("--profile", choices=PROFILES, default="quick", help="defaults for sizes and cache")
    gen.add_argument("--n-images", type=int, default=0, help="images (default: the profile's split size)")
    gen.add_argument("--image-size", type=int, default=0, help="canvas px (default: the profile's)")
    gen.add_argument("--seed", type=int, default=None, help="default: the split's fixed seed")
    gen.add_argument("--cache-dir", default="", help="default: the profile's data.cache_dir")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_cmd_generate)

    cv = sub.add_parser("convert-cityscapes", help="Cityscapes gtFine instanceIds -> COCO JSON",
                        description="Convert ROOT/gtFine/SPLIT/*/*_gtFine_instanceIds.png to COCO JSON.")
    cv.add_argument("root", metavar="ROOT", help="Cityscapes root with gtFine/ and leftImg8bit/")
    cv.add_argument("--split", default="val", help="gtFine sub-folder (default val)")
    cv.add_argument("--out", required=True, metavar="OUT.json", help="output JSON")
    cv.add_argument("--classes", choices=tuple(CLASS_SETS), default="thing8")
    cv.set_defaults(func=_cmd_convert)

    pf = sub.add_parser("convert-pennfudan", help="Penn-Fudan PedMasks -> COCO JSON (RLE, person id 1)",
                        description="Convert ROOT/PNGImages + ROOT/PedMasks/*_mask.png to COCO instances JSON; "
                                    "split by harness.data.masks_png.SPLIT_RULE.")
    pf.add_argument("root", metavar="ROOT", help="Penn-Fudan root with PNGImages/ and PedMasks/")
    pf.add_argument("--out", required=True, metavar="ANN.json", help="output JSON")
    pf.add_argument("--split", choices=("train", "val", "all"), default="all")
    pf.set_defaults(func=_cmd_convert_pennfudan)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.cli_data")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # bad data / spec: a clear message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
