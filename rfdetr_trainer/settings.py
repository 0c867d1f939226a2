"""One validated settings object for every stage.

Value sources, highest first: CLI flags, environment variables, the ``.env`` file, a ``--config`` file (JSON
or YAML), defaults. Each layer is read by a pydantic-settings source into a nested dict; the layers are merged
and validated once by :class:`Settings`. :func:`provenance` says which layer each value came from, for
``config show`` and for error messages that name the file, variable or flag at fault.

Environment variables: ``RFDETR_TRAINER_<SECTION>__<KEY>`` for any setting (e.g.
``RFDETR_TRAINER_TRAINING__EPOCHS=5``), plus the credential names users already have (``CVAT_HOST``,
``MINIO_SECRET_KEY``, …; see :data:`ENV_ALIASES`).
"""

from __future__ import annotations

import difflib
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.schemas import (
    DataConfig,
    ExperimentConfig,
    ExportConfig,
    ModelConfig,
    TrainingConfig,
    ValidationConfig,
)
from rfdetr_trainer.schemas.base import SECRET_WORDS, is_secret_key  # noqa: F401 - their home is schemas/base.py

ENV_PREFIX = "RFDETR_TRAINER_"
ENV_DELIMITER = "__"

#: Plain environment names (credentials, endpoints) and the setting each one sets.
ENV_ALIASES: dict[str, str] = {
    "CVAT_HOST": "data.cvat.host",
    "CVAT_USERNAME": "data.cvat.username",
    "CVAT_PASSWORD": "data.cvat.password",
    "CVAT_ACCESS_TOKEN": "data.cvat.access_token",
    "CVAT_ORG": "data.cvat.org",
    "MINIO_ENDPOINT": "data.minio.endpoint",
    "MINIO_ACCESS_KEY": "data.minio.access_key",
    "MINIO_SECRET_KEY": "data.minio.secret_key",
    "MINIO_REGION": "data.minio.region",
    "MINIO_SECURE": "data.minio.secure",
    "MINIO_BUCKET": "data.minio.bucket",
}

MASK = "**********"


class Settings(BaseSettings):
    """The effective configuration of a run."""

    model_config = SettingsConfigDict(extra="forbid", validate_assignment=True)

    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Layers are read and merged by load_settings so that each value's origin stays known; the model
        # itself only validates the merged dict.
        return (init_settings,)

    def masked_dump(self) -> dict[str, Any]:
        """JSON-ready dict of the settings with every secret replaced by a mask."""
        return _mask(self.model_dump(mode="python"))


# ----------------------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class Layer:
    """One source of values: its name for messages and its nested values."""

    kind: str  # "default" | "config" | "dotenv" | "env" | "cli"
    label: str  # what to show the user: a file path, "environment", "CLI flags"
    values: dict[str, Any]
    #: dotted key -> the exact variable or flag that set it, for messages
    origins: dict[str, str]


class _AliasSource(PydanticBaseSettingsSource):
    """Reads the plain credential names (CVAT_HOST, …) from a mapping of variables."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str | None]) -> None:
        super().__init__(settings_cls)
        self._variables = variables

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, dotted in ENV_ALIASES.items():
            value = self._variables.get(name)
            if value not in (None, ""):
                _set_dotted(out, dotted, value)
        return out


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found", hint="pass an existing JSON or YAML file to --config")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text) if text.strip() else {}
        elif suffix in {".yaml", ".yml"}:
            import yaml  # light, but only needed when a YAML file is given

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unsupported config file type {suffix!r}", hint="use .json, .yaml or .yml")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except ConfigError:
        raise
    except Exception as exc:  # yaml.YAMLError and friends: keep the parser's position text
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{path}: malformed YAML: {detail}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def _env_layer(kind: str, label: str, source: PydanticBaseSettingsSource, variables: Mapping[str, str | None]):
    # Keep only what our prefix named: a .env file also holds other tools' variables (CLEARML_*, …), which
    # pydantic-settings would otherwise report as unknown keys.
    ours = {name[len(ENV_PREFIX):].split(ENV_DELIMITER)[0].lower() for name in variables
            if name.upper().startswith(ENV_PREFIX)}
    unknown = sorted(ours - set(Settings.model_fields))
    if unknown:
        name = next(n for n in variables if n.upper().startswith(ENV_PREFIX + unknown[0].upper()))
        where = label if kind == "dotenv" else "environment"
        raise ConfigError(f"{where}: {name}: unknown key '{unknown[0]}'{_did_you_mean([unknown[0]])}",
                          hint="sections are " + ", ".join(Settings.model_fields))
    values = {k: v for k, v in _read_source(kind, label, source).items() if k in ours}
    values = _deep_merge(values, _AliasSource(Settings, variables)())
    origins: dict[str, str] = {}
    for name, dotted in ENV_ALIASES.items():
        if variables.get(name) not in (None, ""):
            origins[dotted] = name
    for key in _flatten(values):
        origins.setdefault(key, ENV_PREFIX + key.upper().replace(".", ENV_DELIMITER))
    return Layer(kind, label, values, origins)


def _read_source(kind: str, label: str, source: Any) -> dict[str, Any]:
    """``source()``, with a value pydantic-settings cannot parse (a list given as ``notjson``) blamed on its
    variable: the library's own message names only the section."""
    from pydantic_settings import SettingsError

    try:
        return source()
    except SettingsError as exc:
        everything = dict(source.env_vars)
        for name in sorted(n for n in everything if n.upper().startswith(ENV_PREFIX)):
            source.env_vars = {name: everything[name]}
            try:
                source()
            except SettingsError as one:
                where = label if kind == "dotenv" else "environment"
                cause = one.__cause__ or exc.__cause__
                detail = f": {cause}" if cause is not None else ""
                raise ConfigError(
                    f"{where}: {name.upper()}: value is not valid JSON for this setting{detail}",
                    hint='give lists and sections as JSON, e.g. [0.8, 0.1, 0.1] or {"key": "value"}',
                ) from None
            finally:
                source.env_vars = everything
        raise ConfigError(f"{label}: {exc}") from None


def _read_dotenv(path: Path) -> dict[str, str | None]:
    """The variables of a ``.env`` file, or ConfigError naming it (not a file, unreadable, not UTF-8)."""
    from dotenv import dotenv_values

    if not path.exists() or path.is_dir():  # /dev/null is fine: "no env file"
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"{path}: env file {what}", hint="pass an existing dotenv file to --env-file")
    try:
        text = path.read_text(encoding="utf-8")  # dotenv would decode it too; this names the file on failure
        return dotenv_values(stream=io.StringIO(text))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: env file is not UTF-8 text (byte {exc.start}: {exc.reason})",
                          hint="save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the env file ({exc.strerror or exc})") from None


def read_layers(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env_file: Path | None = Path(".env"),
    flag_names: Mapping[str, str] | None = None,
    env_file_required: bool = False,
) -> list[Layer]:
    """Read every source of values, lowest precedence first.

    Args:
        config_file: JSON or YAML file of sections, or None.
        overrides: dotted keys set by CLI flags (only flags the user passed).
        env_file: the ``.env`` file; missing is fine unless ``env_file_required``.
        flag_names: dotted key -> flag name, for messages about bad flag values.
        env_file_required: the user named ``env_file`` (``--env-file``): missing or a folder is an error.
    """
    layers = [Layer("default", "default", {}, {})]
    if config_file is not None:
        values = _read_config_file(Path(config_file))
        layers.append(Layer("config", str(config_file), values, {k: str(config_file) for k in _flatten(values)}))
    if env_file is not None and (env_file_required or Path(env_file).is_file()):
        dotenv_vars = _read_dotenv(Path(env_file))
        source = DotEnvSettingsSource(
            Settings, env_file=env_file, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER,
            case_sensitive=False,
        )
        layers.append(_env_layer("dotenv", str(env_file), source, dotenv_vars))
    source = EnvSettingsSource(
        Settings, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, case_sensitive=False
    )
    layers.append(_env_layer("env", "environment", source, os.environ))
    if overrides:
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            _set_dotted(values, key, value)
        names = dict(flag_names or {})
        origins = {k: names.get(k, "--" + k.split(".")[-1].replace("_", "-")) for k in overrides}
        layers.append(Layer("cli", "CLI flags", values, origins))
    return layers


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env_file: Path | None = Path(".env"),
    flag_names: Mapping[str, str] | None = None,
    env_file_required: bool = False,
) -> Settings:
    """Build the effective settings from every source.

    Raises:
        ConfigError: a file is missing or malformed, a key is unknown, or a value has the wrong type; the
            message names the file, variable or flag, and the key.
    """
    layers = read_layers(config_file, overrides, env_file, flag_names, env_file_required)
    return settings_from_layers(layers)


def settings_from_layers(layers: list[Layer]) -> Settings:
    """Validate the merged layers into :class:`Settings`, naming the culprit on failure."""
    # A config file is checked alone first so that an unknown key is blamed on the file even when a higher
    # layer sets a valid value for a sibling.
    for layer in layers:
        if layer.kind == "config":
            _validate(Settings, layer.values, [layer])
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer.values)
    return _validate(Settings, merged, layers)


def _validate(model: type[BaseModel], values: dict[str, Any], layers: list[Layer]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers), hint=_hint(exc)) from None


def _describe(exc: ValidationError, layers: list[Layer]) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    dotted = ".".join(loc)
    where = "default"
    for layer in reversed(layers):
        for key, origin in layer.origins.items():
            if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
                where = origin if layer.kind in {"env", "dotenv", "cli"} else layer.label
                if layer.kind == "dotenv":
                    where = f"{layer.label}: {origin}"
                break
        else:
            continue
        break
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key '{dotted}'{_did_you_mean(loc)}{suffix}"
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or is_secret_key(dotted) else f", got {value!r}"
    return f"{where}: {dotted}: {err['msg']}{shown}{suffix}"


def _hint(exc: ValidationError) -> str | None:
    if exc.errors()[0]["type"] == "extra_forbidden":
        return "run 'rfdetr-trainer config show' to list every key"
    return None


def _did_you_mean(loc: list[str]) -> str:
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ------------------------------------------------------------------------------------------- provenance


def provenance(settings: Settings, layers: list[Layer]) -> list[tuple[str, Any, str]]:
    """Every leaf setting as (dotted key, masked value, source), in model order."""
    rows = []
    for key, value in _flatten(settings.masked_dump()).items():
        source = "default"
        for layer in reversed(layers):
            hit = next((o for k, o in layer.origins.items() if key == k or key.startswith(k + ".")), None)
            if hit is not None:
                source = {"config": f"config file {layer.label}", "dotenv": f".env ({hit})",
                          "env": f"env {hit}", "cli": f"flag {hit}"}.get(layer.kind, layer.label)
                break
        rows.append((key, value, source))
    return rows


# -------------------------------------------------------------------------------------------- helpers


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        from rfdetr_trainer.urls import mask_userinfo

        return mask_userinfo(value)  # a password inside CVAT_HOST or MINIO_ENDPOINT
    return value


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    return dict(_iter_leaves(values, prefix))


def _iter_leaves(values: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _iter_leaves(value, dotted + ".")
        else:
            yield dotted, value
