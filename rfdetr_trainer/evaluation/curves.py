"""Precision, recall and F1 as functions of confidence, PR curves, and best-F1 thresholds (numpy only).

Inputs are every detection's confidence, class and true-positive flag (``matching.match_by_score``) plus the
number of ground-truth boxes per class. The curves are sampled on a fixed confidence grid, as Ultralytics does,
so per-class curves can be averaged and plotted together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Confidence grid the curves are sampled on.
GRID = np.round(np.linspace(0.0, 1.0, 1001), 3)  # rounded: grid point 0.7 is the float 0.7 a score can be
#: Recall grid of the PR curves (COCO's 101 points).
RECALL_GRID = np.linspace(0.0, 1.0, 101)


@dataclass
class Curves:
    """Per-class curves (rows) on ``GRID`` / ``RECALL_GRID``; classes without ground truth are NaN rows."""

    confidence: np.ndarray  # GRID
    precision: np.ndarray  # classes x GRID: precision of detections scoring >= confidence
    recall: np.ndarray  # classes x GRID
    f1: np.ndarray  # classes x GRID
    pr_recall: np.ndarray  # RECALL_GRID
    pr_precision: np.ndarray  # classes x RECALL_GRID: interpolated (monotone) precision at each recall
    num_gt: np.ndarray  # per class

    def mean_f1(self) -> np.ndarray:
        """F1 averaged over the classes that have ground truth, on ``GRID``."""
        valid = self.num_gt > 0
        return self.f1[valid].mean(axis=0) if valid.any() else np.zeros_like(self.confidence)

    def mean_pr(self) -> np.ndarray:
        valid = self.num_gt > 0
        return self.pr_precision[valid].mean(axis=0) if valid.any() else np.zeros_like(self.pr_recall)

    def best_threshold(self, cls: int | None = None) -> dict[str, float]:
        """The confidence that maximises F1 (one class, or the mean over classes) with P, R, F1 there."""
        if cls is None:
            f1 = self.mean_f1()
            valid = self.num_gt > 0
            p = self.precision[valid].mean(axis=0) if valid.any() else f1
            r = self.recall[valid].mean(axis=0) if valid.any() else f1
        else:
            f1, p, r = self.f1[cls], self.precision[cls], self.recall[cls]
        if not np.isfinite(f1).any():
            return {"confidence": float("nan"), "precision": float("nan"), "recall": float("nan"),
                    "f1": float("nan")}
        # The highest confidence reaching the best F1: on a plateau, fewer detections for the same F1.
        filled = np.where(np.isfinite(f1), f1, -1.0)
        i = len(filled) - 1 - int(np.argmax(filled[::-1]))
        if not f1[i] > 0:  # nothing is ever right: no confidence is better than another; rfdetr's default
            i = int(np.searchsorted(self.confidence, 0.5))
        return {"confidence": round(float(self.confidence[i]), 4), "precision": float(p[i]),
                "recall": float(r[i]), "f1": float(f1[i])}


def compute_curves(scores: np.ndarray, labels: np.ndarray, tp: np.ndarray, num_gt: np.ndarray) -> Curves:
    """Curves from every detection's ``scores``, ``labels`` (class indices) and ``tp`` flags."""
    num_classes = len(num_gt)
    shape = (num_classes, len(GRID))
    precision, recall = np.full(shape, np.nan), np.full(shape, np.nan)
    pr = np.full((num_classes, len(RECALL_GRID)), np.nan)
    order = np.lexsort((-scores, labels))  # by class, then descending score
    scores, labels, tp = scores[order], labels[order], tp[order]
    bounds = np.searchsorted(labels, np.arange(num_classes + 1))
    for c in range(num_classes):
        n = int(num_gt[c])
        if n <= 0:
            continue
        s, t = scores[bounds[c]:bounds[c + 1]], tp[bounds[c]:bounds[c + 1]]
        if not len(s):
            precision[c], recall[c], pr[c] = 0.0, 0.0, 0.0
            continue
        tpc = np.cumsum(t)
        fpc = np.cumsum(~t)
        rec = tpc / n
        prec = tpc / (tpc + fpc)
        # Detections with equal scores enter together: use the last index of each run of equal scores.
        last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
        s_u, rec_u, prec_u = s[last], rec[last], prec[last]
        # At confidence x the kept detections are those scoring >= x: the last index whose score is >= x.
        idx = np.searchsorted(-s_u, -GRID, side="right") - 1
        kept = idx >= 0
        recall[c] = np.where(kept, rec_u[np.maximum(idx, 0)], 0.0)
        precision[c] = np.where(kept, prec_u[np.maximum(idx, 0)], 1.0)
        envelope = np.maximum.accumulate(prec[::-1])[::-1]
        pos = np.searchsorted(rec, RECALL_GRID, side="left")
        pr[c] = np.where(pos < len(rec), envelope[np.minimum(pos, len(rec) - 1)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1[np.isnan(precision)] = np.nan
    return Curves(GRID, precision, recall, f1, RECALL_GRID, pr, np.asarray(num_gt))
