"""Rename, merge and drop classes by name before categories are united."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rfdetr_trainer.errors import ConfigError


@dataclass(frozen=True)
class ClassMap:
    """Class renames (several old names onto one new name merges them) and drops.

    Attributes:
        rename: old name -> new name.
        drop: names whose annotations are removed (matched before and after renaming).
    """

    rename: Mapping[str, str] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()

    def apply(self, name: str) -> str | None:
        """The output name of class ``name``, or None when it is dropped."""
        if name in self.drop:
            return None
        new = self.rename.get(name, name)
        return None if new in self.drop else new

    def names(self) -> set[str]:
        """Every class name the map mentions (to report entries that matched nothing)."""
        return set(self.rename) | set(self.drop)

    def combine(self, other: ClassMap) -> ClassMap:
        """This map with ``other``'s entries taking precedence (flags over the file)."""
        return ClassMap({**self.rename, **other.rename}, self.drop | other.drop)

    def to_dict(self) -> dict:
        """JSON-ready form with sorted keys, for the manifest."""
        return {"rename": dict(sorted(self.rename.items())), "drop": sorted(self.drop)}


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of class names")
    return value


def class_map_from_data(data: object, source: str) -> ClassMap:
    """Build a ClassMap from parsed JSON/YAML.

    Accepted shapes: ``{"rename": {old: new}, "drop": [name]}`` or a flat ``{old: new}`` where a null (or
    empty) new name drops the class.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a class map is a mapping (rename/drop, or old: new)")
    if set(data) <= {"rename", "drop"} and data:
        rename = data.get("rename") or {}
        if not isinstance(rename, dict):
            raise ConfigError(f"{source}: 'rename' must map old class names to new ones")
        drop = set(_strings(data.get("drop") or [], f"{source}: 'drop'"))
    else:
        rename, drop = {}, set()
        for old, new in data.items():
            if new is None or new == "":
                drop.add(str(old))
            else:
                rename[old] = new
    for old, new in rename.items():
        if not isinstance(new, str) or not new.strip():
            raise ConfigError(f"{source}: class {old!r} must be renamed to a non-empty name, got {new!r}")
    return ClassMap({str(k): v.strip() for k, v in rename.items()}, frozenset(drop))


def load_class_map(path: Path) -> ClassMap:
    """Read a class map file (JSON, or YAML by extension)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read class map ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: class map is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        if Path(path).suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            import json

            data = json.loads(text)
    except Exception as exc:  # yaml and json raise different types; both mean the same to the user
        raise ConfigError(f"{path}: not valid {'YAML' if 'yaml' in str(type(exc)) else 'JSON'} ({_short(exc)})"
                          ) from None
    return class_map_from_data(data, str(path))


def class_map_from_flags(renames: Iterable[str] = (), drops: Iterable[str] = ()) -> ClassMap:
    """Build a ClassMap from ``--rename old=new`` and ``--drop name`` flag values."""
    rename: dict[str, str] = {}
    for item in renames:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ConfigError(f"--rename {item!r}: expected OLD=NEW")
        rename[old.strip()] = new.strip()
    return ClassMap(rename, frozenset(d.strip() for d in drops))


def _short(exc: Exception) -> str:
    """A parser error in one line: YAML's problem and position (its default text quotes the file over 9 lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1} column {mark.column + 1}: {problem}"
    if hasattr(exc, "lineno") and hasattr(exc, "msg"):  # json.JSONDecodeError
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return " ".join(str(exc).split())
