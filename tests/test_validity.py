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


def test_goal_rows_take_the_worst_method_per_dataset_and_canvas():
    """The report's goal table: the lowest ceiling of any representation and the highest zero-positive fraction of
    any method, per quick-profile (dataset, canvas), each against its goal (90 AP, 5 %); other profiles left out."""
    from harness.validity import _canvas_summary, _goal_rows

    def pos(frac):
        return {"metrics": {"zero_positive_frac": frac}}

    def ceil(ap):
        return {"metrics": {"AP": ap}}
    latest = {("quick", "street", 128, "solov2"): pos(0.005), ("quick", "street", 128, "condinst"): pos(0.087),
              ("quick", "street", 192, "condinst"): pos(0.049), ("real", "pf", 256, "solov2"): pos(0.5)}
    ceilings = {("solov2", "quick", "street", 128, "stride4_soft", "none"): ceil(65.9),
                ("solov2", "quick", "street", 128, "stride4", "none"): ceil(52.6),  # binary: not the goal's ceiling
                ("maskrcnn", "quick", "street", 128, "roi28_aligned", "none"): ceil(99.4),
                ("solov2", "quick", "street", 192, "stride4_soft", "none"): ceil(91.0),
                ("maskrcnn", "quick", "street", 192, "roi28_aligned", "none"): ceil(99.1),
                ("solov2", "quick", "street", 256, "stride4_soft", "none"): ceil(95.0)}
    rows = {r["canvas px"]: r for r in _goal_rows(latest, ceilings)}
    assert sorted(rows) == [128, 192, 256] and {r["dataset"] for r in rows.values()} == {"street"}
    r128, r192, r256 = rows[128], rows[192], rows[256]
    assert r128["ceiling, soft stride 4"] == "65.9" and r128["every ceiling ≥ 90"] == "NO"
    assert r128["highest zero-positive %"] == "8.7 (condinst)" and r128["every zero-positive ≤ 5 %"] == "NO"
    assert r192["every ceiling ≥ 90"] == "yes" and r192["every zero-positive ≤ 5 %"] == "yes"
    assert r256["highest zero-positive %"] == "–" and r256["every zero-positive ≤ 5 %"] == "–"
    assert _canvas_summary(list(rows.values())) == ("street: every ceiling ≥ 90 from 192 px, every zero-positive "
                                                   "≤ 5 % from 192 px")
    assert _canvas_summary([r128]) == ("street: every ceiling ≥ 90 at none of 128 px, every zero-positive ≤ 5 % at "
                                       "none of 128 px")


def test_validity_canvas_is_the_quick_profiles_only():
    import pytest

    from harness.validity import run_validity
    with pytest.raises(ValueError, match="quick profile's canvas"):
        run_validity("smoke", canvas=192)
    with pytest.raises(ValueError, match="one of \\[128, 192\\]"):
        run_validity("quick", canvas=160)
