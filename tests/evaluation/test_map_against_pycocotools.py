"""Every mAP the evaluation writes equals pycocotools' COCOeval recomputed from the written files (1e-4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from support.pycocotools_ref import pycocotools_metrics

from rfdetr_trainer.evaluation.cocomap import STAT_NAMES
from rfdetr_trainer.evaluation.core import evaluate_coco
from rfdetr_trainer.evaluation.files import write_data_files
from rfdetr_trainer.services.evaluate import results_json


def synthetic(seed: int, images: int = 40, classes: int = 3):
    """Ground truth of mixed sizes (small, medium, large; a few crowd boxes) and noisy detections of it."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": 10 + c, "name": f"c{c}"} for c in range(classes)]}
    rows = []
    for image_id in range(1, images + 1):
        gt["images"].append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        for _ in range(rng.integers(0, 6)):
            w, h = rng.choice([12, 50, 200]) * rng.uniform(0.7, 1.3, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = 10 + int(rng.integers(classes))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.05)})
            if rng.random() < 0.8:
                j = rng.normal(0, 0.1, 4) * [w, h, w, h]
                rows.append([image_id, x + j[0], y + j[1], max(1, w + j[2]), max(1, h + j[3]),
                             rng.uniform(0.2, 1), cat if rng.random() < 0.85 else 10 + int(rng.integers(classes))])
        for _ in range(rng.integers(0, 40)):
            w, h = rng.uniform(5, 150, 2)
            rows.append([image_id, rng.uniform(0, 600), rng.uniform(0, 440), w, h, rng.uniform(0.001, 0.5),
                         10 + int(rng.integers(classes))])
    return gt, np.array(rows)


def assert_same(written, stats, per_class):
    for name, value in zip(STAT_NAMES, stats):
        mine = written[name]
        if value < 0:
            assert mine is None, name
        else:
            assert mine == pytest.approx(value, abs=1e-4), name
    for row in written["per_class"]:
        ap, ap50 = per_class[row["category_id"]]
        for mine, theirs in ((row["AP50_95"], ap), (row["AP50"], ap50)):
            assert (mine is None and theirs is None) or mine == pytest.approx(theirs, abs=1e-4), row


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_written_metrics_equal_pycocotools(tmp_path, seed):
    gt, dets = synthetic(seed)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    results_path = tmp_path / "coco_results.json"
    results_path.write_text(results_json(dets))
    # evaluate from the written results (rounded as written), as `evaluate` does
    ev = evaluate_coco(json.loads(gt_path.read_text()), json.loads(results_path.read_text()))
    write_data_files(ev, tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    stats, per_class = pycocotools_metrics(gt_path, results_path)
    assert not math.isclose(stats[0], 0.0)  # a real test: detections are partly right
    assert_same(written, stats, per_class)
    csv_rows = (tmp_path / "per_class.csv").read_text().splitlines()
    assert csv_rows[0].startswith("class,category_id,num_gt,AP50_95,AP50") and len(csv_rows) == 4
