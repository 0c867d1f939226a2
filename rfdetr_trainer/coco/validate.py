"""Checks of COCO records, shared by the merge (on streamed records) and ``inspect`` (on whole files)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.images import ImageProblem
from rfdetr_trainer.coco.images import check_images as check_image_files
from rfdetr_trainer.coco.io import decode_text, parse_json
from rfdetr_trainer.coco.layout import Subset, open_dataset
from rfdetr_trainer.coco.schema import ERROR, INFO, SPLITS, WARNING, Finding
from rfdetr_trainer.errors import DatasetError

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
    strict: bool = False
    #: (code, image path) of each image that is missing, doesn't decode or has another size than the JSON says.
    unusable: list[tuple[str, str]] = field(default_factory=list)

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
        """True when there are no errors (and, when ``strict``, no warnings)."""
        return not self.errors and not (self.strict and self.warnings)

    def finding_counts(self) -> dict[str, int]:
        """Number of findings per code, sorted by code."""
        return dict(sorted(Counter(f.code for f in self.findings).items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``--json`` output)."""
        return {
            "dataset": self.dataset,
            "layout": self.layout,
            "ok": self.ok,
            "strict": self.strict,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "counts": self.counts,
            "unusable_images": [{"code": code, "file": where} for code, where in self.unusable],
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


def _image_finding(problem: ImageProblem | None, file: str, image_id: Any, action: str = "") -> Finding | None:
    if problem is None:
        return None
    if problem.code == "exif_rotated":
        action = "rotated"
    return Finding(problem.code, problem.message, file, image_id, action)


def parent_categories(categories: list[dict], annotated: set) -> list[dict]:
    """Categories rfdetr 1.11 drops (``rfdetr.datasets.coco.filter_parent_categories``): named as another
    category's ``supercategory``, with no annotation of their own. Roboflow's synthetic root
    (``{"id": 0, "name": "<project>", "supercategory": "none"}``) is the usual one; flat lists lose nothing.

    The rule is rfdetr's, restated here because the COCO domain imports no rfdetr (a test pins the two
    together): placeholders ``""``, ``"none"``, ``"null"`` and None name no parent, a category whose
    supercategory is its own name is not its own parent, and when every category would go none does.
    """
    parents = {
        c.get("supercategory", "none") for c in categories
        if c.get("supercategory", "none") not in _PLACEHOLDERS and c.get("supercategory", "none") != c.get("name")
    }
    if not parents:
        return []
    dropped = [c for c in categories if c.get("name") in parents and c.get("id") not in annotated]
    return [] if len(dropped) == len(categories) else dropped


_PLACEHOLDERS = frozenset({"", "none", "null", None})


def _split_key(subset: Subset) -> str:
    return subset.split or subset.name


def validate_dataset(
    path: Path, *, box_fix: str = "none", check_images: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> ValidationReport:
    """Validate every annotation file of a dataset (any layout) and, optionally, its image files.

    Args:
        path: dataset folder, .zip or .json.
        box_fix: what the findings say will happen to bad boxes (``clip``, ``drop``) when the dataset is
            merged; ``none`` reports them as kept. The dataset itself is never changed.
        check_images: open every image header (existence, readability, truncation, size).
        progress: called as ``progress("validate", done, total)`` per image file checked.

    Raises:
        DatasetError: no dataset at ``path``, or an annotation file is not COCO JSON at all.
    """
    dataset = open_dataset(path)
    report = ValidationReport(dataset=str(path), layout=dataset.layout)
    findings = report.findings
    splits: dict[str, dict[str, Any]] = {}
    class_totals: Counter[str] = Counter()
    all_names: dict[str, None] = {}
    dropped_parents: dict[str, None] = {}
    for subset in dataset.subsets:
        # One file at a time: a whole dataset parsed at once would need several times its size in memory.
        label = dataset.tree.describe(subset.json_rel)
        data = parse_json(decode_text(dataset.tree.read_bytes(subset.json_rel), label), label)
        if not isinstance(data, dict):
            raise DatasetError(f"{label}: not a COCO object (top level is {type(data).__name__})")
        for key in ("images", "categories"):
            if not isinstance(data.get(key), list):
                raise DatasetError(f"{label}: no '{key}' list; not a COCO annotation file")
        if not isinstance(data.get("annotations", []), list):
            raise DatasetError(f"{label}: 'annotations' is not a list")
        total_images = len(data["images"])
        done = 0
        cats: dict[Any, str] = {}
        annotated_ids = {a.get("category_id") for a in data.get("annotations", []) if isinstance(a, dict)
                         and isinstance(a.get("category_id"), (int, str))}
        good_cats = [c for c in data["categories"] if check_category_record(c, label) is None]
        for cat in parent_categories(good_cats, annotated_ids):
            dropped_parents.setdefault(cat["name"].strip())
            findings.append(Finding("category_parent_dropped",
                                    f"category {cat['name']!r} only groups other classes (their supercategory) and "
                                    "has no annotations; dropped as rfdetr drops it", label, cat["id"], "dropped"))
        for cat in data["categories"]:
            bad = check_category_record(cat, label)
            if bad is not None:
                findings.append(bad)
            elif cat["id"] in cats:
                findings.append(Finding("duplicate_category_id", "duplicate category id", label, cat["id"]))
            else:
                cats[cat["id"]] = cat["name"].strip()
                if cats[cat["id"]] not in dropped_parents or cat["id"] in annotated_ids:
                    all_names.setdefault(cats[cat["id"]])
        images: dict[Any, dict] = {}
        to_check: list[tuple[str, Any, Any]] = []
        checked_ids: list[Any] = []
        for img in data["images"]:
            bad = check_image_record(img, label)
            if bad is not None:
                findings.append(Finding(bad.code, bad.message, bad.file, bad.id))
                continue
            if img["id"] in images:
                findings.append(Finding("duplicate_image_id", "duplicate image id", label, img["id"]))
                continue
            images[img["id"]] = img
            if check_images:
                rel = dataset.resolve_image(subset, img["file_name"])
                if rel is None:
                    findings.append(
                        Finding("image_missing", f"image file {img['file_name']} not found", label, img["id"])
                    )
                else:
                    to_check.append((rel, img["width"], img["height"]))
                    checked_ids.append(img["id"])
        for start in range(0, len(to_check), 200):
            chunk = to_check[start:start + 200]
            problems = check_image_files(dataset.tree, chunk)
            for iid, (rel, _, _), problem in zip(checked_ids[start:start + 200], chunk, problems):
                bad = _image_finding(problem, label, iid)
                if bad is not None:
                    findings.append(bad)
                    if bad.code != "exif_rotated":
                        report.unusable.append((bad.code, dataset.tree.describe(rel)))
            done = min(total_images, start + len(chunk))
            if progress is not None:
                progress("validate", done, total_images)
        annotated: set = set()
        seen: set = set()
        classes: Counter[str] = Counter()
        n_ann = 0
        for ann in data.get("annotations", []):
            if not isinstance(ann, dict):
                findings.append(Finding("bad_record", "annotation is not an object", label))
                continue
            aid = ann.get("id")
            try:
                if aid in seen:
                    findings.append(Finding("duplicate_annotation_id", "duplicate annotation id", label, aid))
                seen.add(aid)
                img = images.get(ann.get("image_id"))
                name = cats.get(ann.get("category_id"))
            except TypeError:
                findings.append(Finding("bad_record", "annotation ids are not numbers", label, None))
                continue
            if img is None:
                findings.append(
                    Finding("unknown_image", f"image_id {ann.get('image_id')!r} names no image", label, aid))
                continue
            if name is None:
                findings.append(
                    Finding("unknown_category", f"category_id {ann.get('category_id')!r} names no category", label, aid)
                )
                continue
            _, bad = check_box(ann, img["width"], img["height"], box_fix, label)
            if bad is not None:
                findings.append(bad)
            n_ann += 1
            classes[name] += 1
            annotated.add(ann.get("image_id"))
        background = sum(1 for iid in images if iid not in annotated)
        if background:
            findings.append(
                Finding("image_unannotated", f"{background} image(s) without annotations (background)", label,
                        None, "kept")
            )
        key = _split_key(subset)
        entry = splits.setdefault(key, {"images": 0, "annotations": 0, "background": 0, "classes": Counter()})
        entry["images"] += len(images)
        entry["annotations"] += n_ann
        entry["background"] += background
        entry["classes"].update(classes)
        class_totals.update(classes)
    for name in all_names:
        if not class_totals[name]:
            findings.append(Finding("category_unused", f"class {name!r} has no annotations", str(path), name))
    if dataset.layout == "rfdetr" and any(s.split for s in dataset.subsets):  # not Roboflow's single root file
        files = {_split_key(s): dataset.tree.describe(s.json_rel) for s in dataset.subsets}
        findings.extend(empty_split_findings(splits, files))
        train = splits.get("train", {}).get("classes", Counter())
        for name in all_names:
            if class_totals[name] and not train[name]:
                findings.append(
                    Finding("class_missing_in_train", f"class {name!r} has annotations but none in train",
                            files.get("train", str(path)), name)
                )
    for entry in splits.values():
        entry["classes"] = {name: entry["classes"][name] for name in all_names}
    report.counts = {
        "images": sum(e["images"] for e in splits.values()),
        "annotations": sum(e["annotations"] for e in splits.values()),
        "classes": {name: class_totals[name] for name in all_names},
        "splits": splits,
    }
    return report


def raise_for_report(report: ValidationReport, strict: bool = False) -> None:
    """Raise DatasetError naming the first error (or, with ``strict``, the first warning) and how many more.

    Raises:
        DatasetError: the report has errors, or warnings and ``strict`` is set.
    """
    failing = report.errors + (report.warnings if strict else [])
    if not failing:
        return
    first = failing[0]
    more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
    kind = "error" if first.severity == ERROR else "warning, fatal with --strict"
    raise DatasetError(
        f"{first.line()} [{first.code}, {kind}]{more}",
        hint=f"run `rfdetr-trainer inspect {report.dataset}` for the full list",
    )
