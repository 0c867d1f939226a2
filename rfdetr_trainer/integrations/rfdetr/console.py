"""rfdetr's per-epoch metric tables in a log file: plain text, no ANSI escape codes.

rfdetr 1.11 prints its validation tables (``COCOEvalCallback``) on a fresh ``rich`` ``Console(force_terminal=True)``
writing to ``sys.stdout``, so colour escapes land in ``2> log`` files and CI logs; it offers no public switch for
that console. While a stage runs, stdout is redirected to stderr (``cli/common.py``); when stderr is not a
terminal, that redirect goes through :class:`PlainText`, which drops the escape sequences (and with ``-q`` it
drops the tables: only warnings and errors reach stderr). No private name of rfdetr is touched. The tables are the
one report of each epoch's metrics: the project's metrics log keeps ``metrics.jsonl`` and logs its line at debug
level only.
"""

from __future__ import annotations

import io
import re
from typing import Any

#: CSI sequences (colours, cursor moves) and OSC sequences (hyperlinks), as rich writes them.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class PlainText(io.TextIOBase):
    """A text stream that writes to ``target`` without ANSI escape codes (nothing at all when ``mute``)."""

    def __init__(self, target: Any, *, mute: bool = False) -> None:
        super().__init__()
        self.target = target
        self.mute = mute

    def write(self, text: str) -> int:
        if not self.mute:
            self.target.write(_ESCAPES.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # rich asks the stream for its encoding
        return getattr(self.target, "encoding", None) or "utf-8"


def stage_stdout(stderr: Any) -> Any:
    """Where a stage's stdout goes: ``stderr`` itself in a terminal, else a :class:`PlainText` over it."""
    from rfdetr_trainer.logs import quiet

    if stderr.isatty() and not quiet():
        return stderr
    return PlainText(stderr, mute=quiet())
