"""Every stage hands back a typed result, and the stages never reach up into the runner that chains them."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

import rfdetr_trainer.pipeline as pipeline_package
from rfdetr_trainer.errors import TrainingError
from rfdetr_trainer.pipeline import runner, stages
from rfdetr_trainer.services.evaluate import EvaluateResult
from rfdetr_trainer.services.fetch import FetchResult
from rfdetr_trainer.services.train import TrainResult
from rfdetr_trainer.settings import load_settings

PIPELINE = Path(pipeline_package.__file__).parent


@pytest.mark.parametrize("function,returns", [
    (stages.fetch_stage, "FetchResult"),
    (stages.train_stage, "TrainResult | Enqueued | None"),
    (stages.predict_stage, "PredictResult"),
    (stages.export_stage, "ExportResult"),
    (stages.evaluate_stage, "EvaluateResult"),
    (stages.final_evaluation, "EvaluateResult"),
    (runner.run, "RunArtifacts | Enqueued | None"),
], ids=lambda v: getattr(v, "__name__", v))
def test_stages_return_typed_results(function, returns):
    assert inspect.signature(function).return_annotation == returns


@pytest.mark.parametrize("module", ["stages.py", "context.py", "tracking.py"])
def test_nothing_below_the_runner_imports_it(module):
    """runner -> stages -> context is one direction: no module the runner uses imports the runner back,
    at module level or inside a function."""
    tree = ast.parse((PIPELINE / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "rfdetr_trainer.pipeline.runner" not in imported
    if module != "stages.py":
        assert "rfdetr_trainer.pipeline.stages" not in imported


def test_no_module_global_holds_the_run_name():
    assert not hasattr(stages, "GENERATED_RUN_NAME")
    assert "sys.modules" not in (PIPELINE.parent / "cli" / "app.py").read_text()


@pytest.fixture
def train_settings(tmp_path, tiny_dataset, monkeypatch):
    monkeypatch.setenv("RFDETR_TRAINER_EXPERIMENT__RUN_NAME", "x")
    monkeypatch.delenv("RFDETR_TRAINER_EXPERIMENT__RUN_NAME")  # named_run may set it: undone after the test
    return load_settings(overrides={
        "data.local.dataset_dirs": [tiny_dataset], "model.pretrain_weights": "none", "training.device": "cpu",
        "experiment.clearml.enabled": False, "experiment.logging.tensorboard": False,
        "experiment.output_dir": tmp_path / "runs", "experiment.run_name": "t",
    }, env_file=None)


def test_train_stage_fetches_trains_and_evaluates_in_one_opened_run(train_settings, tiny_dataset, monkeypatch):
    """train = open_run + fetch + train + the valid-split evaluation; its TrainResult comes back as it is."""
    calls = {}

    def fake_train(model, training, dataset_dir, paths, **kwargs):
        calls["train"] = (Path(dataset_dir), paths.root)
        paths.checkpoints.mkdir(parents=True)
        best = paths.checkpoints / "checkpoint_best_total.pth"
        best.write_bytes(b"")
        return TrainResult(best, paths.checkpoints, None, paths.metrics, ["a"], {"mAP50": 0.5})

    def fake_evaluation(settings, model, dataset_dir, paths, split, tracker=None):
        calls["evaluate"] = (Path(model).name, split, paths.root)
        return EvaluateResult(paths.root / "evaluation" / split, paths.root / "m.json", split, "m", {})

    fetched = []
    real_fetch = stages.fetch_stage

    def spy_fetch(settings):
        fetched.append(real_fetch(settings))
        return fetched[-1]

    monkeypatch.setattr("rfdetr_trainer.services.train.train", fake_train)
    monkeypatch.setattr(stages, "final_evaluation", fake_evaluation)
    monkeypatch.setattr(stages, "fetch_stage", spy_fetch)
    result = stages.train_stage(train_settings)
    root = train_settings.experiment.output_dir / "t"
    assert isinstance(result, TrainResult) and result.best_checkpoint == root / "checkpoints" / \
        "checkpoint_best_total.pth"
    assert isinstance(fetched[0], FetchResult) and fetched[0].dataset_dir == tiny_dataset  # used in place
    assert calls == {"train": (tiny_dataset, root), "evaluate": ("checkpoint_best_total.pth", "valid", root)}

    manifest = json.loads((root / "run_manifest.json").read_text())  # run's schema, written by train too
    assert set(manifest["stages"]) == {"fetch", "train", "evaluate"}  # no report.html: the evaluation is faked
    assert all(stage["status"] == "done" for stage in manifest["stages"].values())
    assert manifest["stages"]["train"]["best_checkpoint"] == str(result.best_checkpoint)
    assert manifest["stages"]["evaluate"]["metrics_json"] == str(root / "m.json")
    assert manifest["artifacts"]["best_checkpoint"] == str(result.best_checkpoint)
    assert manifest["artifacts"]["evaluation_metrics"] == str(root / "m.json")
    assert manifest["artifacts"]["evaluation"] == str(root / "evaluation" / "valid")
    assert manifest["config"]["experiment"]["run_name"] == "t" and "finished" in manifest
    summary = stages.train_summary(result)
    assert summary["manifest_path"] == str(root / "run_manifest.json")
    assert summary["evaluation"]["metrics_json"] == str(root / "m.json")


def test_train_records_its_failure_in_the_manifest_of_a_resumable_run(train_settings, monkeypatch):
    def failing_train(model, training, dataset_dir, paths, **kwargs):
        paths.checkpoints.mkdir(parents=True)
        (paths.checkpoints / "last.ckpt").write_bytes(b"")  # worth resuming from: the run folder stays
        raise TrainingError("diverged")

    monkeypatch.setattr("rfdetr_trainer.services.train.train", failing_train)
    with pytest.raises(TrainingError):
        stages.train_stage(train_settings)
    manifest = json.loads((train_settings.experiment.output_dir / "t" / "run_manifest.json").read_text())
    assert manifest["stages"]["fetch"]["status"] == "done"
    failed = {"status": "failed", "error": "diverged", "exit_code": TrainingError("").exit_code}
    assert manifest["stages"]["train"] == failed
    assert "failed" in manifest


def test_a_failed_training_leaves_no_run_folder(train_settings, monkeypatch):
    def failing_train(model, training, dataset_dir, paths, **kwargs):
        paths.checkpoints.mkdir(parents=True)  # started, wrote no checkpoint
        raise TrainingError("no")

    monkeypatch.setattr("rfdetr_trainer.services.train.train", failing_train)
    with pytest.raises(TrainingError):
        stages.train_stage(train_settings)
    assert not (train_settings.experiment.output_dir / "t").exists()
