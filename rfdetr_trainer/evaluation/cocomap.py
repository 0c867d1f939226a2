"""The standard COCO box metrics, overall and per class, from faster-coco-eval (pycocotools' numbers, in C++).

faster-coco-eval (installed with rfdetr) reproduces pycocotools' ``COCOeval`` and runs its evaluate/accumulate in
C++; on the 600,000-detection benchmark (``benchmarks/bench_evaluate.py``) it is what keeps the whole evaluation
below pycocotools' evaluate + accumulate alone. ``tests/evaluation`` recomputes every number with pycocotools.
When faster-coco-eval is missing, pycocotools is used.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

#: ``COCOeval.stats`` order.
STAT_NAMES = ("mAP50_95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large")


def _evaluator() -> tuple[Any, Any, bool]:
    try:
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster, True
    except ImportError:  # pragma: no cover - faster-coco-eval ships with rfdetr
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval, False


def coco_metrics(ground_truth: dict[str, Any], detections: np.ndarray) -> tuple[dict[str, float],
                                                                                 dict[int, dict[str, float]]]:
    """COCO metrics of ``detections`` (N x 7: image_id, x, y, w, h, score, category_id) on ``ground_truth``.

    Returns:
        The twelve ``COCOeval.stats`` by name (``STAT_NAMES``; -1 where undefined becomes NaN), and per category
        id its ``AP50_95`` and ``AP50`` (NaN for a category without ground truth).
    """
    COCO, COCOeval, faster = _evaluator()
    cat_ids = [int(c["id"]) for c in ground_truth.get("categories", [])]
    nan = {name: float("nan") for name in STAT_NAMES}
    if not ground_truth.get("annotations") or not cat_ids:
        return nan, {c: {"AP50_95": float("nan"), "AP50": float("nan")} for c in cat_ids}
    # Both libraries print progress on stdout, which is reserved for results.
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        # COCOeval marks ground truth in place ("ignore"); copy the records, not the caller's dataset.
        gt.dataset = {**ground_truth, "annotations": [dict(a) for a in ground_truth["annotations"]]}
        gt.createIndex()
        if len(detections):
            dt = gt.loadRes(np.asarray(detections, dtype=np.float64))
        else:
            dt = gt.loadRes([])
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {name: (float(v) if v >= 0 else float("nan")) for name, v in zip(STAT_NAMES, ev.stats)}
    precision = np.asarray(ev.eval["precision"])  # iou x recall x class x area x maxdets
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        all_iou = precision[:, :, k, 0, -1]
        at50 = precision[0, :, k, 0, -1]
        per_class[int(cat)] = {"AP50_95": _mean_defined(all_iou), "AP50": _mean_defined(at50)}
    return stats, per_class


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else float("nan")
