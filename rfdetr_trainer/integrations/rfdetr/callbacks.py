"""The project's Lightning callbacks, appended to rfdetr's own list through ``hooks.py``'s entry point.

This module is the Lightning boundary: it imports ``pytorch_lightning`` at the top and is itself imported only
from inside the training code path, never at CLI start-up.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback  # noqa: TID253 - see module docstring

from rfdetr_trainer.integrations.rfdetr.results_plot import ResultsPlot
from rfdetr_trainer.logs import get_logger, stderr_console

log = get_logger(__name__)


def _scalar(value: Any) -> float | None:
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class LazyScalar:
    """A device scalar copied to the host without waiting for the device: read it once the copy has landed.

    ``.item()`` on a CUDA tensor waits for every kernel queued before it, so a callback that reads the loss each
    N steps stalls the GPU queue each N steps. This queues a non-blocking copy and a CUDA event instead;
    :meth:`value` answers None until the event has passed, and never blocks (CPU tensors are ready at once).
    """

    def __init__(self, tensor: Any) -> None:
        self._event = None
        if getattr(tensor, "is_cuda", False):
            import torch

            self._host = tensor.detach().to("cpu", non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = tensor.detach() if hasattr(tensor, "detach") else tensor

    def ready(self) -> bool:
        return self._event is None or bool(self._event.query())

    def value(self) -> float | None:
        """The number once the copy has landed, else None (finite values only)."""
        return _scalar(self._host) if self.ready() else None

    def wait(self) -> float | None:
        """The number, waiting for the copy if it has not landed (for epoch ends, where waiting is free)."""
        if self._event is not None:
            self._event.synchronize()
        return _scalar(self._host)


def epoch_metrics(trainer: Any) -> dict[str, float]:
    """The scalars Lightning holds at the end of an epoch, as plain floats."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        number = _scalar(value)
        if number is not None:
            out[key] = number
    return out


def make_callbacks(*, metrics_path: Path, show_progress: bool = True) -> list[Any]:
    """The callbacks every training run gets: a progress bar on stderr (unless ``-q``) and the metrics log."""
    from rfdetr_trainer.logs import quiet

    # rfdetr's own tables report each epoch (plain text in a log file: integrations/rfdetr/console.py), so the
    # metrics log writes metrics.jsonl and keeps its line at debug level.
    callbacks: list[Any] = [MetricsLog(metrics_path, log_line=False)]
    callbacks.append(ResultsPlot(metrics_path))  # after MetricsLog: redraws results.png from what it wrote
    if show_progress and not quiet():
        callbacks.append(RichProgress())
    return callbacks


class RunWatch(Callback):
    """Keeps the Trainer rfdetr built and whether ``fit`` got as far as ``setup``, for what ``train()`` can't return.

    ``RFDETR.train()`` returns nothing: the epoch count, Lightning's Ctrl-C state and where a failure happened
    (config preparation before fit, or training) are read from here afterwards.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trainer: Any = None
        self.fit_started = False

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.trainer = trainer
        self.fit_started = True

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.trainer = trainer  # a Ctrl-C that lands inside fit() before setup() still reads as interrupted

    @property
    def epochs_completed(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0

    @property
    def interrupted(self) -> bool:
        return bool(self.trainer is not None and self.trainer.interrupted)


class AttachLoggers(Callback):
    """Adds the project's loggers (TensorBoard under ``<run>/tensorboard``) to the Trainer rfdetr built.

    ``setup`` runs before Lightning logs hyperparameters or any metric, and ``Trainer.loggers`` is assignable,
    so these loggers see everything rfdetr's own CSV logger sees.
    """

    def __init__(self, loggers: list[Any]) -> None:
        super().__init__()
        self.loggers = list(loggers)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        missing = [lg for lg in self.loggers if all(lg is not other for other in trainer.loggers)]
        if missing:
            trainer.loggers = [*trainer.loggers, *missing]


class StepLimit(Callback):
    """Stops after ``max_steps`` optimiser steps, set before the optimiser and LR schedule are configured.

    rfdetr's ``TrainConfig`` has no ``max_steps``; the fit loop's own limit is what ``Trainer(max_steps=...)``
    sets, and setting it in ``setup`` keeps the LR schedule's step estimate consistent with it.
    """

    def __init__(self, max_steps: int) -> None:
        super().__init__()
        self.max_steps = int(max_steps)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        trainer.fit_loop.epoch_loop.max_steps = self.max_steps


def run_callbacks(*, max_steps: int | None = None, max_time: float | None = None,
                  loggers: list[Any] | None = None) -> list[Any]:
    """Callbacks that carry Trainer settings ``RFDETR.train()`` doesn't take: a step limit, a time budget, loggers.

    ``max_time`` (seconds) becomes Lightning's own ``Timer`` callback, what ``Trainer(max_time=...)`` adds: it
    stops at a step boundary and lets the checkpoint callbacks write as at a normal end.
    """
    out: list[Any] = []
    if max_steps:
        out.append(StepLimit(max_steps))
    if max_time:
        from datetime import timedelta

        from pytorch_lightning.callbacks import Timer  # noqa: TID253 - see module docstring

        out.append(Timer(duration=timedelta(seconds=max_time), interval="step"))
    if loggers:
        out.append(AttachLoggers(loggers))
    return out


class MetricsLog(Callback):
    """Appends one JSON line per epoch (train and validation scalars) to ``metrics.jsonl``.

    The run manifest and the ClearML/TensorBoard integrations read the same records, so every tracker reports
    identical numbers.
    """

    def __init__(self, path: Path, log_line: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.log_line = log_line  # off when rfdetr's own table reports the epoch: each epoch is reported once
        self.history: list[dict[str, Any]] = []
        self._started = time.monotonic()

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        record = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
                  "elapsed_s": round(time.monotonic() - self._started, 3), **epoch_metrics(trainer)}
        self.history.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        shown = {k: round(v, 4) for k, v in record.items() if k.startswith("val/") and "mAP" in k}
        (log.info if self.log_line else log.debug)("epoch %d: %s", record["epoch"] + 1,
                                                   shown or "no validation metrics")


class RichProgress(Callback):
    """A rich progress bar of training steps on stderr (rfdetr's own bar is off by default)."""

    def __init__(self, loss_every: int = 25) -> None:
        super().__init__()
        self.loss_every = max(1, loss_every)
        self._progress: Any = None
        self._task: Any = None
        self._pending: LazyScalar | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
            TimeRemainingColumn(), console=stderr_console(), transient=True,
        )
        self._progress.start()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._progress is None:
            return
        total = trainer.num_training_batches
        description = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total if math.isfinite(total) else None, loss="")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._progress is None or self._task is None:
            return
        if batch_idx % self.loss_every:
            self._progress.update(self._task, advance=1)
            return
        # Every N steps: show the loss queued N steps ago (landed by now) and queue this one, never waiting on the
        # device (reading it at once would stall the CUDA queue; see LazyScalar).
        number = self._pending.value() if self._pending is not None else None
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self._pending = LazyScalar(loss) if loss is not None else None
        if self._pending is not None and self._pending.ready():  # CPU training: nothing to wait for
            number = self._pending.value()
        fields = {"loss": f"loss {number:.3f}"} if number is not None else {}
        self._progress.update(self._task, advance=1, **fields)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
