"""One real CPU training with ClearML (offline) and TensorBoard attached; every check reads what it left."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.clearml_session import isolate, only_session, reset_clearml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """``rfdetr-trainer run --clearml --clearml-offline …`` as a user types it, in its own process."""
    import json
    import os
    import subprocess

    from rfdetr_trainer.pipeline.context import RunPaths
    from rfdetr_trainer.synthetic import make_dataset

    root = tmp_path_factory.mktemp("tracking-run")
    mp = pytest.MonkeyPatch()
    cache = isolate(mp, root)
    try:
        dataset = make_dataset(root / "dataset", num_images=16, image_size=128)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RFDETR_TRAINER_", "CVAT_", "MINIO_"))}
        env.update(CVAT_PASSWORD="pw-never-sent", MINIO_SECRET_KEY="sk-never-sent", PYTHONUNBUFFERED="1",
                   RFDETR_TRAINER_EXPERIMENT__CLEARML__LOG_EVERY_N_STEPS="1")
        command = [sys.executable, "-m", "rfdetr_trainer", "run", "--dataset-dir", str(dataset), "--output-dir",
                   str(root / "runs"), "--run-name", "tracked", "--pretrain-weights", "none", "--epochs", "1",
                   "--batch-size", "2", "--grad-accum-steps", "1", "--resolution", "128", "--device", "cpu",
                   "--num-workers", "0", "--clearml", "--clearml-offline", "--project-name", "rfdetr-tests",
                   "--tags", "production", "v1.0", "--export-format", "onnx"]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=root)
        assert proc.returncode == 0, proc.stderr[-4000:]
        paths = RunPaths(root / "runs" / "tracked")
        manifest = json.loads(paths.manifest.read_text())
        result = SimpleNamespace(
            best_checkpoint=Path(manifest["artifacts"]["best_checkpoint"]),
            class_names=manifest["stages"]["train"]["class_names"],
            final_metrics=manifest["stages"]["train"]["final_metrics"],
            onnx=Path(manifest["artifacts"]["export_onnx"]),
        )
        yield SimpleNamespace(session=only_session(cache), result=result, paths=paths, stdout=proc.stdout,
                              stderr=proc.stderr)
    finally:
        reset_clearml()
        mp.undo()
        shutil.rmtree(root, ignore_errors=True)  # checkpoints are ~800 MB a run


def test_clearml_epoch_and_step_scalars(run: SimpleNamespace) -> None:
    scalars = run.session.scalars()
    for key in [("val", "mAP_50"), ("val", "mAP_50_95"), ("train", "loss"), ("train", "lr")]:
        assert key in scalars, sorted(scalars)
        assert [it for it, _ in scalars[key]] == [0]  # one epoch, reported once
    steps = scalars[("train (steps)", "loss")]
    assert [it for it, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 4  # every step
    per_class = {series for (title, series) in scalars if title == "val AP per class"}
    assert per_class <= {"square", "circle", "triangle"}
    assert scalars[("val", "mAP_50")][0][1] == pytest.approx(run.result.final_metrics["val/mAP_50"])


def test_clearml_debug_images_console_and_model(run: SimpleNamespace) -> None:
    (image,) = run.session.of_type("training_debug_image")
    assert (image["metric"], image["variant"], image["iter"]) == ("predictions", "valid", 0)
    assert Path(image["url"]).is_file() and Path(image["url"]).stat().st_size > 1000
    assert "run folder: " in run.session.log  # the project's own log lines (stderr) are the console log
    best, onnx = run.session.task["offline_output_models"]  # the best checkpoint, then the exported model
    for model in (best, onnx):
        assert model["init"]["label_enumeration"] == {n: i for i, n in enumerate(run.result.class_names)}
        assert set(model["init"]["config_dict"]["metrics"]) >= {"val/mAP_50", "val/mAP_50_95"}
    assert Path(best["weights"]["weights_filename"]).stat().st_size == run.result.best_checkpoint.stat().st_size
    assert Path(onnx["weights"]["weights_filename"]).stat().st_size == run.result.onnx.stat().st_size
    text = run.session.all_text()
    assert "pw-never-sent" not in text and "sk-never-sent" not in text
    assert "pw-never-sent" not in run.stdout + run.stderr
    hyper = run.session.hyperparams()
    assert hyper["training"]["epochs"] == "1" and hyper["model"]["model_type"] == "nano"
    assert not any("password" in key or "secret" in key for values in hyper.values() for key in values)
    assert set(run.session.task.get("tags") or []) >= {"production", "v1.0"}
    # ClearML's banners stay off stdout: the manifest, then the best checkpoint last
    assert run.stdout.strip().splitlines()[-2].startswith("manifest: ")
    assert run.stdout.strip().splitlines()[-1].endswith(".pth")


def test_clearml_dataset_tables(run: SimpleNamespace) -> None:
    plots = {(e["metric"], e["variant"]) for e in run.session.of_type("plot")}
    assert {("dataset", "splits"), ("dataset", "classes"), ("dataset: images per split", "images")} <= plots


def test_tensorboard_scalars_and_prediction_images(run: SimpleNamespace) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.paths.tensorboard), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"val/mAP_50", "val/mAP_50_95", "train/loss"} <= set(tags["scalars"]), tags["scalars"]
    # the validation predictions each epoch, then `run`'s evaluation of the test split (issue 9)
    assert tags["images"] == ["predictions/valid", "eval test/confusion_matrix",
                              "eval test/confusion_matrix_normalized", "eval test/pr_curve", "eval test/f1_curve"]
    (event,) = acc.Images("predictions/valid")
    assert event.step == 0 and event.width >= 128 and event.height >= 128
    assert event.encoded_image_string[:4] == b"\x89PNG"


def test_tensorboard_callback_is_silent_without_logger(tmp_path: Path) -> None:
    from rfdetr_trainer.integrations.tensorboard import TensorBoardPredictionImages

    trainer = SimpleNamespace(loggers=[], sanity_checking=False, is_global_zero=True, current_epoch=0,
                              max_epochs=1)
    TensorBoardPredictionImages().emit(trainer, object(), 0)  # no TensorBoard logger: nothing to do, no error
