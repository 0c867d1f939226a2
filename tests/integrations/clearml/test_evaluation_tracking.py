"""An evaluation reaches ClearML (offline session read back) and TensorBoard (event files read back)."""

from __future__ import annotations

from pathlib import Path

from support.clearml_session import only_session

from rfdetr_trainer.evaluation.core import evaluate_coco
from rfdetr_trainer.integrations.clearml import TaskManager
from rfdetr_trainer.schemas.experiment import ClearMLConfig


def _evaluation():
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 20], "area": 400,
                           "iscrowd": 0}],
          "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 20], "score": 0.7}]
    return evaluate_coco(gt, dets)


def test_clearml_gets_table_matrix_curves_and_thresholds(clearml_home: Path) -> None:
    from rfdetr_trainer.integrations.clearml.evaluation import report_evaluation

    tm = TaskManager(ClearMLConfig(enabled=True, offline=True, project_name="tests"))
    assert tm.init_task(task_name="eval-1") is True
    report_evaluation(tm.task, _evaluation(), title="eval test")
    tm.close()
    session = only_session(clearml_home)
    plots = session.of_type("plot")
    titles = {p["metric"] for p in plots}
    assert {"eval test per class", "eval test confusion matrix", "eval test PR curve"} <= titles
    table = next(p for p in plots if p["metric"] == "eval test per class")
    assert "cat" in table["plot_str"] and "dog" in table["plot_str"]
    matrix = next(p for p in plots if p["metric"] == "eval test confusion matrix")
    assert "background" in matrix["plot_str"]
    scalars = session.scalars()
    assert scalars[("Summary", "eval test threshold cat")][0][1] == 0.9
    assert ("Summary", "eval test mAP50_95") in scalars


def test_tensorboard_gets_the_figures(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rfdetr_trainer.integrations.tensorboard import write_evaluation_figures
    from rfdetr_trainer.services.evaluate import write_evaluation

    files = write_evaluation(_evaluation(), tmp_path / "ev")
    tags = write_evaluation_figures(tmp_path / "tb", files, prefix="eval valid")
    assert set(tags) == {"eval valid/confusion_matrix", "eval valid/confusion_matrix_normalized",
                         "eval valid/pr_curve", "eval valid/f1_curve"}
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert set(acc.Tags()["images"]) == set(tags)
    assert acc.Images("eval valid/pr_curve")[0].width > 300
