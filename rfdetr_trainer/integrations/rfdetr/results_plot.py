"""A Lightning callback that redraws ``results.png`` (losses, lr, mAP per epoch) after every validation epoch.

It reads the run's ``metrics.jsonl``, which ``callbacks.MetricsLog`` appends first (it is earlier in the callback
list), so the figure always shows the same numbers as the log. This module is a Lightning boundary: it imports
``pytorch_lightning`` at the top and is imported only from the training path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning import Callback  # noqa: TID253 - see module docstring

from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)


class ResultsPlot(Callback):
    """Redraws ``png`` from ``metrics_path`` at the end of each validation epoch (rank 0; never fails training)."""

    def __init__(self, metrics_path: Path, png: Path | None = None) -> None:
        super().__init__()
        self.metrics_path = Path(metrics_path)
        self.png = Path(png) if png else self.metrics_path.with_name("results.png")

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from rfdetr_trainer.integrations.plots import redraw_results

        try:
            redraw_results(self.metrics_path, self.png)
        except Exception as exc:  # a figure must never stop a training
            log.warning("results.png not redrawn: %s", exc)
