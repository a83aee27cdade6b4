"""The data layer: dataset specs, ``build_dataset`` and ``InstanceDataset``.

A dataset spec is one string (``DataConfig.dataset`` / ``val_dataset``):

* a synthetic preset: ``shapes-coco``, ``shapes-ochuman``, ``shapes-street`` (generated on first
  use into ``DataConfig.cache_dir``, see ``harness.data.synthetic``);
* ``coco:ANN.json:IMGDIR``: any COCO-format instance JSON (COCO, converted Cityscapes, ...);
* ``ochuman:ANN.json:IMGDIR``: an OCHuman COCO-format JSON (``harness.data.ochuman``);
* ``pennfudan:ROOT``: the Penn-Fudan pedestrians (``PNGImages/``, ``PedMasks/``), split by file-name hash;
* ``masks:IMGDIR:MASKDIR[:CLASSNAME]``: any "one instance-id PNG per image" dataset, the same split rule
  (``harness.data.masks_png``).

Synthetic splits use fixed seeds derived from (preset, split), independent of the experiment seed,
so every run of a study sees the same images and train and val never share an image.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

from harness.data.coco import DatasetError, DataWarning, InstanceDataset
from harness.data.synthetic import PRESETS as SYNTHETIC_PRESETS
from harness.data.transforms import build_transform

FILE_KINDS = ("coco", "ochuman")
VALID_SPECS = (*SYNTHETIC_PRESETS, "coco:ANN.json:IMGDIR", "ochuman:ANN.json:IMGDIR", "pennfudan:ROOT",
               "masks:IMGDIR:MASKDIR[:CLASSNAME]")


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec.

    Attributes:
        kind: "synthetic", "coco", "ochuman", "pennfudan" or "masks".
        preset: the synthetic preset ("" for file datasets).
        ann_file / img_dir: for file datasets ("" for synthetic ones); ``img_dir`` is ROOT for pennfudan.
        mask_dir / class_name: for ``masks:`` specs.
    """

    kind: Literal["synthetic", "coco", "ochuman", "pennfudan", "masks"]
    preset: str = ""
    ann_file: str = ""
    img_dir: str = ""
    mask_dir: str = ""
    class_name: str = ""


def parse_spec(spec: str) -> DatasetSpec:
    """Parse a dataset spec string.

    Raises:
        ValueError: unknown name or malformed ``kind:ANN:IMGDIR`` (the message lists the valid specs).
    """
    if spec in SYNTHETIC_PRESETS:
        return DatasetSpec("synthetic", preset=spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind == "pennfudan":
        if not rest:
            raise ValueError(f"malformed dataset spec {spec!r}: expected pennfudan:ROOT")
        return DatasetSpec("pennfudan", img_dir=rest)
    if sep and kind == "masks":
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"malformed dataset spec {spec!r}: expected masks:IMGDIR:MASKDIR[:CLASSNAME]")
        return DatasetSpec("masks", img_dir=parts[0], mask_dir=parts[1],
                           class_name=parts[2] if len(parts) == 3 else "object")
    if sep and kind in FILE_KINDS:
        ann_file, sep2, img_dir = rest.partition(":")
        if not sep2 or not ann_file or not img_dir:
            raise ValueError(f"malformed dataset spec {spec!r}: expected {kind}:ANN.json:IMGDIR")
        return DatasetSpec(kind, ann_file=ann_file, img_dir=img_dir)
    raise ValueError(f"unknown dataset {spec!r}; valid specs: {', '.join(VALID_SPECS)}")


def split_seed(preset: str, split: str) -> int:
    """The fixed generation seed of a synthetic (preset, split): CRC-32 of ``"preset/split"``."""
    return zlib.crc32(f"{preset}/{split}".encode())


def build_dataset(spec: str, split: Literal["train", "val"], data_cfg, train: bool) -> InstanceDataset:
    """``_build_dataset`` (below), with its decoded samples kept in memory up to ``data_cfg.ram_cache_mb`` MiB
    (``InstanceDataset.set_ram_cache``)."""
    ds = _build_dataset(spec, split, data_cfg, train)
    mb = getattr(data_cfg, "ram_cache_mb", 0)
    if mb and hasattr(ds, "set_ram_cache"):
        ds.set_ram_cache(mb)
    return ds


def _build_dataset(spec: str, split: Literal["train", "val"], data_cfg, train: bool) -> InstanceDataset:
    """Build the dataset named by ``spec``.

    Args:
        spec: a dataset spec (see the module docstring).
        split: "train" or "val"; selects the synthetic split or the hash split of a mask dataset (COCO-file
            datasets name their own file).
        data_cfg: ``harness.config.DataConfig`` (sizes, cache_dir, augmentation).
        train: apply training augmentation (random short side from ``train_short_sides`` capped by
            ``max_size``, horizontal flip with ``flip_prob``); else resize to ``test_short_side``.

    Raises:
        ValueError: unknown spec or split; ``DatasetError`` (a ValueError) for bad files.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    parsed = parse_spec(spec)
    transform = build_transform(data_cfg, train)
    if parsed.kind == "synthetic":
        from harness.data.synthetic import generate

        n_images = data_cfg.train_images if split == "train" else data_cfg.val_images
        ann_file, img_dir = generate(parsed.preset, split, n_images, data_cfg.image_size,
                                     split_seed(parsed.preset, split), data_cfg.cache_dir)
        return InstanceDataset(ann_file, img_dir, name=spec, transform=transform)
    if parsed.kind in ("pennfudan", "masks"):
        from pathlib import Path

        from harness.data.masks_png import build_mask_dataset, pennfudan_dirs
        if parsed.kind == "pennfudan":
            img_dir, mask_dir = pennfudan_dirs(parsed.img_dir)
            return build_mask_dataset(img_dir, mask_dir, split, "person", data_cfg, name=spec, transform=transform,
                                      pennfudan_root=Path(parsed.img_dir))
        return build_mask_dataset(Path(parsed.img_dir), Path(parsed.mask_dir), split, parsed.class_name, data_cfg,
                                  name=spec, transform=transform)
    if parsed.kind == "ochuman":
        from harness.data.ochuman import load_ochuman

        return load_ochuman(parsed.ann_file, parsed.img_dir, name=spec, transform=transform)
    return InstanceDataset(parsed.ann_file, parsed.img_dir, name=spec, transform=transform)


__all__ = ["SYNTHETIC_PRESETS", "VALID_SPECS", "DataWarning", "DatasetError", "DatasetSpec",
           "InstanceDataset", "build_dataset", "parse_spec", "split_seed"]
