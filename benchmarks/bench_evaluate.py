"""Benchmark the full evaluation against pycocotools' COCOeval evaluate() + accumulate() alone.

Input (synthetic, no model, seeded): 2,000 images of 1280x720 with 20,000 ground-truth boxes over 8 classes and
300 detections per image (600,000): for each box a jittered detection (its class 90% of the time) with a high
score, and random boxes with low scores for the rest, as a detector's top-300 looks.

Measured in one process, same input:
- anchor: pycocotools ``COCOeval(gt, dt, "bbox")``: ``evaluate()`` + ``accumulate()`` only (loading the results
  with ``loadRes`` and ``summarize()`` are not counted);
- ours: ``rfdetr_trainer.evaluation.core.evaluate_coco`` from the results list: the twelve COCO metrics and
  per-class AP, the confusion matrix, precision/recall/F1 curves and best-F1 thresholds. Goal: <= 1.5x the
  anchor. Writing the files and drawing the plots are timed on their own line.

Usage:
    python benchmarks/bench_evaluate.py [--images 2000] [--boxes 20000] [--dets 300] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLASSES = ["car", "truck", "bus", "person", "bicycle", "dog", "traffic sign", "traffic light"]
W, H = 1280, 720


def make_input(images: int, boxes: int, dets: int, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    per_image = np.full(images, boxes // images)
    per_image[: boxes % images] += 1
    gt_images, annotations, results = [], [], []
    ann_id = 1
    for image_id in range(1, images + 1):
        gt_images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": W, "height": H})
        n = int(per_image[image_id - 1])
        wh = rng.uniform([16, 16], [320, 240], size=(n, 2))
        xy = rng.uniform(0, 1, size=(n, 2)) * np.c_[W - wh[:, 0], H - wh[:, 1]]
        cls = rng.integers(1, len(CLASSES) + 1, size=n)
        for k in range(n):
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": int(cls[k]),
                                "bbox": [float(xy[k, 0]), float(xy[k, 1]), float(wh[k, 0]), float(wh[k, 1])],
                                "area": float(wh[k, 0] * wh[k, 1]), "iscrowd": 0})
            ann_id += 1
        m = min(n, dets)
        jitter = rng.normal(0, 0.06, size=(m, 4)) * np.c_[wh[:m], wh[:m]]
        det_xy = xy[:m] + jitter[:, :2]
        det_wh = np.maximum(wh[:m] + jitter[:, 2:], 2)
        det_cls = np.where(rng.random(m) < 0.9, cls[:m], rng.integers(1, len(CLASSES) + 1, size=m))
        det_score = rng.uniform(0.3, 1.0, size=m)
        rest = dets - m
        r_wh = rng.uniform([8, 8], [400, 300], size=(rest, 2))
        r_xy = rng.uniform(0, 1, size=(rest, 2)) * np.c_[W - r_wh[:, 0], H - r_wh[:, 1]]
        r_cls = rng.integers(1, len(CLASSES) + 1, size=rest)
        r_score = rng.beta(1, 12, size=rest)
        all_xy, all_wh = np.r_[det_xy, r_xy], np.r_[det_wh, r_wh]
        all_cls, all_score = np.r_[det_cls, r_cls], np.r_[det_score, r_score]
        for k in range(dets):
            results.append({"image_id": image_id, "category_id": int(all_cls[k]),
                            "bbox": [round(float(all_xy[k, 0]), 2), round(float(all_xy[k, 1]), 2),
                                     round(float(all_wh[k, 0]), 2), round(float(all_wh[k, 1]), 2)],
                            "score": round(float(all_score[k]), 5)})
    gt = {"images": gt_images, "annotations": annotations,
          "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    return gt, results


def time_pycocotools(gt: dict, results: list[dict]) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dt = coco.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco, dt, "bbox")
        start = time.perf_counter()
        ev.evaluate()
        ev.accumulate()
        elapsed = time.perf_counter() - start
        ev.summarize()
    return elapsed, float(ev.stats[0])


def time_ours(gt: dict, results: list[dict]) -> tuple[float, object]:
    from rfdetr_trainer.evaluation.core import evaluate_coco

    start = time.perf_counter()
    evaluation = evaluate_coco(gt, results, iou=0.5)
    return time.perf_counter() - start, evaluation


def time_writing(evaluation: object, gt: dict) -> float:
    from rfdetr_trainer.services.evaluate import write_evaluation

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_evaluation(evaluation, Path(tmp), plots=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--boxes", type=int, default=20000)
    parser.add_argument("--dets", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    gt, results = make_input(args.images, args.boxes, args.dets)
    print(f"input: {len(gt['images'])} images, {len(gt['annotations'])} boxes, {len(results)} detections "
          f"(built in {time.perf_counter() - start:.1f} s)")
    anchor, ours = [], []
    evaluation = None
    for _ in range(args.repeat):
        seconds, anchor_map = time_pycocotools(gt, results)
        anchor.append(seconds)
        seconds, evaluation = time_ours(gt, results)
        ours.append(seconds)
    a, o = min(anchor), min(ours)
    print(f"{'measure':<58} {'seconds':>9}")
    print(f"{'pycocotools COCOeval evaluate()+accumulate() (anchor)':<58} {a:>9.2f}")
    print(f"{'ours: COCO metrics + confusion + curves + thresholds':<58} {o:>9.2f}")
    print(f"{'ratio ours / anchor (goal <= 1.5)':<58} {o / a:>9.2f}")
    print(f"{'writing files + plots (not in the ratio)':<58} {time_writing(evaluation, gt):>9.2f}")
    print(f"mAP50:95 pycocotools {anchor_map:.6f}, ours {evaluation.metrics['mAP50_95']:.6f}")


if __name__ == "__main__":
    main()
