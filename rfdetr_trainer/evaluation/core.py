"""One evaluation of detections on COCO ground truth: metrics, per-class rows, confusion matrix, curves, errors.

``evaluate_coco`` is the whole of what ``rfdetr-trainer evaluate`` computes; it needs numpy and a COCO evaluator
only, so it runs on the files a model wrote, without the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfdetr_trainer.evaluation.cocomap import coco_metrics
from rfdetr_trainer.evaluation.confusion import ConfusionMatrix
from rfdetr_trainer.evaluation.curves import Curves, compute_curves
from rfdetr_trainer.evaluation.matching import iou_matrix, match_by_score

#: Detections below this confidence are not scored: the floor every standard COCO evaluation uses.
SCORE_FLOOR = 0.001


@dataclass
class ImageResult:
    """One image's errors at the confusion matrix's confidence and IoU."""

    image_id: int
    file_name: str
    false_positives: int
    false_negatives: int
    num_gt: int
    num_detections: int

    @property
    def errors(self) -> int:
        return self.false_positives + self.false_negatives


@dataclass
class Evaluation:
    """Everything ``evaluate`` reports."""

    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    class_names: list[str]
    category_ids: list[int]
    confusion: ConfusionMatrix
    curves: Curves
    thresholds: dict[str, Any]
    images: list[ImageResult] = field(default_factory=list)

    def metrics_dict(self) -> dict[str, Any]:
        """``metrics.json``: overall metrics plus the per-class rows (NaN written as null)."""
        return {**{k: _clean(v) for k, v in self.metrics.items()},
                "per_class": [{k: _clean(v) for k, v in row.items()} for row in self.per_class]}

    def worst_images(self, count: int) -> list[ImageResult]:
        """The ``count`` images with the most false positives + false negatives (ties: more ground truth first)."""
        ranked = sorted((i for i in self.images if i.errors), key=lambda i: (-i.errors, -i.num_gt, i.image_id))
        return ranked[:count]


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


def detections_array(results: list[dict[str, Any]] | np.ndarray) -> np.ndarray:
    """COCO results (dicts with image_id, bbox xywh, score, category_id) as an N x 7 float array."""
    if isinstance(results, np.ndarray):
        return results.reshape(-1, 7).astype(np.float64, copy=False)
    if not results:
        return np.zeros((0, 7))
    ids = np.fromiter((r["image_id"] for r in results), dtype=np.float64, count=len(results))
    boxes = np.array([r["bbox"] for r in results], dtype=np.float64).reshape(-1, 4)
    scores = np.fromiter((r["score"] for r in results), dtype=np.float64, count=len(results))
    cats = np.fromiter((r["category_id"] for r in results), dtype=np.float64, count=len(results))
    return np.column_stack([ids, boxes, scores, cats])


def evaluate_coco(ground_truth: dict[str, Any], results: list[dict[str, Any]] | np.ndarray, *, iou: float = 0.5,
                  confidence: float | None = None) -> Evaluation:
    """Evaluate COCO ``results`` against a COCO ``ground_truth`` dataset.

    Args:
        ground_truth: a COCO dataset (images, annotations, categories); crowd boxes are ignored by COCO's rule
            and left out of the confusion matrix and curves.
        results: COCO results, or the N x 7 array ``detections_array`` builds. Detections below ``SCORE_FLOOR``
            and of categories not in the ground truth are dropped (the latter count nowhere: the model's classes
            are matched to the dataset's by the caller).
        iou: IoU a detection needs to match a box, for the confusion matrix, curves and thresholds.
        confidence: confidence of the confusion matrix and the error counts; None picks the confidence that
            maximises the mean F1 over classes.
    """
    categories = sorted(ground_truth.get("categories", []), key=lambda c: int(c["id"]))
    cat_ids = [int(c["id"]) for c in categories]
    names = [str(c.get("name", c["id"])) for c in categories]
    index_of = {c: i for i, c in enumerate(cat_ids)}
    dets = detections_array(results)
    known = np.isin(dets[:, 6], cat_ids) & (dets[:, 5] >= SCORE_FLOOR)
    dets = dets[known]
    stats, per_cat = coco_metrics(ground_truth, dets)

    # Per image: ground truth and detections as arrays (class indices, xyxy).
    images = list(ground_truth.get("images", []))
    image_ids = np.array([int(i["id"]) for i in images], dtype=np.int64)
    gts = [a for a in ground_truth.get("annotations", []) if not a.get("iscrowd") and int(a["category_id"]) in index_of]
    gt_img = np.array([int(a["image_id"]) for a in gts], dtype=np.int64)
    gt_box = np.array([a["bbox"] for a in gts], dtype=np.float64).reshape(-1, 4)
    gt_box[:, 2:] += gt_box[:, :2]
    gt_cls = np.array([index_of[int(a["category_id"])] for a in gts], dtype=np.int64)
    det_img = dets[:, 0].astype(np.int64)
    det_box = dets[:, 1:5].copy()
    det_box[:, 2:] += det_box[:, :2]
    det_cls = np.array([index_of[int(c)] for c in dets[:, 6]], dtype=np.int64) if len(dets) else np.zeros(0, int)
    det_score = dets[:, 5]
    gt_order, det_order = np.argsort(gt_img, kind="stable"), np.argsort(det_img, kind="stable")
    gt_bounds = np.searchsorted(gt_img[gt_order], [image_ids, image_ids + 1] if len(image_ids) else [[], []])
    det_bounds = np.searchsorted(det_img[det_order], [image_ids, image_ids + 1] if len(image_ids) else [[], []])

    num_gt = np.bincount(gt_cls, minlength=len(cat_ids))
    tp = np.zeros(len(dets), dtype=bool)
    pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(len(images)):
        g = gt_order[gt_bounds[0][k]:gt_bounds[1][k]]
        d = det_order[det_bounds[0][k]:det_bounds[1][k]]
        ious = iou_matrix(det_box[d], gt_box[g])
        tp[d] = match_by_score(ious, det_score[d], det_cls[d], gt_cls[g], iou)
        pending.append((k, ious, d, g))
    curves = compute_curves(det_score, det_cls, tp, num_gt)

    overall = curves.best_threshold()
    matrix_conf = confidence if confidence is not None else (
        overall["confidence"] if math.isfinite(overall["confidence"]) else 0.5)
    confusion = ConfusionMatrix(len(cat_ids), confidence=matrix_conf, iou=iou)
    image_results = []
    for k, ious, d, g in pending:
        errs = confusion.add(ious, det_score[d], det_cls[d], gt_cls[g])
        image_results.append(ImageResult(int(image_ids[k]), str(images[k].get("file_name", "")),
                                         errs.false_positives, errs.false_negatives, len(g),
                                         int((det_score[d] >= matrix_conf).sum())))

    per_class = []
    thresholds = {"iou": iou, "overall": overall, "per_class": {}}
    for i, (cat, name) in enumerate(zip(cat_ids, names)):
        best = curves.best_threshold(i)
        thresholds["per_class"][name] = best["confidence"]
        per_class.append({"class": name, "category_id": cat, "num_gt": int(num_gt[i]),
                          "AP50_95": per_cat.get(cat, {}).get("AP50_95", float("nan")),
                          "AP50": per_cat.get(cat, {}).get("AP50", float("nan")),
                          "precision": best["precision"], "recall": best["recall"], "f1": best["f1"],
                          "confidence": best["confidence"]})
    metrics = {**stats, "precision": overall["precision"], "recall": overall["recall"], "f1": overall["f1"],
               "confidence": overall["confidence"], "num_images": len(images), "num_gt": int(len(gts)),
               "num_detections": int(len(dets))}
    return Evaluation(metrics, per_class, names, cat_ids, confusion, curves, thresholds, image_results)
