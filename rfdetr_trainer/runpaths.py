"""Where a run's outputs go: the folders and files under ``<experiment.output_dir>/<run_name>``.

Below the services and the pipeline so both can name a run's paths (the run manifest stays in
``pipeline/context.py``, which re-exports these names).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rfdetr_trainer.fsutil import check_writable

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
