"""Synthetic COCO-format datasets: the project's embedded default data.

``generate(preset, split, n_images, image_size, seed, cache_dir)`` writes a COCO-format JSON
(compressed RLE from ``pycocotools.mask.encode``, ``area`` = visible mask area in px,
``bbox`` = tight box of the visible mask) and PNG images into a cache directory keyed by the
parameters; it is deterministic by ``seed`` (image ``i`` draws from ``numpy.random.default_rng((seed,
i))``), atomic (written to a temporary folder, then renamed) and safe across processes (a
``filelock`` per key); an existing folder is reused.

Presets (all on a square ``image_size`` canvas, textured backgrounds of noise / gradients / stripes,
random unlabelled clutter lines, random object colours and shading, pixel noise):

* ``shapes-coco``: ``SHAPE_CLASSES`` (circle, square, triangle, ellipse, star, cross), 3-12 objects
  per image, few overlaps (boxes placed with IoU <= 0.1, so the overlap density is about 0), and a
  COCO-like size mix: drawn 33 % small / 38 % medium / 29 % large (``SIZE_MIX``), which after
  placement and rasterisation gives about COCO val2017's 41 / 34 / 24 % on the val split (43 / 34
  / 23 % at 128 px; ``python -m harness data stats shapes-coco``: more large objects are lost to
  placement, and small ones near the threshold rasterise larger).  The thresholds are COCO's in
  absolute COCO pixels, ``COCO_AREA_THRESHOLDS_PX2 = (32**2, 96**2)``, on COCO images whose long side
  is ``COCO_REFERENCE_SIZE_PX = 256``; on the canvas they scale by ``(image_size / 256) ** 2``
  (``coco_area_scale``).  On the quick profile's 128-px canvas the scale is 1/4: small < 256 px^2
  (16 x 16 px), medium < 2304 px^2 (48 x 48 px), large up to a quarter of the canvas; on the 192-px
  alternative it is 9/16: small < 576 px^2 (24 x 24 px), medium < 5184 px^2 (72 x 72 px).  The scale is recorded in
  the JSON ``info["coco_area_scale"]``, and ``harness.evaluate`` applies it to COCOeval's area
  ranges for such files (recorded as ``area_scale`` in the metrics), so APs/APm/APl are these buckets.
* ``shapes-ochuman``: the same classes, heavy occlusion: 0-2 clusters per image (1.1 on average),
  each a large "back" object with 1 (80 %) or 2 "front" objects whose boxes are 0.75-0.95 times
  the back box and lie mostly inside it (half of them of the back object's class), plus 1-4
  isolated objects from the shapes-coco size mix.  Overlap
  density (overlapped instance pairs per image, box IoU > 0.5, as in UniInst Table 2) is >= 0.6
  (OCHuman: 0.64; COCO Person: 0.02).
* ``shapes-street``: ``STREET_CLASSES`` (car, pedestrian, truck, bus, rider) with class-specific
  shapes and aspect ratios, scaled by depth below a horizon and drawn far-to-near (natural
  occlusion); stuff regions ``STREET_STUFF`` (road, sky, building).  A semantic PNG per image
  (``semseg/``; things 0..4 in thing-label order where an instance is visible, stuff 5..7,
  255 = ignore on the sidewalk band) is referenced by ``images[].sem_seg_file_name`` (relative to
  the JSON's folder); the JSON gets ``stuff_categories``.

Speed: about 11 ms of CPU per 128-px image (1,000 images: 11.2 s CPU, 13-27 s wall on the shared
2-core machine; ``python -m harness data generate shapes-coco --n-images 1000`` prints both).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

GENERATOR_VERSION = 3
PRESETS = ("shapes-coco", "shapes-ochuman", "shapes-street")
SHAPE_CLASSES = ("circle", "square", "triangle", "ellipse", "star", "cross")
STREET_CLASSES = ("car", "pedestrian", "truck", "bus", "rider")
STREET_STUFF = ("road", "sky", "building")
COCO_AREA_THRESHOLDS_PX2 = (32**2, 96**2)
COCO_REFERENCE_SIZE_PX = 256
SIZE_MIX = (0.33, 0.38, 0.29)
IGNORE_LABEL = 255
MIN_VISIBLE_PX = 4
ANN_FILE_NAME = "annotations.json"


def generator_version(*dataset_specs: str | None) -> int | None:
    """``GENERATOR_VERSION`` when any of ``dataset_specs`` is a synthetic preset, else None.

    Part of a run's config hash and of its records, so that data made by an older generator is never
    mistaken for the current one (``harness.config.train_hash``, ``harness.studies.is_stale_synthetic``).
    """
    return GENERATOR_VERSION if any(spec in PRESETS for spec in dataset_specs) else None


def coco_area_scale(image_size: int) -> float:
    """Factor from COCO pixel areas to areas on a canvas of ``image_size`` px: (image_size / 256)^2."""
    return image_size * image_size / COCO_REFERENCE_SIZE_PX**2


# ---------------------------------------------------------------------------------------------
# geometry
def _unit_polygon(name: str) -> np.ndarray:
    """Vertices (K, 2) of a class's shape in unit coordinates (box [-1, 1]^2 before aspect)."""
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    if name in ("circle", "ellipse"):
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    if name == "triangle":
        return np.array([[0, -1], [1, 1], [-1, 1]], float)
    if name == "star":
        a = np.linspace(0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if name == "cross":
        u, v = 0.35, 1.0
        return np.array([[-u, -v], [u, -v], [u, -u], [v, -u], [v, u], [u, u], [u, v], [-u, v], [-u, u],
                         [-v, u], [-v, -u], [-u, -u]], float)
    raise ValueError(f"unknown shape {name!r}")


_UNIT = {n: _unit_polygon(n) for n in SHAPE_CLASSES}


def _poly_area(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


_UNIT_AREA = {n: _poly_area(v) for n, v in _UNIT.items()}


def _shape(rng: np.random.Generator, cls: int, area_px2: float) -> np.ndarray:
    """Vertices (K, 2) of shape class ``cls`` with polygon area ``area_px2``, centred at 0, rotated."""
    name = SHAPE_CLASSES[cls]
    aspect = rng.uniform(0.35, 0.65) if name == "ellipse" else rng.uniform(0.8, 1.25)
    v = _UNIT[name] * np.array([1.0, aspect])
    # PIL fills the boundary pixels too: rasterised area ~ A + perimeter / 2.  Solve
    # s^2 A + s P / 2 = area_px2 for the scale s so that small objects keep their target area.
    a, p = _UNIT_AREA[name] * aspect, float(np.linalg.norm(v - np.roll(v, 1, 0), axis=1).sum())
    scale = (-0.5 * p + np.sqrt(0.25 * p * p + 4 * a * area_px2)) / (2 * a)
    v = v * scale
    th = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return v @ rot.T


def _extent(v: np.ndarray) -> tuple[float, float]:
    return float(v[:, 0].max() - v[:, 0].min()), float(v[:, 1].max() - v[:, 1].min())


def _box(v: np.ndarray) -> np.ndarray:
    return np.array([v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max()])


def _iou_and_cover(b: np.ndarray, boxes: list[np.ndarray]) -> tuple[float, float]:
    """Max IoU of box ``b`` with ``boxes`` and max intersection / smaller box area (x1y1x2y2)."""
    if not boxes:
        return 0.0, 0.0
    bs = np.stack(boxes)
    iw = np.clip(np.minimum(b[2], bs[:, 2]) - np.maximum(b[0], bs[:, 0]), 0, None)
    ih = np.clip(np.minimum(b[3], bs[:, 3]) - np.maximum(b[1], bs[:, 1]), 0, None)
    inter = iw * ih
    a = (b[2] - b[0]) * (b[3] - b[1])
    a2 = (bs[:, 2] - bs[:, 0]) * (bs[:, 3] - bs[:, 1])
    return float((inter / (a + a2 - inter)).max()), float((inter / np.minimum(a, a2)).max())


def _coco_area(rng: np.random.Generator, size: int) -> float:
    """An object area on the canvas (px^2) drawn from the COCO-like size mix (``SIZE_MIX``).

    Small / medium / large areas are log-uniform in [max(t1 / 2, 6), t1) (lower bound at most
    0.9 t1 on tiny canvases), [t1, t2) and
    [t2, max(size^2 / 4, 2 * t2)), with (t1, t2) = COCO's thresholds scaled to the canvas.  The small
    bucket starts at t1 / 2 (11 px side at 128 px, about three cells of a stride-4 mask branch; generator
    version 2 started at t1 / 4, 8 px, where a shape's class is barely visible).
    """
    s = coco_area_scale(size)
    t1, t2 = (t * s for t in COCO_AREA_THRESHOLDS_PX2)
    ranges = ((min(max(0.5 * t1, 6.0), 0.9 * t1), t1), (t1, t2), (t2, max(0.25 * size * size, 2 * t2)))
    bucket = min(int(np.searchsorted(_SIZE_MIX_CDF, rng.random(), side="right")), 2)
    lo, hi = ranges[bucket]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


_SIZE_MIX_CDF = np.cumsum(SIZE_MIX)


def _place_isolated(rng, size: int, n: int, boxes: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """Up to ``n`` shapes with box IoU <= 0.1 and cover <= 0.3 against ``boxes`` (updated in place).

    Sizes are drawn first and placed largest first (20 positions each), so that a crowded canvas
    does not bias the size mix towards small objects.
    """
    shapes = []
    for _ in range(n):
        cls = int(rng.integers(len(SHAPE_CLASSES)))
        area = _coco_area(rng, size)
        shapes.append((area, cls, _shape(rng, cls, area)))
    shapes.sort(key=lambda t: -t[0])
    out = []
    for _, cls, v in shapes:
        w, h = _extent(v)
        v = v - _box(v).reshape(2, 2).mean(0)
        for _attempt in range(20):
            cx = rng.uniform(min(w / 2, size / 2), max(size - w / 2, size / 2))
            cy = rng.uniform(min(h / 2, size / 2), max(size - h / 2, size / 2))
            b = _box(v) + np.array([cx, cy, cx, cy])
            iou, cover = _iou_and_cover(b, boxes)
            if iou <= 0.1 and cover <= 0.3:
                boxes.append(b)
                out.append((cls, v + np.array([cx, cy])))
                break
    return out


def _layout_coco(rng, size: int) -> list[tuple[int, np.ndarray]]:
    return _place_isolated(rng, size, int(rng.integers(3, 13)), [])


def _layout_ochuman(rng, size: int) -> list[tuple[int, np.ndarray]]:
    """0-2 clusters of a back object with 1-2 front objects inside its box, then 1-4 isolated objects."""
    out: list[tuple[int, np.ndarray]] = []
    boxes: list[np.ndarray] = []
    for _ in range(int(np.searchsorted(np.cumsum([0.2, 0.5, 0.3]), rng.random(), side="right"))):
        for _attempt in range(20):
            cls = int(rng.integers(len(SHAPE_CLASSES)))
            area = float(np.exp(rng.uniform(np.log(0.02), np.log(0.16)))) * size * size
            back = _shape(rng, cls, area)
            w, h = _extent(back)
            centre = rng.uniform([w / 2, h / 2], [max(size - w / 2, w / 2), max(size - h / 2, h / 2)])
            back = back + centre - _box(back).reshape(2, 2).mean(0)
            b = _box(back)
            if _iou_and_cover(b, boxes)[1] > 0.1:
                continue
            boxes.append(b)
            out.append((cls, back))
            for _front in range(1 + int(rng.random() < 0.2)):
                fcls = cls if rng.random() < 0.5 else int(rng.integers(len(SHAPE_CLASSES)))
                f = _shape(rng, fcls, area)
                fw, fh = _extent(f)
                ratio = rng.uniform(0.75, 0.95)
                f = f * ratio * np.sqrt((w * h) / (fw * fh))  # box area = ratio^2 * back box area
                fw, fh = _extent(f)
                shift = rng.uniform(-1, 1, 2) * np.array([max(w - fw, 0), max(h - fh, 0)]) * 0.6
                f = f + centre + shift - _box(f).reshape(2, 2).mean(0)
                out.append((fcls, f))
            break
    return out + _place_isolated(rng, size, int(rng.integers(1, 5)), boxes)


# street things: primitives in box-normalised coordinates (tx, ty in [0, 1], ty down);
# value 255 = body, 128 = detail (windows, wheels, legs: painted darker, part of the mask)
_STREET_TEMPLATES: dict[str, tuple[float, list]] = {  # name -> (width / height, primitives)
    "car": (2.0, [("poly", 255, [(0, .4), (1, .4), (1, .82), (0, .82)]),
                  ("poly", 255, [(.18, .4), (.3, 0), (.72, 0), (.85, .4)]),
                  ("poly", 128, [(.24, .38), (.33, .07), (.69, .07), (.79, .38)]),
                  ("ellipse", 128, (.12, .64, .34, 1)), ("ellipse", 128, (.66, .64, .88, 1))]),
    "pedestrian": (0.38, [("ellipse", 255, (.3, 0, .7, .14)),
                          ("poly", 255, [(.1, .15), (.9, .15), (.85, .55), (.15, .55)]),
                          ("poly", 128, [(.15, .55), (.48, .55), (.42, 1), (.2, 1)]),
                          ("poly", 128, [(.52, .55), (.85, .55), (.8, 1), (.58, 1)])]),
    "truck": (1.6, [("poly", 255, [(0, 0), (.68, 0), (.68, .85), (0, .85)]),
                    ("poly", 255, [(.7, .3), (.9, .3), (1, .5), (1, .85), (.7, .85)]),
                    ("poly", 128, [(.74, .35), (.88, .35), (.95, .5), (.74, .5)]),
                    ("ellipse", 128, (.08, .72, .24, 1)), ("ellipse", 128, (.44, .72, .6, 1)),
                    ("ellipse", 128, (.76, .72, .92, 1))]),
    "bus": (2.8, [("poly", 255, [(0, 0), (1, 0), (1, .88), (0, .88)]),
                  ("poly", 128, [(.04, .12), (.96, .12), (.96, .45), (.04, .45)]),
                  ("ellipse", 128, (.1, .75, .2, 1)), ("ellipse", 128, (.78, .75, .88, 1))]),
    "rider": (0.8, [("ellipse", 255, (.42, 0, .62, .14)),
                    ("poly", 255, [(.35, .14), (.65, .14), (.6, .5), (.4, .5)]),
                    ("poly", 255, [(.2, .62), (.5, .5), (.8, .62), (.5, .8)]),
                    ("ellipse", 128, (0, .58, .42, 1)), ("ellipse", 128, (.58, .58, 1, 1))]),
}
_STREET_HEIGHT = {"car": 1.0, "pedestrian": 1.6, "truck": 1.6, "bus": 1.7, "rider": 1.5}  # x unit
_STREET_PROBS = (0.35, 0.25, 0.1, 0.1, 0.2)


def _draw_street_thing(draw: ImageDraw.ImageDraw, name: str, x0: float, y0: float, w: float, h: float,
                       use_mirror: bool) -> None:
    def px(tx: float, ty: float) -> tuple[float, float]:
        return (x0 + (1 - tx if use_mirror else tx) * w, y0 + ty * h)

    for kind, value, pts in _STREET_TEMPLATES[name][1]:
        if kind == "poly":
            draw.polygon([px(*p) for p in pts], fill=value)
        else:
            (ax, ay), (bx, by) = px(pts[0], pts[1]), px(pts[2], pts[3])
            draw.ellipse([min(ax, bx), ay, max(ax, bx), by], fill=value)


# ---------------------------------------------------------------------------------------------
# rendering
def _texture(rng, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A background (H, W, 3) float32: low-frequency noise, a gradient or stripes between two colours."""
    c1, c2 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    kind = int(rng.integers(3))
    th = rng.uniform(0, np.pi)
    proj = (xx * np.cos(th) + yy * np.sin(th)) / size
    if kind == 0:
        k = int(rng.integers(3, 9))
        small = Image.fromarray(rng.random((k, k), dtype=np.float32))  # mode "F"
        t = np.asarray(small.resize((size, size), Image.BILINEAR))
    elif kind == 1:
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    else:
        t = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * proj + rng.uniform(0, 2 * np.pi))
    return c1 + (c2 - c1) * t[..., None].astype(np.float32)


def _clutter(rng, size: int, bg: np.ndarray) -> None:
    """0-4 unlabelled random lines painted on the background (in place)."""
    n = int(rng.integers(0, 5))
    if n == 0:
        return
    img = Image.new("L", (size, size))
    draw = ImageDraw.Draw(img)
    for _ in range(n):
        draw.line([tuple(rng.uniform(0, size, 2)), tuple(rng.uniform(0, size, 2))], fill=255,
                  width=int(rng.integers(1, 3)))
    bg[np.asarray(img) > 0] = rng.uniform(0, 255, 3).astype(np.float32)


def _rasterise_polygons(size: int, polys: list[np.ndarray]) -> np.ndarray:
    """Painter's-order label map (H, W) int16: index of the front-most polygon, -1 = background."""
    lab = np.full((size, size), -1, np.int16)
    for k, v in enumerate(polys):
        img = Image.new("L", (size, size))
        ImageDraw.Draw(img).polygon([tuple(p) for p in v], fill=1)
        lab[np.asarray(img, dtype=bool)] = k
    return lab


def _prune_small(lab: np.ndarray, n: int) -> None:
    """Instances with fewer than MIN_VISIBLE_PX visible pixels become background (in place)."""
    areas = np.bincount(lab[lab >= 0].ravel(), minlength=n)
    small = np.flatnonzero(areas < MIN_VISIBLE_PX)
    if small.size:
        lab[np.isin(lab, small)] = -1


def _paint(rng, lab: np.ndarray, bg: np.ndarray, detail: np.ndarray | None = None) -> np.ndarray:
    """Colour instances (random colour, linear shading, optional stripes) over ``bg``; uint8 (H, W, 3)."""
    size = lab.shape[0]
    n = int(lab.max()) + 1 if lab.max() >= 0 else 0
    fg = lab >= 0
    img = bg
    if n and fg.any():
        mean = bg.reshape(-1, 3).mean(0)
        colours = rng.uniform(0, 255, (n, 3)).astype(np.float32)
        for _ in range(3):  # push colours that are close to the mean background away from it
            close = np.abs(colours - mean).sum(1) < 90
            if not close.any():
                break
            colours[close] = rng.uniform(0, 255, (int(close.sum()), 3))
        grad = rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32) / max(size / 4, 1)
        stripes = (rng.random(n) < 0.3) * rng.uniform(0.1, 0.25, n)
        freq = rng.uniform(0.3, 1.2, n)
        yy, xx = np.nonzero(fg)
        idx = lab[yy, xx]
        shade = 1 + grad[idx, 0] * (xx - xx.mean()) + grad[idx, 1] * (yy - yy.mean())
        shade = shade + stripes[idx] * np.sin(freq[idx] * (xx + yy))
        col = colours[idx] * shade[:, None]
        if detail is not None:
            col[detail[yy, xx]] *= 0.3
        img = bg.copy()
        img[yy, xx] = col
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(2, 10)
    return np.clip(img, 0, 255).astype(np.uint8)


def _render_shapes(rng, size: int, preset: str) -> tuple[np.ndarray, np.ndarray, list[int], None]:
    layout = _layout_coco(rng, size) if preset == "shapes-coco" else _layout_ochuman(rng, size)
    lab = _rasterise_polygons(size, [v for _, v in layout])
    _prune_small(lab, len(layout))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = _texture(rng, size, yy, xx)
    _clutter(rng, size, bg)
    image = _paint(rng, lab, bg)
    return image, lab, [layout[k][0] for k in range(len(layout))], None


def _street_background(rng, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Sky, buildings, sidewalk (ignore) and road: (bg (H, W, 3) float32, sem (H, W) uint8, road top y)."""
    t = len(STREET_CLASSES)
    road, sky, building = (t + STREET_STUFF.index(s) for s in ("road", "sky", "building"))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    horizon = int(size * rng.uniform(0.35, 0.5))
    road_top = horizon + max(1, int(0.05 * size))
    sem = np.full((size, size), sky, np.uint8)
    top = rng.uniform([150, 170, 200], [200, 220, 255]).astype(np.float32)
    bg = top + (yy / size)[..., None] * rng.uniform(-60, 20, 3).astype(np.float32)
    x = 0
    while x < size:
        w = int(rng.integers(max(4, size // 10), max(5, size // 3)))
        y_top = int(rng.uniform(0.05, 0.8) * horizon)
        colour = rng.uniform(60, 200, 3).astype(np.float32)
        px, py = rng.integers(4, 9, 2)
        window = ((xx[y_top:horizon, x:x + w] - x) % px < px / 2) & ((yy[y_top:horizon, x:x + w]) % py < py / 2)
        bg[y_top:horizon, x:x + w] = colour * np.where(window, 0.6, 1.0)[..., None]
        sem[y_top:horizon, x:x + w] = building
        x += w
    bg[horizon:road_top] = rng.uniform(150, 200)
    sem[horizon:road_top] = IGNORE_LABEL
    grey = rng.uniform(50, 110)
    bg[road_top:] = grey + rng.standard_normal((size - road_top, size, 1), dtype=np.float32) * 6
    lane = (np.abs(xx - size / 2) < max(1, size / 100)) & ((yy // max(2, size // 16)) % 2 == 0)
    bg[road_top:][lane[road_top:]] = 230
    sem[road_top:] = road
    return bg, sem, road_top


def _render_street(rng, size: int) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    bg, sem, road_top = _street_background(rng, size)
    n = int(rng.integers(2, 9))
    things = []
    for _ in range(n):
        cls = int(rng.choice(len(STREET_CLASSES), p=_STREET_PROBS))
        depth = rng.uniform(0, 1)
        y_bottom = road_top + 2 + depth * (size - road_top)
        things.append((y_bottom, cls, depth))
    things.sort()
    lab = np.full((size, size), -1, np.int16)
    detail = np.zeros((size, size), bool)
    classes = []
    for k, (y_bottom, cls, depth) in enumerate(things):
        name = STREET_CLASSES[cls]
        h = (0.06 + 0.3 * depth) * size * _STREET_HEIGHT[name] * rng.uniform(0.9, 1.1)
        w = h * _STREET_TEMPLATES[name][0] * rng.uniform(0.9, 1.1)
        x0 = rng.uniform(*sorted((-0.2 * w, size - 0.8 * w)))  # at most 20 % cut off when it fits
        img = Image.new("L", (size, size))
        _draw_street_thing(ImageDraw.Draw(img), name, x0, y_bottom - h, w, h, bool(rng.random() < 0.5))
        m = np.asarray(img)
        lab[m > 0] = k
        detail[m > 0] = m[m > 0] == 128
        classes.append(cls)
    _prune_small(lab, len(things))
    image = _paint(rng, lab, bg, detail)
    fg = lab >= 0
    sem[fg] = np.asarray(classes, np.uint8)[lab[fg]]
    return image, lab, classes, sem


def render(preset: str, size: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray | None]:
    """One synthetic image.

    Returns:
        image (H, W, 3) uint8 RGB; lab (H, W) int16 visible instance index (-1 = none);
        classes: contiguous class index per instance index (instances absent from ``lab`` were
        fully occluded or pruned); sem (H, W) uint8 semantic labels for ``shapes-street`` else None.

    Raises:
        ValueError: unknown preset.
    """
    if preset in ("shapes-coco", "shapes-ochuman"):
        return _render_shapes(rng, size, preset)
    if preset == "shapes-street":
        return _render_street(rng, size)
    raise ValueError(f"unknown synthetic preset {preset!r}; valid: {', '.join(PRESETS)}")


# ---------------------------------------------------------------------------------------------
# writing
def dataset_key(preset: str, split: str, n_images: int, image_size: int, seed: int) -> str:
    """Folder name of a generated dataset: readable parameters plus a hash (incl. the generator version)."""
    blob = json.dumps([GENERATOR_VERSION, preset, split, n_images, image_size, seed])
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return f"{preset}-{split}-n{n_images}-s{image_size}-seed{seed}-{digest}"


def _categories(preset: str) -> list[dict]:
    names = STREET_CLASSES if preset == "shapes-street" else SHAPE_CLASSES
    return [{"id": i + 1, "name": n, "supercategory": "street" if preset == "shapes-street" else "shape"}
            for i, n in enumerate(names)]


def _write(preset: str, split: str, n_images: int, size: int, seed: int, root: Path,
           use_tqdm: bool) -> None:
    (root / "images").mkdir(parents=True)
    if preset == "shapes-street":
        (root / "semseg").mkdir()
    images, anns = [], []
    it = range(n_images)
    if use_tqdm:
        from tqdm import tqdm

        it = tqdm(it, desc=f"generate {preset}/{split}", unit="img")
    step = max(1, n_images // 10)
    for i in it:
        if not use_tqdm and n_images >= 50 and i and i % step == 0:  # no terminal: a line every 10 %
            import sys
            print(f"  generate {preset}/{split}: {i} / {n_images} images", file=sys.stderr, flush=True)
        image_id = i + 1
        image, lab, classes, sem = render(preset, size, np.random.default_rng((seed, i)))
        name = f"{image_id:06d}.png"
        Image.fromarray(image).save(root / "images" / name, compress_level=1)
        record = {"id": image_id, "file_name": name, "height": size, "width": size}
        if sem is not None:
            Image.fromarray(sem).save(root / "semseg" / name, compress_level=1)
            record["sem_seg_file_name"] = f"semseg/{name}"
        images.append(record)
        present = np.unique(lab[lab >= 0])
        if present.size:
            masks = np.asfortranarray((lab[..., None] == present[None, None, :]).astype(np.uint8))  # (H, W, K)
            rles = mask_utils.encode(masks)
            areas = mask_utils.area(rles)
            bboxes = mask_utils.toBbox(rles)
            for k, rle, area, bbox in zip(present, rles, areas, bboxes):
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": classes[k] + 1,
                             "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                             "area": int(area), "bbox": [float(v) for v in bbox], "iscrowd": 0})
    data = {
        "info": {"description": f"segbench synthetic {preset}", "preset": preset, "split": split,
                 "n_images": n_images, "image_size": size, "seed": seed,
                 "generator_version": GENERATOR_VERSION, "coco_area_scale": coco_area_scale(size),
                 "coco_reference_size_px": COCO_REFERENCE_SIZE_PX},
        "images": images, "annotations": anns, "categories": _categories(preset),
    }
    if preset == "shapes-street":
        t = len(STREET_CLASSES)
        data["stuff_categories"] = [{"id": t + 1 + j, "name": n, "sem_label": t + j}
                                    for j, n in enumerate(STREET_STUFF)]
    with open(root / ANN_FILE_NAME, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))


def generate(preset: str, split: str, n_images: int, image_size: int, seed: int,
             cache_dir: str | Path, *, use_tqdm: bool = False) -> tuple[Path, Path]:
    """Generate (or reuse) a synthetic dataset.

    Args:
        preset: one of ``PRESETS``.
        split: "train" or "val" (recorded and part of the cache key; the seed decides the content).
        n_images: number of images (> 0).
        image_size: square canvas side in px (>= 16).
        seed: base seed; image i uses ``numpy.random.default_rng((seed, i))``.
        cache_dir: parent folder; the dataset lives in ``cache_dir / dataset_key(...)``.
        use_tqdm: show a progress bar.

    Returns:
        (ann_file, img_dir): the COCO-format JSON and the PNG folder.

    Raises:
        ValueError: unknown preset or bad sizes.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; valid: {', '.join(PRESETS)}")
    if n_images <= 0 or image_size < 16:
        raise ValueError(f"need n_images > 0 and image_size >= 16, got {n_images}, {image_size}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = dataset_key(preset, split, n_images, image_size, seed)
    final = cache_dir / key
    with FileLock(str(cache_dir / f"{key}.lock")):
        if not (final / ANN_FILE_NAME).is_file():
            if final.exists():  # a stale partial folder (cannot come from this function)
                shutil.rmtree(final)
            tmp = cache_dir / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
            import sys
            import time
            t0 = time.perf_counter()
            print(f"generating {preset}/{split}: {n_images} images at {image_size} px into {final} "
                  "(once; cached after)", file=sys.stderr, flush=True)
            try:
                _write(preset, split, n_images, image_size, seed, tmp, use_tqdm or sys.stderr.isatty())
                os.rename(tmp, final)
                print(f"generated {preset}/{split} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    return final / ANN_FILE_NAME, final / "images"
