"""``rfdetr-trainer export``: ONNX / TorchScript files, each checked against PyTorch on a real image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr
from rfdetr_trainer.cli.predict import Checkpoint


def export_command(
    checkpoint: Checkpoint,
    output: Annotated[Optional[Path], typer.Option("--output", help="export folder (default: <run>/export).",
                                                   show_default=False)] = None,
    image: Annotated[Optional[Path], typer.Option(
        "--image", help="real image for the parity check (default: one from the run's dataset).",
        show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="compare the exported model with PyTorch.")] = True,
    export_format: o.ExportFormat = None, half: o.Half = None, simplify: o.Simplify = None, opset: o.Opset = None,
    dynamic_batch: o.DynamicBatch = None, output_dir: o.OutputDir = None,
    export_evaluate: o.ExportEvaluate = None,
    dataset: Annotated[Optional[Path], typer.Option(
        "--dataset-dir", "-d", help="dataset for --evaluate (default: the one the checkpoint was trained on).",
        show_default=False)] = None,
    split_name: Annotated[str, typer.Option("--split", help="split --evaluate uses: test, valid or train.")] = "test",
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Export a checkpoint; prints each exported file (one per line, last on stdout)."""
    from rfdetr_trainer.pipeline.stages import export_stage

    # --check is the default and leaves export.check to the lower sources; only --no-check overrides it.
    settings = load(locals(), {} if check else {"export.check": False})
    with stdout_to_stderr():
        result = export_stage(settings, checkpoint, output, image, dataset_dir=dataset, split=split_name)
    if json_out:
        emit(result.to_dict(), as_json=True)
    else:
        for path in result.files.values():
            print(path)
