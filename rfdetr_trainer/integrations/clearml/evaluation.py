"""Report an evaluation to a ClearML task: per-class table, confusion matrix, PR curves, thresholds.

``clearml`` is reached through the task object only; nothing here imports it at module level.
"""

from __future__ import annotations

from typing import Any

from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)


def report_evaluation(task: Any, evaluation: Any, *, title: str, iteration: int = 0) -> None:
    """Send ``evaluation`` (``evaluation.core.Evaluation``) to ``task``'s logger under ``title``.

    - per-class table (``report_table``), the rows of ``per_class.csv``;
    - the confusion matrix, counts with a background row and column (``report_confusion_matrix``);
    - PR curves, one series per class plus the mean (``report_scatter2d``);
    - best-F1 thresholds overall and per class, and the headline mAPs (``report_single_value``).
    """
    import numpy as np

    from rfdetr_trainer.evaluation.files import PER_CLASS_COLUMNS

    logger = task.get_logger()
    rows = [list(PER_CLASS_COLUMNS)]
    for row in evaluation.per_class:
        rows.append([_cell(row[c]) for c in PER_CLASS_COLUMNS])
    logger.report_table(title=f"{title} per class", series="metrics", iteration=iteration, table_plot=rows)
    labels = [*evaluation.class_names, "background"]
    cm = evaluation.confusion
    logger.report_confusion_matrix(title=f"{title} confusion matrix", series=f"conf {cm.confidence:.3g}",
                                   matrix=cm.matrix, iteration=iteration, xaxis="predicted", yaxis="true",
                                   xlabels=labels, ylabels=labels, yaxis_reversed=True)
    curves = evaluation.curves
    for name, precision in zip(evaluation.class_names, curves.pr_precision):
        if np.isfinite(precision).all():
            logger.report_scatter2d(title=f"{title} PR curve", series=name, iteration=iteration,
                                    scatter=np.column_stack([curves.pr_recall, precision]), xaxis="recall",
                                    yaxis="precision", mode="lines")
    logger.report_scatter2d(title=f"{title} PR curve", series="all classes", iteration=iteration,
                            scatter=np.column_stack([curves.pr_recall, curves.mean_pr()]), xaxis="recall",
                            yaxis="precision", mode="lines")
    thresholds = evaluation.thresholds
    logger.report_single_value(f"{title} threshold (all classes)", float(thresholds["overall"]["confidence"]))
    for name, value in thresholds["per_class"].items():
        if value == value:
            logger.report_single_value(f"{title} threshold {name}", float(value))
    for key in ("mAP50_95", "mAP50", "mAP75"):
        value = evaluation.metrics.get(key)
        if value is not None and value == value:
            logger.report_single_value(f"{title} {key}", float(value))


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if value != value else round(value, 4)
    return value
