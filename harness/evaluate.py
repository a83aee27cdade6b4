"""COCO-style mask evaluation: predictions -> COCO results JSON (RLE) -> COCOeval segm metrics.

Data flow: ``run_inference(method, dataset)`` runs ``method.predict`` over a dataset and converts every
``Instances`` into COCO results (``instances_to_coco_results``); ``coco_segm_eval`` /
``ochuman_eval`` score a results list against a COCO ground-truth JSON; ``evaluate_results`` ties the
two to a dataset and an ``EvalConfig``.  Predictions are kept as COCO results JSON (``save_results``)
so that anyone can recompute the metrics with pycocotools.

Protocol (pycocotools ``COCOeval(iouType="segm")``): IoU thresholds 0.50:0.05:0.95, 101 recall points,
maxDets [1, 10, 100]; area ranges small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10] px^2 taken
from the GT ``area`` field (not recomputed from the mask); only ``iscrowd=1`` GT are ignore regions.
The returned metrics are ``COCOeval.stats[0..11]`` x 100; a metric that pycocotools reports as -1
(no GT in that area range) is NaN here.  The raw ``stats`` (12 floats in [0, 1] or -1) are kept
unchanged under ``"stats"``.

Backends: ``"pycocotools"`` (the reference) and ``"faster"`` (``faster_coco_eval.COCOeval_faster``,
a C++ port, optional extra ``segbench[fast]``; its parity with pycocotools is tested on tiny_coco).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from harness.data.types import collate
from harness.validate import DatasetError, check_inference_size, check_rle, validate_gt
from methods.base import Instances

Backend = Literal["pycocotools", "faster"]

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""Names of ``COCOeval.stats[0..11]``, in order."""

# a compressed COCO RLE string uses the characters 48..111 ('0'..'o'), see pycocotools maskApi.c
_RLE_CHARS = re.compile(r"[0-o]+")
_RESULT_KEYS = ("image_id", "category_id", "segmentation", "score")


# ---------------------------------------------------------------------------------------------
# Instances <-> COCO results
def instances_to_coco_results(inst: Instances, image_id: int, cat_ids: Sequence[int]) -> list[dict]:
    """Convert the predictions of one image into COCO results (compressed RLE).

    Args:
        inst: ``Instances`` with ``masks`` (Tensor[N, H0, W0], bool, original image frame),
            ``scores`` (Tensor[N], float) and ``labels`` (Tensor[N], int64, contiguous 0-based).
        image_id: the COCO ``image_id`` of the image.
        cat_ids: contiguous label -> COCO ``category_id``.
    Returns:
        N dicts ``{"image_id", "category_id", "segmentation": {"size": [H0, W0], "counts": str},
        "score"}`` in the order of ``inst``.
    Raises:
        ValueError: a label outside ``[0, len(cat_ids))`` (names the image id).
    """
    n = len(inst)
    if n == 0:
        return []
    labels = inst.labels.detach().cpu().to(torch.int64).tolist()
    bad = [lab for lab in labels if not 0 <= lab < len(cat_ids)]
    if bad:
        raise ValueError(f"image {image_id}: labels {sorted(set(bad))[:5]} outside [0, {len(cat_ids)})")
    masks = inst.masks.detach().cpu().to(torch.uint8).numpy()  # (N, H0, W0)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))  # (H0, W0, N) Fortran order
    scores = inst.scores.detach().cpu().float().tolist()
    out = []
    for rle, lab, score in zip(rles, labels, scores):
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"image_id": int(image_id), "category_id": int(cat_ids[lab]),
                    "segmentation": rle, "score": float(score)})
    return out


def save_results(path: str | os.PathLike, results: list[dict]) -> Path:
    """Write COCO results JSON atomically (temporary file + rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_results(path: str | os.PathLike) -> list[dict]:
    """Read a COCO results JSON (a list of result dicts).

    Raises:
        FileNotFoundError: no such file; ValueError: not JSON or not a list (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO results file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the results file ({e.strerror or e})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: COCO results must be a JSON list, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------
# ground truth and validation
def _quiet():
    """Silence pycocotools' / faster-coco-eval's progress prints."""
    return contextlib.redirect_stdout(io.StringIO())


def _faster_module():
    try:
        import faster_coco_eval
    except ImportError:
        raise ImportError("backend='faster' needs faster-coco-eval: pip install 'faster-coco-eval>=1.5' "
                          "(or the project's [fast] extra), or use backend='pycocotools'") from None
    return faster_coco_eval


def load_gt(gt: str | os.PathLike | dict | COCO, backend: Backend = "pycocotools"):
    """The ground truth as the backend's COCO object.

    Args:
        gt: a COCO annotation JSON path, its parsed dict, or a ``pycocotools.coco.COCO``.
        backend: "pycocotools" or "faster".
    Returns:
        a new ``pycocotools.coco.COCO`` or ``faster_coco_eval.COCO``; the input is never modified
        (COCOeval converts GT polygons to RLE in place, so a ``COCO`` passed in is copied: its
        annotation dicts shallowly, a dict deeply).
    Raises:
        FileNotFoundError: missing file; ValueError: unknown backend; ImportError: faster missing.
    """
    if backend not in ("pycocotools", "faster"):
        raise ValueError(f"unknown evaluation backend {backend!r}; valid: pycocotools, faster")
    if isinstance(gt, (str, os.PathLike)) and not Path(gt).is_file():
        raise FileNotFoundError(f"ground-truth annotation file not found: {gt}")
    if isinstance(gt, (str, os.PathLike)):  # the dataset loader's validation (harness.validate.validate_gt)
        from harness.data.coco import read_json
        gt, _ = validate_gt(read_json(gt), gt)
    elif isinstance(gt, dict):
        gt, _ = validate_gt(gt, "ground truth")
    if backend == "faster":
        fce = _faster_module()
        if not isinstance(gt, dict):
            gt = copy.deepcopy(gt.dataset)
        with _quiet():
            return fce.COCO(gt)
    with _quiet():
        if not isinstance(gt, dict):  # COCOeval rewrites GT annotations in place: evaluate a shallow copy
            gt = {**gt.dataset, "annotations": [dict(a) for a in gt.dataset.get("annotations", [])]}
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        return coco


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def validate_results(results: list[dict], coco_gt, source: str | None = None) -> None:
    """Check COCO segm results against the ground truth before evaluation.

    Checks every result has ``image_id``, ``category_id``, ``segmentation`` (compressed RLE whose
    ``size`` equals the GT image's [height, width]) and a finite ``score``; that every image id and
    category id exists in the GT.

    Args:
        results: COCO results dicts.
        coco_gt: the ground truth (pycocotools or faster-coco-eval ``COCO``).
        source: the results file, named in errors when given.
    Raises:
        ValueError: naming ``source``, the result index and the offending ids.
    """
    where = _where(source)
    if not isinstance(results, list):
        raise ValueError(f"{where}COCO results must be a list, got {type(results).__name__}")
    imgs = coco_gt.imgs
    cats = set(coco_gt.getCatIds())
    bad_imgs: list = []
    bad_cats: list = []
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValueError(f"{where}result {i} is a {type(r).__name__}, not a dict")
        missing = [k for k in _RESULT_KEYS if k not in r]
        if missing:
            raise ValueError(f"{where}result {i} (image {r.get('image_id')}) lacks {missing}")
        if r["image_id"] not in imgs:
            bad_imgs.append(r["image_id"])
            continue
        if r["category_id"] not in cats:
            bad_cats.append(r["category_id"])
            continue
        what = f"{where}result {i} (image {r['image_id']})"
        score = r["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"{what}: score {score!r} is not a finite number")
        img = imgs[r["image_id"]]
        _check_rle(r["segmentation"], (img["height"], img["width"]), what)
    if bad_imgs:
        uniq = sorted(set(bad_imgs), key=str)
        raise ValueError(f"{where}{len(bad_imgs)} results have image ids not in the ground truth, "
                         f"first: {uniq[:5]}")
    if bad_cats:
        uniq = sorted(set(bad_cats), key=str)
        raise ValueError(f"{where}{len(bad_cats)} results have category ids not in the ground truth "
                         f"{sorted(cats)[:10]}..., first: {uniq[:5]}")


def _check_rle(seg: Any, hw: tuple[int, int], what: str) -> None:
    """A result's segmentation: a compressed RLE of the image size whose runs add up to exactly H x W pixels
    (``harness.validate.check_rle``; pycocotools loops forever in ``iou`` on truncated counts)."""
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        raise ValueError(f"{what}: segmentation must be a compressed RLE dict with 'size' and 'counts'")
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str) or not _RLE_CHARS.fullmatch(counts):
        raise ValueError(f"{what}: RLE counts must be a non-empty compressed string "
                         "(see pycocotools.mask.encode)")
    try:
        check_rle({"size": seg["size"], "counts": counts}, int(hw[0]), int(hw[1]), what)
    except DatasetError as e:
        raise ValueError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# COCOeval
def coco_segm_eval(gt, results, *, backend: Backend = "pycocotools", per_class: bool = True,
                   class_names: Sequence[str] | None = None, img_ids: Iterable[int] | None = None,
                   cat_ids: Sequence[int] | None = None, use_cats: bool = True,
                   max_dets: int = 100, source: str | None = None, area_scale: float = 1.0) -> dict:
    """COCO mask AP / AR of ``results`` against ``gt`` (pycocotools ``COCOeval`` segm).

    Args:
        gt: GT annotation JSON path, its dict, or a pycocotools ``COCO``.
        results: COCO results (list of dicts with compressed RLE) or a results JSON path.
        backend: "pycocotools" (reference) or "faster" (faster-coco-eval ``COCOeval_faster``).
        per_class: add ``"per_class": {name: AP x100, or None when the class has no GT}`` (AP over
            IoU 0.50:0.95, area all, maxDets ``max_dets``; needs ``use_cats``).
        class_names: names aligned with ``cat_ids`` (or with the sorted GT category ids when
            ``cat_ids`` is None); default: the GT categories' ``name``.
        img_ids: evaluate only these images (``params.imgIds``); default all GT images.
        cat_ids: evaluate only these categories (``params.catIds``); default all GT categories.
        use_cats: ``params.useCats`` (0 = class-agnostic matching).
        max_dets: ``params.maxDets = [1, 10, max_dets]`` (>= 10; AP and AR100 use ``max_dets``).
        source: name of the results file for error messages (set automatically for a path).
        area_scale: multiplies COCO's small / medium thresholds (32^2, 96^2 px^2) in ``params.areaRng``.
            1.0 (the standard protocol) for real data; the synthetic presets record their canvas scale
            in the annotation file's ``info["coco_area_scale"]`` so that APs / APm / APl bucket their
            objects as COCO's would on a COCO-sized image.  Recorded in the output as ``area_scale``.
    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}``
        (float, x100; NaN where pycocotools gives -1), ``"stats"`` (the raw 12 ``COCOeval.stats``),
        ``"n_results"`` and, with ``per_class``, ``"per_class"``.  With no results at all every
        metric with GT is 0.0 (the evaluation runs against an empty detection set).
    Raises:
        ValueError: invalid results (see ``validate_results``), unknown backend, a
            ``class_names`` / ``cat_ids`` length mismatch, ``max_dets`` < 10.
        ImportError: backend "faster" without faster-coco-eval.
    """
    if max_dets < 10:
        raise ValueError(f"max_dets must be >= 10 (COCOeval maxDets [1, 10, max_dets]), got {max_dets}")
    coco_gt = load_gt(gt, backend)
    if isinstance(results, (str, os.PathLike)):
        source = source or str(results)
        results = load_results(results)
    validate_results(results, coco_gt, source)
    cats = list(cat_ids) if cat_ids is not None else sorted(coco_gt.getCatIds())
    if class_names is not None and len(class_names) != len(cats):
        raise ValueError(f"class_names has {len(class_names)} names for {len(cats)} categories")

    evaluator = _make_evaluator(coco_gt, results, backend)
    p = evaluator.params
    p.imgIds = sorted(int(i) for i in img_ids) if img_ids is not None else sorted(coco_gt.getImgIds())
    p.catIds = cats
    p.useCats = int(bool(use_cats))
    p.maxDets = [1, 10, int(max_dets)]
    if area_scale != 1.0:
        t1, t2 = 32.0**2 * area_scale, 96.0**2 * area_scale
        p.areaRng = [[0.0, 1e10], [0.0, t1], [t1, t2], [t2, 1e10]]
    with _quiet():
        evaluator.evaluate()
        evaluator.accumulate()
        if int(max_dets) == 100:  # summarize() hard-codes maxDets 100
            evaluator.summarize()
    stats = [float(s) for s in evaluator.stats[:12]] if int(max_dets) == 100 else summarize_stats(evaluator)
    out: dict[str, Any] = {name: (100.0 * s if s >= 0 else float("nan"))
                           for name, s in zip(STAT_NAMES, stats)}
    out["stats"] = stats
    out["n_results"] = len(results)
    out["area_scale"] = float(area_scale)
    if per_class and use_cats:
        names = list(class_names) if class_names is not None else [coco_gt.cats[c]["name"] for c in cats]
        precision = np.asarray(evaluator.eval["precision"])  # (T iou, R recall, K cats, A areas, M maxDets)
        per = {}
        for k, name in enumerate(names):
            pr = precision[:, :, k, 0, -1]
            valid = pr[pr > -1]
            per[name] = float(100.0 * valid.mean()) if valid.size else None
        out["per_class"] = per
    return out


def summarize_stats(evaluator) -> list[float]:
    """``COCOeval.stats[0..11]`` from ``evaluator.eval["precision"]`` / ``["recall"]`` for any ``maxDets``.

    pycocotools' ``summarize`` hard-codes maxDets 100 for AP, APs/m/l and AR100 (with ``maxDets = [1, 10, 300]``
    it finds no such index and reports -1 / NaN); here those read the last ``maxDets`` entry (``max_dets``), AR1
    and AR10 the entries 1 and 10.  Same averaging as ``summarize``: the mean over the entries > -1, else -1.
    """
    p = evaluator.params
    precision = np.asarray(evaluator.eval["precision"])  # (T iou, R recall, K cats, A areas, M maxDets)
    recall = np.asarray(evaluator.eval["recall"])  # (T, K, A, M)
    iou = np.asarray(p.iouThrs)
    max_dets = list(p.maxDets)

    def mean(x: np.ndarray) -> float:
        x = x[x > -1]
        return float(x.mean()) if x.size else -1.0

    def ap(area: int = 0, thr: float | None = None) -> float:
        pr = precision[..., area, -1]
        if thr is not None:
            pr = pr[np.flatnonzero(np.isclose(iou, thr))]
        return mean(pr)

    def ar(area: int = 0, m: int = -1) -> float:
        return mean(recall[:, :, area, m])

    return [ap(), ap(thr=0.5), ap(thr=0.75), ap(1), ap(2), ap(3),
            ar(m=max_dets.index(1)), ar(m=max_dets.index(10)), ar(), ar(1), ar(2), ar(3)]


def _make_evaluator(coco_gt, results: list[dict], backend: Backend):
    """A COCOeval (or COCOeval_faster) over ``results``; results dicts are copied, never mutated."""
    anns = [dict(r) for r in results]
    if backend == "faster":
        fce = _faster_module()
        with _quiet():
            coco_dt = coco_gt.loadRes(anns) if anns else _empty_dt(coco_gt, fce.COCO)
        return fce.COCOeval_faster(coco_gt, coco_dt, iouType="segm", print_function=lambda *a, **k: None)
    with _quiet():
        coco_dt = coco_gt.loadRes(anns) if anns else _empty_dt(coco_gt, COCO)
    return COCOeval(coco_gt, coco_dt, iouType="segm")


def _empty_dt(coco_gt, coco_cls):
    """A detection set with the GT's images and categories and no annotations (pycocotools'
    ``loadRes`` cannot load an empty list)."""
    dt = coco_cls()
    dt.dataset = {"images": list(coco_gt.dataset["images"]),
                  "categories": copy.deepcopy(coco_gt.dataset["categories"]), "annotations": []}
    with _quiet():
        dt.createIndex()
    return dt


def ochuman_eval(gt, results, *, backend: Backend = "pycocotools", source: str | None = None) -> dict:
    """The OCHuman protocol (Zhang et al., Pose2Seg, CVPR 2019): COCOeval segm on category 1 (person).

    OCHuman's ``area`` field is the *box* area, not the mask area, so APs / APm / APl (and ARs/m/l)
    bucket people by box size; they are not comparable with COCO's mask-area buckets.  Every
    annotation has iscrowd=0; a person with a box but no mask still counts as GT.

    Args:
        gt, results, backend, source: as ``coco_segm_eval``.
    Returns:
        the ``coco_segm_eval`` dict (no per-class entry) plus ``"AR"`` (= AR100), the numbers
        OCHuman tables report as AP, AP50, AP75 and AR.
    """
    out = coco_segm_eval(gt, results, backend=backend, per_class=False, cat_ids=[1], source=source)
    out["AR"] = out["AR100"]
    return out


# ---------------------------------------------------------------------------------------------
# inference over a dataset
def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Indices of rank ``rank``'s shard of a dataset of ``n`` images (strided, disjoint, complete)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, {world_size})")
    return list(range(rank, n, world_size))


def run_inference(method, dataset, *, device: torch.device | str, batch_size: int = 1,
                  progress: bool = True, indices: Sequence[int] | None = None,
                  size_divisor: int = 32) -> list[dict]:
    """Predict every image of ``dataset`` (or its ``indices``) and return COCO results.

    The dataset yields ``harness.data.types.Sample`` with eval transforms; samples are batched with
    ``collate(samples, size_divisor)`` and passed to ``method.predict(images, image_sizes,
    orig_sizes)`` under ``torch.no_grad()`` in eval mode (the method's previous mode is restored).
    For methods with ``uses_ground_truth = True`` (the oracles) ``method.set_ground_truth(
    dataset.coco, batch_image_ids, dataset.cat_ids)`` is called before each batch.

    Args:
        method: a ``methods.base.Method`` (moved to ``device``).
        dataset: has ``__getitem__ -> Sample``, ``__len__``, ``cat_ids`` (label -> category id) and,
            for oracles, ``coco``.
        device: where images and the method run.
        batch_size: images per ``predict`` call.
        progress: show a tqdm bar.
        indices: evaluate only these dataset indices (a distributed shard, see ``shard_indices``).
        size_divisor: batch padding multiple, px (``DataConfig.size_divisor``).
    Returns:
        COCO results (compressed RLE) of all images, in dataset order.
    Raises:
        ValueError: a method returns the wrong number of Instances or masks not at the original
            size (names the image id).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    uses_gt = bool(getattr(method, "uses_ground_truth", False))
    was_training = method.training
    method.to(device)
    method.eval()
    n_max = int(getattr(getattr(method, "cfg", None), "max_per_img", 100) or 100)
    if hasattr(dataset, "image_size"):  # refuse before any work an image whose masks would not fit in memory
        ids = getattr(dataset, "image_ids", None)
        for i in order:
            check_inference_size(*dataset.image_size(i), n_max, f"image {ids[i] if ids is not None else i}")
    results: list[dict] = []
    try:
        with torch.no_grad(), tqdm(total=len(order), desc="inference", disable=not progress,
                                   unit="img", dynamic_ncols=True) as bar:
            for start in range(0, len(order), batch_size):
                batch = collate([dataset[i] for i in order[start:start + batch_size]], size_divisor)
                for image_id, orig in zip(batch.image_ids, batch.orig_sizes):
                    check_inference_size(orig[0], orig[1], n_max, f"image {image_id}")
                if uses_gt:
                    method.set_ground_truth(dataset.coco, batch.image_ids, dataset.cat_ids)
                if getattr(method, "uses_gt_semantics", False):  # CASNet oracle mode (Tables III-IV)
                    method.set_ground_truth_semantics(batch.sem_segs)
                preds = method.predict(batch.images.to(device), batch.image_sizes, batch.orig_sizes)
                if len(preds) != len(batch.image_ids):
                    raise ValueError(f"{type(method).__name__}.predict returned {len(preds)} Instances for "
                                     f"{len(batch.image_ids)} images (ids {batch.image_ids})")
                for inst, image_id, orig in zip(preds, batch.image_ids, batch.orig_sizes):
                    if tuple(inst.masks.shape[-2:]) != tuple(orig):
                        raise ValueError(f"image {image_id}: masks are {tuple(inst.masks.shape[-2:])}, "
                                         f"expected the original size {tuple(orig)}")
                    results.extend(instances_to_coco_results(inst, image_id, dataset.cat_ids))
                bar.update(len(batch.image_ids))
    finally:
        method.train(was_training)
    return results


def evaluate_results(dataset, results: list[dict], eval_cfg, *, protocol: str | None = None) -> dict:
    """Score ``results`` on ``dataset`` with the settings of ``eval_cfg`` (``harness.config.EvalConfig``).

    Args:
        dataset: has ``coco`` (the GT), ``image_ids``, ``cat_ids``, ``class_names``.
        results: COCO results of (a subset of) ``dataset.image_ids``.
        eval_cfg: ``EvalConfig`` (backend, max_dets, per_class).
        protocol: "coco" or "ochuman"; default: ``dataset.protocol`` if the dataset has one, else
            "ochuman" for datasets built from an ``ochuman:ANN:IMGDIR`` spec (``dataset.name``), else
            "coco".
    Returns:
        the ``coco_segm_eval`` / ``ochuman_eval`` metrics dict.
    """
    if protocol is None:
        protocol = getattr(dataset, "protocol", None) or (
            "ochuman" if str(getattr(dataset, "name", "")).startswith("ochuman:") else "coco")
    if protocol == "ochuman":
        return ochuman_eval(dataset.coco, results, backend=eval_cfg.backend)
    if protocol != "coco":
        raise ValueError(f"unknown evaluation protocol {protocol!r}; valid: coco, ochuman")
    info = dataset.coco.dataset.get("info")
    area_scale = float(info.get("coco_area_scale", 1.0)) if isinstance(info, dict) else 1.0
    return coco_segm_eval(dataset.coco, results, backend=eval_cfg.backend, per_class=eval_cfg.per_class,
                          class_names=list(dataset.class_names), img_ids=list(dataset.image_ids),
                          cat_ids=list(dataset.cat_ids), max_dets=eval_cfg.max_dets, area_scale=area_scale)
