"""Pass 2: re-emit each kept annotation's original text with only its ids rewritten, and place the images.

Polygons, RLE masks, ``iscrowd``, CVAT ``attributes`` and any other field come out byte for byte as they went
in. Only boxes that were clipped, annotations in an unusual key order, and annotations on duplicated images
are re-serialised.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from collections.abc import Callable
from itertools import compress, repeat
from operator import add
from pathlib import Path

from rfdetr_trainer.coco import fastjson
from rfdetr_trainer.coco.images import write_upright
from rfdetr_trainer.coco.io import dumps, sha256_later
from rfdetr_trainer.coco.merge.state import MergeState, _File
from rfdetr_trainer.coco.schema import SPLITS, Finding
from rfdetr_trainer.errors import DatasetError, OutputError

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


class WritePass(MergeState):
    """Pass 2: the output's annotation files and image files."""

    def write(self, root: Path, per_split: list[list[int]]) -> list[list[int]]:
        """Write each split's annotation file (and place the images); return annotations per split and class."""
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
        return class_counts

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
