"""keypoint-preview trains on a COCO keypoints dataset: CVAT's "COCO Keypoints 1.0" export merges with its
keypoints, num_keypoints and the categories' keypoints/skeleton intact, and reaches RFDETRKeypointPreview's configs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rfdetr_trainer.coco.merge import MergeOptions, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.synthetic import SQUARE_KEYPOINTS, SQUARE_SKELETON, make_keypoint_dataset


def test_cvat_keypoints_export_merges_with_keypoints_intact(tmp_path: Path) -> None:
    source = make_keypoint_dataset(tmp_path / "cvat", num_images=10, layout="cvat")
    originals = {}
    for path in (source / "annotations").glob("person_keypoints_*.json"):
        data = json.loads(path.read_text())
        originals.update({a["bbox"][0]: a for a in data["annotations"]})
    result = merge_datasets([SourceRef(source, "kp")], tmp_path / "out", MergeOptions())
    assert result.counts["images"] == 10 and result.counts["annotations"] == 10  # kept / total
    merged = []
    for split in ("train", "valid", "test"):
        data = json.loads((tmp_path / "out" / split / "_annotations.coco.json").read_text())
        (category,) = data["categories"]
        assert category["keypoints"] == list(SQUARE_KEYPOINTS) and category["skeleton"] == SQUARE_SKELETON
        merged += data["annotations"]
    assert len(merged) == 10
    for ann in merged:
        original = originals[ann["bbox"][0]]
        assert ann["keypoints"] == original["keypoints"] and len(ann["keypoints"]) == 3 * 4
        assert ann["num_keypoints"] == 4


def test_keypoint_preview_dry_run_builds_rfdetr_keypoint_configs(tmp_path: Path) -> None:
    from rfdetr_trainer.cli.app import app

    data = make_keypoint_dataset(tmp_path / "kp", num_images=6)
    result = CliRunner().invoke(app, ["train", "--dry-run", "--dataset-dir", str(data), "--model-type",
                                      "keypoint-preview", "--pretrain-weights", "none", "--resolution", "96",
                                      "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    assert resolved["model_class"] == "RFDETRKeypointPreview"
    assert resolved["model_config"]["use_grouppose_keypoints"] is True
    assert resolved["model_config"]["resolution"] == 96
    assert "keypoint_l1_loss_coef" in resolved["train_config"]  # rfdetr's KeypointTrainConfig, not TrainConfig
