"""Where a run's outputs go, and the run manifest that names them."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.errors import OutputError

MANIFEST_NAME = "run_manifest.json"


@dataclass(frozen=True)
class RunPaths:
    """The folders and files of one run under ``<experiment.output_dir>/<run_name>``."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def exports(self) -> Path:
        return self.root / "export"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME


def run_paths(output_dir: Path, run_name: str | None) -> RunPaths:
    """The run folder, checked creatable; it is created by the first stage that writes into it.

    Raises:
        OutputError: the folder can't be created or written.
    """
    name = run_name or time.strftime("run-%Y%m%d-%H%M%S")
    root = Path(output_dir) / name
    check_writable(root)
    return RunPaths(root)


def check_writable(folder: Path) -> Path:
    """Prove ``folder`` can be created (or written, when it exists) without creating it.

    A command that fails later then leaves no empty folder behind.

    Raises:
        OutputError: a component of the path is a file, or the nearest existing folder is not writable.
    """
    folder = Path(folder)
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing}: permission denied"
    if problem:
        raise OutputError(f"{folder}: output folder is not writable ({problem})",
                          hint="choose another --output-dir or fix its permissions")
    return folder


def ensure_writable(folder: Path) -> Path:
    """Create ``folder`` if needed and prove it can be written, or raise OutputError naming it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"{folder}: output folder is not writable ({exc.strerror or exc})",
            hint="choose another --output-dir or fix its permissions",
        ) from None
    return folder


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
