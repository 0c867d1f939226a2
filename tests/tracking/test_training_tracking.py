"""One real CPU training with ClearML (offline) and TensorBoard attached; every check reads what it left."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import Session, isolate, only_session, reset_clearml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from rfdetr_trainer.integrations import tensorboard
    from rfdetr_trainer.integrations.clearml import TaskManager, make_callback
    from rfdetr_trainer.pipeline.context import RunPaths
    from rfdetr_trainer.schemas import ModelConfig, TrainingConfig
    from rfdetr_trainer.services.train import train
    from rfdetr_trainer.settings import Settings
    from rfdetr_trainer.synthetic import make_dataset

    root = tmp_path_factory.mktemp("tracking-run")
    mp = pytest.MonkeyPatch()
    cache = isolate(mp, root)
    try:
        dataset = make_dataset(root / "dataset", num_images=16, image_size=128)
        settings = Settings.model_validate({
            "data": {"cvat": {"password": "pw-never-sent"}, "minio": {"secret_key": "sk-never-sent"}},
            "experiment": {"clearml": {"enabled": True, "offline": True, "log_every_n_steps": 1,
                                       "debug_images_every_n_epochs": 1}},
        })
        tm = TaskManager(settings.experiment.clearml)
        assert tm.init_task(task_name="train-test")
        settings = tm.connect_params(settings)
        tm.log_dataset_info(None, dataset_dir=dataset)
        callback = make_callback(tm, settings.experiment.clearml)
        paths = RunPaths(root / "run")
        training = TrainingConfig(epochs=1, batch_size=2, grad_accum_steps=1, device="cpu", num_workers=0,
                                  resolution=128)
        # The CLI sends the project's log to stderr (rich); a plain handler stands in for it here.
        handler = logging.StreamHandler(sys.stderr)
        logging.getLogger("rfdetr_trainer").addHandler(handler)
        logging.getLogger("rfdetr_trainer").setLevel(logging.INFO)
        result = train(ModelConfig(model_type="nano", pretrain_weights=None), training, dataset, paths,
                       tensorboard=True, show_progress=False,
                       extra_callbacks=[callback, *tensorboard.make_callbacks(every_n_epochs=1)])
        logging.getLogger("rfdetr_trainer").removeHandler(handler)
        tm.log_model(result.best_checkpoint, name="best", class_names=result.class_names,
                     metrics=result.final_metrics)
        folder = tm.close()
        yield SimpleNamespace(session=only_session(cache), folder=folder, result=result, paths=paths,
                              callback=callback)
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
    assert run.callback.reported_epochs == [0]
    assert scalars[("val", "mAP_50")][0][1] == pytest.approx(run.result.final_metrics["val/mAP_50"])


def test_clearml_debug_images_console_and_model(run: SimpleNamespace) -> None:
    (image,) = run.session.of_type("training_debug_image")
    assert (image["metric"], image["variant"], image["iter"]) == ("predictions", "valid", 0)
    assert Path(image["url"]).is_file() and Path(image["url"]).stat().st_size > 1000
    assert "epoch 1" in run.session.log  # the project's own log lines (stderr) are the console log
    (model,) = run.session.task["offline_output_models"]
    assert model["init"]["label_enumeration"] == {n: i for i, n in enumerate(run.result.class_names)}
    assert set(model["init"]["config_dict"]["metrics"]) >= {"val/mAP_50", "val/mAP_50_95"}
    assert Path(model["weights"]["weights_filename"]).stat().st_size == run.result.best_checkpoint.stat().st_size
    text = run.session.all_text()
    assert "pw-never-sent" not in text and "sk-never-sent" not in text
    assert run.session.hyperparams()["training"]["epochs"] == "50"  # the connected Settings, not the test's run


def test_clearml_dataset_tables(run: SimpleNamespace) -> None:
    plots = {(e["metric"], e["variant"]) for e in run.session.of_type("plot")}
    assert {("dataset", "splits"), ("dataset", "classes"), ("dataset: images per split", "images")} <= plots


def test_tensorboard_scalars_and_prediction_images(run: SimpleNamespace) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.paths.tensorboard), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"val/mAP_50", "val/mAP_50_95", "train/loss"} <= set(tags["scalars"]), tags["scalars"]
    assert tags["images"] == ["predictions/valid"]
    (event,) = acc.Images("predictions/valid")
    assert event.step == 0 and event.width >= 128 and event.height >= 128
    assert event.encoded_image_string[:4] == b"\x89PNG"


def test_tensorboard_callback_is_silent_without_logger(tmp_path: Path) -> None:
    from rfdetr_trainer.integrations.tensorboard import TensorBoardPredictionImages

    trainer = SimpleNamespace(loggers=[], sanity_checking=False, is_global_zero=True, current_epoch=0,
                              max_epochs=1)
    TensorBoardPredictionImages().emit(trainer, object(), 0)  # no TensorBoard logger: nothing to do, no error
    assert Session  # the reader is shared with the other modules
