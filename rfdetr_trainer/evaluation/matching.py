"""Pair detections with ground-truth boxes, one image at a time (numpy only).

Two matchings, both one-to-one:

- ``match_by_score``: COCO's rule. Detections in descending score take the unmatched ground-truth box of their
  class with the highest IoU at or above the threshold. Used for the precision/recall/F1 curves, so a curve's
  point at confidence ``c`` is what a user gets who keeps detections scoring ``c`` or more.
- ``match_any_class``: for the confusion matrix. All (detection, box) pairs of any classes with IoU at or above
  the threshold, taken greedily in descending IoU, each detection and box used once (as Ultralytics' matrix, but
  a detection whose best box is taken may still pair with its next best).
"""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N x 4, xyxy) with every box in ``b`` (M x 4, xyxy): an N x M array."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float64)
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_by_score(iou: np.ndarray, det_scores: np.ndarray, det_labels: np.ndarray, gt_labels: np.ndarray,
                   threshold: float) -> np.ndarray:
    """Which detections are true positives under COCO's greedy rule (a boolean array, one per detection).

    Args:
        iou: detections x ground truth IoU (``iou_matrix``).
        det_scores: detection confidences.
        det_labels: detection class indices.
        gt_labels: ground-truth class indices.
        threshold: the IoU a match needs.
    """
    tp = np.zeros(len(det_scores), dtype=bool)
    if not iou.size:
        return tp
    candidate = (iou >= threshold) & (det_labels[:, None] == gt_labels[None, :])
    rows = np.flatnonzero(candidate.any(axis=1))
    if not len(rows):
        return tp
    # Only detections that overlap a box of their class can be true positives; the rest (most of the 300 a model
    # emits) are false positives without entering the loop.
    rows = rows[np.argsort(-det_scores[rows], kind="stable")]
    scores = np.where(candidate[rows], iou[rows], -1.0)
    taken = np.zeros(iou.shape[1], dtype=bool)
    for k, row in enumerate(rows):
        masked = np.where(taken, -1.0, scores[k])
        best = int(masked.argmax())
        if masked[best] >= 0:
            taken[best] = True
            tp[row] = True
    return tp


def match_any_class(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one (detection index, ground-truth index) pairs with IoU >= ``threshold``, any classes.

    Pairs are taken greedily in descending IoU; each detection and each box is used at most once.
    """
    det, gt = np.nonzero(iou >= threshold)
    if not len(det):
        return det, gt
    order = np.argsort(-iou[det, gt], kind="stable")
    used_det: set[int] = set()
    used_gt: set[int] = set()
    keep = []
    for k in order.tolist():
        d, g = int(det[k]), int(gt[k])
        if d in used_det or g in used_gt:
            continue
        used_det.add(d)
        used_gt.add(g)
        keep.append(k)
    keep_arr = np.array(keep, dtype=np.int64)
    return det[keep_arr], gt[keep_arr]
