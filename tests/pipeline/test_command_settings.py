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
