"""Progress reporting of a merge: one ``callback(stage, done, total)`` whatever the caller passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[str, int, int], None]


def stage_progress(progress: Any) -> Progress:
    """Adapt what callers pass as ``progress`` to ``callback(stage, done, total)``.

    Accepted: None (silent), such a callback, a ``rich.progress.Progress`` (one row per stage), or an
    integrations ``TransferProgress`` (``expect``/``advance``; only image files are reported to it).
    """
    if progress is None:
        return lambda stage, done, total: None
    if hasattr(progress, "add_task"):
        tasks: dict[str, Any] = {}

        def rich_update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        return rich_update
    if hasattr(progress, "advance") and hasattr(progress, "expect"):
        seen = {"total": 0, "done": 0}

        def transfer_update(stage: str, done: int, total: int) -> None:
            if stage != "images":
                return
            if total > seen["total"]:
                progress.expect(files=total - seen["total"])
                seen["total"] = total
            progress.advance(files=done - seen["done"])
            seen["done"] = done

        return transfer_update
    return progress
