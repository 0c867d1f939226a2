"""Logging and progress on stderr (stdout is kept for results)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

LOGGER_NAME = "rfdetr_trainer"


@lru_cache(maxsize=1)
def stderr_console() -> Any:
    """The rich console every log line and progress bar goes to."""
    import sys

    from rich.console import Console

    # Piped or captured stderr (CI logs, `2> file`) gets long lines instead of rich's 80-column wrapping, so a
    # message stays greppable on one line, and no escape codes: colour only where a terminal shows it (rich's
    # own detection then never overrides this).
    tty = sys.stderr.isatty()
    return Console(stderr=True, width=None if tty else 240, **({} if tty else {"color_system": None}))


def setup_logging(level: int = logging.INFO) -> None:
    """Send the project's log records (and rfdetr's) to stderr through rich."""
    from rich.logging import RichHandler

    from rfdetr_trainer.urls import MaskUserinfoFilter

    handler = RichHandler(console=stderr_console(), show_path=False, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(MaskUserinfoFilter())  # a password inside CVAT_HOST / MINIO_ENDPOINT stays out of logs
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def quiet() -> bool:
    """``-q`` was given: progress bars stay off, like info logs."""
    return logging.getLogger(LOGGER_NAME).getEffectiveLevel() > logging.INFO


def get_logger(name: str) -> logging.Logger:
    """A child of the project's logger."""
    return logging.getLogger(f"{LOGGER_NAME}.{name.rsplit('.', 1)[-1]}")


def progress() -> Any:
    """A rich progress bar on stderr (use as a context manager)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=stderr_console(), transient=True, disable=quiet(),
    )
