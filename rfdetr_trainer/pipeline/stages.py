"""Single stages as the CLI runs them alone: settings in, a service's result out.

Each function resolves the paths a stage needs from the settings (and, for a checkpoint, from the run folder it
sits in) and calls the stage's service; ``runner.run`` chains the same services.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rfdetr_trainer.distributed import is_rank_zero
from rfdetr_trainer.pipeline.context import RunPaths, ensure_writable, run_paths
from rfdetr_trainer.settings import ENV_PREFIX, Settings

RUN_NAME_VARIABLE = f"{ENV_PREFIX}EXPERIMENT__RUN_NAME"
#: The run name this process made up (no --run-name given), for the resume hint after Ctrl-C.
GENERATED_RUN_NAME: list[str | None] = [None]


def named_run(settings: Settings) -> Settings:
    """Settings with a run name every process of a multi-process run agrees on.

    Lightning's DDP launcher re-executes the command line for each extra device, and torchrun starts every rank
    at once: a timestamp taken in each would name different folders. The name goes into the environment, which
    re-executed children read through the settings layer.
    """
    if settings.experiment.run_name:
        return settings
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    name = f"run-{elastic}" if elastic and elastic != "none" else time.strftime("run-%Y%m%d-%H%M%S")
    os.environ[RUN_NAME_VARIABLE] = name
    GENERATED_RUN_NAME[0] = name
    return settings.model_copy(update={"experiment": settings.experiment.model_copy(update={"run_name": name})})


def fetch_stage(settings: Settings) -> Any:
    """Fetch and lay out the configured sources (rank 0 only; other ranks get the path rank 0 prepared)."""
    from rfdetr_trainer.integrations.progress import stderr_progress
    from rfdetr_trainer.services.fetch import FetchResult, fetch, prepared_dir

    if not is_rank_zero():
        return FetchResult(prepared_dir(settings.data), [])
    with stderr_progress() as progress:
        return fetch(settings.data, progress=progress)


def train_stage(settings: Settings) -> Any:
    """Fetch (local folders are used in place) and train with tracking; the TrainResult, or None off rank 0."""
    from rfdetr_trainer.pipeline.tracking import tracking
    from rfdetr_trainer.services.train import preflight, train

    preflight(settings.model, settings.training)  # fail in milliseconds, before any download
    settings = named_run(settings)
    paths = run_paths(settings.experiment.output_dir, settings.experiment.run_name)
    with tracking(settings, paths.root.name) as tracker:
        if tracker.enqueued:
            return tracker
        settings = tracker.settings
        fetched = fetch_stage(settings)
        tracker.log_dataset(fetched.manifest_path, fetched.dataset_dir)
        result = train(settings.model, settings.training, fetched.dataset_dir, paths,
                       tensorboard=settings.experiment.logging.tensorboard, strict=settings.data.strict,
                       validate=False, extra_callbacks=tracker.callbacks, notes=fetched.provenance())
        if not is_rank_zero():
            return None
        tracker.log_class_mapping(result.init_from)
        tracker.log_model(result.best_checkpoint, name="best", class_names=result.class_names,
                          metrics=result.final_metrics)
        return result


def train_dry_run(settings: Settings) -> dict[str, Any]:
    """What ``train`` would hand rfdetr (its ModelConfig and TrainConfig), without fetching or training."""
    from rfdetr_trainer.services.fetch import prepared_dir
    from rfdetr_trainer.services.train import resolved_configs

    paths = RunPaths(Path(settings.experiment.output_dir) / (settings.experiment.run_name or "<run>"))  # not created
    return resolved_configs(settings.model, settings.training, prepared_dir(settings.data), paths)


def run_folder_of(checkpoint: Path) -> RunPaths | None:
    """The run folder a checkpoint was written in (``<run>/checkpoints/<file>``), if it is one."""
    checkpoint = Path(checkpoint)
    parent = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return RunPaths(parent.parent) if parent.name == "checkpoints" else None


def default_output(settings: Settings, checkpoint: Path, leaf: str) -> Path:
    """``<run>/<leaf>`` beside the checkpoint's run, else ``<experiment.output_dir>/<leaf>``."""
    run = run_folder_of(checkpoint)
    return (run.root if run else Path(settings.experiment.output_dir)) / leaf


def predict_stage(settings: Settings, checkpoint: Path, source: Path, output: Path | None) -> Any:
    """Load a checkpoint and predict on ``source`` (image, folder, split folder or dataset root)."""
    from rfdetr_trainer.integrations.rfdetr.inference import load_model
    from rfdetr_trainer.pipeline.runner import sample_image
    from rfdetr_trainer.services.predict import predict

    split = None
    if (Path(source) / "train" / "_annotations.coco.json").is_file():
        split, _ = sample_image(Path(source))  # a dataset root: its test split, else valid
    output = Path(output or default_output(settings, checkpoint, "predictions"))
    ensure_writable(output.parent)
    model = load_model(checkpoint)
    return predict(model, Path(source), output, settings.validation, split=split)


def export_stage(settings: Settings, checkpoint: Path, output: Path | None, image: Path | None) -> Any:
    """Load a checkpoint, export it, and check each file against PyTorch on a real image."""
    from rfdetr_trainer.integrations.rfdetr.inference import load_model
    from rfdetr_trainer.services.export import export

    output = Path(output or default_output(settings, checkpoint, "export"))
    ensure_writable(output)
    model = load_model(checkpoint)
    if image is None and settings.export.check:
        image = _image_near(checkpoint, settings)
    return export(model, settings.export, output, sample_image=image)


def _image_near(checkpoint: Path, settings: Settings) -> Path | None:
    """A real image for the parity check: from the run's dataset, else the configured local dataset."""
    import json

    from rfdetr_trainer.pipeline.runner import sample_image

    candidates = []
    run = run_folder_of(checkpoint)
    if run is not None:
        config = run.checkpoints / "training_config.json"
        try:
            candidates.append(Path(json.loads(config.read_text())["train_config"]["dataset_dir"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    candidates.extend(Path(d) for d in settings.data.local.dataset_dirs)
    for folder in candidates:
        _, image = sample_image(folder)
        if image is not None:
            return image
    return None
