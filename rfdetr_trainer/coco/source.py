"""A dataset source on local disk, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SourceRef:
    """One dataset on local disk, ready for the dataset engine to read.

    Attributes:
        path: folder (or .zip) in any layout the dataset engine reads.
        name: short unique name used in reports and for grouping splits (e.g. ``cvat-task-12``).
        origin: where it came from, recorded in the dataset manifest: e.g. ``{"type": "cvat", "server": ...,
            "task_id": 12, "updated_date": ...}`` or ``{"type": "s3", "bucket": ..., "key": ..., "etag": ...}``
            or ``{"type": "local", "path": ...}``. Never holds secrets.
    """

    path: Path
    name: str
    origin: dict[str, Any] = field(default_factory=dict)
