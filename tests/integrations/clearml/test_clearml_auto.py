"""``experiment.clearml.enabled = auto`` (issue 8, deliverable 6): on with credentials or a ClearML-only option,
off otherwise with no network attempt; ``--clearml`` / ``--no-clearml`` force it, and ClearML-only options with
``--no-clearml`` warn once."""

from __future__ import annotations

import logging

import pytest
from support.clearml_session import only_session

from rfdetr_trainer.cli.options import overrides
from rfdetr_trainer.pipeline.tracking import clearml_credentials_configured, resolve_clearml, tracking
from rfdetr_trainer.settings import load_settings


def _settings(tmp_path, **flags):
    return load_settings(overrides=overrides(flags), env_file=tmp_path / ".env")


@pytest.mark.parametrize(
    ("flags", "env", "enabled"),
    [
        ({}, {}, False),  # nothing configured: off, and nothing is contacted
        ({}, {"CLEARML_API_ACCESS_KEY": "k", "CLEARML_API_SECRET_KEY": "s"}, True),
        ({}, {"CLEARML_API_HOST": "http://clearml.local:8008"}, True),
        ({"clearml_offline": True}, {}, True),
        ({"project_name": "P"}, {}, True),
        ({"task_name": "t"}, {}, True),
        ({"tags": ["v1"]}, {}, True),
        ({"remote": "gpu"}, {}, True),
        ({"clearml": False}, {"CLEARML_API_ACCESS_KEY": "k"}, False),
        ({"clearml": False, "clearml_offline": True}, {}, False),
        ({"clearml": True}, {}, True),
    ],
)
def test_auto_decides_from_credentials_and_clearml_only_flags(tmp_path, monkeypatch, flags, env, enabled):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLEARML_CONFIG_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = _settings(tmp_path, **flags)
    assert resolve_clearml(settings).experiment.clearml.enabled is enabled


def test_a_clearml_conf_counts_as_credentials(tmp_path):
    assert not clearml_credentials_configured({"HOME": str(tmp_path), "CLEARML_CONFIG_FILE": str(tmp_path / "x")})
    (tmp_path / "clearml.conf").write_text("sdk { development { report_use_subprocess: false } }\n")
    assert not clearml_credentials_configured({"CLEARML_CONFIG_FILE": str(tmp_path / "clearml.conf")})
    (tmp_path / "clearml.conf").write_text("api { credentials { access_key: k, secret_key: s } }\n")
    assert clearml_credentials_configured({"CLEARML_CONFIG_FILE": str(tmp_path / "clearml.conf")})


def test_clearml_only_flag_with_no_clearml_warns_once(tmp_path, caplog):
    settings = _settings(tmp_path, clearml=False, clearml_offline=True, tags=["a"])
    with caplog.at_level(logging.WARNING, logger="rfdetr_trainer"):
        resolve_clearml(settings)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "--clearml-offline" in warnings[0] and "--tags" in warnings[0]


def test_clearml_offline_alone_records_an_offline_session(tmp_path, clearml_home, monkeypatch):
    """Today's bug: `train --clearml-offline` alone trained with ClearML off and said nothing."""
    settings = _settings(tmp_path, clearml_offline=True, task_name="auto-on")
    assert settings.experiment.clearml.enabled == "auto"
    with tracking(settings, "run-x", argv=[]) as tracker:
        assert tracker.task_manager is not None
    session = only_session(clearml_home)
    assert session.task.get("name") == "auto-on"


def test_auto_off_makes_no_task(tmp_path, clearml_home):
    with tracking(_settings(tmp_path), "run-x", argv=[]) as tracker:
        assert tracker.task_manager is None
