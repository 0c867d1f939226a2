"""The ClearML Lightning callback: per-epoch scalars, train loss every N steps, prediction grids.

Imported only from the training path (``make_callback`` in the package imports it lazily).
"""

from __future__ import annotations

from typing import Any

from rfdetr_trainer.integrations.rfdetr.callbacks import LazyScalar, _scalar
from rfdetr_trainer.integrations.tensorboard import PredictionImagesBase
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

#: Keys that are progress-bar aliases or bookkeeping, not metrics.
SKIP = frozenset({"loss", "epoch", "step"})


def split_key(key: str) -> tuple[str, str]:
    """ClearML (title, series) of a Lightning metric key.

    ``val/mAP_50`` -> (``val``, ``mAP_50``); ``val/AP/circle`` -> (``val AP per class``, ``circle``);
    ``train/lr`` -> (``train``, ``lr``); a key without a slash goes under ``metrics``.
    """
    parts = key.split("/")
    if len(parts) >= 3 and parts[1] == "AP":
        return f"{parts[0]} AP per class", "/".join(parts[2:])
    if len(parts) >= 2:
        return parts[0], "/".join(parts[1:])
    return "metrics", key


def epoch_scalars(trainer: Any) -> dict[str, float]:
    """Every finite scalar Lightning holds now: logged (loggers) and callback metrics together."""
    out: dict[str, float] = {}
    for source in (getattr(trainer, "logged_metrics", {}), trainer.callback_metrics):
        for key, value in source.items():
            number = _scalar(value)
            if number is not None and key not in SKIP:
                out[key] = number
    return out


class ClearMLCallback(PredictionImagesBase):
    """Reports a run to the task of a :class:`TaskManager` (rank 0 only; a no-op without an active task)."""

    def __init__(self, task_manager: Any, *, log_every_n_steps: int = 10, debug_images_every_n_epochs: int = 1,
                 max_images: int = 8) -> None:
        super().__init__(every_n_epochs=debug_images_every_n_epochs, max_images=max_images)
        self.tm = task_manager
        self.log_every_n_steps = max(1, int(log_every_n_steps))
        self._last_step = -1
        self._pending: list[tuple[int, LazyScalar, LazyScalar | None]] = []
        self.reported_epochs: list[int] = []

    def _on(self, trainer: Any) -> bool:
        return self.tm is not None and self.tm.active and trainer.is_global_zero

    def _due(self, trainer: Any) -> bool:
        return self._on(trainer) and super()._due(trainer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._on(trainer):
            return
        step = int(trainer.global_step)
        if step == self._last_step or step % self.log_every_n_steps:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self._last_step = step
        lr = trainer.callback_metrics.get("train/lr")
        # Queued without waiting on the device; reported once landed (see LazyScalar), oldest first.
        self._pending.append((step, LazyScalar(loss), LazyScalar(lr) if lr is not None else None))
        self._flush(wait=False)

    def _flush(self, *, wait: bool) -> None:
        while self._pending and (wait or self._pending[0][1].ready()):
            step, loss, lr = self._pending.pop(0)
            number = loss.wait()
            if number is not None:
                self.tm.report_scalar("train (steps)", "loss", number, step)
            rate = lr.wait() if lr is not None else None
            if rate is not None:
                self.tm.report_scalar("train (steps)", "lr", rate, step)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # Validation runs before on_train_epoch_end, so this sees the epoch's train and validation scalars
        # (including per-class AP, which rfdetr logs to the loggers but not to callback_metrics).
        if not self._on(trainer):
            return
        self._flush(wait=True)  # the epoch is over: reading the last queued losses costs nothing now
        epoch = int(trainer.current_epoch)
        for key, value in sorted(epoch_scalars(trainer).items()):
            title, series = split_key(key)
            self.tm.report_scalar(title, series, value, epoch)
        self.reported_epochs.append(epoch)

    def emit(self, trainer: Any, image: Any, epoch: int) -> None:
        self.tm.report_image("predictions", "valid", image, epoch)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._on(trainer):
            self.tm.report_console(f"training failed: {type(exception).__name__}: {exception}", level=40)
