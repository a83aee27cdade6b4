"""harness.validity: positives per GT from a method's own assigner, and the thin zero-positive GT among them."""
import torch

from harness.data.types import Sample


class _TwoObjects(list):
    """One 64 x 64 image: a 20 x 20 square and a 30 x 1 sliver at y = 1 (between CondInst's stride-8 rows 4, 12 ...)."""
    class_names = ["a"]
    name = "hand-built"

    def __init__(self):
        masks = torch.zeros(2, 64, 64, dtype=torch.bool)
        masks[0, 20:40, 20:40] = True
        masks[1, 1:2, 10:40] = True
        boxes = torch.tensor([[20.0, 20, 40, 40], [10, 1, 40, 2]])
        super().__init__([Sample(torch.zeros(3, 64, 64, dtype=torch.uint8), masks, torch.tensor([0, 0]), boxes,
                                 torch.zeros(2, dtype=torch.bool), 1, (64, 64))])


def test_positives_counts_the_sliver_without_a_location_as_thin_zero_positive(monkeypatch):
    import harness.pipeline
    from harness.validity import THIN_PX, positives
    monkeypatch.setattr(harness.pipeline, "build_split", lambda cfg, split: _TwoObjects())
    stats, _ = positives("condinst", "smoke", 1)
    assert THIN_PX == 8 and stats["n_gt"] == 2
    # the square holds CondInst positives (centre sampling at stride 8), the sliver none: it holds no location
    assert stats["zero_positive_frac"] == 0.5 and stats["zero_positive_thin_frac"] == 0.5
    assert stats["positives_per_gt"] > 0.5
