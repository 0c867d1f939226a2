"""Checks of COCO records, shared by the merge (on streamed records) and ``inspect`` (on whole files)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rfdetr_trainer.coco.schema import ERROR, INFO, SPLITS, WARNING, Finding

#: Boxes may poke this many pixels past the image edge before they count as outside: CVAT rounds to 0.01.
EDGE_TOLERANCE = 0.01


def _is_num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def check_image_record(img: Any, file: str) -> Finding | None:
    """A bad_record finding when an image entry lacks a usable id, file_name, width or height."""
    if not isinstance(img, dict):
        return Finding("bad_record", "image entry is not an object", file, None, "dropped")
    iid = img.get("id")
    if type(iid) not in (int, str):
        return Finding("bad_record", "image has no integer or string id", file, None, "dropped")
    if not isinstance(img.get("file_name"), str) or not img["file_name"]:
        return Finding("bad_record", "image has no file_name", file, iid, "dropped")
    w, h = img.get("width"), img.get("height")
    if not (_is_num(w) and _is_num(h) and w > 0 and h > 0):
        return Finding("bad_record", f"image {img['file_name']} has no positive width/height", file, iid, "dropped")
    return None


def check_category_record(cat: Any, file: str) -> Finding | None:
    """A bad_record finding when a category lacks an id or a name."""
    if not isinstance(cat, dict) or type(cat.get("id")) not in (int, str):
        return Finding("bad_record", "category has no id", file, None)
    if not isinstance(cat.get("name"), str) or not cat["name"].strip():
        return Finding("bad_record", "category has no name", file, cat.get("id"))
    return None


def check_box(
    ann: dict, width: float, height: float, box_fix: str, file: str
) -> tuple[list[float] | None, Finding | None]:
    """Check an annotation's bbox against its image.

    Args:
        ann: the annotation.
        width: image width from the JSON.
        height: image height from the JSON.
        box_fix: ``clip`` (clip boxes to the image), ``drop`` (drop boxes outside) or ``none`` (report only).
        file: annotation file, for the finding.

    Returns:
        ``(bbox, finding)``: bbox is the box to keep (the original object when unchanged, a new list when
        clipped) or None when the annotation is to be dropped; finding is None when the box is fine.
    """
    bbox = ann.get("bbox")
    aid = ann.get("id")
    if type(bbox) is not list or len(bbox) != 4 or not all(_is_num(v) for v in bbox):
        return None, Finding("box_invalid", f"bbox is not four finite numbers: {bbox!r}"[:120], file, aid, "dropped")
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        act = "kept" if box_fix == "none" else "dropped"
        return (bbox if act == "kept" else None), Finding(
            "box_nonpositive", f"box has non-positive size {w}x{h}", file, aid, act
        )
    tol = EDGE_TOLERANCE
    if x >= -tol and y >= -tol and x + w <= width + tol and y + h <= height + tol:
        return bbox, None
    msg = f"box {bbox} extends outside the {width}x{height} image"
    if box_fix == "none":
        return bbox, Finding("box_outside", msg, file, aid, "kept")
    if box_fix == "drop":
        return None, Finding("box_outside", msg, file, aid, "dropped")
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None, Finding("box_outside", msg + " entirely", file, aid, "dropped")
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)], Finding(
        "box_outside", msg, file, aid, "clipped"
    )


@dataclass
class ValidationReport:
    """Result of validating a dataset.

    Attributes:
        dataset: the folder or archive validated.
        layout: ``rfdetr``, ``cvat`` or ``coco``.
        findings: everything found, in discovery order.
        counts: ``{"splits": {name: {"images", "annotations", "background", "classes": {name: n}}},
            "findings": {code: n}}``.
    """

    dataset: str
    layout: str
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == INFO]

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def finding_counts(self) -> dict[str, int]:
        """Number of findings per code, sorted by code."""
        return dict(sorted(Counter(f.code for f in self.findings).items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``--json`` output)."""
        return {
            "dataset": self.dataset,
            "layout": self.layout,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "counts": self.counts,
            "finding_counts": self.finding_counts(),
            "findings": [f.to_dict() for f in self.findings],
        }


def empty_split_findings(split_counts: dict[str, dict], file_of: dict[str, str]) -> list[Finding]:
    """empty_split findings for each of train/valid/test that has no images."""
    return [
        Finding("empty_split", f"split {s!r} has no images", file_of.get(s, s))
        for s in SPLITS
        if not split_counts.get(s, {}).get("images")
    ]
