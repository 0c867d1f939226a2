"""The reference our mAP is checked against: pycocotools' COCOeval (bbox), run quietly on a ground-truth file and a
COCO results file."""

from __future__ import annotations

import contextlib
import io

import numpy as np


def pycocotools_metrics(gt_path, results_path) -> tuple[np.ndarray, dict[int, tuple[float | None, float | None]]]:
    """COCOeval's 12 summary stats, and per category id (AP50:95, AP50) over all areas and 100 detections (None
    where the category has no ground truth)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(results_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        per_class[cat] = (float(np.mean(p[p > -1])) if (p > -1).any() else None,
                          float(np.mean(p[0][p[0] > -1])) if (p[0] > -1).any() else None)
    return ev.stats, per_class
