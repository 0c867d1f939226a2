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
    out = write_errors(ev, gt, detections_array(results), split, tmp_path / "errors", 5, cvat_frames(manifest, "test"))
    listed = json.loads(out["errors"].read_text())["images"]
    assert [(e["file_name"], e["false_positives"], e["false_negatives"]) for e in listed] == [
        ("f2.jpg", 2, 1), ("f3.jpg", 1, 1)]  # f1 had no error: not in the gallery
    assert (listed[0]["task_id"], listed[0]["frame"]) == (42, 4)
    assert (listed[1]["task_id"], listed[1]["frame"]) == (42, 8)
    drawn = np.asarray(Image.open(tmp_path / "errors" / listed[0]["drawn"]).convert("RGB")).astype(int)
    green = (drawn[..., 1] > 150) & (drawn[..., 0] < 120)
    red = (drawn[..., 0] > 150) & (drawn[..., 1] < 120)
    assert green.sum() > 20 and red.sum() > 20


def _cvat_task_export(root, task_id):
    """A CVAT 'COCO 1.0' export of a video task: frames named frame_NNNNNN.jpg, image id = frame + 1, per subset
    annotations/instances_<subset>.json with the images in images/<subset>/ (what fetch extracts)."""
    subsets = {"Train": [0, 1], "Validation": [2], "Test": [3, 4]}
    for subset, frames in subsets.items():
        images, annotations = [], []
        for frame in frames:
            name = f"frame_{frame:06d}.jpg"
            (root / "images" / subset).mkdir(parents=True, exist_ok=True)
            # different bytes in each task, or the merge would store a frame once
            Image.new("RGB", (120, 80), (task_id, 10 * frame, 90)).save(root / "images" / subset / name)
            images.append({"id": frame + 1, "file_name": name, "width": 120, "height": 80})
            annotations.append({"id": frame + 1, "image_id": frame + 1, "category_id": 1, "bbox": [10, 10, 30, 30],
                                "area": 900, "iscrowd": 0, "segmentation": []})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{subset}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "car"}]}))
    return root


def test_errors_name_the_right_task_and_frame_when_merge_renamed_colliding_frames(tmp_path, monkeypatch):
    """Two video tasks both have frame_000003.jpg: merge stores the second as frame_000003_1.jpg, and each error
    row still names its own task and frame (from the merge's record, not the file name)."""
    from rfdetr_trainer.coco.source import SourceRef
    from rfdetr_trainer.schemas.data import DataConfig
    from rfdetr_trainer.services import fetch as fetch_module

    refs = [SourceRef(_cvat_task_export(tmp_path / "cache" / f"task-{t}", t), f"cvat-task-{t}",
                      {"type": "cvat", "server": "http://cvat.test", "task_id": t, "name": f"video {t}"})
            for t in (7, 9)]
    # fetch's CVAT path, with the download replaced by the exports above
    monkeypatch.setattr(fetch_module, "collect_sources", lambda data, progress=None: refs)
    fetched = fetch_module.fetch(DataConfig(output_dir=tmp_path / "prepared"))
    manifest = json.loads(fetched.manifest_path.read_text())
    assert manifest["image_origins"] == {"path": "image_origins.json", "columns": ["file", "source", "file_name",
                                                                                    "image_id"], "images": 10}
    gt = json.loads((fetched.dataset_dir / "test" / "_annotations.coco.json").read_text())
    names = [i["file_name"] for i in gt["images"]]
    assert names == ["frame_000003.jpg", "frame_000004.jpg", "frame_000003_1.jpg", "frame_000004_1.jpg"]
    by_name = {i["file_name"]: i["id"] for i in gt["images"]}
    miss = {"category_id": 1, "bbox": [70, 40, 30, 30]}  # far from every box: 1 FP + 1 FN on its image
    results = [{"image_id": by_name["frame_000003_1.jpg"], "score": 0.9, **miss},
               {"image_id": by_name["frame_000003_1.jpg"], "score": 0.9, "category_id": 1, "bbox": [0, 50, 10, 10]},
               {"image_id": by_name["frame_000004.jpg"], "score": 0.9, **miss},
               {"image_id": by_name["frame_000003.jpg"], "score": 0.9, "category_id": 1, "bbox": [10, 10, 30, 30]},
               {"image_id": by_name["frame_000004_1.jpg"], "score": 0.9, "category_id": 1, "bbox": [10, 10, 30, 30]}]
    ev = evaluate_coco(gt, results, confidence=0.5)
    out = write_errors(ev, gt, detections_array(results), fetched.dataset_dir / "test", tmp_path / "errors", 5,
                       cvat_frames(fetched.manifest_path, "test"))
    listed = json.loads(out["errors"].read_text())["images"]
    assert [(e["file_name"], e["task_id"], e["frame"], e["source"]) for e in listed] == [
        ("frame_000003_1.jpg", 9, 3, "cvat-task-9"), ("frame_000004.jpg", 7, 4, "cvat-task-7")]
    # every image of the split is traced, the renamed ones to the second task
    frames = cvat_frames(fetched.manifest_path, "test")
    assert {n: (f["task_id"], f["frame"]) for n, f in frames.items()} == {
        "frame_000003.jpg": (7, 3), "frame_000004.jpg": (7, 4), "frame_000003_1.jpg": (9, 3),
        "frame_000004_1.jpg": (9, 4)}
