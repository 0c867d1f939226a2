"""Merge COCO datasets into one dataset in rfdetr's layout (``train|valid|test/_annotations.coco.json``).

How it stays fast and small on large exports: each annotation file is read twice, never held as objects.
The first pass walks it with the C scanner (:mod:`reader`), checks every record and keeps four integers per
annotation (text span, image, class). The second pass re-emits each annotation's original text with only
``id``, ``image_id`` and ``category_id`` rewritten, so polygons, RLE masks, ``iscrowd``, CVAT ``attributes``
and any other field come out byte for byte as they went in. Only boxes that were clipped, annotations in an
unusual key order, and annotations on duplicated images are re-serialised.
"""

from __future__ import annotations

import gc
import json
import os
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from math import isfinite
from operator import add, attrgetter, le
from pathlib import Path, PurePosixPath
from typing import Any

from rfdetr_trainer.coco import fastjson
from rfdetr_trainer.coco.classmap import ClassMap
from rfdetr_trainer.coco.images import check_images, problems_summary, write_upright
from rfdetr_trainer.coco.io import decode_text, dumps, sha256_bytes, sha256_later, staging_dir
from rfdetr_trainer.coco.layout import Dataset, Subset, open_dataset, safe_relpath
from rfdetr_trainer.coco.manifest import MANIFEST_NAME, MANIFEST_VERSION, findings_section, write_manifest
from rfdetr_trainer.coco.reader import BATCH, walk_coco
from rfdetr_trainer.coco.schema import ERROR, SPLITS, WARNING, Finding
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.coco.split import TRAIN, plan_splits
from rfdetr_trainer.coco.validate import check_box, check_category_record, check_image_record, parent_categories
from rfdetr_trainer.coco.verify import check_class_map_file, duplicate_name_finding
from rfdetr_trainer.errors import DatasetError, OutputError

#: The rule for byte-identical images, recorded in the manifest.
DUPLICATE_RULE = (
    "byte-identical images are stored once, under the first source (in the order given) that has them; the "
    "annotations of every other copy move onto that image, except an annotation whose class and box equal "
    "one that another copy already put there, which is dropped and counted"
)

#: An annotation whose text starts with id, image_id and category_id (CVAT, Datumaro, Roboflow all write this
#: order) can be re-emitted by replacing that prefix; anything else takes the slow path.
_PREFIX = re.compile(r'\{\s*"id"\s*:\s*-?\d+\s*,\s*"image_id"\s*:\s*-?\d+\s*,\s*"category_id"\s*:\s*-?\d+(?=\s*[,}])')
#: The same test on UTF-8 bytes (fast path). On valid JSON it matches exactly where _PREFIX matches: JSON
#: allows only ASCII whitespace and ASCII digits there, so str's Unicode-aware \s and \d change nothing.
_PREFIX_BYTES = re.compile(
    rb'\{[ \t\n\r]*"id"[ \t\n\r]*:[ \t\n\r]*-?[0-9]+[ \t\n\r]*,[ \t\n\r]*"image_id"[ \t\n\r]*:[ \t\n\r]*-?[0-9]+'
    rb'[ \t\n\r]*,[ \t\n\r]*"category_id"[ \t\n\r]*:[ \t\n\r]*-?[0-9]+(?=[ \t\n\r]*[,}])'
)
#: The compact special case, tried first (about twice as fast); where it matches, _PREFIX_BYTES matches the
#: same text (greedy digits, empty whitespace).
_PREFIX_COMPACT = re.compile(rb'\{"id":-?[0-9]+,"image_id":-?[0-9]+,"category_id":-?[0-9]+(?=[,}])')
#: The same, capturing the rest of the element (the chunked writer matches msgspec.Raw buffers directly).
_COMPACT_REST = re.compile(_PREFIX_COMPACT.pattern + rb"(.*)", re.DOTALL)
_HEAD_REST = b'{"id":%d,"image_id":%d,"category_id":%d%b'
_FLUSH_EVERY = 4096
#: ``_IS_SPLIT[sp](x)`` is ``x == sp`` for split indexes, a list lookup that maps faster than ``sp.__eq__``.
_IS_SPLIT = [[s == sp for s in range(len(SPLITS))].__getitem__ for sp in range(len(SPLITS))]
OUTPUT_INFO = {"description": "merged by rfdetr-trainer"}

Progress = Callable[[str, int, int], None]


def stage_progress(progress: Any) -> Progress:
    """Adapt what callers pass as ``progress`` to ``callback(stage, done, total)``.

    Accepted: None (silent), such a callback, a ``rich.progress.Progress`` (one row per stage), or an
    integrations ``TransferProgress`` (``expect``/``advance``; only image files are reported to it).
    """
    if progress is None:
        return lambda stage, done, total: None
    if hasattr(progress, "add_task"):
        tasks: dict[str, Any] = {}

        def rich_update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        return rich_update
    if hasattr(progress, "advance") and hasattr(progress, "expect"):
        seen = {"total": 0, "done": 0}

        def transfer_update(stage: str, done: int, total: int) -> None:
            if stage != "images":
                return
            if total > seen["total"]:
                progress.expect(files=total - seen["total"])
                seen["total"] = total
            progress.advance(files=done - seen["done"])
            seen["done"] = done

        return transfer_update
    return progress


@dataclass(frozen=True)
class MergeOptions:
    """How sources become one dataset.

    Attributes:
        class_map: renames and drops, applied by class name before categories are united.
        split_mode: ``keep`` the subsets sources have, or re-split everything by ``ratio``.
        ratios: train, valid, test fractions.
        seed: seed of every ratio split.
        group_by_source: keep each source's images in one split.
        box_fix: ``clip``, ``drop`` or ``none`` for boxes outside their image.
        copy_images: place image files in the output; False is annotations-only (no image is read,
            so missing files and duplicates are not detected).
        link_images: hard-link images where the filesystem allows, instead of copying bytes.
        strict: fail (leaving no output) when the sources had any error or warning finding.
        skip_missing: drop images that are missing, don't decode or whose size differs from the JSON (with
            their annotations; each is listed in the manifest) instead of failing the merge.
        class_map_file: the class map file, named when one of its entries matches no class.
        class_map_file_names: the class names that file mentions; an unused one is an error (a flag's is a
            warning).
    """

    class_map: ClassMap = field(default_factory=ClassMap)
    split_mode: str = "keep"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    group_by_source: bool = False
    box_fix: str = "clip"
    copy_images: bool = True
    link_images: bool = True
    strict: bool = False
    skip_missing: bool = False
    class_map_file: str | None = None
    class_map_file_names: frozenset[str] = frozenset()


@dataclass
class MergeResult:
    """What a merge produced.

    Attributes:
        output_dir: the dataset folder (``train/``, ``valid/``, ``test/``, manifest).
        manifest_path: ``output_dir/dataset_manifest.json``.
        counts: ``{"images", "annotations", "classes": {name: n}, "splits": {split: {"images",
            "annotations", "background", "classes": {name: n}}}}``.
        findings: problems found in the sources and what was done about each.
        dropped: annotations dropped, by reason.
        totals: images and annotations the sources hold (``{"images", "annotations"}``), for kept / total.
        skipped_images: images ``skip_missing`` dropped (``{"file", "code", "message"}`` each).
        dropped_categories: categories left out as rfdetr leaves them out (Roboflow's synthetic root).
    """

    output_dir: Path
    manifest_path: Path
    counts: dict[str, Any]
    findings: list[Finding]
    dropped: dict[str, int]
    totals: dict[str, int] = field(default_factory=dict)
    skipped_images: list[dict[str, Any]] = field(default_factory=list)
    dropped_categories: list[dict[str, Any]] = field(default_factory=list)


class _Image:
    __slots__ = ("src", "sub", "rec", "rel", "kept", "split", "out_id", "out_name")

    def __init__(self, src: int, sub: int, rec: dict, rel: str | None) -> None:
        self.src, self.sub, self.rec, self.rel = src, sub, rec, rel
        self.kept = -1  # index of the image this one is a byte-identical copy of; set to itself when unique
        self.split = TRAIN
        self.out_id = 0
        self.out_name = ""


class _File:
    """One annotation file: what pass 1 learned, for pass 2 to write.

    Read by the stdlib path, ``starts``/``ends`` are each kept annotation's text span; read by the fast path
    (``span`` set to the annotations array's byte range), ``starts`` holds each kept annotation's index in
    that array and ``ends`` stays empty.
    """

    def __init__(self, src: int, dataset: Dataset, subset: Subset) -> None:
        self.src, self.dataset, self.subset = src, dataset, subset
        self.label = dataset.tree.describe(subset.json_rel)
        self.sha256 = ""
        self.nbytes = 0
        self.starts = array("q")
        self.ends = array("q")
        self.images = array("q")  # global image index, or -1 when the annotation is dropped
        self.cats = array("q")  # output category index
        self.overrides: dict[int, dict] = {}  # annotations whose box was clipped
        self.span: tuple[int, int] | None = None
        self.n_images = 0
        self.n_annotations = 0

    def read_text(self) -> tuple[str, str, int]:
        data = self.dataset.tree.read_bytes(self.subset.json_rel)
        return decode_text(data, self.label), sha256_bytes(data), len(data)

    def read_bytes(self) -> bytes:
        """The file's bytes, checked to be UTF-8 (DatasetError as ``read_text`` raises it)."""
        data = self.dataset.tree.read_bytes(self.subset.json_rel)
        if not data.isascii():
            decode_text(data, self.label)
        return data


class _Merger:
    def __init__(self, sources: Sequence[SourceRef], options: MergeOptions, progress: Progress | None) -> None:
        self.sources = list(sources)
        self.opt = options
        self.progress = stage_progress(progress)
        self.findings: list[Finding] = []
        self.files: list[_File] = []
        self.images: list[_Image] = []
        self.cat_names: list[str] = []
        self.cat_records: list[dict] = []
        self.cat_index: dict[str, int] = {}
        self.class_maps: list[list[dict]] = [[] for _ in self.sources]
        self.dropped: Counter[str] = Counter()
        self.src_dropped: list[Counter[str]] = [Counter() for _ in self.sources]
        self.used_class_map_names: set[str] = set()
        self._split_base: list[int] | None = None  # pass 2: split * classes of each image's stored copy
        self.renamed = 0
        self.duplicate_images = 0
        self.unusable: list[dict[str, Any]] = []  # images missing, undecodable or of another size
        self.rotate: set[int] = set()  # images stored EXIF-rotated: written upright
        self.dropped_categories: list[dict[str, Any]] = []
        self.parent_names: set[str] = set()  # categories that group others in their own file (Roboflow's root)

    # ---- pass 1 -------------------------------------------------------------------------------------------

    def read_all(self) -> None:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DatasetError(f"source name {dup!r} is used twice; source names must be unique")
        datasets = [open_dataset(s.path) for s in self.sources]
        total = sum(len(d.subsets) for d in datasets)
        for src, dataset in enumerate(datasets):
            for subset in dataset.subsets:
                f = _File(src, dataset, subset)
                self.files.append(f)
                self._read_file(f)
                self.progress("read", len(self.files), total)
        unused = self.opt.class_map.names() - self.used_class_map_names
        check_class_map_file(self.opt.class_map_file, unused & self.opt.class_map_file_names, self.cat_names)
        for name in sorted(unused):
            self.findings.append(Finding("class_map_unused", f"--rename/--drop {name!r}: no class of that name "
                                         "in any source; ignored"))
        if self.unusable and not self.opt.skip_missing:
            total = sum(f.n_images for f in self.files)
            raise DatasetError(
                problems_summary([(u["code"], u["file"]) for u in self.unusable], total),
                hint="fix or remove them, or pass --skip-missing to drop them (each is listed in the manifest)",
            )
        self._drop_parent_categories()

    def _categories(self, f: _File, cats: Any) -> dict[Any, int]:
        if not isinstance(cats, list):
            raise DatasetError(f"{f.label}: 'categories' is not a list")
        mapping: dict[Any, int] = {}
        src_map = self.class_maps[f.src]
        seen_old = {(m["old_id"], m["old_name"]) for m in src_map}
        id_of_name: dict[str, Any] = {}
        # rfdetr judges parents within one file's list; whether they have annotations is settled after pass 1.
        for cat in parent_categories([c for c in cats if check_category_record(c, f.label) is None], set()):
            new = self.opt.class_map.apply(cat["name"].strip())
            if new is not None:
                self.parent_names.add(new)
        for cat in cats:
            bad = check_category_record(cat, f.label)
            if bad is not None:
                raise DatasetError(bad.line())
            cid, old = cat["id"], cat["name"].strip()
            if cid in mapping:
                raise DatasetError(f"{f.label} id {cid}: duplicate category id")
            if id_of_name.setdefault(old, cid) != cid:
                self.findings.append(duplicate_name_finding(f.label, old, id_of_name[old], cid))
            if old in self.opt.class_map.names():
                self.used_class_map_names.add(old)
            new = self.opt.class_map.apply(old)
            if new is None:
                mapping[cid] = -1
            else:
                if new not in self.cat_index:
                    self.cat_index[new] = len(self.cat_names)
                    self.cat_names.append(new)
                    record = {k: v for k, v in cat.items() if k not in ("id", "name")}
                    self.cat_records.append({"id": 0, "name": new, **record})
                mapping[cid] = self.cat_index[new]
            if (cid, old) not in seen_old:
                src_map.append(
                    {"old_id": cid, "old_name": old, "new_id": None if new is None else self.cat_index[new] + 1,
                     "new_name": new}
                )
        return mapping

    def _images(self, f: _File, imgs: Any) -> dict[Any, int]:
        if not isinstance(imgs, list):
            raise DatasetError(f"{f.label}: 'images' is not a list")
        check_files = self.opt.copy_images
        if not check_files:
            index = self._images_clean(f, imgs)
            if index is not None:
                return index
        index = {}
        found: list[tuple[dict, str | None]] = []
        for img in imgs:
            bad = check_image_record(img, f.label)
            if bad is not None:
                self.findings.append(bad)
                if isinstance(img, dict) and type(img.get("id")) in (int, str):
                    index.setdefault(img["id"], -1)
                continue
            iid = img["id"]
            if iid in index:
                raise DatasetError(f"{f.label} id {iid}: duplicate image id")
            index[iid] = -1
            rel = None
            if check_files:
                rel = f.dataset.resolve_image(f.subset, img["file_name"])
                if rel is None:
                    self._unusable(f, img, "image_missing", f"image file {img['file_name']} not found",
                                   f.dataset.tree.describe(img["file_name"]))
                    continue
            found.append((img, rel))
        problems = (check_images(f.dataset.tree, [(rel, img["width"], img["height"]) for img, rel in found])
                    if check_files else [None] * len(found))
        for (img, rel), problem in zip(found, problems):
            if problem is not None and problem.code != "exif_rotated":
                self._unusable(f, img, problem.code, problem.message, f.dataset.tree.describe(rel))
                continue
            if problem is not None:
                self.findings.append(Finding("exif_rotated", problem.message, f.label, img["id"], "rotated"))
                self.rotate.add(len(self.images))
            index[img["id"]] = len(self.images)
            self.images.append(_Image(f.src, len(self.files) - 1, img, rel))
        f.n_images = len(imgs)
        return index

    def _unusable(self, f: _File, img: dict, code: str, message: str, where: str) -> None:
        """An image that can't be trained on: fails the merge, or with ``skip_missing`` is dropped and listed."""
        action = "dropped" if self.opt.skip_missing else ""
        self.findings.append(Finding(code, message, f.label, img["id"], action))
        self.unusable.append({"file": where, "annotation_file": f.label, "id": img["id"], "code": code,
                              "message": message})

    def _drop_parent_categories(self) -> None:
        """Leave out what rfdetr 1.11 leaves out (``filter_parent_categories``): a category named as another's
        ``supercategory`` in its own file, with no annotation in any source. Judged per file, as rfdetr would
        judge each source, so the root stays out whichever source's records the merged categories carry. Nothing
        is read again when no category is a parent.
        """
        if not self.parent_names:
            return
        used = set()
        for f in self.files:
            used.update(f.cats)
        gone = {self.cat_index[name] for name in self.parent_names if self.cat_index[name] not in used}
        if not gone or len(gone) == len(self.cat_names):
            return
        remap = array("q")
        kept = 0
        for n in range(len(self.cat_names)):
            remap.append(-1 if n in gone else kept)
            kept += n not in gone
        for f in self.files:
            if f.cats:
                f.cats = array("q", map(remap.__getitem__, f.cats))
        for n in sorted(gone):
            name = self.cat_names[n]
            sources = [self.sources[src].name for src, rows in enumerate(self.class_maps)
                       if any(r["new_name"] == name for r in rows)]
            self.dropped_categories.append({
                "name": name, "sources": sources,
                "reason": "named as other categories' supercategory, no annotations (rfdetr's "
                          "filter_parent_categories drops it too)"})
            self.findings.append(Finding("category_parent_dropped",
                                         f"category {name!r} only groups other classes and has no annotations; "
                                         "dropped as rfdetr drops it", "", None, "dropped"))
        for rows in self.class_maps:
            for row in rows:
                if row["new_id"] is not None:
                    new = remap[row["new_id"] - 1]
                    row["new_id"] = None if new < 0 else new + 1
                    if new < 0:
                        row["new_name"] = None
                        row["dropped_as"] = "parent_category"
        self.cat_names = [n for i, n in enumerate(self.cat_names) if i not in gone]
        self.cat_records = [r for i, r in enumerate(self.cat_records) if i not in gone]
        self.cat_index = {n: i for i, n in enumerate(self.cat_names)}

    def _images_clean(self, f: _File, imgs: list) -> dict[Any, int] | None:
        """``_images`` without file checks, for a list in which every record passes ``check_image_record`` and
        no id repeats, with the checks mapped in C; None, having changed nothing, for any other list."""
        if not imgs or set(map(type, imgs)) != {dict}:
            return None
        get = dict.get
        ids = list(map(get, imgs, repeat("id")))
        names = list(map(get, imgs, repeat("file_name")))
        widths = list(map(get, imgs, repeat("width")))
        heights = list(map(get, imgs, repeat("height")))
        if (
            not set(map(type, ids)) <= {int, str}
            or set(map(type, names)) != {str}
            or not all(names)
            or not set(map(type, widths)) | set(map(type, heights)) <= {int, float}
        ):
            return None
        try:
            if not (all(map(isfinite, widths)) and all(map(isfinite, heights)) and min(widths) > 0
                    and min(heights) > 0):
                return None
        except OverflowError:  # an int too large for a float: the loop's check raises it as ever
            return None
        first = len(self.images)
        index = dict(zip(ids, range(first, first + len(imgs))))
        if len(index) != len(imgs):  # a repeated id: the loop raises at the right record
            return None
        self.images.extend(map(_Image, repeat(f.src), repeat(len(self.files) - 1), imgs, repeat(None)))
        f.n_images = len(imgs)
        return index

    def _read_file(self, f: _File) -> None:
        data = f.read_bytes()
        digest = sha256_later(data)
        f.nbytes = len(data)
        parsed = fastjson.parse(data)
        f.sha256 = digest()
        if parsed is not None:
            del data
            self._read_parsed(f, parsed)
            return
        text = decode_text(data, f.label)
        del data
        maps: dict[str, dict] = {}
        deferred: list[tuple[Any, int, int]] = []

        def on_member(key: str, value: Any) -> None:
            if key == "categories":
                maps["categories"] = self._categories(f, value)
            elif key == "images":
                maps["images"] = self._images(f, value)

        def handler() -> Callable[[list, list, list], None]:
            if "images" in maps and "categories" in maps:
                return self._annotation_taker(f, maps["images"], maps["categories"])
            # Annotations before images or categories (rare): hold them until both are known.
            return lambda values, starts, ends: deferred.append((values, starts, ends))

        walk_coco(text, f.label, on_member, handler)
        for key in ("categories", "images"):
            if key not in maps:
                raise DatasetError(f"{f.label}: no '{key}' list; not a COCO annotation file")
        if deferred:
            take = self._annotation_taker(f, maps["images"], maps["categories"])
            for batch in deferred:
                take(*batch)

    def _read_parsed(self, f: _File, parsed: fastjson.Parsed) -> None:
        """Pass 1 over a file the fast path read; same checks, findings and order as the stdlib walk.

        The walk hands annotations over only once both images and categories are known (holding them back
        otherwise), so taking members first and annotations last is the order it produces.
        """
        maps: dict[str, dict] = {}
        for key, value in parsed.members:
            if key == "categories":
                maps["categories"] = self._categories(f, value)
            elif key == "images":
                maps["images"] = self._images(f, value)
        raws = parsed.annotations
        if raws and "images" in maps and "categories" in maps:
            take = self._annotation_taker(f, maps["images"], maps["categories"])
            for first in range(0, len(raws), BATCH):
                last = min(first + BATCH, len(raws))
                fields = fastjson.fields(raws[first:last])
                if fields is not None and take.clean(fields, first):
                    continue
                # The general path on exactly the dicts the stdlib scanner would have built.
                take([json.loads(bytes(r)) for r in raws[first:last]], range(first, last), None)
        for key in ("categories", "images"):
            if key not in maps:
                raise DatasetError(f"{f.label}: no '{key}' list; not a COCO annotation file")
        f.span = parsed.span

    def _annotation_taker(self, f: _File, img_map: dict, cat_map: dict) -> Callable[[list, list, list], None]:
        images, findings, dropped = self.images, self.findings, self.src_dropped[f.src]
        box_fix, label, overrides = self.opt.box_fix, f.label, f.overrides
        seen_ids: set = set()
        tol = 0.01
        # Image edges (with CVAT's rounding tolerance) by global index: no attribute or dict lookups per box.
        right = {gi: images[gi].rec["width"] + tol for gi in img_map.values() if gi >= 0}
        bottom = {gi: images[gi].rec["height"] + tol for gi in img_map.values() if gi >= 0}

        def drop(code: str, message: str, aid: Any) -> None:
            findings.append(Finding(code, message, label, aid, "dropped"))
            dropped[code] += 1

        def note_ids(ids: list) -> None:
            batch_ids = set(ids)
            if len(batch_ids) == len(ids) and seen_ids.isdisjoint(batch_ids):
                seen_ids.update(batch_ids)
            else:  # rare: find which ids repeat
                for aid in ids:
                    if aid in seen_ids:
                        findings.append(
                            Finding("duplicate_annotation_id", "duplicate annotation id", label, aid, "renumbered")
                        )
                    seen_ids.add(aid)

        def take(values: list, starts: Sequence[int], ends: Sequence[int] | None) -> None:
            # One call per batch, everything in locals: this loop runs once per annotation of every source.
            f.n_annotations += len(values)
            k_start, k_end, k_img, k_cat = [], [], [], []
            base = len(f.starts)
            ids = []
            for a, start, end in zip(values, starts, starts if ends is None else ends):
                if type(a) is not dict:
                    drop("bad_record", "annotation is not an object", None)
                    continue
                try:
                    gi = img_map.get(a.get("image_id"))
                    ci = cat_map.get(a.get("category_id"))
                    ids.append(a.get("id"))
                except TypeError:  # an unhashable id (a list or object)
                    drop("bad_record", "annotation ids are not numbers", None)
                    continue
                if gi is None:
                    drop("unknown_image", f"image_id {a.get('image_id')!r} names no image", a.get("id"))
                    continue
                if ci is None:
                    drop("unknown_category", f"category_id {a.get('category_id')!r} names no category", a.get("id"))
                    continue
                if gi < 0:
                    dropped["image_dropped"] += 1
                    continue
                if ci < 0:
                    dropped["class_map_drop"] += 1
                    continue
                bbox = a.get("bbox")
                inside = False  # not bbox = None: a JSON "bbox": null would pass as a box already checked
                # The common case inline: a valid box inside its image needs no call. Non-numbers raise
                # TypeError and NaN/inf fail a comparison; both take the careful path through check_box.
                if type(bbox) is list and len(bbox) == 4:
                    x, y, w, h = bbox
                    try:
                        inside = (0 < w and 0 < h and -tol <= x and -tol <= y and x + w <= right[gi]
                                  and y + h <= bottom[gi])
                    except TypeError:
                        pass
                if not inside:
                    rec = images[gi].rec
                    new_box, finding = check_box(a, rec["width"], rec["height"], box_fix, label)
                    if finding is not None:
                        findings.append(finding)
                    if new_box is None:
                        dropped[finding.code if finding else "box_invalid"] += 1
                        continue
                    if new_box is not a.get("bbox"):
                        a = dict(a)
                        a["bbox"] = new_box
                        overrides[base + len(k_start)] = a
                k_start.append(start)
                k_end.append(end)
                k_img.append(gi)
                k_cat.append(ci)
            f.starts.extend(k_start)
            if ends is not None:
                f.ends.extend(k_end)
            f.images.extend(k_img)
            f.cats.extend(k_cat)
            note_ids(ids)

        img_get, cat_get = img_map.get, cat_map.get
        sizes = set(zip(right.values(), bottom.values()))
        one_size = sizes.pop() if len(sizes) == 1 else None
        get_id, get_image_id = attrgetter("id"), attrgetter("image_id")
        get_category_id, get_bbox = attrgetter("category_id"), attrgetter("bbox")

        def clean(fields: list, first: int) -> bool:
            """``take`` for a batch in which every annotation is on a known image and class with its box inside
            the image, read from :class:`fastjson.Ann` fields instead of dicts; returns False, having changed
            nothing, as soon as an annotation needs anything else (``take`` then handles the batch)."""
            try:
                # Lookups mapped in C; None (unknown) and -1 (dropped image or class) go to take.
                gis = list(map(img_get, map(get_image_id, fields)))
                cis = list(map(cat_get, map(get_category_id, fields)))
                if None in gis or None in cis or min(gis) < 0 or min(cis) < 0:
                    return False
                boxes = list(map(get_bbox, fields))
                if set(map(type, boxes)) != {list} or set(map(len, boxes)) != {4}:
                    return False
                # take's inline box test for every box at once. The fast path reads no NaN or infinity, so
                # on its numbers "all w > 0" is "min(w) > 0"; anything that is not a number raises TypeError.
                xs, ys, ws, hs = zip(*boxes)
                if not (min(ws) > 0 and min(hs) > 0 and min(xs) >= -tol and min(ys) >= -tol):
                    return False
                if one_size:  # every image of the file has the same size (the usual export)
                    if not (max(map(add, xs, ws)) <= one_size[0] and max(map(add, ys, hs)) <= one_size[1]):
                        return False
                elif not (all(map(le, map(add, xs, ws), map(right.__getitem__, gis)))
                          and all(map(le, map(add, ys, hs), map(bottom.__getitem__, gis)))):
                    return False
            except TypeError:  # unhashable ids, boxes of non-numbers: take's own handling applies
                return False
            ids = list(map(get_id, fields))
            f.n_annotations += len(fields)
            f.starts.extend(range(first, first + len(fields)))
            f.images.extend(gis)
            f.cats.extend(cis)
            note_ids(ids)
            return True

        take.clean = clean  # type: ignore[attr-defined]
        return take

    # ---- between the passes --------------------------------------------------------------------------------

    def dedupe(self) -> None:
        """Find byte-identical images (same size first, then sha256) and point copies at the first one."""
        for i, im in enumerate(self.images):
            im.kept = i
        if not self.opt.copy_images:
            return
        by_size: dict[int, list[int]] = defaultdict(list)
        for i, im in enumerate(self.images):
            tree = self.files[im.sub].dataset.tree
            by_size[tree.size(im.rel)].append(i)
        candidates = [group for group in by_size.values() if len(group) > 1]
        for n, group in enumerate(candidates):
            first_of: dict[str, int] = {}
            for i in group:
                im = self.images[i]
                tree = self.files[im.sub].dataset.tree
                digest = sha256_bytes(tree.read_bytes(im.rel))
                if digest in first_of:
                    im.kept = first_of[digest]
                    kept = self.images[im.kept]
                    self.duplicate_images += 1
                    self.findings.append(
                        Finding("duplicate_image",
                                f"same bytes as {self.files[kept.sub].dataset.tree.describe(kept.rel)}; stored once",
                                tree.describe(im.rel), im.rec["id"], "merged")
                    )
                else:
                    first_of[digest] = i
            self.progress("dedupe", n + 1, len(candidates))

    def assign_splits(self) -> None:
        unique = [i for i, im in enumerate(self.images) if im.kept == i]
        order = {s: n for n, s in enumerate(SPLITS)}
        presets = [order.get(self.files[self.images[i].sub].subset.split) for i in unique]
        groups = [self.sources[self.images[i].src].name for i in unique]
        s = self.opt
        splits, findings = plan_splits(
            presets, groups, mode=s.split_mode, ratios=s.ratios, seed=s.seed, group_by_source=s.group_by_source
        )
        self.findings.extend(findings)
        for i, sp in zip(unique, splits):
            self.images[i].split = sp
        self._classes_into_train()
        sizes = Counter(self.images[i].split for i in unique)
        for sp, name in enumerate(SPLITS):
            if not sizes[sp]:
                raise DatasetError(f"split {name!r} would be empty", hint="add images or change the split ratios")

    def _class_split_counts(self) -> list[Counter[int]]:
        counts: list[Counter[int]] = [Counter(), Counter(), Counter()]
        images = self.images
        split_of = [images[im.kept].split for im in images]
        ncat = len(self.cat_names)
        base = [sp * ncat for sp in split_of]
        for f in self.files:
            if f.images and min(f.images) >= 0:  # always, as take keeps none without an image: count in C
                for key, n in Counter(map(add, map(base.__getitem__, f.images), f.cats)).items():
                    counts[key // ncat][key % ncat] += n
                continue
            for gi, ci in zip(f.images, f.cats):
                if gi >= 0:
                    counts[split_of[gi]][ci] += 1
        return counts

    def _classes_into_train(self) -> None:
        """Move an image into train for each annotated class train would otherwise lack."""
        counts = self._class_split_counts()
        missing = [c for c in range(len(self.cat_names)) if not counts[TRAIN][c] and (counts[1][c] or counts[2][c])]
        if not missing:
            return
        images = self.images
        sizes = Counter(im.split for i, im in enumerate(images) if im.kept == i)
        for c in missing:
            moved = False
            for f in self.files:
                for gi, ci in zip(f.images, f.cats):
                    if ci != c:
                        continue
                    t = images[gi].kept
                    im = images[t]
                    if im.split == TRAIN:  # an earlier move already brought this class in
                        moved = True
                        break
                    if self.opt.group_by_source:
                        unit = [j for j, x in enumerate(images) if x.kept == j and x.split == im.split
                                and x.src == im.src]
                    else:
                        unit = [t]
                    if sizes[im.split] - len(unit) < 1:
                        continue
                    sizes[im.split] -= len(unit)
                    sizes[TRAIN] += len(unit)
                    for j in unit:
                        images[j].split = TRAIN
                    self.findings.append(
                        Finding("split_adjusted", f"moved to train so that class {self.cat_names[c]!r} is trained on",
                                f.label, im.rec["id"], "moved")
                    )
                    moved = True
                    break
                if moved:
                    break
            if not moved:
                self.findings.append(
                    Finding("class_missing_in_train",
                            f"class {self.cat_names[c]!r} has annotations but none can be put in train")
                )

    def name_images(self) -> list[list[int]]:
        """Give each unique image its output id and a file name no other image in its split has."""
        per_split: list[list[int]] = [[], [], []]
        used: list[set[str]] = [{"_annotations.coco.json"} for _ in SPLITS]
        first_rename = None
        for i, im in enumerate(self.images):
            if im.kept != i:
                continue
            members = per_split[im.split]
            members.append(i)
            im.out_id = len(members)
            original = im.rec["file_name"]
            if "/" in original or "\\" in original or original.startswith("."):
                name = safe_relpath(original) or PurePosixPath(original.replace("\\", "/")).name or f"image_{i}"
            else:
                name = original  # the common flat name needs no path parsing
            taken = used[im.split]
            key = name.casefold()
            if key in taken:
                stem, ext = os.path.splitext(name)
                n = 1
                while f"{stem}_{n}{ext}".casefold() in taken:
                    n += 1
                candidate = f"{stem}_{n}{ext}"
                self.renamed += 1
                first_rename = first_rename or (original, candidate)
                name = candidate
                key = name.casefold()
            taken.add(key)
            im.out_name = name
        if self.renamed:
            old, new = first_rename
            self.findings.append(
                Finding("file_renamed", f"{self.renamed} file name(s) changed to avoid collisions, e.g. "
                        f"{old} -> {new}", action="renamed")
            )
        return per_split

    # ---- pass 2 --------------------------------------------------------------------------------------------

    def write(self, root: Path, per_split: list[list[int]]) -> dict[str, Any]:
        categories = []
        for n, rec in enumerate(self.cat_records):
            categories.append({**rec, "id": n + 1})
        handles = []
        for sp, name in enumerate(SPLITS):
            (root / name).mkdir(parents=True)
            # Binary: pieces re-emitted from the fast path are UTF-8 bytes already; text is encoded as the
            # text-mode file this used to be would have encoded it.
            fh = open(root / name / "_annotations.coco.json", "wb")
            handles.append(fh)
            fh.write(('{"info":' + dumps(OUTPUT_INFO) + ',"licenses":[],"categories":' + dumps(categories)).encode())
            fh.write(b',"images":[')
            batch = []
            for pos, i in enumerate(per_split[sp]):
                im = self.images[i]
                rec = dict(im.rec)
                rec["id"] = im.out_id
                rec["file_name"] = im.out_name
                batch.append(rec)
                if len(batch) == _FLUSH_EVERY or pos == len(per_split[sp]) - 1:
                    fh.write((("," if pos >= len(batch) else "") + dumps(batch)[1:-1]).encode())
                    batch = []
            fh.write(b'],"annotations":[')
        try:
            class_counts = self._write_annotations(handles)
        finally:
            for fh in handles:
                fh.write(b"]}")
                fh.close()
        if self.opt.copy_images:
            self._place_images(root, per_split)
        return self._counts(per_split, class_counts)

    def _write_annotations(self, handles: list) -> list[list[int]]:
        images = self.images
        ncat = len(self.cat_names)
        # Per source image: where its annotations go (the stored copy's split and output id).
        tgt_split = array("q", (images[im.kept].split for im in images))
        tgt_id = array("q", (images[im.kept].out_id for im in images))
        self.has_ann = has_ann = bytearray(len(images))
        dup_targets = {im.kept for i, im in enumerate(images) if im.kept != i}
        seen_on_target: dict[tuple, int] = {}
        next_id = [1, 1, 1]
        buffers: list[list[bytes]] = [[], [], []]
        written = [False, False, False]
        class_counts = [[0] * ncat for _ in SPLITS]
        match = _PREFIX.match

        def flush(sp: int) -> None:
            if written[sp]:  # written on its own: prefixing it would copy the whole chunk once more
                handles[sp].write(b",")
            handles[sp].write(b",".join(buffers[sp]))
            written[sp] = True
            buffers[sp].clear()

        for n, f in enumerate(self.files):
            if f.span is not None:
                self._write_parsed(f, handles, buffers, flush, next_id, tgt_split, tgt_id, dup_targets,
                                   seen_on_target, class_counts)
                self.progress("write", n + 1, len(self.files))
                continue
            text, digest, _ = f.read_text()
            if digest != f.sha256:
                raise DatasetError(f"{f.label}: changed while the merge was reading it; run the merge again")
            count = text.count
            overrides = f.overrides
            careful = bool(overrides) or bool(dup_targets)
            m = None
            # The hot loop: one pass over the annotations kept in pass 1, in file order.
            for k, gi, ci, s, e in zip(range(len(f.images)), f.images, f.cats, f.starts, f.ends):
                sp = tgt_split[gi]
                if careful and (k in overrides or images[gi].kept in dup_targets):
                    on_dup = images[gi].kept in dup_targets
                    piece = self._rewrite(f, k, text[s:e], gi, ci, next_id[sp], tgt_id[gi], seen_on_target, on_dup)
                    if piece is None:
                        continue
                    has_ann[images[gi].kept] = 1
                    class_counts[sp][ci] += 1
                else:
                    m = match(text, s, e)
                    if (
                        m is not None
                        and count('"id"', s, e) == 1
                        and count('"image_id"', s, e) == 1
                        and count('"category_id"', s, e) == 1
                    ):
                        piece = f'{{"id":{next_id[sp]},"image_id":{tgt_id[gi]},"category_id":{ci + 1}{text[m.end():e]}'
                    else:
                        ann = json.loads(text[s:e])
                        ann["id"], ann["image_id"], ann["category_id"] = next_id[sp], tgt_id[gi], ci + 1
                        piece = dumps(ann)
                    if careful:  # _count_file counts only files written without this branch
                        has_ann[images[gi].kept] = 1
                        class_counts[sp][ci] += 1
                next_id[sp] += 1
                buf = buffers[sp]
                buf.append(piece.encode())
                if len(buf) >= _FLUSH_EVERY:
                    flush(sp)
            if not careful:
                self._count_file(f, tgt_split, class_counts)
            # Drop every reference to this text (a match object holds one) before the next file is read:
            # two texts alive at once would raise peak memory by a whole file.
            m = None
            del text, count
            self.progress("write", n + 1, len(self.files))
        for sp in range(3):
            if buffers[sp]:
                flush(sp)
        return class_counts

    def _count_file(self, f: _File, tgt_split: array, class_counts: list[list[int]]) -> None:
        # Counting in C over the whole file beats two increments per annotation in the loop; small int keys
        # (split * classes + class) hash faster than pairs.
        ncat = len(self.cat_names)
        if self._split_base is None:
            self._split_base = [sp * ncat for sp in tgt_split]
        for key, num in Counter(map(add, map(self._split_base.__getitem__, f.images), f.cats)).items():
            class_counts[key // ncat][key % ncat] += num
        images, has_ann = self.images, self.has_ann
        for gi in set(f.images):
            has_ann[images[gi].kept] = 1

    def _write_parsed(
        self, f: _File, handles: list, buffers: list[list[bytes]], flush: Callable[[int], None], next_id: list[int],
        tgt_split: array, tgt_id: array, dup_targets: set[int], seen_on_target: dict[tuple, int],
        class_counts: list[list[int]],
    ) -> None:
        """Pass 2 over a file the fast path read: the stdlib loop's decisions, on the elements' UTF-8 bytes."""
        data = f.dataset.tree.read_bytes(f.subset.json_rel)
        digest = sha256_later(data)
        raws = fastjson.annotation_elements(data, f.span)
        if digest() != f.sha256 or raws is None:  # raws is None only when the file changed
            raise DatasetError(f"{f.label}: changed while the merge was reading it; run the merge again")
        del data  # the elements keep the buffer alive; nothing else may
        careful = bool(f.overrides) or bool(dup_targets)
        n = len(f.images)
        for k0 in range(0, n, _FLUSH_EVERY):
            k1 = min(k0 + _FLUSH_EVERY, n)
            if not careful and self._write_compact(f, raws, k0, k1, buffers, flush, next_id, tgt_split, tgt_id):
                continue
            self._write_each(f, raws, k0, k1, buffers, flush, next_id, tgt_split, tgt_id, dup_targets,
                             seen_on_target, class_counts, careful)
        if not careful:
            self._count_file(f, tgt_split, class_counts)

    def _write_compact(
        self, f: _File, raws: list, k0: int, k1: int, buffers: list[list[bytes]], flush: Callable[[int], None],
        next_id: list[int], tgt_split: array, tgt_id: array,
    ) -> bool:
        """Kept annotations k0..k1 of ``f`` when every one is compact (``{"id":N,"image_id":N,"category_id":N``
        and no second copy of those keys): the per-annotation loop's output, built with C-level maps. Returns
        False, having written nothing, when any annotation needs the loop."""
        matches = list(map(_COMPACT_REST.match, map(raws.__getitem__, f.starts[k0:k1])))
        if None in matches:
            return False
        rests = list(map(re.Match.group, matches, repeat(1)))
        # Searched in one string: each rest ends in "}" and no key holds one, so none spans two rests.
        # All three keys end in 'id"': one search usually proves none is there.
        joined = b"}".join(rests)
        if b'id"' in joined and (b'"id"' in joined or b'"image_id"' in joined or b'"category_id"' in joined):
            return False
        del joined
        gis = f.images[k0:k1].tolist()
        sps = list(map(tgt_split.__getitem__, gis))
        targets = sorted(set(sps))
        tids = list(map(tgt_id.__getitem__, gis))
        cats = list(map(range(1, len(self.cat_names) + 1).__getitem__, f.cats[k0:k1]))
        for sp in targets:
            # This split's annotations, in file order, numbered on from the split's next id.
            if len(targets) == 1:
                own_tids, own_cats, own_rests, count = tids, cats, rests, len(sps)
            else:
                mask = list(map(_IS_SPLIT[sp], sps))
                own_tids, own_cats, own_rests = compress(tids, mask), compress(cats, mask), compress(rests, mask)
                count = mask.count(True)
            buf = buffers[sp]
            buf.extend(map(_HEAD_REST.__mod__, zip(range(next_id[sp], next_id[sp] + count), own_tids, own_cats,
                                                   own_rests)))
            next_id[sp] += count
            if len(buf) >= _FLUSH_EVERY:
                flush(sp)
        return True

    def _write_each(
        self, f: _File, raws: list, k0: int, k1: int, buffers: list[list[bytes]], flush: Callable[[int], None],
        next_id: list[int], tgt_split: array, tgt_id: array, dup_targets: set[int],
        seen_on_target: dict[tuple, int], class_counts: list[list[int]], careful: bool,
    ) -> None:
        """Kept annotations k0..k1 of ``f``, one at a time: the stdlib loop's decisions on UTF-8 bytes."""
        images, has_ann, overrides = self.images, self.has_ann, f.overrides
        match, compact = _PREFIX_BYTES.match, _PREFIX_COMPACT.match
        head = b'{"id":%d,"image_id":%d,"category_id":%d'
        for k, idx, gi, ci in zip(range(k0, k1), f.starts[k0:k1], f.images[k0:k1], f.cats[k0:k1]):
            sp = tgt_split[gi]
            span = bytes(raws[idx])
            if careful and (k in overrides or images[gi].kept in dup_targets):
                on_dup = images[gi].kept in dup_targets
                text = self._rewrite(f, k, span, gi, ci, next_id[sp], tgt_id[gi], seen_on_target, on_dup)
                if text is None:
                    continue
                piece = text.encode()
                has_ann[images[gi].kept] = 1
                class_counts[sp][ci] += 1
            else:
                m = compact(span) or match(span)
                # The prefix holds each key exactly once and ends in a digit (no key can straddle its end),
                # so "each key once in the span" (the stdlib loop's count test) is "none in the rest".
                if m is not None:
                    rest = span[m.end():]
                if (
                    m is not None
                    and b'"id"' not in rest
                    and b'"image_id"' not in rest
                    and b'"category_id"' not in rest
                ):
                    piece = head % (next_id[sp], tgt_id[gi], ci + 1) + rest
                else:
                    ann = json.loads(span)
                    ann["id"], ann["image_id"], ann["category_id"] = next_id[sp], tgt_id[gi], ci + 1
                    piece = dumps(ann).encode()
                if careful:  # _count_file counts only files written without this branch
                    has_ann[images[gi].kept] = 1
                    class_counts[sp][ci] += 1
            next_id[sp] += 1
            buf = buffers[sp]
            buf.append(piece)
            if len(buf) >= _FLUSH_EVERY:
                flush(sp)

    def _rewrite(
        self, f: _File, k: int, span: str | bytes, gi: int, ci: int, new_id: int, image_id: int, seen: dict[tuple, int],
        on_duplicate: bool,
    ) -> str | None:
        """Re-serialise a clipped annotation or one on a duplicated image; None when the duplicate rule drops it."""
        ann = f.overrides.get(k) or json.loads(span)
        kept = self.images[gi].kept
        if on_duplicate:
            key = (kept, ci, tuple(round(v, 2) for v in ann["bbox"]))
            origin = seen.setdefault(key, gi)
            if origin != gi:
                self.dropped["duplicate_annotation"] += 1
                self.src_dropped[self.images[gi].src]["duplicate_annotation"] += 1
                self.findings.append(
                    Finding("duplicate_annotation", "same class and box already on the stored copy", f.label,
                            ann.get("id"), "dropped")
                )
                return None
        ann = dict(ann)
        ann["id"], ann["image_id"], ann["category_id"] = new_id, image_id, ci + 1
        return dumps(ann)

    def _place_images(self, root: Path, per_split: list[list[int]]) -> None:
        total = sum(len(m) for m in per_split)
        done = 0
        for sp, members in enumerate(per_split):
            folder = root / SPLITS[sp]
            for i in members:
                im = self.images[i]
                dest = folder / im.out_name
                if "/" in im.out_name:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                tree = self.files[im.sub].dataset.tree
                try:
                    if i in self.rotate:
                        with tree.open(im.rel) as fh:
                            write_upright(fh, dest)
                    else:
                        tree.copy_to(im.rel, dest, link=self.opt.link_images)
                except OSError as exc:
                    if exc.filename is not None and Path(exc.filename) != dest:  # the source failed, not the output
                        raise DatasetError(f"{tree.describe(im.rel)}: cannot read image ({exc.strerror or exc})",
                                           hint="fix its permissions or remove it from the source") from None
                    raise OutputError(f"{dest}: cannot write image ({exc.strerror or exc})") from None
                done += 1
                if done % 500 == 0 or done == total:
                    self.progress("images", done, total)

    def _counts(self, per_split: list[list[int]], class_counts: list[list[int]]) -> dict[str, Any]:
        splits = {}
        for sp, name in enumerate(SPLITS):
            members = per_split[sp]
            background = sum(1 for i in members if not self.has_ann[i])
            if background:
                self.findings.append(
                    Finding("image_unannotated", f"{background} image(s) without annotations kept as background",
                            f"{name}/_annotations.coco.json", None, "kept")
                )
            splits[name] = {
                "images": len(members),
                "annotations": sum(class_counts[sp]),
                "background": background,
                "classes": {self.cat_names[c]: class_counts[sp][c] for c in range(len(self.cat_names))},
            }
        totals = {c: sum(class_counts[sp][c] for sp in range(3)) for c in range(len(self.cat_names))}
        for c, n in totals.items():
            if not n:
                self.findings.append(
                    Finding("category_unused", f"class {self.cat_names[c]!r} has no annotations", "", c + 1, "kept")
                )
        return {
            "images": sum(s["images"] for s in splits.values()),
            "annotations": sum(s["annotations"] for s in splits.values()),
            "classes": {self.cat_names[c]: n for c, n in totals.items()},
            "splits": splits,
        }

    def manifest(self, counts: dict[str, Any]) -> dict[str, Any]:
        sources = []
        for src, ref in enumerate(self.sources):
            files = [f for f in self.files if f.src == src]
            kept_images = [i for i, im in enumerate(self.images) if im.src == src]
            sources.append({
                "name": ref.name,
                "path": str(ref.path),
                "origin": ref.origin,
                "layout": files[0].dataset.layout if files else None,
                "images": sum(f.n_images for f in files),
                "annotations": sum(f.n_annotations for f in files),
                "images_kept": len(kept_images),
                "images_skipped": sum(1 for u in self.unusable if u["annotation_file"] in {f.label for f in files}),
                "annotations_kept": sum(len(f.images) for f in files) - self.src_dropped[src]["duplicate_annotation"],
                "dropped": dict(sorted(self.src_dropped[src].items())),
                "annotation_files": [
                    {"path": f.subset.json_rel, "subset": f.subset.name, "split": f.subset.split,
                     "sha256": f.sha256, "bytes": f.nbytes, "images": f.n_images, "annotations": f.n_annotations}
                    for f in files
                ],
                "class_map": self.class_maps[src],
            })
        o = self.opt
        return {
            "manifest_version": MANIFEST_VERSION,
            "sources": sources,
            "categories": [{"id": n + 1, "name": name} for n, name in enumerate(self.cat_names)],
            "dropped_categories": self.dropped_categories,
            "class_map": o.class_map.to_dict(),
            "split": {"mode": o.split_mode, "ratios": list(o.ratios), "seed": o.seed,
                      "group_by_source": o.group_by_source},
            "box_fix": o.box_fix,
            "images_included": o.copy_images,
            "duplicates": {"rule": DUPLICATE_RULE, "images": self.duplicate_images,
                           "annotations_dropped": self.dropped["duplicate_annotation"]},
            "renamed_files": self.renamed,
            "dropped": dict(sorted(self._all_dropped().items())),
            "totals": self.totals(),
            "skipped_images": self.unusable,
            "counts": counts,
            "findings": findings_section(self.findings),
        }

    def totals(self) -> dict[str, int]:
        """Images and annotations the sources hold, before anything was dropped."""
        return {"images": sum(f.n_images for f in self.files), "annotations": sum(f.n_annotations for f in self.files)}

    def _all_dropped(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.src_dropped:
            total.update(c)
        return total


def _raise_if_strict(findings: list[Finding]) -> None:
    failing = [f for f in findings if f.severity in (ERROR, WARNING)]
    if failing:
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        raise DatasetError(
            f"{failing[0].line()} [{failing[0].code}]{more}; --strict allows no findings",
            hint="fix the sources, or merge without --strict and read dataset_manifest.json",
        )


def _check_paths(sources: Sequence[SourceRef], output_dir: Path) -> None:
    out = Path(output_dir).resolve()
    for s in sources:
        src = Path(s.path).resolve()
        if src == out or out in src.parents or src in out.parents:
            raise OutputError(
                f"{output_dir}: overlaps source {s.path}; sources are never modified",
                hint="choose an output folder outside every source",
            )


def merge_datasets(
    sources: Sequence[SourceRef], output_dir: Path, options: MergeOptions, progress: Progress | None = None
) -> MergeResult:
    """Merge ``sources`` into ``output_dir`` in rfdetr's layout, with ``dataset_manifest.json`` beside it.

    The output is built in a temporary sibling folder and renamed into place only when complete; on any
    failure (or interruption) the temporary folder is removed and an earlier output is left as it was.

    Args:
        sources: datasets to merge, in priority order (the first copy of a duplicated image wins).
        output_dir: the dataset folder to create or replace.
        options: class map, split, box fixing, image handling.
        progress: called as ``progress(stage, done, total)`` with stages read, dedupe, write, images.

    Raises:
        DatasetError: a source is missing or malformed, or a split would be empty.
        OutputError: the output overlaps a source or cannot be written.
    """
    if not sources:
        raise DatasetError("no sources to merge")
    output_dir = Path(output_dir)
    _check_paths(sources, output_dir)
    m = _Merger(sources, options, progress)
    # Nothing here builds reference cycles, and collector passes over millions of fresh objects cost ~10%.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _merge(m, sources, output_dir, options)
    finally:
        if gc_was_enabled:
            gc.enable()


def _merge(m: _Merger, sources: Sequence[SourceRef], output_dir: Path, options: MergeOptions) -> MergeResult:
    m.read_all()
    m.dedupe()
    m.assign_splits()
    per_split = m.name_images()
    with staging_dir(output_dir) as tmp:
        counts = m.write(tmp, per_split)
        if options.strict:
            _raise_if_strict(m.findings)
        write_manifest(tmp / MANIFEST_NAME, m.manifest(counts))
    return MergeResult(
        output_dir=output_dir,
        manifest_path=output_dir / MANIFEST_NAME,
        counts=counts,
        findings=m.findings,
        dropped=dict(sorted(m._all_dropped().items())),
        totals=m.totals(),
        skipped_images=m.unusable,
        dropped_categories=m.dropped_categories,
    )
