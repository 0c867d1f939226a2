"""What a merge reports: counts per split and class, and the manifest written beside the dataset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco import fastjson
from rfdetr_trainer.coco.io import dumps
from rfdetr_trainer.coco.manifest import MANIFEST_VERSION, findings_section
from rfdetr_trainer.coco.merge.state import MergeState
from rfdetr_trainer.coco.schema import SPLITS, Finding

#: The rule for byte-identical images, recorded in the manifest.
DUPLICATE_RULE = (
    "byte-identical images are stored once, under the first source (in the order given) that has them; the "
    "annotations of every other copy move onto that image, except an annotation whose class and box equal "
    "one that another copy already put there, which is dropped and counted"
)

#: Where each stored image came from, beside the manifest (which names it): a file of its own, because the
#: manifest travels whole into every checkpoint's notes and into tracking, and this grows with the images.
ORIGINS_NAME = "image_origins.json"
#: One row per stored image: ``split/file_name`` as written, the index of its source in the manifest's
#: ``sources``, and its ``file_name`` and image ``id`` in that source's annotation file.
ORIGIN_COLUMNS = ["file", "source", "file_name", "image_id"]


class SummaryPass(MergeState):
    """Counts, totals and the manifest, from the state the passes left."""

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

    def write_origins(self, root: Path, per_split: list[list[int]]) -> dict[str, Any]:
        """Write :data:`ORIGINS_NAME` in ``root``: for every stored image (by split, in output id order), where it
        came from; a byte-identical copy in another source is not listed (its annotations moved onto this one).
        Return the manifest's reference to it."""
        images = self.images
        rows: list[tuple[str, int, Any, Any]] = []
        for sp, name in enumerate(SPLITS):
            prefix = name + "/"
            rows += [(prefix + im.out_name, im.src, im.rec["file_name"], im.rec["id"])
                     for im in map(images.__getitem__, per_split[sp])]
        doc = {"columns": ORIGIN_COLUMNS, "sources": [ref.name for ref in self.sources], "rows": rows}
        # One compact line, encoded by msgspec when installed (the same bytes as the stdlib's, ~10x faster).
        data = fastjson.msgspec.json.encode(doc) if fastjson.enabled else dumps(doc).encode()
        (root / ORIGINS_NAME).write_bytes(data + b"\n")
        return {"path": ORIGINS_NAME, "columns": ORIGIN_COLUMNS, "images": len(rows)}

    def manifest(self, counts: dict[str, Any], origins: dict[str, Any] | None = None) -> dict[str, Any]:
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
            **({"image_origins": origins} if origins is not None else {}),
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
