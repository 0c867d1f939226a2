"""The evaluation's data files: metrics.json, per_class.csv, confusion_matrix.json, thresholds.json, errors.json.

Each is written atomically (a temporary sibling, then a rename).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.io import write_text_atomic
from rfdetr_trainer.evaluation.core import Evaluation, _clean

PER_CLASS_COLUMNS = ("class", "category_id", "num_gt", "AP50_95", "AP50", "precision", "recall", "f1", "confidence")


def per_class_csv(evaluation: Evaluation) -> str:
    """The per-class rows as CSV text (empty cells where a value is undefined)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PER_CLASS_COLUMNS)
    for row in evaluation.per_class:
        writer.writerow(["" if _clean(row[c]) is None else _clean(row[c]) for c in PER_CLASS_COLUMNS])
    return buffer.getvalue()


def thresholds_dict(evaluation: Evaluation) -> dict[str, Any]:
    """``thresholds.json``: the best-F1 confidence overall and per class name."""
    t = evaluation.thresholds
    return {"criterion": "max F1", "iou": t["iou"],
            "overall": {k: _clean(v) for k, v in t["overall"].items()},
            "per_class": {name: _clean(v) for name, v in t["per_class"].items()}}


def write_data_files(evaluation: Evaluation, folder: Path, *, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the JSON and CSV files into ``folder``; returns them by name."""
    folder = Path(folder)
    files = {
        "metrics": folder / "metrics.json",
        "per_class": folder / "per_class.csv",
        "confusion_matrix_json": folder / "confusion_matrix.json",
        "thresholds": folder / "thresholds.json",
    }
    write_text_atomic(files["metrics"], json.dumps({**evaluation.metrics_dict(), **(extra or {})}, indent=2) + "\n")
    write_text_atomic(files["per_class"], per_class_csv(evaluation))
    write_text_atomic(files["confusion_matrix_json"],
                      json.dumps(evaluation.confusion.to_dict(evaluation.class_names)) + "\n")
    write_text_atomic(files["thresholds"], json.dumps(thresholds_dict(evaluation), indent=2) + "\n")
    return files


def read_thresholds(path: Path) -> dict[str, float]:
    """Per-class confidences from a ``thresholds.json`` (class name -> confidence; undefined ones left out)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {str(k): float(v) for k, v in (data.get("per_class") or {}).items() if v is not None}
