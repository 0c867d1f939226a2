"""Pass 1: read every annotation file once, check each record, keep four integers per annotation.

Files are walked with the C scanner (:mod:`rfdetr_trainer.coco.reader`), or parsed by msgspec where it is
installed (:mod:`rfdetr_trainer.coco.fastjson`); both paths make the same checks, findings and order.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from itertools import repeat
from math import isfinite
from operator import add, attrgetter, le
from typing import Any

from rfdetr_trainer.coco import fastjson
from rfdetr_trainer.coco.images import check_images, problems_summary
from rfdetr_trainer.coco.io import decode_text, sha256_later
from rfdetr_trainer.coco.layout import open_dataset
from rfdetr_trainer.coco.merge.state import MergeState, _File, _Image
from rfdetr_trainer.coco.reader import BATCH, walk_coco
from rfdetr_trainer.coco.schema import Finding
from rfdetr_trainer.coco.validate import check_box, check_category_record, check_image_record, parent_categories
from rfdetr_trainer.coco.verify import check_class_map_file, duplicate_name_finding
from rfdetr_trainer.errors import DatasetError


class ReadPass(MergeState):
    """Pass 1 over the sources' annotation files."""

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
