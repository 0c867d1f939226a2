"""The public seam into rfdetr's training: Lightning's ``pytorch_lightning.callbacks_factory`` entry point.

``RFDETR.train()`` builds its own Lightning ``Trainer`` and accepts no callbacks. Lightning, however, appends the
callbacks returned by every factory registered in the ``pytorch_lightning.callbacks_factory`` entry-point group
to each Trainer it constructs (documented in Lightning's "Entry Points" guide). ``pyproject.toml`` registers
:func:`lightning_callbacks` there; it returns the callbacks of the training run this thread is inside (set by
:func:`attached`), and nothing otherwise, so other Trainers in the same environment, and rfdetr's own
``evaluate()`` after training, are left alone.

This module is imported by Lightning in every process that builds a Trainer, so it imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

GROUP = "pytorch_lightning.callbacks_factory"
NAME = "rfdetr_trainer"
TARGET = "rfdetr_trainer.integrations.rfdetr.hooks:lightning_callbacks"

#: The callbacks of the run in progress (None outside a run).
RUN_CALLBACKS: ContextVar[tuple[Any, ...] | None] = ContextVar("rfdetr_trainer_run_callbacks", default=None)


def lightning_callbacks() -> list[Any]:
    """Entry point Lightning calls while building any Trainer: this run's callbacks, or none outside a run."""
    return list(RUN_CALLBACKS.get() or ())


def registered() -> bool:
    """Whether Lightning's entry-point discovery sees :func:`lightning_callbacks`."""
    return any(ep.value == TARGET for ep in importlib.metadata.entry_points(group=GROUP))


def ensure_registered() -> None:
    """Make the entry point discoverable even where the package's metadata is stale or absent.

    ``pip install`` writes the entry point into the installed metadata. A source tree run through ``PYTHONPATH``,
    or an editable install made before the entry point existed, has no such line; then a minimal metadata folder
    declaring only the entry point is put on ``sys.path``, which is where ``importlib.metadata`` (and so Lightning)
    looks for distributions. Checked first, so the callbacks are never registered twice.
    """
    if registered():
        return
    root = Path(tempfile.mkdtemp(prefix="rfdetr-trainer-entry-points-"))
    info = root / "rfdetr_trainer_lightning_hook-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rfdetr-trainer-lightning-hook\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{NAME} = {TARGET}\n")
    sys.path.append(str(root))
    importlib.invalidate_caches()


@contextlib.contextmanager
def attached(callbacks: Sequence[Any]) -> Iterator[None]:
    """Within the block, every Lightning Trainer built in this context gets ``callbacks`` appended."""
    ensure_registered()
    token = RUN_CALLBACKS.set(tuple(callbacks))
    try:
        yield
    finally:
        RUN_CALLBACKS.reset(token)
