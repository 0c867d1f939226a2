"""open_run: the one way ``run`` and ``train`` start a run (preflight, naming, run folder, tracking), and the
interruption error that carries a generated run name to the resume hint."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rfdetr_trainer.errors import ConfigError, Interrupted
from rfdetr_trainer.pipeline import runner, stages
from rfdetr_trainer.pipeline.context import RUN_NAME_VARIABLE, Enqueued, RunContext, open_run
from rfdetr_trainer.pipeline.tracking import Tracker
from rfdetr_trainer.settings import ENV_DELIMITER, ENV_PREFIX, load_settings

GENERATED = re.compile(r"run-\d{8}-\d{6}")
#: Offline, no tracker that imports Lightning: what every case here starts from.
FAST = ["--pretrain-weights", "none", "--device", "cpu", "--no-clearml", "--no-tensorboard"]


@pytest.fixture(autouse=True)
def _no_run_name_variable(monkeypatch):
    """named_run publishes a generated name in the environment; undo it after each test."""
    monkeypatch.setenv(RUN_NAME_VARIABLE, "placeholder")
    monkeypatch.delenv(RUN_NAME_VARIABLE)


def _settings(tmp_path: Path, **more):
    overrides = {"model.pretrain_weights": "none", "training.device": "cpu", "experiment.clearml.enabled": False,
                 "experiment.logging.tensorboard": False, "experiment.output_dir": tmp_path / "runs", **more}
    return load_settings(overrides=overrides, env_file=None)


def _invoke(args: list[str]):
    from rfdetr_trainer.cli.app import app

    return CliRunner().invoke(app, args)


def test_the_run_name_variable_is_the_settings_key():
    assert RUN_NAME_VARIABLE == f"{ENV_PREFIX}EXPERIMENT{ENV_DELIMITER}RUN_NAME"


def test_open_run_names_the_run_for_every_process(tmp_path):
    """No --run-name: one generated name, published so re-executed DDP processes read the same one."""
    with open_run(_settings(tmp_path)) as ctx:
        assert isinstance(ctx, RunContext)
        assert GENERATED.fullmatch(ctx.generated_name)
        assert ctx.run_name == ctx.settings.experiment.run_name == ctx.generated_name
        assert ctx.paths.root == tmp_path / "runs" / ctx.generated_name
        assert os.environ[RUN_NAME_VARIABLE] == ctx.generated_name
        assert ctx.enqueued is None
        assert not ctx.paths.root.exists(), "the first stage that writes creates the folder"
        with pytest.raises(dataclasses.FrozenInstanceError):
            ctx.generated_name = "other"  # type: ignore[misc]
    with open_run(_settings(tmp_path)) as child:  # what a process started later sees
        assert child.run_name == ctx.run_name and child.generated_name is None


@pytest.mark.parametrize("elastic,expected", [("abc123", "run-abc123"), ("none", None)])
def test_torchrun_ranks_share_the_elastic_run_id(tmp_path, monkeypatch, elastic, expected):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", elastic)
    with open_run(_settings(tmp_path)) as ctx:
        assert ctx.generated_name == expected if expected else GENERATED.fullmatch(ctx.generated_name)


def test_a_named_run_is_not_generated(tmp_path):
    with open_run(_settings(tmp_path, **{"experiment.run_name": "mine"})) as ctx:
        assert ctx.generated_name is None and ctx.run_name == "mine"
    assert RUN_NAME_VARIABLE not in os.environ


def test_preflight_fails_before_the_run_folder_and_tracking(tmp_path, monkeypatch):
    def no_tracking(*args, **kwargs):
        raise AssertionError("tracking opened before preflight")

    monkeypatch.setattr("rfdetr_trainer.pipeline.tracking.tracking", no_tracking)
    with pytest.raises(ConfigError, match="resolution"), open_run(_settings(tmp_path, **{"training.resolution": 100})):
        raise AssertionError("the block ran")
    assert not (tmp_path / "runs").exists()
    assert RUN_NAME_VARIABLE not in os.environ


def test_ctrl_c_carries_the_generated_name(tmp_path):
    with pytest.raises(Interrupted) as info, open_run(_settings(tmp_path)) as ctx:
        raise KeyboardInterrupt
    assert isinstance(info.value, KeyboardInterrupt), "every except KeyboardInterrupt still sees it"
    assert info.value.run_name == ctx.generated_name and info.value.exit_code == 130


def test_ctrl_c_in_a_named_run_stays_a_plain_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt) as info, open_run(_settings(tmp_path, **{"experiment.run_name": "x"})):
        raise KeyboardInterrupt
    assert getattr(info.value, "run_name", None) is None


@pytest.mark.parametrize("keep,leave,kept", [
    (None, None, True),  # run: the manifest in the folder records the failure
    (("*.ckpt",), None, False),  # train: a failed training leaves nothing behind...
    (("*.ckpt",), "last.ckpt", True),  # ...unless there is a checkpoint to resume from
])
def test_a_failed_run_folder_is_discarded_unless_kept(tmp_path, keep, leave, kept):
    with pytest.raises(RuntimeError), open_run(_settings(tmp_path, **{"experiment.run_name": "r"}), keep=keep) as ctx:
        ctx.paths.checkpoints.mkdir(parents=True)
        (ctx.paths.checkpoints / (leave or "notes.txt")).write_text("x")
        raise RuntimeError("boom")
    assert ctx.paths.root.is_dir() is kept


@pytest.fixture
def enqueued(monkeypatch):
    """Tracking that sends the run to a clearml-agent queue, as ``--remote`` does."""

    @contextlib.contextmanager
    def fake_tracking(settings, run_name, *, argv=None):
        yield Tracker(settings, enqueued="task-1")

    def no_fetch(settings):
        raise AssertionError("an enqueued run fetched here")

    monkeypatch.setattr("rfdetr_trainer.pipeline.tracking.tracking", fake_tracking)
    monkeypatch.setattr(stages, "fetch_stage", no_fetch)


def test_open_run_reports_the_queued_task(tmp_path, enqueued):
    settings = _settings(tmp_path, **{"experiment.clearml.remote_queue": "gpu"})
    with open_run(settings) as ctx:
        assert ctx.enqueued == Enqueued("task-1", "gpu")
    assert stages.train_stage(settings) == Enqueued("task-1", "gpu")
    assert runner.run(settings) == Enqueued("task-1", "gpu")


@pytest.mark.parametrize("command,line", [
    ("train", "enqueued: ClearML task task-1"),
    ("run", "enqueued: ClearML task task-1 on queue gpu"),
])
def test_cli_prints_the_queued_task(tmp_path, enqueued, command, line):
    result = _invoke([command, *FAST, "--output-dir", str(tmp_path / "runs"), "--remote", "gpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout == line + "\n"


def _interrupt(settings):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", ["train", "run"])
def test_resume_hint_names_the_generated_run(tmp_path, monkeypatch, command):
    """Ctrl-C: exit 130 and a hint naming the run this command made up; the next named run's hint names none
    (the name travels in the error, not in a module global that outlives the run)."""
    monkeypatch.setattr(stages, "fetch_stage", _interrupt)
    args = [command, *FAST, "--output-dir", str(tmp_path / "runs")]
    result = _invoke(args)
    assert result.exit_code == 130, result.output
    name = os.environ[RUN_NAME_VARIABLE]
    assert GENERATED.fullmatch(name)
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: interrupted (hint: rerun the same command with --run-name {name} to resume; finished stages are "
        "reused)")
    if command == "run":  # run records the interruption in its manifest
        manifest = json.loads((tmp_path / "runs" / name / "run_manifest.json").read_text())
        assert manifest["stages"]["fetch"] == {"status": "interrupted", "error": "interrupted (Ctrl-C)",
                                               "exit_code": 130}
    else:  # train leaves no folder without a checkpoint
        assert not (tmp_path / "runs" / name).exists()

    again = _invoke([*args, "--run-name", "named"])
    assert again.exit_code == 130, again.output
    assert again.stderr.strip().splitlines()[-1] == (
        "error: interrupted (hint: rerun the same command to resume; finished stages are reused)")
