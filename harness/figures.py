"""Report figures drawn from saved files: the qualitative figure (predictions on val images) and loss curves.

Both are pure functions of files the pipeline saved: the records, the COCO results JSON each record names
(``data.predictions``, ``harness.predictions``), the val set's images and ground truth, and the curves published
under ``results/<study>/curves/`` (``harness.curves``).  When those files are absent (records made before they
were kept, or a checkout without the git-ignored predictions) the report says so in a note instead of failing.

Qualitative figure: ``N_IMAGES`` val images chosen by ``random.Random(IMAGE_SEED)`` among the images with at
least one ground-truth instance (so every column shows the same images), a ground-truth column and one column per
method (its lowest seed; the method's own post-processing when a study evaluates several), every prediction
with score >= ``SCORE_THR`` drawn with ``torchvision.utils.draw_segmentation_masks``.

The full predictions files are git-ignored (megabytes per study); what the figure draws (the detections on its
``N_IMAGES`` images with score >= ``SCORE_THR``, at most ``MAX_DRAWN`` each, per shown run) is kept in
``results/<study>/figure_predictions.json`` (``FIGURE_PREDICTIONS``, small, committed), written whenever the figure
is drawn from full predictions and read when they are absent, so a clean checkout redraws the same figure.
"""
from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import numpy as np
import torch

N_IMAGES = 4
IMAGE_SEED = 0
SCORE_THR = 0.3
MAX_DRAWN = 30
DISPLAY_SHORT_SIDE = 160
FIGURE_PREDICTIONS = "figure_predictions.json"
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe",
           "#008080", "#e6beff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075"]


def _base(variant: str) -> str:
    return variant.split("[")[0]


def _figure_store(records: list[dict]) -> Path | None:
    """``results/<study>/figure_predictions.json`` of these records' study (the most common ``study`` field).

    Not the predictions files' folder: a record copied from another study (``copied_from``) names the other
    study's predictions file, and each study keeps its own subset."""
    from collections import Counter

    from harness.records import records_path
    studies = Counter(r["study"] for r in records if r.get("study"))
    if not studies:
        return None
    return records_path(studies.most_common(1)[0][0]).parent / FIGURE_PREDICTIONS


def _read_store(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a figure-predictions JSON ({e})") from e


def _store_key(r: dict) -> str:
    return f"{r['variant']}|s{r['seed']}|{r.get('run_id', '')}"


def _pick_records(records: list[dict], stored: dict | None = None) -> dict[str, dict]:
    """One record per variant (base name): lowest seed, with saved predictions (its full file, or its entry in
    the committed ``stored`` figure predictions); the method's own post-processing (a variant without ``[..]``,
    else not ``[none]``) preferred."""
    out: dict[str, dict] = {}
    runs = (stored or {}).get("runs", {})
    for r in records:
        pred = (r.get("data") or {}).get("predictions")
        if r.get("kind", "eval") != "eval" or not ((pred and Path(pred).is_file()) or _store_key(r) in runs):
            continue
        b = _base(r["variant"])
        rank = (r["seed"], 0 if "[" not in r["variant"] else (2 if r["variant"].endswith("[none]") else 1))
        if b not in out or rank < out[b][0]:
            out[b] = (rank, r)
    if any(not b.startswith("oracle") for b in out):  # the oracle column would repeat the ground truth
        out = {b: v for b, v in out.items() if not b.startswith("oracle")}
    return {b: v[1] for b, v in out.items()}


def _shown(dets, image_id: int) -> list[dict]:
    """The detections the figure draws on ``image_id``: score >= SCORE_THR, at most MAX_DRAWN, highest first."""
    return sorted((d for d in dets if d["image_id"] == image_id and d["score"] >= SCORE_THR),
                  key=lambda d: -d["score"])[:MAX_DRAWN]


def _top_scores(dets, image_ids) -> dict[int, float]:
    """Highest score of any detection on each of ``image_ids`` that has one (drawn or not)."""
    top: dict[int, float] = {}
    wanted = set(image_ids)
    for d in dets:
        i = d["image_id"]
        if i in wanted and d["score"] > top.get(i, float("-inf")):
            top[i] = float(d["score"])
    return top


def _column_title(name: str, n_drawn: int, top: float | None) -> str:
    """``"name (n)"``; when nothing is drawn but the method did predict on the image, its highest score too, so a
    blank column reads as "all scores below the threshold", not "no prediction"."""
    if n_drawn == 0 and top is not None:
        return f"{name} (0; top score {top:.2f})"
    return f"{name} ({n_drawn})"


def _val_key(rec: dict) -> tuple:
    """What decides a record's val images: the dataset spec, and for a synthetic one its canvas and size."""
    c = rec.get("config") or {}
    return ((rec.get("data") or {}).get("dataset"), c.get("data.image_size"), c.get("data.val_images"),
            c.get("data.test_short_side"))


def _val_label(rec: dict) -> str:
    dataset, canvas, n, short = _val_key(rec)
    return f"{dataset}, {n} images, canvas {canvas} px, test short side {short} px"


def _same_val_set(picked: dict[str, dict]) -> tuple[dict[str, dict], list[str]]:
    """The picked records that share the val set of the first one (the study's first variant, its main row in
    canonical order), and the names of the others: one figure shows one set of images, so a study whose variants
    change the canvas (e.g. 128 against 192 px) or the val size draws the variants of its first one's."""
    keys = {b: _val_key(r) for b, r in picked.items()}
    first = next(iter(keys.values()))
    return {b: r for b, r in picked.items() if keys[b] == first}, [b for b in picked if keys[b] != first]


def _val_dataset(rec: dict):
    from harness.config import from_flat
    from harness.data import build_dataset
    cfg = from_flat(rec["config"])
    return build_dataset(rec["data"]["dataset"], "val", cfg.data, train=False)


def choose_images(coco, n: int = N_IMAGES, seed: int = IMAGE_SEED) -> list[int]:
    """``n`` image ids with >= 1 ground-truth instance, drawn by ``random.Random(seed)`` from the sorted ids."""
    ids = sorted(i for i in coco.getImgIds() if coco.getAnnIds(imgIds=[i]))
    return sorted(random.Random(seed).sample(ids, min(n, len(ids))))


def _overlay(image: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    from torchvision.utils import draw_segmentation_masks
    if masks.shape[0]:
        colors = [PALETTE[i % len(PALETTE)] for i in range(masks.shape[0])]
        image = draw_segmentation_masks(image, masks.bool(), alpha=0.55, colors=colors)
    return image.permute(1, 2, 0).numpy()


def _shrink(image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize image (bilinear) and masks (nearest) so the short side is ``DISPLAY_SHORT_SIDE`` (smaller PNGs)."""
    import torch.nn.functional as F
    h, w = image.shape[-2:]
    s = DISPLAY_SHORT_SIDE / min(h, w)
    if s >= 1:
        return image, masks
    size = (max(1, round(h * s)), max(1, round(w * s)))
    img = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    img = img.round().clamp(0, 255).to(torch.uint8)
    if masks.shape[0]:
        masks = F.interpolate(masks[None].float(), size=size, mode="nearest")[0] > 0.5
    else:
        masks = torch.zeros((0, *size), dtype=torch.bool)
    return img, masks


def qualitative_figure(records: list[dict]):
    """``(figure callback, figsize, caption, notes)`` for ``harness.report.write_report``; the callback is None
    (and a note says why) when no record has its predictions file."""
    from pycocotools import mask as mask_utils

    from harness.evaluate import load_results
    store = _figure_store(records)
    stored = _read_store(store)
    picked = _pick_records(records, stored)
    if not picked:
        return None, None, "", ["Qualitative figure: not drawn, no saved predictions (`results/<study>/predictions-"
                                "*.json`, git-ignored, nor their subset in `figure_predictions.json`) for these "
                                "records; evaluations made since they are kept (re-run the study's evaluations "
                                "to draw it)."]
    missing = sorted({_base(r["variant"]) for r in records if not r["method"].startswith("oracle")} - set(picked))
    picked, other_val = _same_val_set(picked)
    first = next(iter(picked.values()))
    ds = _val_dataset(first)
    image_ids = choose_images(ds.coco)
    if stored and stored.get("image_ids") != image_ids:  # another val set than the one the subset was cut from
        stored = {}
        picked = _pick_records(records)
        if not picked:
            return None, None, "", [f"Qualitative figure: not drawn, {store} was cut for other val images and the "
                                    "full predictions files are absent."]
    index_of = {i: k for k, i in enumerate(ds.image_ids)}
    preds, tops = {}, {}
    for b, r in picked.items():
        pred = (r.get("data") or {}).get("predictions")
        if pred and Path(pred).is_file():
            full = load_results(pred)
            preds[b] = [d for i in image_ids for d in _shown(full, i)]
            tops[b] = {i: round(t, 4) for i, t in _top_scores(full, image_ids).items()}  # as stored
        else:
            entry = stored["runs"][_store_key(r)]
            preds[b] = entry["detections"]
            # stores written before top scores were kept have none: the titles then give the count only
            tops[b] = {int(k): v for k, v in entry["top_scores"].items()} if "top_scores" in entry else None
    if store is not None:  # the subset a clean checkout redraws from (deterministic: same picks, same bytes)
        subset = {"image_ids": image_ids, "score_thr": SCORE_THR, "max_drawn": MAX_DRAWN,
                  "dataset": first["data"]["dataset"],
                  "runs": {_store_key(r): {"variant": r["variant"], "seed": r["seed"], "run_id": r.get("run_id"),
                                           "detections": preds[b],
                                           **({"top_scores": {str(i): round(t, 4) for i, t in tops[b].items()}}
                                              if tops[b] is not None else {})}
                           for b, r in picked.items()}}
        text = json.dumps(subset, sort_keys=True, separators=(",", ":")) + "\n"
        if not store.is_file() or store.read_text() != text:
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(text)
    cells = []  # rows of (title, HxWx3 uint8)
    for image_id in image_ids:
        sample = ds.load(index_of[image_id])
        row = []
        img, gt = _shrink(sample.image, sample.masks[~sample.iscrowd])
        row.append((f"ground truth ({gt.shape[0]})", _overlay(img, gt)))
        for b, res in preds.items():
            dets = _shown(res, image_id)
            if dets:
                segs = [dict(d["segmentation"], counts=d["segmentation"]["counts"].encode()) for d in dets]
                m = torch.from_numpy(mask_utils.decode(segs)).permute(2, 0, 1).bool()
            else:
                m = torch.zeros((0, *sample.image.shape[-2:]), dtype=torch.bool)
            img, m = _shrink(sample.image, m)
            top = tops[b].get(image_id) if tops[b] is not None else None
            row.append((_column_title(b, len(dets), top), _overlay(img, m)))
        cells.append((image_id, row))
    n_cols = 1 + len(preds)
    figsize = (min(max(2.0 * n_cols, 5.0), 18.0), 1.75 * len(cells) + 0.6)
    ap = {b: (r.get("metrics") or {}).get("AP") for b, r in picked.items()}

    def draw(fig) -> None:
        for i, (image_id, row) in enumerate(cells):
            for j, (title, arr) in enumerate(row):
                ax = fig.add_subplot(len(cells), n_cols, i * n_cols + j + 1)
                ax.imshow(arr, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                ax.set_title(textwrap.fill(title, 30), fontsize=7)  # long variant names wrap, not clip
                if j == 0:
                    ax.set_ylabel(f"image {image_id}", fontsize=7)
        fig.suptitle(f"{len(cells)} val images (random.Random({IMAGE_SEED}))\npredictions with score >= {SCORE_THR} "
                     "(count in brackets)", fontsize=8)
        fig.tight_layout()

    seeds = ", ".join(f"{b}: seed {r['seed']}, {r['config'].get('method.postprocess')}" for b, r in picked.items())
    caption = (f"Qualitative figure: {len(cells)} val images of `{first['data']['dataset']}` fixed by "
               f"random.Random({IMAGE_SEED}); left the ground truth, then one column per method ({seeds}); masks drawn "
               "with torchvision.utils.draw_segmentation_masks, one colour per instance (colours are not matched "
               f"between columns), predictions with score >= "
               f"{SCORE_THR} (at most {MAX_DRAWN}, highest first); mask AP of each shown run: "
               + ", ".join(f"{b} {a:.1f}" if isinstance(a, (int, float)) else f"{b} –" for b, a in ap.items()) + ".")
    notes = ([f"Qualitative figure: no saved predictions for {', '.join(missing)} (not in the figure)."]
             if missing else [])
    if other_val:
        notes.append(f"Qualitative figure: {', '.join(other_val)} not in the figure: evaluated on other val images "
                     f"than the figure's ({_val_label(first)}), so their masks do not fit its images.")
    return draw, figsize, caption, notes


def _curve_sources(rec: dict) -> list[Path]:
    study_dirs = [Path("results") / rec.get("study", "")]
    if rec.get("copied_from"):
        study_dirs.append(Path("results") / rec["copied_from"].split("/")[0])
    return [d / "curves" for d in study_dirs]


def loss_curves_figure(records: list[dict]):
    """``(figure callback, figsize, caption, notes)``: loss terms + lr per method (lowest seed), AP points from the
    records' ``train.ap_curve``; None with a note when no curve was published for these runs."""
    from harness.curves import loss_curve_figure, published
    by_method: dict[str, tuple] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        b = _base(r["variant"])
        if b in by_method or not r.get("run_id"):
            continue
        for src in _curve_sources(r):
            rows, ap = published(src, r["run_id"])
            if rows:
                by_method[b] = (rows, (r.get("train") or {}).get("ap_curve") or ap, r["seed"])
                break
    if not by_method:
        return None, None, "", ["Training curves: none published for these runs (runs trained before loss terms were "
                                "logged per iteration to `train_curve.csv`)."]
    missing = sorted({_base(r["variant"]) for r in records if not r["method"].startswith("oracle")}
                     - set(by_method))
    curves = {f"{b} (seed {v[2]})": (v[0], v[1]) for b, v in by_method.items()}
    n = len(curves)
    figsize = (8.0, 2.6 * ((n + 1) // 2) + 0.4)
    caption = ("Training curves: loss terms per iteration (mean over 10 iterations, log scale), the learning rate "
               "(dashed, % of its peak) and, where measured, mask AP on the val set at the weight snapshots (red, "
               "the method's default post-processing).")
    notes = [f"Training curves: none published for {', '.join(missing)}."] if missing else []
    return loss_curve_figure(curves), figsize, caption, notes


def report_figures(records: list[dict]) -> tuple[list[tuple], list[str]]:
    """The extra figures of a study / comparison report: ``[(suffix, caption, draw, figsize)]`` and notes."""
    figs, notes = [], []
    for suffix, fn in (("qualitative", qualitative_figure), ("curves", loss_curves_figure)):
        try:
            draw, figsize, caption, n = fn(records)
        except (OSError, ValueError, KeyError) as e:  # missing / bad saved files: a note, never a crash
            draw, figsize, caption, n = None, None, "", [f"{suffix} figure not drawn: {type(e).__name__}: {e}"]
        notes += n
        if draw is not None:
            figs.append((suffix, caption, draw, figsize))
    return figs, notes


def ap_curve_table(records: list[dict]):
    """A table of mask AP at the weight snapshots (``train.ap_curve``), one row per (variant, seed), or None."""
    import pandas as pd
    rows = {}
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        pts = (r.get("train") or {}).get("ap_curve")
        key = (_base(r["variant"]), r["seed"])
        if pts and key not in rows:
            rows[key] = {"variant": key[0], "seed": key[1], **{f"it {p['iter']}": p["AP"] for p in pts}}
    return pd.DataFrame(list(rows.values())) if rows else None


def convergence_notes(records: list[dict], rising_ap: float = 1.0) -> list[str]:
    """One sentence per (method, seed) with AP-vs-iteration points: whether AP still rose by more than
    ``rising_ap`` points over the last snapshot interval (then the schedule did not converge)."""
    out, seen = [], set()
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        pts = (r.get("train") or {}).get("ap_curve") or []
        key = (_base(r["variant"]), r["seed"])
        if len(pts) < 2 or key in seen:
            continue
        seen.add(key)
        a, b = pts[-2], pts[-1]
        gain = b["AP"] - a["AP"]
        state = (f"still rising ({gain:+.1f} AP from it {a['iter']} to {b['iter']}): not converged"
                 if gain > rising_ap else f"flat ({gain:+.1f} AP from it {a['iter']} to {b['iter']}): converged")
        out.append(f"{key[0]} seed {key[1]}: {state}")
    return [f"Convergence (AP at the last two snapshots; > {rising_ap:.0f} AP gain = not converged): "
            + "; ".join(out) + "."] if out else []
