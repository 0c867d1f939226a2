"""Build an rfdetr model and drive rfdetr's own Lightning trainer with the project's callbacks attached.

``RFDETR.train()`` accepts no callbacks, so this module does what it does around ``trainer.fit`` — the same
config preparation, class-count alignment and ``training_config.json`` — and appends the project's callbacks
and loggers to the trainer rfdetr builds (``build_trainer(callbacks=...)`` would replace rfdetr's own list).
"""

from __future__ import annotations

import signal
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ConfigError, TrainingError
from rfdetr_trainer.integrations.rfdetr.registry import ModelSpec
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)


@dataclass
class FitOutcome:
    """What ``fit`` leaves behind."""

    model: Any  # the rfdetr RFDETR instance, holding the trained weights
    class_names: list[str]
    epochs_completed: int


def quiet_libraries() -> None:
    """Silence import-time deprecation chatter from torch/rfdetr that is noise for our users."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit.*")
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def build_model(spec: ModelSpec, *, weights: str | None, resolution: int, num_classes: int | None,
                device: str | None = None) -> Any:
    """Instantiate the rfdetr class of ``spec``.

    Raises:
        ConfigError: the model can't be built offline (RFDETRBase needs DINOv2 from the Hugging Face hub).
        CheckpointError: ``weights`` is not a loadable checkpoint.
    """
    quiet_libraries()
    import rfdetr

    cls = getattr(rfdetr, spec.class_name)
    kwargs: dict[str, Any] = {"pretrain_weights": weights, "resolution": resolution}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if device and device != "auto":
        kwargs["device"] = device
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**kwargs)
    except OSError as exc:
        text = str(exc)
        if "huggingface" in text.lower() or "hf.co" in text or "dinov2" in text.lower():
            raise ConfigError(
                f"model.model_type: {spec.name} ({spec.class_name}) needs its backbone from the Hugging Face hub, "
                "which can't be reached",
                hint="use nano, small, medium or large offline, or pre-populate the Hugging Face cache",
            ) from exc
        raise _checkpoint_error(weights, exc) from exc
    except (RuntimeError, ValueError, KeyError) as exc:
        if weights:
            raise _checkpoint_error(weights, exc) from exc
        raise


def _checkpoint_error(weights: str | None, exc: BaseException) -> Exception:
    from rfdetr_trainer.errors import CheckpointError

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"model.pretrain_weights: {weights} could not be loaded: {first[:200]}")


def fit(
    model: Any,
    *,
    train_kwargs: dict[str, Any],
    callbacks: list[Any],
    loggers: list[Any],
    resume: Path | None,
    trainer_overrides: dict[str, Any] | None = None,
) -> FitOutcome:
    """Train ``model`` with rfdetr's trainer plus the project's callbacks and loggers.

    Args:
        model: an rfdetr ``RFDETR`` instance from :func:`build_model`.
        train_kwargs: keyword arguments ``RFDETR.train`` accepts (dataset_dir, output_dir, epochs, …).
        callbacks: Lightning callbacks appended to rfdetr's own.
        loggers: Lightning loggers appended to rfdetr's (CSV) logger.
        resume: a Lightning ``last.ckpt`` to continue from.
        trainer_overrides: extra ``pytorch_lightning.Trainer`` arguments (e.g. ``max_steps``).
    """
    quiet_libraries()
    from rfdetr.detr import _prepare_run_config, _save_training_config
    from rfdetr.training import RFDETRDataModule, RFDETRModelModule, build_trainer
    from rfdetr.utilities.distributed import is_main_process

    kwargs = dict(train_kwargs)
    if resume is not None:
        kwargs["resume"] = str(resume)
    try:
        config, accelerator, devices = _prepare_run_config(model, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"training: {exc}") from exc
    model._align_num_classes_from_dataset(config.dataset_dir)
    if is_main_process():
        _save_training_config(config, model.model_config, None)

    module = RFDETRModelModule(model.model_config, config)
    datamodule = RFDETRDataModule(model.model_config, config)
    trainer_kwargs: dict[str, Any] = {"accelerator": accelerator, **(trainer_overrides or {})}
    if devices is not None:
        trainer_kwargs["devices"] = devices
    trainer = build_trainer(config, model.model_config, **trainer_kwargs)
    trainer.callbacks.extend(callbacks)
    if loggers:
        trainer.loggers = [*trainer.loggers, *loggers]

    try:
        trainer.fit(module, datamodule, ckpt_path=config.resume or None)
    except SystemExit as exc:
        # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1), leaving SIGINT ignored; hand the CLI
        # a KeyboardInterrupt instead, so the user hears that rerunning resumes from last.ckpt (exit 130).
        if getattr(trainer, "interrupted", False):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from exc
        raise
    except Exception as exc:  # surface the library's failure as one line; --debug keeps the traceback
        raise TrainingError(f"training failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc

    model.model.model = module.model
    model._has_been_trained = True
    class_names = list(getattr(datamodule, "class_names", None) or [])
    if class_names:
        model.model.class_names = class_names
    if is_main_process():
        _save_training_config(config, model.model_config, class_names or None)
    return FitOutcome(model, class_names, int(trainer.current_epoch))
