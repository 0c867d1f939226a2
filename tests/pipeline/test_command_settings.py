"""The settings a command hands the pipeline: flags only one command has (``export --no-check``, ``merge
--box-fix``) are overrides at flag precedence, never edits of validated settings."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from rfdetr_trainer.cli.app import app


def _captured(monkeypatch, target: str) -> list:
    seen: list = []

    def capture(settings_or_sources, *args, **kwargs):
        seen.append((settings_or_sources, args))
        raise typer.Exit(0)  # the settings are all this test needs

    monkeypatch.setattr(target, capture)
    return seen


@pytest.mark.parametrize("config,env,flags,expected", [
    (None, None, [], True),
    (None, None, ["--no-check"], False),
    ("export:\n  check: false\n", None, [], False),
    ("export:\n  check: false\n", None, ["--check"], False),  # --check is the default: it overrides nothing
    ("export:\n  check: true\n", None, ["--no-check"], False),
    (None, "false", [], False),
    (None, "true", ["--no-check"], False),
])
def test_export_check(tmp_path, monkeypatch, config, env, flags, expected):
    seen = _captured(monkeypatch, "rfdetr_trainer.pipeline.stages.export_stage")
    args = ["export", "--checkpoint", str(tmp_path / "c.pth"), *flags]
    if config:
        (tmp_path / "c.yaml").write_text(config)
        args += ["--config", str(tmp_path / "c.yaml")]
    if env:
        monkeypatch.setenv("RFDETR_TRAINER_EXPORT__CHECK", env)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen[0][0].export.check is expected


@pytest.mark.parametrize("config,env,flags,expected", [
    (None, None, [], "clip"),
    (None, None, ["--box-fix", "drop"], "drop"),
    ("data:\n  box_fix: drop\n", None, [], "drop"),
    ("data:\n  box_fix: drop\n", None, ["--box-fix", "none"], "none"),
    (None, "drop", [], "drop"),
    (None, "drop", ["--box-fix", "clip"], "clip"),
])
def test_merge_box_fix(tmp_path, monkeypatch, config, env, flags, expected):
    seen = _captured(monkeypatch, "rfdetr_trainer.services.merge.merge")
    args = ["merge", str(tmp_path / "src"), "--output-dir", str(tmp_path / "out"), *flags]
    if config:
        (tmp_path / "c.yaml").write_text(config)
        args += ["--config", str(tmp_path / "c.yaml")]
    if env:
        monkeypatch.setenv("RFDETR_TRAINER_DATA__BOX_FIX", env)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    _, (output_dir, data) = seen[0]
    assert data.box_fix == expected and output_dir == tmp_path / "out"


def _commands():
    from rfdetr_trainer.cli import annotate, evaluate, export, fetch, inspect, merge, predict, run, train

    return [fetch.fetch_command, merge.merge_command, inspect.inspect_command, train.train_command,
            predict.predict_command, export.export_command, run.run_command, evaluate.evaluate_command,
            annotate.annotate_command]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: c.__name__)
def test_commands_name_each_settings_flag_as_registered(command):
    """overrides() finds a flag by its parameter name: a command naming a registered option differently would
    silently ignore it."""
    import typing

    from rfdetr_trainer.cli import options

    hints = typing.get_type_hints(command, include_extras=True)
    for param, hint in hints.items():
        for name, alias in options.ALIASES.items():
            if hint == alias:
                assert param == name, f"{command.__name__}({param}: {name}'s alias) is never an override"


def test_keys_and_variadic_flags_come_from_the_aliases():
    from typing import Optional

    from rfdetr_trainer.cli import options

    assert options.KEYS["epochs"] == ("training.epochs", "--epochs")
    assert options.KEYS["export_evaluate"] == ("export.evaluate", "--evaluate")
    assert options.KEYS["inference_batch_size"] == ("validation.batch_size", "--batch-size")
    assert {"--tags", "--dataset-dir", "-d", "--export-format", "--format"} <= options.VARIADIC
    assert "--split" not in options.VARIADIC and "--epochs" not in options.VARIADIC  # three values; one value
    with pytest.raises(ValueError, match="registered twice"):
        options.option("training.lr", Optional[float], "--epochs", panel=options.TRAIN, help="again")


@pytest.mark.parametrize("command", ["fetch", "run"])
@pytest.mark.parametrize("flags,config,expected", [
    ([], None, (False, False)),
    (["--refresh"], None, (True, True)),
    ([], "data:\n  cvat:\n    refresh: true\n", (True, False)),
    (["--no-refresh"], "data:\n  cvat:\n    refresh: true\n  minio:\n    refresh: true\n", (False, False)),
])
def test_refresh_reaches_both_cached_sources(tmp_path, monkeypatch, command, flags, config, expected):
    """--refresh is one flag for two keys (CVAT exports and S3 objects); it once had no key and did nothing."""
    target = "stages.fetch_stage" if command == "fetch" else "runner.run"
    seen = _captured(monkeypatch, f"rfdetr_trainer.pipeline.{target}")
    args = [command, "--dataset-dir", str(tmp_path), *flags, "--env-file", "/dev/null"]
    if config:
        (tmp_path / "c.yaml").write_text(config)
        args += ["--config", str(tmp_path / "c.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    settings = seen[0][0]
    assert (settings.data.cvat.refresh, settings.data.minio.refresh) == expected


@pytest.mark.parametrize("command", ["fetch", "run"])
def test_reviewed_work_flags_reach_the_cvat_settings(tmp_path, monkeypatch, command):
    """--cvat-job-stage/--cvat-job-state/--no-gt-to-test work on run as on fetch (run fetches the same way)."""
    target = "stages.fetch_stage" if command == "fetch" else "runner.run"
    seen = _captured(monkeypatch, f"rfdetr_trainer.pipeline.{target}")
    result = CliRunner().invoke(app, [command, "--dataset-dir", str(tmp_path), "--cvat-job-stage", "validation",
                                      "acceptance", "--cvat-job-state", "completed", "--no-gt-to-test",
                                      "--env-file", "/dev/null"])
    assert result.exit_code == 0, result.output
    cvat = seen[0][0].data.cvat
    assert (list(cvat.job_stages), list(cvat.job_states), cvat.gt_to_test) == (
        ["validation", "acceptance"], ["completed"], False)
