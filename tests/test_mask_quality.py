"""harness.mask_quality: best mask IoU per ground-truth instance, by hand."""
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO


def _rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()}


def _coco(anns: list[dict]) -> COCO:
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": 4, "width": 4}, {"id": 2, "height": 4, "width": 4}],
                    "categories": [{"id": 1, "name": "person"}], "annotations": anns}
    coco.createIndex()
    return coco


def test_best_iou_of_each_gt_over_the_detections_of_its_image():
    from harness.mask_quality import best_iou_per_gt
    left = np.zeros((4, 4), bool)
    left[:, :2] = True  # 8 px
    top_left = np.zeros((4, 4), bool)
    top_left[:2, :2] = True  # 4 px, inside `left`
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle(left), "area": 8, "iscrowd": 0,
             "bbox": [0, 0, 2, 4]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": _rle(~left), "area": 8, "iscrowd": 0,
             "bbox": [2, 0, 2, 4]},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": _rle(left), "area": 8, "iscrowd": 0,
             "bbox": [0, 0, 2, 4]},
            {"id": 4, "image_id": 2, "category_id": 1, "segmentation": _rle(~left), "area": 8, "iscrowd": 1,
             "bbox": [2, 0, 2, 4]}]
    dets = [{"image_id": 1, "score": 0.9, "segmentation": _rle(top_left)},  # IoU 4 / 8 with GT 1, 0 with GT 2
            {"image_id": 1, "score": 0.1, "segmentation": _rle(left)}]  # exact GT 1, whatever its score
    best = best_iou_per_gt(_coco(anns), dets)
    # image 1: GT 1 -> 1.0, GT 2 -> 0.0; image 2: no detection, its crowd GT left out -> one 0.0
    np.testing.assert_allclose(best, [1.0, 0.0, 0.0])
    best = best_iou_per_gt(_coco(anns), dets[:1])
    np.testing.assert_allclose(best, [0.5, 0.0, 0.0])
