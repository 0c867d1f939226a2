"""Settings <-> ClearML hyperparameter sections (pure Python, no clearml import).

Each top-level settings section (model, training, data, experiment, validation, export) becomes one ClearML
hyperparameter section of flat ``dotted.key: value`` pairs, editable in the UI. Secret fields (every
``SecretStr``, and any key named like a credential) are left out entirely: not masked, absent.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.schemas.base import is_secret_key


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret_annotation(arg) for arg in typing.get_args(annotation))


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _flat_section(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            out.update(_flat_section(value, dotted + "."))
            continue
        if _is_secret_annotation(field.annotation) or isinstance(value, SecretStr) or is_secret_key(dotted):
            continue
        out[dotted] = _plain(value)
    return out


def to_sections(settings: BaseModel) -> dict[str, dict[str, Any]]:
    """``{section: {dotted key: plain value}}`` for every settings section, secrets excluded."""
    out = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            out[name] = _flat_section(value)
    return out


def _back(original: Any, value: Any) -> Any:
    """A value as ClearML returned it, shaped for pydantic (which does the rest of the coercion)."""
    if isinstance(value, str) and not isinstance(original, str):
        # clearml stores None as "" and casts by the local value's type; a number or path cleared in the UI
        # comes back as "" too, which means "unset" (pydantic rejects it where None isn't allowed).
        if value.strip() in {"", "None", "null"}:
            return None
    return value


def apply_sections(settings: BaseModel, sections: dict[str, dict[str, Any]]) -> tuple[Any, dict[str, tuple]]:
    """Settings rebuilt from (possibly UI-edited) sections, plus ``{dotted: (old, new)}`` of what changed.

    Keys that are not settings (added in the UI by hand) are ignored; secrets are kept from ``settings``.

    Raises:
        ConfigError: an edited value does not validate; the message names the ClearML parameter.
    """
    local = to_sections(settings)
    data = settings.model_dump(mode="python")  # keeps SecretStr objects as they are
    changed: dict[str, tuple] = {}
    for section, values in sections.items():
        known = local.get(section, {})
        for key, value in values.items():
            if key not in known:
                continue
            new = _back(known[key], value)
            if _plain(new) == known[key]:
                continue
            target = data[section]
            parts = key.split(".")
            for part in parts[:-1]:
                target = target[part]
            target[parts[-1]] = new
            changed[f"{section}.{key}"] = (known[key], new)
    try:
        return type(settings).model_validate(data), changed
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        section, _, key = loc.partition(".")
        raise ConfigError(
            f"ClearML hyperparameter {section}/{key}: {err['msg']}",
            hint="fix the value in the ClearML UI (HYPERPARAMETERS tab) and enqueue the task again",
        ) from None
