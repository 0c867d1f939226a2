"""The train stage: validate the dataset, build the model, fit with the project's callbacks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer import __version__
from rfdetr_trainer.errors import DatasetError, TrainingError
from rfdetr_trainer.integrations.rfdetr.checkpoint import BEST_NAMES, find_resume_checkpoint
from rfdetr_trainer.integrations.rfdetr.registry import check_resolution, get_spec, resolve_weights
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.pipeline.context import RunPaths
from rfdetr_trainer.schemas import ModelConfig, TrainingConfig

log = get_logger(__name__)


@dataclass
class TrainResult:
    """What training produced."""

    best_checkpoint: Path
    checkpoints_dir: Path
    tensorboard_dir: Path | None
    metrics_path: Path
    class_names: list[str]
    final_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_completed: int = 0
    duration_s: float = 0.0
    model: Any = field(default=None, repr=False)  # the in-memory rfdetr model, reused by predict/export

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no model object)."""
        return {
            "best_checkpoint": str(self.best_checkpoint),
            "checkpoints_dir": str(self.checkpoints_dir),
            "tensorboard_dir": str(self.tensorboard_dir) if self.tensorboard_dir else None,
            "metrics_path": str(self.metrics_path),
            "class_names": self.class_names,
            "final_metrics": self.final_metrics,
            "epochs_completed": self.epochs_completed,
            "duration_s": round(self.duration_s, 2),
        }


def check_dataset_layout(dataset_dir: Path) -> None:
    """Fail fast, naming the path, when ``dataset_dir`` is not an rfdetr train/valid[/test] dataset."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir}: dataset folder does not exist")
    for split in ("train", "valid"):
        ann = dataset_dir / split / "_annotations.coco.json"
        if not ann.is_file():
            raise DatasetError(
                f"{ann}: missing; training needs {split}/_annotations.coco.json",
                hint="run 'rfdetr-trainer fetch' or 'merge' to lay the data out as train/valid/test",
            )


def validate_dataset(dataset_dir: Path, *, strict: bool) -> Any:
    """Full dataset validation by the dataset engine; raises DatasetError on errors (or warnings if strict)."""
    check_dataset_layout(dataset_dir)
    from rfdetr_trainer.services.inspect import inspect_dataset, raise_for_report

    report = inspect_dataset(dataset_dir, box_fix="none", strict=strict)
    raise_for_report(report, strict)
    for finding in list(report.warnings)[:5]:
        log.warning("dataset: %s", getattr(finding, "message", finding))
    return report


def preflight(model_cfg: ModelConfig, training: TrainingConfig) -> tuple[Any, int, str | None, Path | None]:
    """Check what can fail before any data moves or rfdetr is imported: model type, resolution, weights, resume.

    Returns:
        The model spec, the resolution to train at, the weights for rfdetr, and the checkpoint to resume from.
    """
    spec = get_spec(model_cfg.model_type)
    resolution = check_resolution(spec, training.resolution)
    weights = resolve_weights(spec, model_cfg.pretrain_weights)
    resume = find_resume_checkpoint(training.resume) if training.resume else None
    return spec, resolution, weights, resume


def train(
    model_cfg: ModelConfig,
    training: TrainingConfig,
    dataset_dir: Path,
    paths: RunPaths,
    *,
    tensorboard: bool = True,
    strict: bool = False,
    extra_callbacks: list[Any] | None = None,
    notes: dict[str, Any] | None = None,
    show_progress: bool = True,
    validate: bool = True,
) -> TrainResult:
    """Train an RF-DETR model on an rfdetr-layout dataset.

    Args:
        model_cfg: model type, weights and class count.
        training: optimisation and schedule.
        dataset_dir: folder with ``train/``, ``valid/`` (and ``test/``) COCO splits.
        paths: the run's folders; checkpoints go to ``paths.checkpoints``.
        tensorboard: write TensorBoard event files under ``paths.tensorboard``.
        strict: dataset warnings fail the run.
        extra_callbacks: more Lightning callbacks (experiment tracking).
        notes: JSON-serialisable provenance stored in every checkpoint (e.g. the dataset manifest summary).
        show_progress: draw a progress bar on stderr.
        validate: run the dataset engine's full validation first (the fetch stage already did when it ran).

    Raises:
        ConfigError, DatasetError, CheckpointError, TrainingError.
    """
    spec, resolution, weights, resume = preflight(model_cfg, training)
    if validate:
        validate_dataset(dataset_dir, strict=strict)
    else:
        check_dataset_layout(dataset_dir)

    from rfdetr_trainer.integrations.rfdetr.callbacks import make_callbacks
    from rfdetr_trainer.integrations.rfdetr.throughput import apply_model_options, cache_callbacks
    from rfdetr_trainer.integrations.rfdetr.trainer import build_model, fit

    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log.info("building %s (%s) at %d px, weights: %s", spec.name, spec.class_name, resolution, weights or "none")
    model = build_model(spec, weights=weights, resolution=resolution, num_classes=model_cfg.num_classes,
                        device=training.device)
    apply_model_options(model, training)
    callbacks = make_callbacks(metrics_path=paths.metrics, show_progress=show_progress)
    callbacks.extend(cache_callbacks(training, paths.root))
    callbacks.extend(extra_callbacks or [])
    loggers = []
    if tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(paths.tensorboard), name="", version=""))

    outcome = fit(
        model,
        train_kwargs=_train_kwargs(training, dataset_dir, paths, resolution, notes),
        callbacks=callbacks,
        loggers=loggers,
        resume=resume,
        trainer_overrides={"max_steps": training.max_steps} if training.max_steps else None,
    )
    best = next((paths.checkpoints / n for n in BEST_NAMES if (paths.checkpoints / n).is_file()), None)
    if best is None:
        raise TrainingError(f"{paths.checkpoints}: training finished but wrote no checkpoint")
    history = callbacks[0].history
    final = {k: v for k, v in (history[-1] if history else {}).items() if k not in {"epoch", "step", "elapsed_s"}}
    return TrainResult(
        best_checkpoint=best,
        checkpoints_dir=paths.checkpoints,
        tensorboard_dir=paths.tensorboard if tensorboard else None,
        metrics_path=paths.metrics,
        class_names=outcome.class_names,
        final_metrics=final,
        history=history,
        epochs_completed=outcome.epochs_completed,
        duration_s=time.monotonic() - started,
        model=outcome.model,
    )


def _train_kwargs(training: TrainingConfig, dataset_dir: Path, paths: RunPaths, resolution: int,
                  notes: dict[str, Any] | None) -> dict[str, Any]:
    """``RFDETR.train`` keyword arguments from the project's TrainingConfig."""
    kwargs: dict[str, Any] = {
        "dataset_dir": str(dataset_dir),
        "output_dir": str(paths.checkpoints),
        "epochs": training.epochs,
        "batch_size": training.batch_size,
        "grad_accum_steps": training.grad_accum_steps,
        "lr": training.lr,
        "weight_decay": training.weight_decay,
        "use_ema": training.use_ema,
        "early_stopping": training.early_stopping,
        "early_stopping_patience": training.early_stopping_patience,
        "checkpoint_interval": training.checkpoint_interval,
        "seed": training.seed,
        "resolution": resolution,
        "tensorboard": False,  # the project's own TensorBoard logger writes under <run>/tensorboard
        "run_test": training.run_test,
        "notes": json.loads(json.dumps({"rfdetr_trainer": __version__, **(notes or {})}, default=str)),
    }
    from rfdetr_trainer.integrations.rfdetr.throughput import loader_kwargs

    kwargs.update(loader_kwargs(training))
    if training.lr_encoder is not None:
        kwargs["lr_encoder"] = training.lr_encoder
    if training.device != "auto":
        kwargs["device"] = training.device
    if training.amp is not None:
        kwargs["amp_dtype"] = "auto" if training.amp else None
    if training.strategy != "auto":
        kwargs["strategy"] = training.strategy
    if training.devices != "auto":
        kwargs["devices"] = int(training.devices) if str(training.devices).isdigit() else training.devices
    if training.num_nodes != 1:
        kwargs["num_nodes"] = training.num_nodes
    return kwargs
