"""rfdetr's per-epoch metric tables, printed through the project's stderr console.

rfdetr 1.11 prints its validation tables (``COCOEvalCallback._print_metrics_tables``) on the console returned by
``rfdetr.training.callbacks.coco_eval._get_rich_console``, which, without Lightning's ``RichProgressBar``, is a
fresh ``Console(force_terminal=True)``: colour escapes land in ``2> log`` files and CI logs. rfdetr offers no
public switch for that console, so the private name is replaced (pinned by a test in
``tests/integrations/test_trained_classes.py``) with one that returns the project's stderr console: colours in a
terminal, plain text anywhere else, nothing with ``-q``. Those tables are then the one report of each epoch's
metrics (the project's metrics log keeps its ``metrics.jsonl`` and logs its line at debug level only).
"""

from __future__ import annotations

from typing import Any


def _console_for(trainer: Any) -> Any:
    from rfdetr_trainer.logs import quiet, stderr_console

    if quiet():
        import io

        from rich.console import Console

        return Console(file=io.StringIO(), width=240)
    return stderr_console()


def route_metric_tables() -> bool:
    """Send rfdetr's metric tables to the project's console; False when rfdetr no longer has the hook."""
    try:
        from rfdetr.training.callbacks import coco_eval
    except ImportError:  # pragma: no cover - rfdetr is a dependency
        return False
    if not hasattr(coco_eval, "_get_rich_console"):
        return False
    coco_eval._get_rich_console = _console_for
    return True
