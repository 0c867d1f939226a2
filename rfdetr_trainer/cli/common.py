"""What every command does the same way: load settings from its flags, keep stdout for results."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfdetr_trainer.cli.options import flag_names, overrides

if TYPE_CHECKING:
    from rfdetr_trainer.settings import Settings


def load(params: dict[str, Any], extra: Mapping[str, Any] | None = None) -> Settings:
    """Settings for a command: its passed flags over env, ``.env``, ``--config`` and defaults.

    Args:
        params: the command's ``locals()``; the shared options among them become overrides.
        extra: dotted settings keys set by flags only this command has (``export --no-check``), at the same
            precedence as every flag. Validated settings are never changed afterwards.
    """
    from rfdetr_trainer.settings import load_settings  # pydantic stays out of --help's start-up

    return load_settings(
        config_file=params.get("config"),
        overrides={**overrides(params), **(extra or {})},
        env_file=params.get("env_file") or Path(".env"),
        flag_names=flag_names(),
        env_file_required=params.get("env_file") is not None,  # a named --env-file must exist
    )


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (by us, rfdetr, Lightning, C code) to stderr while a stage runs.

    stdout carries only results, so ``ckpt=$(rfdetr-trainer train …)`` captures just the checkpoint path.
    """
    fd_saved = None
    try:
        if sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2:
            sys.stdout.flush()
            fd_saved = os.dup(1)
            os.dup2(2, 1)
    except (AttributeError, OSError, ValueError):  # captured streams (tests) have no real descriptor
        fd_saved = None
    from rfdetr_trainer.integrations.rfdetr.console import stage_stdout

    try:
        with contextlib.redirect_stdout(stage_stdout(sys.stderr)):  # no ANSI escapes off a terminal
            yield
    finally:
        if fd_saved is not None:
            sys.stdout.flush()
            os.dup2(fd_saved, 1)
            os.close(fd_saved)


def emit(result: dict[str, Any], *, as_json: bool, last_line: str | None = None) -> None:
    """Print a result: JSON with ``--json``, else ``key: value`` lines, with ``last_line`` printed last."""
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        print(f"{key}: {value}", file=sys.stderr if last_line else sys.stdout)
    if last_line:
        print(last_line)
