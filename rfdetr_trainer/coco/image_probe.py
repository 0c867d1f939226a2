"""The image-file check (readable, complete, its real size) and a memo of its results for unchanged files.

A fetch probes each image right after it lands, on the transfer thread, so the check overlaps the download
instead of following it; the validation that runs before training then finds the result here instead of
opening the file again. The memo is keyed by the file's absolute path, size and modification time, so a file
that changed since it was probed is probed again. A re-fetch that skips an unchanged object (its ETag and size
match the fetch journal) seeds the memo from the journal, where the probe result was stored when it landed.
Thread-safe; pure Python plus Pillow (imported inside functions).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: (format, width, height, complete), or ("unreadable", 0, 0, False) with the exception name as format suffix.
Probe = tuple[str, int, int, bool]

_TAIL = 64
_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
_memo: dict[str, tuple[int, int, Probe]] = {}
_lock = threading.Lock()


def is_image_name(name: str) -> bool:
    """Whether a file or key name looks like an image the validator opens."""
    return Path(name).suffix.lower() in _IMAGE_SUFFIXES


def complete(fmt: str | None, tail: bytes) -> bool:
    """Whether ``tail`` (the file's last bytes) holds the format's end marker (JPEG ``FFD9``, PNG ``IEND``)."""
    tail = tail.rstrip(b"\x00\r\n ")
    if fmt == "JPEG":
        return tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" in tail
    return True


def probe_file(path: Path) -> Probe:
    """Open ``path``'s header and read its tail: format, size and whether the end marker is there."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as fh:
            with Image.open(fh) as img:
                (width, height), fmt = img.size, img.format or ""
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - _TAIL))
            tail = fh.read()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return (f"unreadable:{type(exc).__name__}", 0, 0, False)
    return (fmt, int(width), int(height), complete(fmt, tail))


def _key(path: Path) -> str:
    return os.path.abspath(path)


def remember(path: Path, result: Probe, stat: os.stat_result | None = None) -> None:
    """Record ``result`` for ``path`` as it is now (size and mtime from ``stat``, or a fresh one)."""
    st = stat or os.stat(path)
    with _lock:
        _memo[_key(path)] = (st.st_size, st.st_mtime_ns, tuple(result))  # type: ignore[assignment]


def recall(path: Path) -> Probe | None:
    """The remembered result for ``path`` if the file still has the size and mtime it had then."""
    with _lock:
        entry = _memo.get(_key(path))
    if entry is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    size, mtime_ns, result = entry
    return result if (st.st_size, st.st_mtime_ns) == (size, mtime_ns) else None


def probe_and_remember(path: Path) -> tuple[Probe, os.stat_result]:
    """Probe ``path`` now and remember the result; returns it with the stat it is keyed by."""
    st = os.stat(path)
    result = probe_file(path)
    remember(path, result, st)
    return result, st


def forget_all() -> None:
    """Drop every remembered result (tests)."""
    with _lock:
        _memo.clear()
