"""Input validation shared by the dataset loader (``harness.data.coco``), ``evaluate`` and the CLI.

Everything a file on disk controls is checked here before it reaches pycocotools, PIL or an allocation
whose size it drives, because pycocotools' C code does not check its input: a compressed RLE whose
``counts`` do not add up to ``height x width`` pixels makes ``maskUtils.iou`` loop forever or decode
garbage, a polygon with huge or non-finite coordinates makes ``frPyObjects`` allocate tens of GB, and
a GT annotation id 0 reads as "unmatched" inside ``COCOeval`` (AP silently wrong).

Functions:

* ``rle_counts(counts)``: decode a compressed RLE string exactly as ``rleFrString`` (pycocotools
  ``maskApi.c``) does, refusing what it would misread (truncated values, characters outside
  ``'0'..'o'``, negative runs).
* ``check_rle(segm, h, w, what)``: an RLE dict (compressed or uncompressed) whose size is ``[h, w]``
  and whose runs add up to exactly ``h * w`` pixels, as a compressed RLE.
* ``check_polygons(segm, h, w, what)``: finite, bounded polygon coordinates; the polygons with at
  least 3 points.
* ``image_size(im, where)``: positive integer ``height`` / ``width`` within ``MAX_IMAGE_PIXELS``.
* ``validate_gt(data, path)``: the structural validation of a COCO ground-truth dict that the dataset
  loader and ``evaluate --gt`` both run, and the evaluation copy of it (see its docstring).
* ``load_rgb(path, what)``: any image PIL opens as 8-bit RGB, converted correctly, or refused.
* ``check_inference_size(h, w, n, what)``: refuse an image whose masks at the original size would
  exceed ``MAX_MASK_BYTES``.

Errors are ``DatasetError`` (a ``ValueError``) naming the file and the id.
"""
from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """Malformed dataset input (the message names the file and the offending id)."""


class DataWarning(UserWarning):
    """Annotations skipped, repaired or clipped (one warning per file)."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


MAX_IMAGE_PIXELS = _env_int("SEGBENCH_MAX_IMAGE_PIXELS", 100_000_000)
"""Largest ``height * width`` a dataset image may declare (10k x 10k px); env ``SEGBENCH_MAX_IMAGE_PIXELS``."""
MAX_MASK_BYTES = _env_int("SEGBENCH_MAX_MASK_BYTES", 4 * 1024**3)
"""Largest ``max_per_img * H * W * 4`` bytes of masks at the original size inference may hold (4 GiB)."""
MAX_POLYGON_STEPS = 20_000_000
"""Largest rasterisation work of one annotation's polygons (pycocotools upsamples every edge x5)."""
_MAX_IDS = 5


# ---------------------------------------------------------------------------------------------
# ids and sizes
def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def as_id(v: Any, what: str) -> int:
    """``v`` as an int id, or ``DatasetError`` (a string, float, bool or null id is refused)."""
    if not is_int(v):
        raise DatasetError(f"{what} must be an integer, got {v!r:.40} ({type(v).__name__})")
    return int(v)


def image_size(im: dict, where: str) -> tuple[int, int]:
    """``(height, width)`` of an ``images[]`` entry: positive ints, at most ``MAX_IMAGE_PIXELS`` pixels."""
    h, w = im.get("height"), im.get("width")
    for key, v in (("height", h), ("width", w)):
        if not is_int(v) or v <= 0:
            raise DatasetError(f"{where}: {key} must be a positive integer, got {v!r:.40}")
    if h * w > MAX_IMAGE_PIXELS:
        raise DatasetError(f"{where}: {w}x{h} px exceeds the limit of {MAX_IMAGE_PIXELS:,} pixels "
                           "(set SEGBENCH_MAX_IMAGE_PIXELS to raise it)")
    return int(h), int(w)


def check_inference_size(h: int, w: int, n: int, what: str) -> None:
    """Refuse an image whose ``n`` masks at the original ``h x w`` size (float32) exceed ``MAX_MASK_BYTES``."""
    need = int(n) * int(h) * int(w) * 4
    if need > MAX_MASK_BYTES:
        raise ValueError(f"{what}: {w}x{h} px with up to {n} predictions would hold {need / 1024**3:.1f} GiB of masks "
                         f"at the original size (limit {MAX_MASK_BYTES / 1024**3:.1f} GiB, SEGBENCH_MAX_MASK_BYTES); "
                         "resize the image or lower method.max_per_img")


# ---------------------------------------------------------------------------------------------
# RLE
def rle_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (pycocotools ``rleFrString``), int64.

    Raises:
        ValueError: empty, characters outside ``'0'..'o'``, a truncated last value, a value of more than
            7 characters (over 2^34), or a negative run length.
    """
    b = counts.encode("latin-1", errors="replace") if isinstance(counts, str) else bytes(counts)
    a = np.frombuffer(b, np.uint8).astype(np.int64) - 48
    if a.size == 0:
        raise ValueError("RLE counts are empty")
    if (a < 0).any() or (a > 63).any():
        raise ValueError("RLE counts hold characters outside '0'..'o'")
    more = (a & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE counts are truncated (the last value is unfinished)")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 7:
        raise ValueError("RLE counts hold a value of more than 7 characters")
    group = np.repeat(np.arange(len(ends)), lengths)
    k = np.arange(a.size) - starts[group]
    vals = np.zeros(len(ends), np.int64)
    np.add.at(vals, group, (a & 0x1F) << (5 * k))
    neg = (a[ends] & 0x10) != 0
    vals[neg] -= np.left_shift(np.int64(1), 5 * lengths[neg])
    cnts = vals.copy()  # values after the third are deltas to the count two back (maskApi.c)
    if len(vals) > 3:
        cnts[1::2] = np.cumsum(vals[1::2])
    if len(vals) > 4:
        cnts[2::2] = np.cumsum(vals[2::2])
    if (cnts < 0).any():
        raise ValueError("RLE counts decode to a negative run length")
    return cnts


def check_rle(segm: dict, h: int, w: int, what: str) -> dict:
    """An RLE dict checked against the image size ``h x w``, as a compressed RLE (``counts`` bytes).

    Raises:
        DatasetError: ``size`` not two integers equal to ``[h, w]``, ``counts`` of the wrong type, or runs
            that do not add up to exactly ``h * w`` pixels (pycocotools would hang or decode garbage).
    """
    from pycocotools import mask as mask_utils

    size, counts = segm.get("size"), segm.get("counts")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(is_int(s) for s in size):
        raise DatasetError(f"{what}: RLE size must be two integers [height, width], got {size!r:.60}")
    if [int(s) for s in size] != [h, w]:
        raise DatasetError(f"{what}: RLE size {list(size)} != image size {[h, w]}")
    if isinstance(counts, list):
        if len(counts) > h * w + 1 or not all(is_int(c) and c >= 0 for c in counts):
            raise DatasetError(f"{what}: uncompressed RLE counts must be non-negative integers")
        total = int(sum(counts))
        if total != h * w:
            raise DatasetError(f"{what}: RLE counts add up to {total} pixels, not height x width = {h * w}")
        return mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    if not isinstance(counts, (str, bytes)):
        raise DatasetError(f"{what}: RLE counts must be a string or a list of integers, got {type(counts).__name__}")
    try:
        total = int(rle_counts(counts).sum())
    except ValueError as e:
        raise DatasetError(f"{what}: corrupt compressed RLE ({e})") from None
    if total != h * w:
        raise DatasetError(f"{what}: RLE counts add up to {total} pixels, not height x width = {h * w} "
                           "(truncated or corrupt counts)")
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def empty_rle(h: int, w: int) -> dict:
    """A compressed RLE of an all-zero ``h x w`` mask (``counts`` str)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.zeros((h, w, 1), np.uint8, order="F"))[0]
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


# ---------------------------------------------------------------------------------------------
# polygons
def check_polygons(segm: list, h: int, w: int, what: str) -> list[list[float]]:
    """The polygons of ``segm`` with at least 3 points, as float lists; [] when none has.

    Raises:
        DatasetError: a polygon that is not a flat list of numbers, an odd coordinate count, a NaN / inf /
            non-number coordinate, a coordinate farther than 4 image sizes from the image, or polygons whose
            rasterisation would exceed ``MAX_POLYGON_STEPS`` (pycocotools allocates per upsampled edge pixel).
    """
    bound = 4.0 * max(h, w)
    out = []
    steps = 0.0
    for poly in segm:
        if not isinstance(poly, list) or len(poly) % 2:
            raise DatasetError(f"{what}: polygon must be a flat list of x, y pairs")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
            raise DatasetError(f"{what}: polygon coordinates must be numbers")
        arr = np.asarray(poly, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise DatasetError(f"{what}: polygon has a NaN or infinite coordinate")
        if arr.size and (np.abs(arr) > bound).any():
            raise DatasetError(f"{what}: polygon coordinate {arr[np.abs(arr) > bound][0]:g} lies far outside "
                               f"the {w}x{h} image (limit +-{bound:g})")
        if len(poly) >= 6:  # pycocotools would read a 4-number list as a box
            xy = arr.reshape(-1, 2)
            d = np.abs(np.diff(np.vstack([xy, xy[:1]]), axis=0)).max(axis=1)
            steps += float(d.sum()) * 5 + len(xy)
            out.append([float(v) for v in poly])
    if steps > MAX_POLYGON_STEPS:
        raise DatasetError(f"{what}: polygons too long to rasterise ({steps:.3g} upsampled edge pixels, "
                           f"limit {MAX_POLYGON_STEPS:.3g})")
    return out


def has_segmentation(segm: Any) -> bool:
    return segm is not None and not (isinstance(segm, (list, dict)) and len(segm) == 0)


def segm_rle(segm: Any, h: int, w: int, what: str) -> dict | None:
    """A checked ``segmentation`` as one compressed RLE, or None when no polygon has 3 points.

    Raises:
        DatasetError: unsupported type, bad polygon (``check_polygons``) or RLE (``check_rle``).
    """
    from pycocotools import mask as mask_utils
    if isinstance(segm, list):
        polys = check_polygons(segm, h, w, what)
        if not polys:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        return check_rle(segm, h, w, what)
    raise DatasetError(f"{what}: unsupported segmentation type {type(segm).__name__} "
                       "(expected polygons or an RLE dict with 'size' and 'counts')")


# ---------------------------------------------------------------------------------------------
# ground truth
def _ids(ids: list) -> str:
    return f"{ids[:_MAX_IDS]}" + (f" (+{len(ids) - _MAX_IDS} more)" if len(ids) > _MAX_IDS else "")


def validate_gt(data: Any, path: str | os.PathLike | None = None, *, require_files: bool = False,
                warn: bool = True) -> tuple[dict, dict[str, list]]:
    """Validate a COCO ground-truth dict; return the copy COCOeval can score, and what was repaired.

    The same checks run when a dataset is loaded (``InstanceDataset``) and for ``evaluate --gt``.  Errors
    (``DatasetError`` naming the file and the id): not a dict, missing / non-list ``images`` /
    ``annotations`` / ``categories``, no images or categories, a non-integer / duplicate id, an image
    without ``height`` / ``width`` or with a non-positive / non-integer / too large size, an annotation of
    an unknown image or category, an unsupported or malformed segmentation (odd polygon, NaN / huge
    coordinates, RLE size != image size, RLE counts that do not add up to height x width), an ``area`` that
    is not a non-negative finite number, ``iscrowd`` other than 0 / 1, a ``bbox`` of 4 values that are not
    all finite numbers.

    Repaired in the evaluation copy and counted (``repairs``, one ``DataWarning`` when ``warn``):

    * ``no_segmentation`` (None, [], {}, absent) and ``degenerate_polygon`` (no polygon of 3 points): an
      empty mask, so the object stays in the GT and counts as missed (the OCHuman protocol);
    * ``area_computed``: ``area`` absent, computed from the mask;
    * ``iscrowd_missing``: ``iscrowd`` absent, taken as 0;
    * ``id_zero_remapped``: annotation id 0 (pycocotools reads a matched id 0 as "unmatched") renumbered to
      max id + 1.

    Args:
        data: the parsed JSON.
        path: the file, named in messages.
        require_files: images need a ``file_name`` (the dataset loader).
        warn: emit the ``DataWarning``.
    Returns:
        ``(clean, repairs)``: a new dict (the input is not modified), reason -> annotation ids.
    """
    from pycocotools import mask as mask_utils

    src = str(path) if path is not None else "ground truth"
    if not isinstance(data, dict):
        raise DatasetError(f"{src}: expected a JSON object at the top level, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{src}: missing or non-list key {key!r}")
    if not data["images"]:
        raise DatasetError(f"{src}: the dataset is empty (no images)")
    if not data["categories"]:
        raise DatasetError(f"{src}: no categories")
    cats = set()
    for c in data["categories"]:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DatasetError(f"{src}: a category lacks key(s) ['id', 'name'] ({c!r:.60})")
        cid = as_id(c["id"], f"{src}: category id")
        if cid in cats:
            raise DatasetError(f"{src}: duplicate category id {cid}")
        cats.add(cid)
    sizes: dict[int, tuple[int, int]] = {}
    for im in data["images"]:
        if not isinstance(im, dict):
            raise DatasetError(f"{src}: an image entry is a {type(im).__name__}, not an object")
        keys = ("id", "file_name", "height", "width") if require_files else ("id", "height", "width")
        missing = [k for k in keys if k not in im]
        if missing:
            raise DatasetError(f"{src}: image {im.get('id', '?')!r:.40} lacks key(s) {missing}")
        iid = as_id(im["id"], f"{src}: image id")
        if iid in sizes:
            raise DatasetError(f"{src}: duplicate image id {iid}")
        if require_files and not isinstance(im["file_name"], str):
            raise DatasetError(f"{src}: image {iid}: file_name must be a string, got {im['file_name']!r:.40}")
        sizes[iid] = image_size(im, f"{src}: image {iid}")

    repairs: dict[str, list] = {"no_segmentation": [], "degenerate_polygon": [], "area_computed": [],
                                "iscrowd_missing": [], "id_zero_remapped": []}
    anns = []
    seen: set[int] = set()
    for a in data["annotations"]:
        if not isinstance(a, dict):
            raise DatasetError(f"{src}: an annotation is a {type(a).__name__}, not an object")
        missing = [k for k in ("id", "image_id", "category_id") if k not in a]
        if missing:
            raise DatasetError(f"{src}: annotation {a.get('id', '?')!r:.40} lacks key(s) {missing}")
        aid = as_id(a["id"], f"{src}: annotation id")
        what = f"{src}: annotation {aid}"
        if aid in seen:
            raise DatasetError(f"{src}: duplicate annotation id {aid}")
        seen.add(aid)
        iid = as_id(a["image_id"], f"{what}: image_id")
        if iid not in sizes:
            raise DatasetError(f"{what} refers to unknown image id {iid}")
        cid = as_id(a["category_id"], f"{what}: category_id")
        if cid not in cats:
            raise DatasetError(f"{what} has unknown category id {cid} (known: {sorted(cats)[:20]})")
        h, w = sizes[iid]
        out = dict(a)
        segm = a.get("segmentation")
        rle = None
        if not has_segmentation(segm):
            repairs["no_segmentation"].append(aid)
        else:
            rle = segm_rle(segm, h, w, what)
            if rle is None:
                repairs["degenerate_polygon"].append(aid)
            elif isinstance(segm, list):
                out["segmentation"] = check_polygons(segm, h, w, what)
            else:
                c = rle["counts"]
                out["segmentation"] = {"size": [h, w], "counts": c.decode("ascii") if isinstance(c, bytes) else c}
        if rle is None:
            out["segmentation"] = empty_rle(h, w)
        if "area" not in a:
            repairs["area_computed"].append(aid)
            out["area"] = float(mask_utils.area(rle)) if rle is not None else 0.0
        elif not is_number(a["area"]) or a["area"] < 0:
            raise DatasetError(f"{what}: area must be a non-negative finite number, got {a['area']!r:.40}")
        if "iscrowd" not in a:
            repairs["iscrowd_missing"].append(aid)
            out["iscrowd"] = 0
        elif a["iscrowd"] not in (0, 1) or isinstance(a["iscrowd"], float):
            raise DatasetError(f"{what}: iscrowd must be 0 or 1, got {a['iscrowd']!r:.40}")
        bbox = a.get("bbox")
        if isinstance(bbox, (list, tuple)) and len(bbox) == 4 and not all(is_number(v) for v in bbox):
            raise DatasetError(f"{what}: bbox must be 4 finite numbers, got {bbox!r:.60}")
        anns.append(out)
    if 0 in seen:
        new = max(seen) + 1
        for out in anns:
            if out["id"] == 0:
                out["id"] = new
        repairs["id_zero_remapped"].append(0)
    clean = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    clean["images"] = [dict(im) for im in data["images"]]
    clean["categories"] = copy.deepcopy(data["categories"])
    clean["annotations"] = anns
    if warn:
        notes = {"no_segmentation": "an empty mask, counted as missed", "degenerate_polygon": "an empty mask",
                 "area_computed": "area from the mask", "iscrowd_missing": "iscrowd 0",
                 "id_zero_remapped": f"annotation id 0 renumbered to {max(seen) + 1 if seen else 1}"}
        parts = [f"{r}={len(ids)} (ids {_ids(ids)}: {notes[r]})" for r, ids in repairs.items() if ids]
        if parts:
            warnings.warn(f"{src}: ground truth repaired for evaluation: " + "; ".join(parts),
                          DataWarning, stacklevel=3)
    return clean, repairs


# ---------------------------------------------------------------------------------------------
# images
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def load_rgb(path: str | os.PathLike, what: str, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB.

    Conversions: RGB as is; L, 1, P, CMYK, YCbCr by PIL; modes with alpha (RGBA, LA, PA, P with
    transparency) drop the alpha channel (colour values as stored, no compositing); 16-bit (I;16*) and
    32-bit integer (I) grey images holding values in [0, 65535] are scaled by 255 / 65535 (PIL's own
    ``convert`` clips them at 255 instead, which turns most of a 16-bit image white).  Refused (``DatasetError``
    naming ``what`` and the mode): float (F), I with values outside [0, 65535], modes PIL cannot convert.

    ``expected_hw``: the (height, width) the annotation file gives; a file of another size is refused from its
    header, before decoding (as is one over ``MAX_IMAGE_PIXELS``: a corrupt header can claim any size).

    Raises:
        DatasetError: unreadable, corrupt or truncated file, an unsupported mode, a size other than
            ``expected_hw`` or over ``MAX_IMAGE_PIXELS``.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as pil:
            w, h = pil.size
            if expected_hw is not None and (h, w) != tuple(expected_hw):
                raise DatasetError(f"{what} is {w}x{h} (WxH) but the JSON says {expected_hw[1]}x{expected_hw[0]}")
            if w * h > MAX_IMAGE_PIXELS:
                raise DatasetError(f"{what}: {w}x{h} px exceeds the limit of {MAX_IMAGE_PIXELS:,} pixels "
                                   "(set SEGBENCH_MAX_IMAGE_PIXELS to raise it)")
            pil.load()
            mode = pil.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                arr = np.asarray(pil).astype(np.int64)
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise DatasetError(f"{what}: image mode {mode} with values outside [0, 65535] "
                                       f"({arr.min()}..{arr.max()}) has no 8-bit reading; convert it to RGB")
                grey = np.round(arr * (255.0 / 65535.0)).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            if mode == "F":
                raise DatasetError(f"{what}: image mode F (32-bit float) has no defined 8-bit reading; "
                                   "convert it to RGB or 8-bit grey")
            if mode == "P" and "transparency" in pil.info:
                pil = pil.convert("RGBA")
            rgb = pil.convert("RGB")
            arr = np.asarray(rgb, dtype=np.uint8)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{what}: image file not found") from None
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{what}: image too large to decode ({e})") from None
    except MemoryError:
        raise DatasetError(f"{what}: out of memory decoding the image (corrupt header?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, TypeError) as e:
        raise DatasetError(f"{what}: cannot read the image ({type(e).__name__}: {e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DatasetError(f"{what}: image decodes to shape {arr.shape}, not (H, W, 3)")
    return arr


# ---------------------------------------------------------------------------------------------
# checkpoints and output locations
class CheckpointError(RuntimeError):
    """An empty, truncated or corrupt checkpoint file (the message names it)."""


def load_checkpoint(path: str | os.PathLike, *, weights_only: bool = True, key: str | None = None) -> Any:
    """``torch.load(path)`` (on the CPU), or ``CheckpointError`` naming the file when it is empty, truncated or
    not a checkpoint; with ``key``, the entry ``key`` of the saved dict (``CheckpointError`` when absent)."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path}: empty checkpoint file (0 bytes); delete it to train the run again")
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, OSError, ValueError, KeyError,
            AttributeError, TypeError, ImportError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(e).__name__}: {str(e)[:200]}); "
                              "delete it to train the run again") from None
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise CheckpointError(f"{path}: not a training checkpoint (no {key!r} entry); delete it to train again")
        return obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Create directory ``path`` if needed and check that a file can be written in it, before any work.

    Raises:
        ValueError: naming ``what`` and the path: it is a file, or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} exists but is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{what} {path} is not writable ({e.strerror or e})") from None
    return path
