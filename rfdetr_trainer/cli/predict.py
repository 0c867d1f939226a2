"""``rfdetr-trainer predict``: annotated images, a grid and COCO results; mAP on a split with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr

Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-w", help="checkpoint .pth (or a run's folder).")]
OptionalCheckpoint = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-w", help="checkpoint .pth (or a run's folder).", show_default=False)]


def predict_command(
    input: Annotated[Path, typer.Option("--input", "-i", help="image, image folder, split folder or dataset root.")],
    checkpoint: OptionalCheckpoint = None, model: o.ModelFile = None,
    output: Annotated[Optional[Path], typer.Option("--output", help="predictions folder (default: <run>/predictions).",
                                                   show_default=False)] = None,
    thresholds: Annotated[Optional[str], typer.Option(
        "--thresholds", help="per-class confidences: 'auto' (the run's thresholds.json, else the model's "
        "metadata) or a thresholds.json path.", show_default=False)] = None,
    confidence_threshold: o.Confidence = None, iou_threshold: o.Iou = None,
    inference_batch_size: o.InferenceBatchSize = None, output_dir: o.OutputDir = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Predict with a checkpoint or an exported model; prints the predictions folder (and mAP with ground truth)."""
    from rfdetr_trainer.pipeline.stages import predict_stage

    settings = load(locals())
    with stdout_to_stderr():
        result = predict_stage(settings, checkpoint, input, output, model_file=model, thresholds=thresholds)
    emit(result.to_dict(), as_json=json_out, last_line=None if json_out else str(result.output_dir))
