"""Confusion matrix with a background row and column (numpy only).

Rows are the true class, columns the predicted class; index ``num_classes`` is background. A ground-truth box no
detection matched counts in (its class, background); a detection that matched no box counts in (background, its
class). Matching is class-agnostic (``matching.match_any_class``), so a box found with the wrong class lands off
the diagonal instead of as one miss plus one false positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rfdetr_trainer.evaluation.matching import match_any_class


@dataclass
class ImageErrors:
    """False positives and false negatives of one image at the matrix's confidence and IoU."""

    false_positives: int
    false_negatives: int


class ConfusionMatrix:
    """Accumulates a (C + 1) x (C + 1) matrix over images."""

    def __init__(self, num_classes: int, *, confidence: float, iou: float) -> None:
        self.num_classes = num_classes
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def add(self, iou: np.ndarray, det_scores: np.ndarray, det_labels: np.ndarray,
            gt_labels: np.ndarray) -> ImageErrors:
        """Count one image. ``iou`` is detections x ground truth over all of the image's detections.

        Returns:
            The image's false positives (unmatched or wrong-class detections) and false negatives (unmatched or
            wrong-class boxes).
        """
        bg = self.num_classes
        keep = np.flatnonzero(det_scores >= self.confidence)
        labels = det_labels[keep]
        det, gt = match_any_class(iou[keep][:, :len(gt_labels)] if len(keep) else iou[:0], self.iou)
        true, pred = gt_labels[gt], labels[det]
        np.add.at(self.matrix, (true, pred), 1)
        missed = np.ones(len(gt_labels), dtype=bool)
        missed[gt] = False
        np.add.at(self.matrix, (gt_labels[missed], bg), 1)
        spurious = np.ones(len(labels), dtype=bool)
        spurious[det] = False
        np.add.at(self.matrix, (bg, labels[spurious]), 1)
        wrong = int((true != pred).sum())
        return ImageErrors(int(spurious.sum()) + wrong, int(missed.sum()) + wrong)

    def normalized(self) -> np.ndarray:
        """Each row divided by its sum (the share of a true class predicted as each class); empty rows stay 0."""
        sums = self.matrix.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sums > 0, self.matrix / np.maximum(sums, 1), 0.0)

    def to_dict(self, class_names: list[str]) -> dict:
        """JSON-ready: labels (classes then ``background``), counts, normalized rows, and the thresholds used."""
        return {"labels": [*class_names, "background"], "rows": "true class", "columns": "predicted class",
                "confidence": self.confidence, "iou": self.iou, "matrix": self.matrix.tolist(),
                "normalized": np.round(self.normalized(), 6).tolist()}
