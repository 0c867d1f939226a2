"""Reading and writing COCO JSON: one-line errors for malformed files, deterministic output, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import DatasetError, OutputError
from rfdetr_trainer.fsutil import follow_umask, remove_stale_temporaries, temp_prefix


def decode_text(data: bytes, name: str) -> str:
    """Decode a JSON file's bytes (UTF-8, BOM tolerated), raising DatasetError naming the file."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def parse_json(text: str, name: str) -> Any:
    """Parse JSON text, turning a syntax error into a DatasetError naming the file, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise malformed(name, exc) from None
    except RecursionError:
        raise DatasetError(f"{name}: JSON nested too deeply") from None


def malformed(name: str, exc: json.JSONDecodeError) -> DatasetError:
    """The DatasetError for a JSON syntax error at ``exc``'s position."""
    return DatasetError(
        f"{name}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg})",
        hint="the file is truncated or not JSON; export or download it again",
    )


def dumps(value: Any) -> str:
    """Compact, deterministic JSON (key order as given; non-ASCII kept readable)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_later(data: bytes) -> Callable[[], str]:
    """Start hashing ``data`` on a thread (hashlib releases the GIL) and return a function that waits for
    the hex digest, so a large file is hashed while the caller parses it."""
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(sha256_bytes(data)), daemon=True)
    worker.start()

    def wait() -> str:
        worker.join()
        return result[0]

    return wait


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        follow_umask(Path(tmp))  # mkstemp makes 0600; the renamed file gets the mode open() would give it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staging_dir(final: Path, marker: str = "dataset_manifest.json", what: str = "a merged dataset"
                ) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; on success move it into place, on any failure remove it.

    An existing ``final`` is replaced only after the new folder is complete, and only when it is a previous
    output of the same kind (it holds ``marker``) or empty; anything else is someone's data.
    """
    final = final.absolute()
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final}: exists and is not a folder")
    if final.is_dir() and any(final.iterdir()) and not (final / marker).is_file():
        raise OutputError(
            f"{final}: folder exists, is not empty and is not {what}",
            hint="choose another --output-dir or remove the folder",
        )
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final)  # left by a run killed with SIGKILL/SIGTERM
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), dir=final.parent))
        follow_umask(tmp)  # mkdtemp makes 0700; the renamed folder gets the mode mkdir would give it
    except OSError as exc:
        raise OutputError(f"{final.parent}: cannot create the output folder ({exc.strerror})") from None
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
