"""Every rfdetr 1.11 knob: flag and config key reach rfdetr's own config classes; a bad value is one clear line.

The good cases go through ``train --dry-run``, which builds rfdetr's ``ModelConfig``/``TrainConfig`` from the same
keyword arguments ``RFDETR.train()`` receives (``services.train.train_kwargs_of`` / ``model_kwargs_of``), without a
model or a training; ``test_knob_training.py`` reads the same values back from a real run's training_config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.errors import CheckpointError, ConfigError

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rfdetr_trainer.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("knobs") / "ds", num_images=6, image_size=64)


def _invoke(args: list[str]):
    from rfdetr_trainer.cli.app import app

    return runner.invoke(app, args)


def _dry_run(dataset: Path, tmp_path: Path, args: list[str]) -> dict:
    result = _invoke(["train", "--dry-run", "--dataset-dir", str(dataset), "--pretrain-weights", "none",
                      "--output-dir", str(tmp_path / "runs"), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _aug_file(tmp_path: Path) -> Path:
    path = tmp_path / "aug.yaml"
    path.write_text("HorizontalFlip: {p: 0.25}\nGaussianBlur: {blur_limit: 3, p: 0.1}\n")
    return path


# flag(s) -> (rfdetr config, field, expected value); the config key is checked through --config in the next test
GOOD = [
    (["--augment", "conservative"], "train_config", "aug_config",
     {"HorizontalFlip": {"p": 0.5}, "RandomBrightnessContrast": {"brightness_limit": 0.1, "contrast_limit": 0.1,
                                                                 "p": 0.3}}),
    (["--augment", "none"], "train_config", "aug_config", {}),
    (["--augmentation-backend", "torchvision"], "train_config", "augmentation_backend", "torchvision"),
    (["--multi-scale", "off"], "train_config", "multi_scale", "off"),
    (["--multi-scale", "per-sample"], "train_config", "multi_scale", "per-sample"),
    (["--batch-size", "auto", "--device", "cuda"], "train_config", "batch_size", "auto"),
    (["--batch-size", "3"], "train_config", "batch_size", 3),
    (["--freeze-encoder"], "model_config", "freeze_encoder", True),
    (["--lora"], "model_config", "backbone_lora", True),
    (["--lr-scheduler", "cosine"], "train_config", "lr_scheduler", "cosine"),
    (["--warmup-epochs", "1.5"], "train_config", "warmup_epochs", 1.5),
    (["--eval-interval", "3"], "train_config", "eval_interval", 3),
    (["--num-queries", "50"], "model_config", "num_queries", 50),
    (["--eval-max-dets", "100"], "train_config", "eval_max_dets", 100),
    (["--save-dataset-grids"], "train_config", "save_dataset_grids", True),
    (["--max-time", "90m"], "lightning", "max_time_s", 5400),
    (["--max-time", "00:01:30:00"], "lightning", "max_time_s", 5400),
    (["--model-type", "keypoint-preview", "--resolution", "96"], "model_config", "use_grouppose_keypoints", True),
]


@pytest.mark.parametrize(("args", "section", "field", "expected"), GOOD, ids=[" ".join(c[0]) for c in GOOD])
def test_flag_reaches_rfdetr_config(args, section, field, expected, dataset, tmp_path):
    resolved = _dry_run(dataset, tmp_path, args)
    assert resolved[section][field] == expected


# settings key -> value as a config file holds it, and the field of rfdetr's config it must land in
KEYS = [
    ("training", "augment", "aggressive", "train_config", "aug_config"),
    ("training", "augmentation_backend", "albumentations", "train_config", "augmentation_backend"),
    ("training", "multi_scale", False, "train_config", "multi_scale"),
    ("training", "batch_size", "auto", "train_config", "batch_size"),
    ("model", "freeze_encoder", True, "model_config", "freeze_encoder"),
    ("model", "backbone_lora", True, "model_config", "backbone_lora"),
    ("training", "lr_scheduler", "cosine", "train_config", "lr_scheduler"),
    ("training", "warmup_epochs", 2, "train_config", "warmup_epochs"),
    ("training", "eval_interval", 2, "train_config", "eval_interval"),
    ("model", "num_queries", 120, "model_config", "num_queries"),
    ("training", "eval_max_dets", 50, "train_config", "eval_max_dets"),
    ("training", "save_dataset_grids", True, "train_config", "save_dataset_grids"),
    ("training", "max_time", "2h", "lightning", "max_time_s"),
]
EXPECTED = {"aggressive": lambda v: set(v) == {"HorizontalFlip", "VerticalFlip", "Rotate", "Affine", "ColorJitter"},
            False: lambda v: v == "off", "2h": lambda v: v == 7200}


@pytest.mark.parametrize(("section", "key", "value", "target", "field"), KEYS, ids=[k[1] for k in KEYS])
def test_config_key_reaches_rfdetr_config_and_config_show(section, key, value, target, field, dataset, tmp_path):
    import yaml

    config = tmp_path / "config.yaml"
    extra = {"device": "cuda"} if key == "batch_size" else {}  # 'auto' probes a GPU; the dry run only names it
    config.write_text(yaml.safe_dump({section: {key: value, **extra}}))
    resolved = _dry_run(dataset, tmp_path, ["--config", str(config)])
    check = EXPECTED.get(value, lambda v: v == value)
    assert check(resolved[target][field]), resolved[target][field]

    shown = _invoke(["config", "show", "--config", str(config), "--json"])
    assert shown.exit_code == 0, shown.output
    row = json.loads(shown.stdout)[f"{section}.{key}"]
    assert row["value"] == (value if value is not False else "off")
    assert row["source"].startswith("config file")


def test_aug_config_file_reaches_rfdetr(dataset, tmp_path):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"training": {"aug_config": str(_aug_file(tmp_path))}}))
    resolved = _dry_run(dataset, tmp_path, ["--config", str(config)])
    assert resolved["train_config"]["aug_config"] == {"HorizontalFlip": {"p": 0.25},
                                                      "GaussianBlur": {"blur_limit": 3, "p": 0.1}}


def test_knobs_are_clearml_hyperparameters():
    """Every knob is in the flat sections ClearML connects (and reads back edited from the UI)."""
    from rfdetr_trainer.integrations.clearml.params import apply_sections, to_sections
    from rfdetr_trainer.settings import load_settings

    settings = load_settings(env_file=None, overrides={"training.augment": "aerial", "model.freeze_encoder": True,
                                                       "training.batch_size": "auto"})
    sections = to_sections(settings)
    for section, key in [(s, k) for s, k, *_ in KEYS] + [("training", "aug_config"), ("model", "init_from")]:
        assert key in sections[section], key
    assert sections["training"]["augment"] == "aerial" and sections["training"]["batch_size"] == "auto"
    edited, changed = apply_sections(settings, {"training": {"lr_scheduler": "cosine", "batch_size": "8"},
                                                "model": {"num_queries": "100"}})
    assert (edited.training.lr_scheduler, edited.training.batch_size, edited.model.num_queries) == ("cosine", 8, 100)
    assert set(changed) == {"training.lr_scheduler", "training.batch_size", "model.num_queries"}


def _bad_cases(tmp: Path) -> list[tuple[list[str], int, str]]:
    (tmp / "aug-list.yaml").write_text("- HorizontalFlip\n")
    both = tmp / "aug.yaml"
    both.write_text("HorizontalFlip: {p: 0.5}\n")
    (tmp / "c-both.yaml").write_text(f"training:\n  augment: aerial\n  aug_config: {both}\n")
    (tmp / "c-list.yaml").write_text(f"training:\n  aug_config: {tmp / 'aug-list.yaml'}\n")
    (tmp / "c-missing.yaml").write_text(f"training:\n  aug_config: {tmp / 'nope.yaml'}\n")
    return [
        (["--augment", "wild"], ConfigError.exit_code, "--augment"),
        (["--augmentation-backend", "gpu-magic"], ConfigError.exit_code, "--augmentation-backend"),
        (["--multi-scale", "sometimes"], ConfigError.exit_code, "--multi-scale"),
        (["--batch-size", "lots"], ConfigError.exit_code, "--batch-size"),
        (["--batch-size", "0"], ConfigError.exit_code, "--batch-size"),
        (["--lr-scheduler", "linear"], ConfigError.exit_code, "--lr-scheduler"),
        (["--warmup-epochs", "-1"], ConfigError.exit_code, "--warmup-epochs"),
        (["--eval-interval", "0"], ConfigError.exit_code, "--eval-interval"),
        (["--num-queries", "0"], ConfigError.exit_code, "--num-queries"),
        (["--eval-max-dets", "0"], ConfigError.exit_code, "--eval-max-dets"),
        (["--max-time", "soon"], ConfigError.exit_code, "--max-time"),
        (["--batch-size", "auto", "--device", "cpu"], ConfigError.exit_code, "needs a CUDA device"),
        (["--model-type", "keypoint-preview", "--resolution", "100"], ConfigError.exit_code, "divisible by 24"),
        (["--init-from", str(tmp / "prev.pth")], CheckpointError.exit_code, "prev.pth"),
        (["--config", str(tmp / "c-both.yaml")], ConfigError.exit_code, "not both"),
        (["--config", str(tmp / "c-list.yaml")], ConfigError.exit_code, "aug-list.yaml: expected a mapping"),
        (["--config", str(tmp / "c-missing.yaml")], ConfigError.exit_code, "nope.yaml"),
    ]


@pytest.mark.parametrize("index", range(17))
def test_bad_knob_value_is_one_clear_line_before_any_work(index, dataset, tmp_path):
    args, code, needle = _bad_cases(tmp_path)[index]
    runs = tmp_path / "runs"
    result = _invoke(["train", "--dataset-dir", str(dataset), "--pretrain-weights", "none", "--output-dir",
                      str(runs), *args])
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert not runs.exists()  # failed before any run folder, download or training


def test_lora_without_peft_is_a_clear_error(dataset, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    result = _invoke(["train", "--dataset-dir", str(dataset), "--pretrain-weights", "none", "--lora",
                      "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == ConfigError.exit_code
    assert "peft" in result.stderr and "rfdetr-trainer[lora]" in result.stderr


def test_trainer_settings_train_does_not_take_become_callbacks(tmp_path):
    """--max-time and --max-steps reach the Trainer rfdetr builds as callbacks (RFDETR.train() has no such args)."""
    from pytorch_lightning.callbacks import Timer

    from rfdetr_trainer.integrations.rfdetr.callbacks import AttachLoggers, MetricsLog, StepLimit
    from rfdetr_trainer.pipeline.context import RunPaths
    from rfdetr_trainer.schemas import TrainingConfig
    from rfdetr_trainer.services.train import project_callbacks

    callbacks = project_callbacks(TrainingConfig(max_time="1.5h", max_steps=7), RunPaths(tmp_path / "run"),
                                  tensorboard=True, show_progress=False, extra=["tracker"])
    assert isinstance(callbacks[0], MetricsLog) and callbacks[-1] == "tracker"
    (timer,) = [c for c in callbacks if isinstance(c, Timer)]
    assert timer.time_remaining() == 5400
    (limit,) = [c for c in callbacks if isinstance(c, StepLimit)]
    assert limit.max_steps == 7
    (attach,) = [c for c in callbacks if isinstance(c, AttachLoggers)]
    assert [type(lg).__name__ for lg in attach.loggers] == ["TensorBoardLogger"]
    assert Path(attach.loggers[0].log_dir) == tmp_path / "run" / "tensorboard"
