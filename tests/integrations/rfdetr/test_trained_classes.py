"""Class names end to end (issue 8, deliverable 4), with one real CPU training.

Two sources whose category ids and orders differ, one of them a Roboflow export with its synthetic root
category, are merged, trained on (Nano, from scratch, 224 px, 1 epoch) and predicted with. The checkpoint, the
predictions and the COCO results name exactly the merged classes, and each predicted ``category_id`` names the
class the model's label stands for. The training's stderr, written to a file, carries no ANSI escape codes and
reports the epoch's metrics once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO
from support.coco_fixtures import jpeg_bytes

CLI = [sys.executable, "-m", "rfdetr_trainer"]
TINY = ["--model-type", "nano", "--pretrain-weights", "none", "--epochs", "1", "--batch-size", "4",
        "--grad-accum-steps", "1", "--resolution", "224", "--device", "cpu", "--num-workers", "0"]


def _image(n: int, box: tuple[int, int, int, int]) -> bytes:
    return jpeg_bytes((64, 48), (10 * n % 255, 60, 120), box=box)


def _roboflow(root: Path) -> None:
    """Roboflow COCO export (2024): root category 0 parenting 'raccoon' (1) and 'fox' (2), ids from 0."""
    cats = [{"id": 0, "name": "animals", "supercategory": "none"},
            {"id": 1, "name": "raccoon", "supercategory": "animals"},
            {"id": 2, "name": "fox", "supercategory": "animals"}]
    for split, count in (("train", 6), ("valid", 2), ("test", 2)):
        images, anns = [], []
        for k in range(count):
            name = f"{split}{k}_jpg.rf.{k:032x}.jpg"
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / split / name).write_bytes(_image(k + 7 * len(split), (4, 4, 28, 28)))
            images.append({"id": k, "license": 1, "file_name": name, "height": 48, "width": 64,
                           "date_captured": "2024-01-09T12:00:00+00:00"})
            anns.append({"id": k, "image_id": k, "category_id": 1 + k % 2, "bbox": [4, 4, 24, 24], "area": 576,
                         "segmentation": [], "iscrowd": 0})
        (root / split / "_annotations.coco.json").write_text(json.dumps(
            {"info": {}, "licenses": [], "categories": cats, "images": images, "annotations": anns}))


def _cvat(root: Path) -> None:
    """CVAT 'COCO 1.0' (2.x): 'dog' (1), 'fox' (2), 'raccoon' (3): other ids, another order, one new class."""
    cats = [{"id": 1, "name": "dog", "supercategory": ""}, {"id": 2, "name": "fox", "supercategory": ""},
            {"id": 3, "name": "raccoon", "supercategory": ""}]
    for subset, count in (("Train", 4), ("Validation", 1), ("Test", 1)):
        images, anns = [], []
        for k in range(count):
            name = f"frame_{k:06d}.jpg"
            folder = root / "images" / subset
            folder.mkdir(parents=True, exist_ok=True)
            folder.joinpath(name).write_bytes(_image(100 + k + 11 * len(subset), (30, 10, 60, 40)))
            images.append({"id": k + 1, "width": 64, "height": 48, "file_name": name, "license": 0,
                           "flickr_url": "", "coco_url": "", "date_captured": 0})
            anns.append({"id": k + 1, "image_id": k + 1, "category_id": 1 + k % 3, "segmentation": [],
                         "area": 900.0, "bbox": [30.0, 10.0, 30.0, 30.0], "iscrowd": 0,
                         "attributes": {"occluded": False, "rotation": 0.0}})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{subset}.json").write_text(json.dumps(
            {"licenses": [], "info": {}, "categories": cats, "images": images, "annotations": anns}))


def _run(args: list[str], cwd: Path, stderr_file: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(stderr_file or os.devnull, "w") as err:
        proc = subprocess.run([*CLI, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                              timeout=900)
    assert proc.returncode == 0, (stderr_file.read_text()[-3000:] if stderr_file else proc.stdout)
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classes")
    _roboflow(tmp / "rf")
    _cvat(tmp / "cvat")
    _run(["merge", str(tmp / "rf"), str(tmp / "cvat"), "-o", str(tmp / "merged")], tmp)
    log = tmp / "train.log"
    proc = _run(["train", "--dataset-dir", str(tmp / "merged"), *TINY, "--output-dir", str(tmp / "runs"),
                 "--run-name", "t", "--json"], tmp, log)
    summary = json.loads(proc.stdout)
    best = Path(summary["best_checkpoint"])
    _run(["predict", "-w", str(best), "-i", str(tmp / "merged"), "--output", str(tmp / "pred"), "--conf", "0.001"], tmp,
         tmp / "predict.log")
    yield tmp, best, log, summary
    shutil.rmtree(tmp / "runs", ignore_errors=True)


def test_merge_drops_the_root_and_unites_classes_by_name(trained):
    tmp, _, _, _ = trained
    manifest = json.loads((tmp / "merged" / "dataset_manifest.json").read_text())
    assert [c["name"] for c in manifest["categories"]] == ["raccoon", "fox", "dog"]
    assert [d["name"] for d in manifest["dropped_categories"]] == ["animals"]
    train = json.loads((tmp / "merged" / "train" / "_annotations.coco.json").read_text())
    assert [(c["id"], c["name"]) for c in train["categories"]] == [(1, "raccoon"), (2, "fox"), (3, "dog")]


def test_checkpoint_and_predictions_name_exactly_the_trained_classes(trained):
    from rfdetr_trainer.integrations.rfdetr.inference import load_model

    tmp, best, _, _ = trained
    model = load_model(best)
    assert list(model.class_names) == ["raccoon", "fox", "dog"]
    predictions = json.loads((tmp / "pred" / "predictions.coco.json").read_text())
    assert [(c["id"], c["name"]) for c in predictions["categories"]] == [(1, "raccoon"), (2, "fox"), (3, "dog")]
    names = {c["id"]: c["name"] for c in predictions["categories"]}
    results = json.loads((tmp / "pred" / "coco_results.json").read_text())
    assert results, "a 0.001 threshold keeps detections even from a one-epoch model"
    # Label i of the model is class_names[i]; the category id written for it must carry that name.
    from rfdetr_trainer.services.predict import _category_mapping

    category_of = _category_mapping(list(model.class_names), predictions["categories"])
    assert [names[category_of(i)] for i in range(3)] == ["raccoon", "fox", "dog"]
    assert {r["category_id"] for r in results} - {-1} <= set(names)


def test_training_log_in_a_file_has_no_ansi_and_one_report_per_epoch(trained):
    _, _, log, _ = trained
    text = log.read_text()
    assert "\x1b[" not in text
    assert text.count("Epoch 1/1") >= 1  # rfdetr's table, as plain text
    assert "epoch 1: {" not in text  # the project's own line is not printed as well


def test_train_writes_a_run_manifest_naming_its_checkpoint_and_evaluation(trained):
    """Issue 9: train's final evaluation on valid lands in the run folder's manifest and its --json output."""
    tmp, best, _, summary = trained
    run_dir = tmp / "runs" / "t"
    assert summary["manifest_path"] == str(run_dir / "run_manifest.json")
    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    assert {k: v["status"] for k, v in manifest["stages"].items()} == {
        "fetch": "done", "train": "done", "evaluate": "done", "report": "done"}
    assert manifest["artifacts"]["best_checkpoint"] == str(best)
    metrics = run_dir / "evaluation" / "valid" / "metrics.json"
    assert manifest["artifacts"]["evaluation_metrics"] == str(metrics) and metrics.is_file()
    assert manifest["artifacts"]["report"] == str(run_dir / "report.html")
    assert summary["evaluation"]["metrics_json"] == str(metrics) and "mAP50" in summary["evaluation"]["metrics"]


def test_stage_stdout_drops_ansi_escapes_off_a_terminal(monkeypatch):
    """rfdetr prints its tables on ``Console(force_terminal=True)`` to stdout; a piped stderr gets plain text."""
    import io
    import logging

    from rich.console import Console

    from rfdetr_trainer.integrations.rfdetr.console import stage_stdout

    monkeypatch.setattr(logging.getLogger("rfdetr_trainer"), "level", logging.INFO)  # not -q
    sink = io.StringIO()
    Console(file=stage_stdout(sink), force_terminal=True).print("[bold green]50:95[/] [link=http://x]link[/link]")
    assert sink.getvalue().strip() == "50:95 link"
    monkeypatch.setattr(logging.getLogger("rfdetr_trainer"), "level", logging.WARNING)  # -q: tables are not warnings
    muted = io.StringIO()
    Console(file=stage_stdout(muted), force_terminal=True).print("table")
    assert muted.getvalue() == ""
