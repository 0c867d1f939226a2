"""The run manifest that names a run's outputs; where those outputs go (``RunPaths``) is re-exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.fsutil import check_writable
from rfdetr_trainer.runpaths import MANIFEST_NAME, RunPaths, run_paths

# Their home is below the services (runpaths.py, fsutil.py); re-exported for the pipeline and older imports.
__all__ = ["MANIFEST_NAME", "RunPaths", "check_writable", "load_manifest", "run_paths", "save_manifest"]


def save_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    """Write a manifest atomically (JSON, sorted keys, paths as strings)."""
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a run manifest; an unreadable one is treated as absent."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
