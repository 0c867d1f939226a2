"""The error gallery: worst images first, drawn in green and red, named with their CVAT task and frame."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from rfdetr_trainer.evaluation.core import detections_array, evaluate_coco
from rfdetr_trainer.services.evaluate import cvat_frames, write_errors


def test_worst_images_are_drawn_and_traced_to_their_cvat_frame(tmp_path):
    split = tmp_path / "test"
    split.mkdir()
    for name in ("f1.jpg", "f2.jpg", "f3.jpg"):
        Image.new("RGB", (120, 80), (90, 90, 90)).save(split / name)
    gt = {"images": [{"id": i, "file_name": n, "width": 120, "height": 80}
                     for i, n in enumerate(("f1.jpg", "f2.jpg", "f3.jpg"), start=1)],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 2, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0},
                          {"id": 3, "image_id": 3, "category_id": 1, "bbox": [60, 20, 20, 20], "area": 400,
                           "iscrowd": 0}],
          "categories": [{"id": 1, "name": "car"}]}
    results = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.9},  # right
               {"image_id": 2, "category_id": 1, "bbox": [70, 40, 30, 30], "score": 0.8},  # 1 FP + 1 FN
               {"image_id": 2, "category_id": 1, "bbox": [0, 50, 20, 20], "score": 0.8},  # another FP
               {"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.7}]  # 1 FP + 1 FN
    # the CVAT task export the merged dataset came from: ids 1..N in frame order
    source = tmp_path / "cvat-task-42"
    (source / "annotations").mkdir(parents=True)
    (source / "annotations" / "instances_default.json").write_text(json.dumps(
        {"images": [{"id": 5, "file_name": "f2.jpg"}, {"id": 9, "file_name": "sub/f3.jpg"}]}))
    manifest = tmp_path / "dataset_manifest.json"
    files = [{"path": "annotations/instances_default.json"}]
    manifest.write_text(json.dumps({"sources": [{"name": "cvat-task-42", "path": str(source), "annotation_files": files,
                                                 "origin": {"type": "cvat", "task_id": 42}}]}))
    ev = evaluate_coco(gt, results, confidence=0.5)
    out = write_errors(ev, gt, detections_array(results), split, tmp_path / "errors", 5, cvat_frames(manifest))
    listed = json.loads(out["errors"].read_text())["images"]
    assert [(e["file_name"], e["false_positives"], e["false_negatives"]) for e in listed] == [
        ("f2.jpg", 2, 1), ("f3.jpg", 1, 1)]  # f1 had no error: not in the gallery
    assert (listed[0]["task_id"], listed[0]["frame"]) == (42, 4)
    assert (listed[1]["task_id"], listed[1]["frame"]) == (42, 8)
    drawn = np.asarray(Image.open(tmp_path / "errors" / listed[0]["drawn"]).convert("RGB")).astype(int)
    green = (drawn[..., 1] > 150) & (drawn[..., 0] < 120)
    red = (drawn[..., 0] > 150) & (drawn[..., 1] < 120)
    assert green.sum() > 20 and red.sum() > 20
