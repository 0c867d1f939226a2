"""``rfdetr-trainer evaluate``: per-class metrics, confusion matrix, curves, thresholds and an error gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr

OptionalCheckpoint = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-w", help="checkpoint .pth (or a run's folder).", show_default=False)]


def evaluate_command(
    checkpoint: OptionalCheckpoint = None, model: o.ModelFile = None,
    dataset: Annotated[Optional[Path], typer.Option(
        "--dataset-dir", "-d", help="dataset root (default: the one the checkpoint was trained on).",
        show_default=False)] = None,
    split_name: Annotated[str, typer.Option("--split", help="test, valid or train.")] = "test",
    output: Annotated[Optional[Path], typer.Option(
        "--output", help="evaluation folder (default: <run>/evaluation/<split>, else ./evaluation/<split>).",
        show_default=False)] = None,
    confidence_threshold: o.Confidence = None,
    match_iou: Annotated[float, typer.Option("--iou", min=0.0, max=1.0,
                                             help="IoU a detection needs to match a box.")] = 0.5,
    num_errors: Annotated[int, typer.Option("--errors", min=0, help="images in the error gallery.")] = 16,
    inference_batch_size: o.InferenceBatchSize = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Evaluate a checkpoint or exported model on a split; the last stdout line is metrics.json's path.

    --conf sets the confidence of the confusion matrix and the error gallery (default: the best-F1 one);
    mAP always counts every detection scoring at least 0.001.
    """
    from rfdetr_trainer.pipeline.stages import evaluate_stage

    settings = load(locals())
    with stdout_to_stderr():
        result = evaluate_stage(settings, checkpoint=checkpoint, model_file=model, dataset_dir=dataset,
                                split=split_name, output=output, iou=match_iou,
                                confidence=confidence_threshold, num_errors=num_errors)
    emit(result.to_dict(), as_json=json_out, last_line=None if json_out else str(result.metrics_path))
