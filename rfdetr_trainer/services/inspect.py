"""Inspect stage: validate a dataset folder and report counts and findings (also run before training)."""

from __future__ import annotations

from pathlib import Path

from rfdetr_trainer.coco.merge import stage_progress
from rfdetr_trainer.coco.validate import ValidationReport, raise_for_report, validate_dataset

__all__ = ["ValidationReport", "inspect_dataset", "raise_for_report"]


def inspect_dataset(
    dataset_dir: Path,
    *,
    box_fix: str = "none",
    strict: bool = False,
    check_images: bool = True,
    progress: object = None,
) -> ValidationReport:
    """Validate a dataset in any layout (rfdetr, CVAT export, plain COCO; folder or .zip). Read-only.

    Args:
        dataset_dir: the dataset.
        box_fix: what findings say a merge would do with bad boxes (``clip``, ``drop``, ``none``).
        strict: warnings make the report not ``ok``.
        check_images: open every image header (missing, unreadable, truncated, wrong size).
        progress: a ``callback("validate", done, total)`` or a rich Progress.

    Raises:
        DatasetError: no dataset at ``dataset_dir`` or an annotation file is not COCO JSON at all (the
            message names the file and position).
    """
    report = validate_dataset(Path(dataset_dir), box_fix=box_fix, check_images=check_images,
                            progress=stage_progress(progress))
    report.strict = strict
    return report
