"""Equal-compute rows (issue 13): Mask R-CNN with its iterations cut to the single-stage methods' training FLOPs.

``harness.cost.train_gflops_per_iter`` at the quick profile (shapes-coco, batch 8, 2026-12-02): SOLOv2 9.33,
CondInst 6.41, UniInst 6.98, Mask R-CNN 10.36 GFLOPs per iteration.  The single-stage mean (7.57) x 1200
iterations / 10.36 = 877 iterations; the lr steps and warm-up scale with them.  The counter sees convolutions and
matrix products only (RoIAlign, anchor matching and NMS are not FLOPs to it), so at about the same FLOPs a Mask
R-CNN run still takes ~5x the wall time of a single-stage run; the reports show both.
``tests/test_studies.py::test_equal_compute_iterations_match_the_cost_model`` recomputes the 877.
"""
EQUAL_FLOPS_MASKRCNN_ITERS = 877
EQUAL_FLOPS_MASKRCNN = ("train.max_iter=877", "train.steps=(731,840)", "train.warmup_iters=219")
EQUAL_FLOPS_NAME = "maskrcnn (equal train FLOPs)"
