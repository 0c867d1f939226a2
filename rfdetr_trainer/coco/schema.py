"""Shared vocabulary of the dataset engine: findings, severities and split names."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Output splits, in the order rfdetr reads them.
SPLITS: tuple[str, ...] = ("train", "valid", "test")

ERROR = "error"
WARNING = "warning"
INFO = "info"

#: Severity of each finding code. Errors fail ``inspect``; warnings fail it only with ``--strict``; infos are
#: counts the user may want to know about (background images, renamed files) and never fail anything.
SEVERITY: dict[str, str] = {
    "bad_record": ERROR,  # an image/annotation/category lacks a required field or has the wrong type
    "box_invalid": ERROR,  # bbox is not four finite numbers
    "unknown_image": ERROR,  # annotation.image_id names no image
    "unknown_category": ERROR,  # annotation.category_id names no category
    "duplicate_image_id": ERROR,
    "duplicate_annotation_id": ERROR,
    "duplicate_category_id": ERROR,
    "image_missing": ERROR,  # listed in the JSON, absent on disk
    "image_unreadable": ERROR,  # not an image PIL can identify
    "image_truncated": ERROR,  # the decoder ran out of data (a cut-off download)
    "image_size_mismatch": ERROR,  # real size differs from the JSON and no EXIF rotation explains it
    "empty_split": ERROR,
    "box_nonpositive": WARNING,  # width or height <= 0
    "box_outside": WARNING,  # box extends beyond the image
    "category_unused": WARNING,  # category with no annotations
    "class_missing_in_train": WARNING,
    "split_group_fallback": WARNING,  # grouped split impossible (too few sources); split by image instead
    "class_map_unused": WARNING,  # a class map entry matched no class of any source
    "exif_rotated": INFO,  # the JSON's size is the EXIF-rotated view; written upright (pixels rotated)
    "category_parent_dropped": INFO,  # Roboflow's synthetic root: only a supercategory, no annotations
    "duplicate_category_name": WARNING,  # two categories of one file share a name (merged into one class)
    "split_adjusted": INFO,  # an image moved to train so that every class is trained on
    "duplicate_image": INFO,  # byte-identical image stored once
    "duplicate_annotation": INFO,  # annotation dropped by the duplicate rule
    "image_unannotated": INFO,  # kept as a background image
    "file_renamed": INFO,  # output file name changed to avoid a collision
}


@dataclass(frozen=True)
class Finding:
    """One problem (or notable fact) found in a dataset.

    Attributes:
        code: key of :data:`SEVERITY`.
        message: one human line.
        file: annotation file (or image path) it was found in.
        id: id of the image, annotation or category at fault, when there is one.
        action: what the engine did about it (``dropped``, ``clipped``, ``renumbered``, ``kept``, ...).
    """

    code: str
    message: str
    file: str = ""
    id: Any = None
    action: str = ""

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``info``."""
        return SEVERITY.get(self.code, WARNING)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the severity spelled out."""
        data = asdict(self)
        data["severity"] = self.severity
        return data

    def line(self) -> str:
        """``file [id N]: message`` — the one line used in errors and logs."""
        where = self.file + (f" id {self.id}" if self.id is not None else "")
        return f"{where}: {self.message}" if where else self.message


_SUBSET_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
}


def normalize_subset(name: str) -> str | None:
    """Map a source's subset name to an output split, or ``None`` when it says nothing about splitting.

    CVAT keeps the case users typed (``Train``, ``Validation``), COCO files carry years (``train2017``) and
    CVAT projects add suffixes (``default_1``), so matching is case-insensitive and ignores trailing digits.
    """
    key = name.strip().lower().rstrip("0123456789_- ")
    return _SUBSET_ALIASES.get(key)
