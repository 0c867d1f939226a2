"""--help is fast because it imports nothing heavy; variadic flags and global options parse as designed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rfdetr_trainer import __version__
from rfdetr_trainer.cli.app import _expand_variadic, app

HEAVY = ["torch", "rfdetr", "pytorch_lightning", "lightning", "supervision", "clearml", "boto3", "cvat_sdk",
         "onnx", "onnxruntime", "cv2", "tensorboard"]
COMMANDS = [[], ["fetch"], ["merge"], ["inspect"], ["train"], ["predict"], ["export"], ["run"], ["config"],
            ["config", "show"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_imports_nothing_heavy(command):
    code = (
        "import sys\n"
        "from rfdetr_trainer.cli.app import app\n"
        "try:\n"
        f"    app({command + ['--help']!r}, prog_name='rfdetr-trainer')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--cvat-task-ids", "1", "2", "3", "--epochs", "5"],
         ["run", "--cvat-task-ids", "1", "--cvat-task-ids", "2", "--cvat-task-ids", "3", "--epochs", "5"]),
        (["run", "--tags", "production", "v1.0"], ["run", "--tags", "production", "--tags", "v1.0"]),
        (["run", "--tags", "a", "--", "b"], ["run", "--tags", "a", "--", "b"]),
        (["run", "--epochs", "1"], ["run", "--epochs", "1"]),
        (["run", "--export-format", "onnx", "torchscript", "--half"],
         ["run", "--export-format", "onnx", "--export-format", "torchscript", "--half"]),
    ],
)
def test_variadic_flags_expand(argv, expected):
    assert _expand_variadic(argv) == expected


def test_design_flags_reach_the_settings(tmp_path):
    """The design's examples parse into the settings they mean (config show reflects flags via env here)."""
    from rfdetr_trainer.cli.common import load
    from rfdetr_trainer.cli.options import overrides

    params = {"cvat_task_ids": [100], "project_name": "ObjectDetection", "task_name": "experiment-v1",
              "model_type": "base", "epochs": 200, "batch_size": 4, "lr": 0.0001, "resolution": 640,
              "early_stopping": True, "early_stopping_patience": 20, "export_format": ["onnx"],
              "tags": ["production", "v1.0"], "env_file": Path(os.devnull)}
    assert overrides(params)["experiment.clearml.tags"] == ["production", "v1.0"]
    s = load(params)
    assert s.data.cvat.task_ids == [100] and s.data.resolved_source() == "cvat"
    assert (s.model.model_type, s.training.epochs, s.training.resolution) == ("base", 200, 640)
    assert s.experiment.clearml.tags == ["production", "v1.0"] and s.training.early_stopping


def test_config_show_json_masks_secrets_and_names_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAT_PASSWORD", "s3cr3t-pw")
    monkeypatch.setenv("RFDETR_TRAINER_TRAINING__EPOCHS", "12")
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  batch_size: 2\n")
    result = CliRunner().invoke(app, ["config", "show", "--config", str(config), "--json",
                                      "--env-file", os.devnull])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-pw" not in result.output
    rows = json.loads(result.stdout)
    assert rows["training.epochs"] == {"value": 12, "source": "env RFDETR_TRAINER_TRAINING__EPOCHS"}
    assert rows["training.batch_size"]["source"] == f"config file {config}"
    assert rows["data.cvat.password"]["value"] == "**********"
    assert rows["model.model_type"]["source"] == "default"
