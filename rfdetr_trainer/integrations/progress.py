"""Transfer progress (files and bytes) that integrations report to, whatever the caller passed.

Integrations accept ``progress=None | rich.progress.Progress | callable | TransferProgress`` and call
:func:`as_progress` once; the default reports nothing, so library use and ``--quiet`` stay silent. The CLI
builds a bar on stderr with :func:`stderr_progress` (stdout is reserved for results).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class TransferProgress(Protocol):
    """What integrations call; totals may grow as work is discovered (e.g. a Content-Length arrives)."""

    def expect(self, *, files: int = 0, nbytes: int = 0) -> None:
        """Add to the totals."""

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        """Add to the amounts done."""


class NullProgress:
    """Reports nothing."""

    def expect(self, *, files: int = 0, nbytes: int = 0) -> None:
        pass

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        pass


class CallbackProgress:
    """Calls ``callback(files_done, files_total, bytes_done, bytes_total)`` on every change (thread-safe)."""

    def __init__(self, callback: Callable[[int, int, int, int], Any]) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.files_done = self.files_total = self.bytes_done = self.bytes_total = 0

    def expect(self, *, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.files_total += files
            self.bytes_total += nbytes
            self._callback(self.files_done, self.files_total, self.bytes_done, self.bytes_total)

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.files_done += files
            self.bytes_done += nbytes
            self._callback(self.files_done, self.files_total, self.bytes_done, self.bytes_total)


class RichProgress:
    """Two rows on a ``rich.progress.Progress``: files and bytes (rich's Progress is thread-safe)."""

    def __init__(self, progress: Any, label: str = "fetch") -> None:
        self._progress = progress
        self._files = progress.add_task(f"{label} files", total=0, unit="files")
        self._bytes = progress.add_task(f"{label} bytes", total=0, unit="bytes")
        self._lock = threading.Lock()
        self._totals = [0, 0]

    def expect(self, *, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self._totals[0] += files
            self._totals[1] += nbytes
            self._progress.update(self._files, total=self._totals[0])
            self._progress.update(self._bytes, total=self._totals[1])

    def advance(self, *, files: int = 0, nbytes: int = 0) -> None:
        if files:
            self._progress.advance(self._files, files)
        if nbytes:
            self._progress.advance(self._bytes, nbytes)


def as_progress(progress: Any, label: str = "fetch") -> TransferProgress:
    """Wrap whatever the caller passed into a :class:`TransferProgress`.

    Args:
        progress: None (silent), a :class:`TransferProgress`, a ``rich.progress.Progress``, or a callable
            taking ``(files_done, files_total, bytes_done, bytes_total)``.
        label: row prefix when drawing on a rich Progress.
    """
    if progress is None:
        return NullProgress()
    if isinstance(progress, TransferProgress):
        return progress
    if hasattr(progress, "add_task") and hasattr(progress, "advance"):
        return RichProgress(progress, label)
    if callable(progress):
        return CallbackProgress(progress)
    raise TypeError(f"unsupported progress object: {type(progress).__name__}")


@contextmanager
def stderr_progress(*, disable: bool | None = None) -> Iterator[Any]:
    """A rich Progress drawing files and bytes rows on stderr; pass it as ``progress=`` to a fetch.

    Args:
        disable: hide the bars; by default they hide when ``-q`` quietened the log.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from rfdetr_trainer.logs import quiet, stderr_console

    class _UnitColumn(MofNCompleteColumn):
        # One Progress draws both rows, so the count column picks its format from the task's unit.
        def render(self, task):  # type: ignore[no-untyped-def]
            if task.fields.get("unit") == "bytes":
                return DownloadColumn().render(task)
            return super().render(task)

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _UnitColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        disable=quiet() if disable is None else disable,
        transient=False,
    ) as bar:
        yield bar
