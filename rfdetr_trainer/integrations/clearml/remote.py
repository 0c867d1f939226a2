"""``--remote QUEUE``: hand the whole run to a clearml-agent.

The local process records the task (settings as hyperparameters, the command line as the entry point) and
enqueues it; the agent re-runs ``python -m rfdetr_trainer <same arguments>``, Task.init attaches to the queued
task, and :meth:`TaskManager.connect_params` returns the hyperparameters as edited in the UI.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import Any

from rfdetr_trainer.errors import TrackingError
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

MODULE = "rfdetr_trainer"


def strip_remote(argv: Sequence[str]) -> list[str]:
    """The arguments without ``--remote QUEUE`` / ``--remote=QUEUE`` (the agent must train, not enqueue)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--remote":
            skip = True
            continue
        if arg.startswith("--remote="):
            continue
        out.append(arg)
    return out


def entry_point(argv: Sequence[str]) -> str:
    """The clearml-agent entry point for these CLI arguments: ``-m rfdetr_trainer <args>``."""
    args = strip_remote(argv)
    return f"-m {MODULE} {shlex.join(args)}".strip()


def enqueue_remote(task_manager: Any, queue: str, *, argv: Sequence[str] | None = None,
                   exit_process: bool = False) -> bool:
    """Enqueue the run on ``queue`` for a clearml-agent, or carry on when already running under one.

    Call after ``init_task`` and ``connect_params`` (so the queued task holds the hyperparameters).

    Args:
        task_manager: an initialised :class:`TaskManager`.
        queue: the clearml-agent queue name.
        argv: the CLI arguments after the program name (default ``sys.argv[1:]``).
        exit_process: let clearml end this process after enqueueing (otherwise the caller returns).

    Returns:
        True when the task was enqueued here (the caller stops and reports the task id); False when this
        process is the agent's execution (the caller trains).

    Raises:
        TrackingError: there is no task to enqueue (ClearML off, unreachable, or offline).
    """
    from clearml import Task

    from rfdetr_trainer.integrations.clearml.task import running_remotely

    if running_remotely():
        log.info("running under clearml-agent (queue %s): training here", queue)
        return False
    task = getattr(task_manager, "task", None)
    if task is None:
        raise TrackingError(
            f"--remote {queue}: no ClearML task to enqueue (ClearML is off or unreachable)",
            hint="pass --clearml and make sure the ClearML server can be reached",
        )
    if Task.is_offline():
        raise TrackingError(f"--remote {queue}: an offline ClearML session can't be enqueued",
                            hint="drop --clearml-offline")
    args = list(sys.argv[1:] if argv is None else argv)
    task.set_script(entry_point=entry_point(args), working_dir=".")
    task.execute_remotely(queue_name=queue, clone=False, exit_process=exit_process)
    log.info("ClearML task %s enqueued on %s: %s", task.id, queue, task.get_output_log_web_page())
    return True
