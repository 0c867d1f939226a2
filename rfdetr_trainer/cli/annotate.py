"""``rfdetr-trainer annotate``: a trained model pre-annotates CVAT tasks; the summary file's path is printed last."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr
from rfdetr_trainer.errors import ConfigError

Checkpoint = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-w", help="checkpoint .pth (or a run's folder).", show_default=False)]
Model = Annotated[Optional[Path], typer.Option(
    "--model", help="model file; same as --checkpoint (ONNX/TorchScript need the batched inference backend).",
    show_default=False)]
Frames = Annotated[str, typer.Option(
    "--frames", help="unlabeled: only frames with no shapes; all: also frames with human shapes (kept).")]
ThresholdsOpt = Annotated[Optional[str], typer.Option(
    "--thresholds", help="'auto' (thresholds.json from evaluate, or the ONNX metadata) or a thresholds.json path;"
    " overrides --conf.", show_default=False)]
Replace = Annotated[bool, typer.Option(
    "--replace", help="replace the shapes this tool uploaded earlier (source 'auto'); human shapes stay.")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="upload nothing: print what would be uploaded per task and frame, write COCO results.")]
Output = Annotated[Optional[Path], typer.Option(
    "--output", help="folder for predictions and the summary (default: <output-dir>/annotate).",
    show_default=False)]


def annotate_command(
    checkpoint: Checkpoint = None, model: Model = None, cvat_task_ids: o.CvatTaskIds = None,
    frames: Frames = "unlabeled", confidence_threshold: o.Confidence = None, thresholds: ThresholdsOpt = None,
    iou_threshold: o.Iou = None, replace: Replace = False, dry_run: DryRun = False, output: Output = None,
    cvat_downloader: o.CvatDownloader = None, output_dir: o.OutputDir = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Upload a model's predictions to CVAT tasks as pre-annotations (labels matched by name, human work kept)."""
    from rfdetr_trainer.services.annotate import annotate_from_settings

    weights = checkpoint or model
    if weights is None:
        raise ConfigError("no model given", hint="pass --checkpoint run/checkpoints/checkpoint_best_total.pth")
    settings = load(locals())
    with stdout_to_stderr():
        result = annotate_from_settings(settings, weights, frames=frames, thresholds=thresholds, replace=replace,
                                        dry_run=dry_run, output=output)
    if json_out:
        emit(result.to_dict(), as_json=True)
        return
    # stdout: the dry run's per-frame plan, one summary line per task, then the summary file's path.
    lines = (result.plan if dry_run else []) + [task.line() for task in result.tasks]
    print("\n".join([*lines, str(result.summary_path)]))
