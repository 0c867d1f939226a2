"""The image-file check (what Pillow's decoder says, and the real size) and a memo of its results for unchanged files.

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

from rfdetr_trainer.coco.images import Probe

_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
_memo: dict[str, tuple[int, int, Probe]] = {}
_lock = threading.Lock()


def is_image_name(name: str) -> bool:
    """Whether a file or key name looks like an image the validator opens."""
    return Path(name).suffix.lower() in _IMAGE_SUFFIXES


def probe_file(path: Path) -> Probe:
    """What Pillow's decoder says about ``path``: the same check validation runs
    (:func:`rfdetr_trainer.coco.images.probe_image`), so a remembered result and a fresh one always agree."""
    from rfdetr_trainer.coco.images import probe_image

    try:
        with open(path, "rb") as fh:
            return probe_image(fh)
    except OSError as exc:
        return ("image_unreadable", f" does not decode ({(str(exc).strip() or type(exc).__name__)[:120]})", 0, 0, 1)


def is_probe(value: object) -> bool:
    """Whether ``value`` has the shape of a :data:`Probe` (a journal row of an older version may not)."""
    return (isinstance(value, (list, tuple)) and len(value) == 5 and all(isinstance(v, str) for v in value[:2])
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value[2:]))


def _key(path: Path) -> str:
    return os.path.abspath(path)


def remember(path: Path, result: Probe, stat: os.stat_result | None = None) -> None:
    """Record ``result`` for ``path`` as it is now (size and mtime from ``stat``, or a fresh one); a malformed
    result (from an older journal) is not recorded, so the file is checked again."""
    if not is_probe(result):
        return
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
