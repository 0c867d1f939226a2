"""``rfdetr-trainer report RUN_DIR``: rebuild the run's self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="the run folder (with run_manifest.json or metrics.jsonl).")],
    output: Annotated[Optional[Path], typer.Option("--output", help="where to write (default: RUN_DIR/report.html).",
                                                   show_default=False)] = None,
) -> None:
    """Build report.html for a run; prints its path."""
    from rfdetr_trainer.services.report import build_report

    print(build_report(run_dir, output))
