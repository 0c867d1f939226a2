"""Build an rfdetr model and train it with ``RFDETR.train()``, the project's callbacks attached.

``RFDETR.train()`` accepts no callbacks; ``hooks.py`` hands them to the Trainer it builds through Lightning's
``pytorch_lightning.callbacks_factory`` entry point, so no step of rfdetr's own ``train()`` is re-created here.
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

    class_names: list[str]
    epochs_completed: int


def quiet_libraries() -> None:
    """Silence import-time deprecation chatter from torch/rfdetr that is noise for our users."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit.*")
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def build_model(spec: ModelSpec, *, weights: str | None, resolution: int, num_classes: int | None,
                device: str | None = None, **config: Any) -> Any:
    """Instantiate the rfdetr class of ``spec``; ``config`` holds more rfdetr ``ModelConfig`` fields.

    Raises:
        ConfigError: the model can't be built offline (RFDETRBase needs DINOv2 from the Hugging Face hub).
        CheckpointError: ``weights`` is not a loadable checkpoint.
    """
    quiet_libraries()
    import rfdetr

    cls = getattr(rfdetr, spec.class_name)
    kwargs: dict[str, Any] = {"pretrain_weights": weights, "resolution": resolution, **config}
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


def first_error(exc: BaseException) -> str:
    """One line for an exception; for a pydantic ValidationError, the first field and its message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"[:300]
        except (TypeError, IndexError, KeyError):
            pass
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _checkpoint_error(weights: str | None, exc: BaseException) -> Exception:
    from rfdetr_trainer.errors import CheckpointError

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"model.pretrain_weights: {weights} could not be loaded: {first[:200]}")


def fit(
    model: Any,
    *,
    train_kwargs: dict[str, Any],
    callbacks: list[Any],
    resume: Path | None,
) -> FitOutcome:
    """Train ``model`` with ``RFDETR.train()`` itself, the project's callbacks attached through Lightning.

    Everything rfdetr's ``train()`` does (class-name checks, keypoint schema alignment, dataset grids,
    ``training_config.json``, ``model.args``, dropping an optimised inference copy) happens unchanged.

    Args:
        model: an rfdetr ``RFDETR`` instance from :func:`build_model`.
        train_kwargs: keyword arguments ``RFDETR.train`` accepts (dataset_dir, output_dir, epochs, …).
        callbacks: Lightning callbacks appended to rfdetr's own (including loggers via ``run_callbacks``).
        resume: a Lightning ``last.ckpt`` to continue from.
    """
    quiet_libraries()
    from rfdetr_trainer.integrations.rfdetr.callbacks import RunWatch
    from rfdetr_trainer.integrations.rfdetr.hooks import attached

    kwargs = dict(train_kwargs)
    if resume is not None:
        kwargs["resume"] = str(resume)
    watch = RunWatch()
    try:
        with attached([watch, *callbacks]):
            model.train(**kwargs)
    except SystemExit as exc:
        # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1), leaving SIGINT ignored; hand the CLI
        # a KeyboardInterrupt instead, so the user hears that rerunning resumes from last.ckpt (exit 130).
        if watch.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from exc
        raise
    except (ValueError, TypeError) as exc:
        if not watch.fit_started:  # rfdetr rejected the configuration before any training began
            raise ConfigError(f"training: rfdetr rejects the configuration: {first_error(exc)}") from exc
        raise TrainingError(f"training failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc
    except Exception as exc:  # surface the library's failure as one line; --debug keeps the traceback
        raise TrainingError(f"training failed: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc
    class_names = [str(n) for n in (getattr(model.model, "class_names", None) or [])]
    return FitOutcome(class_names, watch.epochs_completed)
