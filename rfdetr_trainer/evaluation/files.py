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


THRESHOLDS_FILE = "thresholds.json"
#: The evaluations ``--thresholds auto`` reads, first found wins: the held-out test split, else valid.
THRESHOLD_SPLITS = ("test", "valid")


def run_thresholds_paths(model_path: Path) -> list[Path]:
    """Where a model's evaluated thresholds live: ``<run>/evaluation/<split>/thresholds.json`` (test, then valid).

    The run is the folder above ``checkpoints/`` (a checkpoint) or ``export/`` (an exported file); a model
    outside a run has none.
    """
    model_path = Path(model_path)
    folder = model_path if model_path.is_dir() else model_path.parent
    if folder.name not in ("checkpoints", "export"):
        return []
    return [folder.parent / "evaluation" / split / THRESHOLDS_FILE for split in THRESHOLD_SPLITS]


def threshold_values(data: Any) -> tuple[float | None, dict[str, float]]:
    """The overall and per-class confidences of a ``thresholds.json`` as :func:`thresholds_dict` writes it.

    ``overall`` is ``{"confidence": x, "f1": …}`` (a bare number is taken too); ``per_class`` maps class names to
    confidences. Undefined ones (``null``: no detection or no ground truth) come back as None or are left out.

    Raises:
        ValueError: not that shape, or a confidence that is not a number in [0, 1]; the message names the field.
    """
    if not isinstance(data, dict) or not ({"overall", "per_class"} & data.keys()):
        raise ValueError('not a thresholds.json (expected {"overall": {"confidence": x}, "per_class": {name: x}})')
    per_class = data.get("per_class") or {}
    if not isinstance(per_class, dict):
        raise ValueError("per_class must map class names to confidences")
    overall = data.get("overall")
    if isinstance(overall, dict):
        overall = overall.get("confidence")
    values = {"overall.confidence": overall, **{f"per_class.{k}": v for k, v in per_class.items()}}
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 1):
            raise ValueError(f"{key}: threshold must be a number in [0, 1], got {value!r}")
    return (None if overall is None else float(overall),
            {str(k): float(v) for k, v in per_class.items() if v is not None})


def read_threshold_values(path: Path) -> tuple[float | None, dict[str, float]]:
    """:func:`threshold_values` of a file.

    Raises:
        OSError: unreadable.
        ValueError: not JSON, or not a thresholds.json (the message names the field).
    """
    return threshold_values(json.loads(Path(path).read_text(encoding="utf-8")))


def read_thresholds(path: Path) -> dict[str, float]:
    """Per-class confidences from a ``thresholds.json`` (class name -> confidence; undefined ones left out)."""
    return read_threshold_values(path)[1]
