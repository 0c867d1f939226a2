"""Landing downloaded files safely: zip extraction that cannot escape its folder, atomic folder swaps.

Both remote sources (CVAT exports, .zip objects in S3) end here, so one implementation decides what "safe"
and "complete" mean:

- an archive entry with an absolute path, a drive letter, a ``..`` component or a symlink mode refuses the
  whole archive before anything is written;
- extraction goes into a hidden temporary sibling that is renamed into place only when complete, so a
  half-extracted folder never carries the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from rfdetr_trainer.errors import SourceError

_CHUNK = 1 << 20


class UnsafeArchiveError(SourceError):
    """An archive entry would land outside the extraction folder."""


def safe_relative_path(name: str) -> PurePosixPath:
    """Validate an archive entry or object key and return it as a relative path.

    Args:
        name: entry name as stored (``/`` or ``\\`` separators).

    Raises:
        ValueError: the name is empty, absolute, carries a drive letter, or has a ``..`` component.
    """
    normalized = name.replace("\\", "/")
    if not normalized.strip("/"):
        raise ValueError(f"empty path {name!r}")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise ValueError(f"absolute path {name!r}")
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path {name!r} climbs out with '..'")
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """A hidden, unique name next to ``path``; cleaned by :func:`remove_stale_siblings`."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def remove_stale_siblings(path: Path) -> None:
    """Delete temporary siblings a previous, interrupted run left next to ``path``."""
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f".{path.name}.*-*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def replace_dir(src: Path, dest: Path) -> None:
    """Move the complete folder ``src`` to ``dest``, replacing an older ``dest`` if present."""
    old = None
    if dest.exists():
        old = temp_sibling(dest, "old")
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def extract_zip(archive: Path, dest: Path, *, keep: Callable[[PurePosixPath], bool] | None = None) -> int:
    """Extract ``archive`` into ``dest`` atomically, refusing unsafe entries.

    Args:
        archive: the zip file.
        dest: final folder; replaced if it exists, and only once extraction is complete.
        keep: optional filter on each entry's relative path; entries it rejects are skipped.

    Returns:
        Number of files extracted.

    Raises:
        UnsafeArchiveError: an entry is absolute, climbs out with ``..`` or is a symlink. Nothing is written.
        SourceError: the file is not a readable zip.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{archive.name} is not a readable zip archive ({exc})") from exc
    with zf:
        members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in zf.infolist():
            try:
                rel = safe_relative_path(info.filename)
            except ValueError as exc:
                raise UnsafeArchiveError(f"refusing archive {archive.name}: entry {exc}") from None
            if _is_symlink(info):
                raise UnsafeArchiveError(f"refusing archive {archive.name}: entry {info.filename!r} is a symlink")
            if info.is_dir() or (keep is not None and not keep(rel)):
                continue
            members.append((info, rel))

        tmp = temp_sibling(dest)
        tmp.mkdir(parents=True)
        try:
            for info, rel in members:
                target = tmp.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            replace_dir(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return len(members)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary sibling and rename it over ``path``."""
    tmp = temp_sibling(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """JSON content of ``path``, or None when it is missing or unreadable (treated as "not complete")."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
