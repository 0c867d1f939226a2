"""Settings precedence, config-file errors and secret masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.settings import MASK, load_settings, provenance, read_layers, settings_from_layers


def _layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, file=None, dotenv=None, env=None, cli=None):
    config = None
    if file is not None:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"training": {"epochs": file}}))
    env_file = tmp_path / ".env"
    if dotenv is not None:
        env_file.write_text(f"RFDETR_TRAINER_TRAINING__EPOCHS={dotenv}\n")
    if env is not None:
        monkeypatch.setenv("RFDETR_TRAINER_TRAINING__EPOCHS", str(env))
    overrides = {"training.epochs": cli} if cli is not None else None
    return read_layers(config, overrides, env_file)


@pytest.mark.parametrize(
    ("file", "dotenv", "env", "cli", "expected", "source"),
    [
        (None, None, None, None, 50, "default"),
        (7, None, None, None, 7, "config file"),
        (7, 8, None, None, 8, ".env"),
        (7, 8, 9, None, 9, "env RFDETR_TRAINER_TRAINING__EPOCHS"),
        (7, 8, 9, 10, 10, "flag --epochs"),
        (None, None, 9, 10, 10, "flag --epochs"),
        (7, None, 9, None, 9, "env RFDETR_TRAINER_TRAINING__EPOCHS"),
        (None, 8, None, 10, 10, "flag --epochs"),
    ],
)
def test_precedence(tmp_path, monkeypatch, file, dotenv, env, cli, expected, source):
    layers = _layers(tmp_path, monkeypatch, file=file, dotenv=dotenv, env=env, cli=cli)
    settings = settings_from_layers(layers)
    assert settings.training.epochs == expected
    row = next(r for r in provenance(settings, layers) if r[0] == "training.epochs")
    assert row[2].startswith(source)


def test_yaml_config_and_nested_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  model_type: small\nexport:\n  format: [onnx, torchscript]\n  opset: 18\n")
    s = load_settings(path, env_file=None)
    assert (s.model.model_type, s.export.format, s.export.opset) == ("small", ["onnx", "torchscript"], 18)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", '{"training": {"epochs": 3,}}', "malformed JSON at line 1"),
        ("bad.yaml", "training: [unclosed", "malformed YAML"),
        ("unknown.json", '{"training": {"epoch": 3}}', "unknown key 'training.epoch' (did you mean 'epochs'?)"),
        ("section.json", '{"trainig": {}}', "unknown key 'trainig'"),
        ("type.yaml", "training:\n  epochs: many\n", "training.epochs: Input should be a valid integer"),
        ("list.json", "[1, 2]", "top level must be a mapping"),
        ("conf.toml", "a = 1", "unsupported config file type"),
    ],
)
def test_config_file_errors_name_file_and_key(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env_file=None)
    assert str(path) in info.value.message
    assert message in info.value.message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml", env_file=None)


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("RFDETR_TRAINER_TRAINING__BATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match="RFDETR_TRAINER_TRAINING__BATCH_SIZE: training.batch_size"):
        load_settings(env_file=None)


def test_bad_flag_value_names_the_flag():
    with pytest.raises(ConfigError, match="--resolution: training.resolution"):
        load_settings(overrides={"training.resolution": 8}, env_file=None, flag_names={"training.resolution":
                                                                                      "--resolution"})


def test_credentials_from_plain_env_names_are_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAT_HOST", "http://cvat.local")
    monkeypatch.setenv("CVAT_PASSWORD", "hunter2-secret")
    (tmp_path / ".env").write_text("MINIO_SECRET_KEY=minio-secret-value\nMINIO_SECURE=false\n")
    layers = read_layers(None, None, tmp_path / ".env")
    settings = settings_from_layers(layers)
    assert settings.data.cvat.host == "http://cvat.local"
    assert settings.data.cvat.password.get_secret_value() == "hunter2-secret"
    assert settings.data.minio.secure is False
    dumped = json.dumps(settings.masked_dump())
    rows = json.dumps(provenance(settings, layers), default=str)
    for secret in ("hunter2-secret", "minio-secret-value"):
        assert secret not in dumped and secret not in rows
    assert dict((k, (v, s)) for k, v, s in provenance(settings, layers))["data.cvat.password"] == (MASK,
                                                                                                  "env CVAT_PASSWORD")


def test_unrelated_dotenv_variables_are_ignored_but_prefixed_typos_are_not(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("CLEARML_API_HOST=http://x\nRFDETR_TRAINER_TRAINIG__EPOCHS=3\n")
    with pytest.raises(ConfigError, match="unknown key 'trainig'"):
        load_settings(env_file=env_file)
    env_file.write_text("CLEARML_API_HOST=http://x\nRFDETR_TRAINER_TRAINING__EPOCHS=3\n")
    assert load_settings(env_file=env_file).training.epochs == 3
