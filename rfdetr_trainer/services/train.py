"""The train stage: validate the dataset, build the model, fit with the project's callbacks."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer import __version__
from rfdetr_trainer.errors import ConfigError, DatasetError, TrainingError
from rfdetr_trainer.integrations.rfdetr.checkpoint import BEST_NAMES, check_checkpoint, find_resume_checkpoint
from rfdetr_trainer.integrations.rfdetr.registry import check_resolution, get_spec, resolve_weights
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.runpaths import RunPaths
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
    init_from: dict[str, Any] | None = None  # the class-head mapping of --init-from

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "best_checkpoint": str(self.best_checkpoint),
            "checkpoints_dir": str(self.checkpoints_dir),
            "tensorboard_dir": str(self.tensorboard_dir) if self.tensorboard_dir else None,
            "metrics_path": str(self.metrics_path),
            "class_names": self.class_names,
            "final_metrics": self.final_metrics,
            "epochs_completed": self.epochs_completed,
            "duration_s": round(self.duration_s, 2),
            **({"init_from": self.init_from} if self.init_from else {}),
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


def preflight(model_cfg: ModelConfig, training: TrainingConfig, *, dry_run: bool = False
              ) -> tuple[Any, int, str | None, Path | None]:
    """Check what can fail before any data moves or rfdetr is imported: model type, resolution, weights, resume,
    and the rfdetr knobs that need an optional package or a file. A dry run only shows the configs, so it may
    name a device this machine lacks (``--device cuda`` on a laptop, to see what a GPU run would get).

    Returns:
        The model spec, the resolution to train at, the weights for rfdetr, and the checkpoint to resume from.
    """
    from rfdetr_trainer.integrations.rfdetr.devices import check_device

    spec = get_spec(model_cfg.model_type)
    if not dry_run:
        check_device(training.device)
    resolution = check_resolution(spec, training.resolution)
    weights = resolve_weights(spec, model_cfg.pretrain_weights)
    resume = find_resume_checkpoint(training.resume) if training.resume else None
    check_knobs(model_cfg, training)
    if model_cfg.init_from is not None:
        check_checkpoint(model_cfg.init_from, what="model.init_from checkpoint")
    return spec, resolution, weights, resume


def check_knobs(model_cfg: ModelConfig, training: TrainingConfig) -> None:
    """One clear line for a knob that can't work here: a missing optional package, an unreadable aug_config."""
    import importlib.util

    if model_cfg.backbone_lora and importlib.util.find_spec("peft") is None:
        raise ConfigError("model.backbone_lora: --lora needs the peft package, which is not installed",
                          hint="pip install 'rfdetr-trainer[lora]'")
    if training.batch_size == "auto" and not _cuda_device(training.device):
        raise ConfigError("training.batch_size: 'auto' probes GPU memory and needs a CUDA device "
                          f"(device is {training.device!r})", hint="pass a number, e.g. --batch-size 4")
    if training.augment is not None and training.aug_config is not None:
        raise ConfigError("training.augment: give either --augment or training.aug_config, not both")
    wants_albumentations = (training.augment not in (None, "none")) or bool(load_aug_config(training.aug_config))
    backend = training.augmentation_backend
    needed = {"albumentations": "albumentations", "kornia": "kornia"}.get(backend)
    if wants_albumentations and backend in ("cpu", "auto", "albumentations"):
        needed = "albumentations"
    if needed and importlib.util.find_spec(needed) is None:
        raise ConfigError(f"training.augmentation_backend: augmentations with {backend!r} need {needed}, "
                          "which is not installed", hint="pip install 'rfdetr[augment]'")


def _cuda_device(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch  # only asked when --batch-size auto meets --device auto

    return bool(torch.cuda.is_available())


def load_aug_config(path: Path | None) -> dict[str, Any] | None:
    """The ``{transform: {params}}`` mapping of a JSON/YAML ``training.aug_config`` file."""
    if path is None:
        return None
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (OSError, ValueError) as exc:  # yaml's errors are ValueErrors' cousins; see below
        raise ConfigError(f"training.aug_config: {path}: {str(exc).splitlines()[0][:200]}") from exc
    except Exception as exc:  # yaml.YAMLError
        raise ConfigError(f"training.aug_config: {path}: not valid YAML: {str(exc).splitlines()[0][:200]}") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in data.items()):
        raise ConfigError(f"training.aug_config: {path}: expected a mapping of transform name to its parameters",
                          hint='e.g. {"HorizontalFlip": {"p": 0.5}}')
    return data


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

    from rfdetr_trainer.integrations.rfdetr.throughput import apply_model_options
    from rfdetr_trainer.integrations.rfdetr.trainer import build_model, fit

    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log.info("building %s (%s) at %d px, weights: %s", spec.name, spec.class_name, resolution, weights or "none")
    model_kwargs = model_kwargs_of(model_cfg)
    mapping = None
    if model_cfg.init_from is not None:
        model, mapping = _model_from_previous(spec, model_cfg, training, dataset_dir, paths, weights, resolution)
    else:
        model = build_model(spec, weights=weights, resolution=resolution, num_classes=model_cfg.num_classes,
                            device=training.device, **model_kwargs)
    apply_model_options(model, training)
    callbacks = project_callbacks(training, paths, tensorboard=tensorboard, show_progress=show_progress,
                                  extra=extra_callbacks)
    outcome = fit(model, train_kwargs=train_kwargs_of(training, dataset_dir, paths, resolution, notes),
                  callbacks=callbacks, resume=resume)
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
        init_from=mapping.to_dict() if mapping else None,
    )


def project_callbacks(training: TrainingConfig, paths: RunPaths, *, tensorboard: bool, show_progress: bool,
                      extra: list[Any] | None = None) -> list[Any]:
    """Every Lightning callback the project attaches to rfdetr's Trainer, built in this one place.

    The first is always the ``MetricsLog`` (its history becomes the result's metrics); then the Trainer settings
    ``RFDETR.train()`` doesn't take (step limit, time budget, the TensorBoard logger), the image cache
    (``training.cache``) and the caller's trackers.
    """
    from rfdetr_trainer.integrations.rfdetr.callbacks import make_callbacks, run_callbacks
    from rfdetr_trainer.integrations.rfdetr.throughput import cache_callbacks
    from rfdetr_trainer.schemas.training import max_time_seconds

    loggers = []
    if tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(paths.tensorboard), name="", version=""))
    callbacks = make_callbacks(metrics_path=paths.metrics, show_progress=show_progress)
    callbacks.extend(run_callbacks(
        max_steps=training.max_steps, loggers=loggers,
        max_time=None if training.max_time is None else max_time_seconds(training.max_time)))
    callbacks.extend(cache_callbacks(training, paths.root))  # decode each image once (training.cache)
    callbacks.extend(extra or [])
    return callbacks


def _model_from_previous(spec: Any, model_cfg: ModelConfig, training: TrainingConfig, dataset_dir: Path,
                         paths: RunPaths, weights: str | None, resolution: int) -> tuple[Any, Any]:
    """The model to fine-tune from ``--init-from``: PREV's weights, class head mapped by name (see init_from.py)."""
    from rfdetr_trainer.integrations.rfdetr.init_from import dataset_class_names, write_init_checkpoint
    from rfdetr_trainer.integrations.rfdetr.trainer import build_model

    names = dataset_class_names(dataset_dir)
    if model_cfg.num_classes is not None and model_cfg.num_classes != len(names):
        raise ConfigError(f"model.num_classes: {model_cfg.num_classes} but the dataset has {len(names)} classes, "
                          "and --init-from maps the head onto the dataset's classes",
                          hint="leave --num-classes out with --init-from")
    kwargs = model_kwargs_of(model_cfg)
    fresh = build_model(spec, weights=weights, resolution=resolution, num_classes=len(names),
                        device=training.device, **kwargs)
    from rfdetr_trainer.distributed import global_rank, is_rank_zero

    # Every DDP rank builds its own copy before torch.distributed exists; DDP then broadcasts rank 0's weights.
    init = paths.checkpoints / ("init_from.pth" if is_rank_zero() else f"init_from.rank{global_rank()}.pth")
    mapping = write_init_checkpoint(Path(model_cfg.init_from), fresh.model.model.state_dict(), names, init)
    if is_rank_zero():
        log.info("%s", mapping.summary())
    model = build_model(spec, weights=str(init), resolution=resolution, num_classes=len(names),
                        device=training.device, **kwargs)
    return model, mapping


def model_kwargs_of(model_cfg: ModelConfig) -> dict[str, Any]:
    """rfdetr ``ModelConfig`` fields the project exposes, beyond weights, resolution and class count."""
    kwargs: dict[str, Any] = {"freeze_encoder": model_cfg.freeze_encoder, "backbone_lora": model_cfg.backbone_lora}
    if model_cfg.num_queries is not None:
        kwargs["num_queries"] = model_cfg.num_queries
        kwargs["num_select"] = model_cfg.num_queries  # rfdetr keeps at most num_queries detections per image
    return kwargs


def resolved_configs(model_cfg: ModelConfig, training: TrainingConfig, dataset_dir: Path,
                     paths: RunPaths) -> dict[str, Any]:
    """The rfdetr ``ModelConfig`` and ``TrainConfig`` a training would pass, built without a model (``--dry-run``).

    Uses rfdetr's own config classes, so their validation and defaults apply; ``num_classes`` is the count rfdetr
    would align to from the train split when the dataset is there.
    """
    import warnings

    from rfdetr_trainer.integrations.rfdetr.trainer import first_error, quiet_libraries
    from rfdetr_trainer.schemas.training import max_time_seconds

    quiet_libraries()
    import rfdetr.config

    spec, resolution, weights, _resume = preflight(model_cfg, training, dry_run=True)
    model_fields: dict[str, Any] = {"pretrain_weights": weights, "resolution": resolution,
                                    **model_kwargs_of(model_cfg)}
    num_classes = model_cfg.num_classes
    if num_classes is None and (Path(dataset_dir) / "train" / "_annotations.coco.json").is_file():
        from rfdetr_trainer.integrations.rfdetr.init_from import dataset_class_names

        num_classes = len(dataset_class_names(dataset_dir))
    if num_classes is not None:
        model_fields["num_classes"] = num_classes
    if model_cfg.init_from is not None:
        model_fields["pretrain_weights"] = str(paths.checkpoints / "init_from.pth")
    if training.device != "auto":
        model_fields["device"] = training.device
    if training.compile:  # what apply_model_options sets on the built model
        model_fields["compile"] = True
    train_fields = train_kwargs_of(training, dataset_dir, paths, resolution, None)
    for absorbed in ("device", "resolution"):  # RFDETR.train() applies these to the model, not the TrainConfig
        train_fields.pop(absorbed, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pretrain_weights=None trains from scratch" is what was asked for
            model_config = getattr(rfdetr.config, spec.config_name)(**model_fields)
            train_config = getattr(rfdetr.config, spec.train_config_name)(**train_fields)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"training: rfdetr rejects the configuration: {first_error(exc)}") from exc
    return {
        "model_class": spec.class_name,
        "model_config": model_config.model_dump(mode="json"),
        "train_config": train_config.model_dump(mode="json"),
        # Trainer settings RFDETR.train() doesn't take, carried by the project's callbacks (callbacks.run_callbacks)
        "lightning": {"max_steps": training.max_steps,
                      "max_time_s": max_time_seconds(training.max_time) if training.max_time else None},
    }


def train_kwargs_of(training: TrainingConfig, dataset_dir: Path, paths: RunPaths, resolution: int,
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
    kwargs.update(
        multi_scale=training.multi_scale,  # augmentation_backend: loader_kwargs (auto -> cpu on a CPU run)
        lr_scheduler=training.lr_scheduler, warmup_epochs=training.warmup_epochs,
        eval_interval=training.eval_interval, eval_max_dets=training.eval_max_dets,
        save_dataset_grids=training.save_dataset_grids,
    )
    aug_config = augmentations(training)
    if aug_config is not None:
        kwargs["aug_config"] = aug_config
    return kwargs


def augmentations(training: TrainingConfig) -> dict[str, Any] | None:
    """rfdetr's ``aug_config``: a preset of ``rfdetr.datasets.aug_configs``, the file's mapping, or None (default)."""
    if training.aug_config is not None:
        return load_aug_config(training.aug_config)
    if training.augment is None:
        return None
    if training.augment == "none":
        return {}  # rfdetr: an empty mapping turns augmentation off
    from rfdetr.datasets import aug_configs

    return copy.deepcopy(getattr(aug_configs, f"AUG_{training.augment.upper()}"))
