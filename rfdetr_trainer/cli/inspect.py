"""``rfdetr-trainer inspect DATASET``: validate a dataset and show counts, class histogram and findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import load
from rfdetr_trainer.cli.merge import BoxFix

Dataset = Annotated[Path, typer.Argument(
    help="dataset folder, .zip or COCO .json (rfdetr, CVAT or plain COCO layout).", show_default=False)]
SkipImages = Annotated[bool, typer.Option(
    "--no-images", help="check annotations only; do not open image files.", rich_help_panel=o.DATA)]


def inspect_command(
    dataset: Dataset,
    strict: o.Strict = None,
    box_fix: BoxFix = None,
    no_images: SkipImages = False,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Validate a dataset: per-split counts, class histogram, findings with file and id. Exit 4 on errors
    (and on warnings with --strict)."""
    from rich.console import Console

    from rfdetr_trainer.coco.report import render_report
    from rfdetr_trainer.integrations.progress import stderr_progress
    from rfdetr_trainer.services.inspect import inspect_dataset, raise_for_report

    settings = load(locals())
    with stderr_progress() as progress:
        report = inspect_dataset(dataset, box_fix=box_fix or "none", strict=settings.data.strict,
                                 check_images=not no_images, progress=progress)
    if json_out:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        render_report(report, Console(soft_wrap=False))
    raise_for_report(report, strict=settings.data.strict)
