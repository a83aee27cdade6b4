"""Transforms: hand-computed sizes, aligned masks / boxes / sem_seg, dropping vanished instances."""
from __future__ import annotations

import pytest
import torch

from harness.config import DataConfig
from harness.data.transforms import (
    MASK_MODES,
    EvalTransform,
    TrainTransform,
    boxes_from_masks,
    build_transform,
    hflip,
    resize,
    resize_short_side,
    short_side_size,
)
from harness.data.types import Sample


def _sample(h: int = 8, w: int = 10) -> Sample:
    masks = torch.zeros((2, h, w), dtype=torch.bool)
    masks[0, 1:3, 0:4] = True  # rows 1-2, cols 0-3
    masks[1, 4:8, 6:10] = True  # rows 4-7, cols 6-9
    image = torch.arange(3 * h * w, dtype=torch.int64).reshape(3, h, w).remainder(256).to(torch.uint8)
    sem = torch.full((h, w), 7, dtype=torch.int64)
    sem[:, :5] = 255
    return Sample(image=image, masks=masks, labels=torch.tensor([3, 1]), boxes=boxes_from_masks(masks),
                  iscrowd=torch.tensor([False, True]), image_id=5, orig_size=(h, w), sem_seg=sem)


def test_boxes_from_masks_hand_case():
    s = _sample()
    assert s.boxes.tolist() == [[0.0, 1.0, 4.0, 3.0], [6.0, 4.0, 10.0, 8.0]]
    assert boxes_from_masks(torch.zeros((0, 4, 4), dtype=torch.bool)).shape == (0, 4)


@pytest.mark.parametrize("hw,short,max_size,expected", [
    ((480, 640), 800, 1333, (800, 1067)),  # 640 * 800 / 480 = 1066.7
    ((100, 1000), 800, 1333, (133, 1333)),  # long side capped: scale 1.333
    ((640, 427), 128, 1333, (192, 128)),  # 640 * 128 / 427 = 191.9
    ((128, 128), 128, 1333, (128, 128)),
])
def test_short_side_size(hw, short, max_size, expected):
    assert short_side_size(*hw, short, max_size) == expected


def test_short_side_size_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive"):
        short_side_size(0, 10, 5, 10)


def test_hflip_mirrors_everything():
    s = hflip(_sample())
    assert s.boxes.tolist() == [[6.0, 1.0, 10.0, 3.0], [0.0, 4.0, 4.0, 8.0]]  # x -> 10 - x
    assert torch.equal(s.image, _sample().image.flip(-1))
    assert bool(s.masks[0, 1, 9]) and not bool(s.masks[0, 1, 0])
    assert (s.sem_seg[:, 5:] == 255).all() and (s.sem_seg[:, :5] == 7).all()
    assert s.labels.tolist() == [3, 1] and s.iscrowd.tolist() == [False, True]
    assert torch.equal(hflip(s).masks, _sample().masks)  # an involution


def test_resize_doubles_boxes_and_keeps_alignment():
    s = resize(_sample(), (16, 20))
    assert s.image.shape == (3, 16, 20) and s.image.dtype == torch.uint8
    assert s.masks.shape == (2, 16, 20) and s.masks.dtype == torch.bool
    assert s.boxes.tolist() == [[0.0, 2.0, 8.0, 6.0], [12.0, 8.0, 20.0, 16.0]]
    assert s.sem_seg.dtype == torch.int64 and set(s.sem_seg.unique().tolist()) == {7, 255}  # nearest
    assert s.orig_size == (8, 10) and s.size == (16, 20)


def test_resize_drops_vanished_instances():
    s = _sample(40, 40)
    masks = torch.zeros((2, 40, 40), dtype=torch.bool)
    masks[0, 10:30, 10:30] = True
    masks[1, 1, 1] = True  # one pixel: gone at 1/4 scale (nearest samples pixels 0, 4, 8, ...)
    s = Sample(s.image, masks, torch.tensor([0, 1]), boxes_from_masks(masks), torch.tensor([False, False]),
               s.image_id, s.orig_size, None)
    out = resize(s, (10, 10))
    assert out.labels.tolist() == [0] and out.masks.shape == (1, 10, 10) and out.boxes.shape == (1, 4)
    assert out.iscrowd.shape == (1,)


def test_resize_short_side_caps_long_side():
    s = resize_short_side(_sample(8, 10), 16, 15)
    assert s.size == (12, 15)


def test_train_transform_is_reproducible_and_draws_sizes_and_flips():
    t = TrainTransform((8, 16), max_size=100, flip_prob=0.5)
    torch.manual_seed(0)
    a = [t(_sample()) for _ in range(20)]
    torch.manual_seed(0)
    b = [t(_sample()) for _ in range(20)]
    assert all(torch.equal(x.masks, y.masks) for x, y in zip(a, b))
    assert {x.size for x in a} == {(8, 10), (16, 20)}
    flipped = [bool(x.masks[0, :, -1].any()) for x in a]  # instance 0 touches the left edge
    assert any(flipped) and not all(flipped)


def test_build_transform_from_data_config():
    cfg = DataConfig(train_short_sides=(32, 48), test_short_side=40, max_size=64, flip_prob=0.0)
    tr, ev = build_transform(cfg, True), build_transform(cfg, False)
    assert isinstance(tr, TrainTransform) and tr.train_short_sides == (32, 48) and tr.flip_prob == 0.0
    assert isinstance(ev, EvalTransform) and ev(_sample()).size == (40, 50)


@pytest.mark.parametrize("mode, expected", [("nearest-exact", [1, 1, 0]), ("nearest", [0, 1, 1])])
def test_mask_resize_modes_hand_computed(mode, expected):
    """A row [0, 1, 1, 1, 1, 0] halved: "nearest-exact" takes the pixels under the output centres (input x = 1, 3,
    5), aligned with the bilinear image resize; torch's legacy "nearest" takes the left corners (x = 0, 2, 4), the
    mask shifted by half an input pixel against the image."""
    image = torch.zeros((3, 2, 6), dtype=torch.uint8)
    masks = torch.tensor([[[0, 1, 1, 1, 1, 0]] * 2], dtype=torch.bool)
    s = Sample(image, masks, torch.tensor([0]), boxes_from_masks(masks), torch.tensor([False]), 1, (2, 6), None)
    out = resize(s, (1, 3), mode)
    assert out.masks[0, 0].int().tolist() == expected
    assert build_transform(DataConfig(mask_resize=mode), False).mask_mode == mode
    assert set(MASK_MODES) == set(DataConfig.MASK_RESIZE_MODES)
    with pytest.raises(ValueError, match="mask_resize"):
        DataConfig(mask_resize="bilinear")


def test_mask_resize_is_in_the_run_hash_only_where_images_are_resized():
    """On a synthetic canvas trained at its own size the mode decides nothing: same run hash (the quick profile's
    runs keep theirs); on photographs (real profile) it is part of the run's identity."""
    from harness.config import make_config, train_hash
    quick = [train_hash(make_config("solov2", "quick", overrides=[f"data.mask_resize={m}"]))
             for m in ("nearest-exact", "nearest")]
    assert quick[0] == quick[1]
    jitter = [train_hash(make_config("solov2", "quick", overrides=["data.train_short_sides=(112,128)",
                                                                    f"data.mask_resize={m}"]))
              for m in ("nearest-exact", "nearest")]
    assert jitter[0] != jitter[1]
    real = [train_hash(make_config("solov2", "real", overrides=[f"data.mask_resize={m}"]))
            for m in ("nearest-exact", "nearest")]
    assert real[0] != real[1]
