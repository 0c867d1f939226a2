"""Tiny CVAT-style COCO 1.0 exports: real PIL images and COCO JSON in CVAT's zip layout (protocol §5)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field


@dataclass
class FakeTask:
    """A CVAT task of the fake server."""

    id: int
    name: str
    subset: str = ""
    n_images: int = 3
    labels: tuple[str, ...] = ("car", "person")
    updated_date: str = "2025-01-01T00:00:00.000000Z"
    project_id: int | None = None
    owner: str = "admin"
    fail_export: str | None = None
    evil_entries: tuple[str, ...] = ()
    image_size: tuple[int, int] = (32, 24)

    def images(self) -> list[tuple[str, int, int]]:
        w, h = self.image_size
        return [(f"t{self.id}/img_{i:03d}.jpg", w + i, h) for i in range(self.n_images)]


@dataclass
class FakeProject:
    """A CVAT project: a name and the tasks in it."""

    id: int
    name: str
    task_ids: list[int] = field(default_factory=list)
    updated_date: str = "2025-01-01T00:00:00.000000Z"
    owner: str = "admin"
    labels: tuple[str, ...] = ("car", "person")


_IMAGE_CACHE: dict[tuple[str, int, int], bytes] = {}


def jpeg(name: str, width: int, height: int) -> bytes:
    """A small real JPEG whose colour depends on its name (cached: exports are rebuilt often)."""
    key = (name, width, height)
    if key not in _IMAGE_CACHE:
        from PIL import Image

        seed = sum(name.encode()) % 200
        buf = io.BytesIO()
        Image.new("RGB", (width, height), (seed, 255 - seed, (seed * 7) % 255)).save(buf, "JPEG", quality=80)
        _IMAGE_CACHE[key] = buf.getvalue()
    return _IMAGE_CACHE[key]


def coco_json(labels: tuple[str, ...], items: list[tuple[int, str, int, int]]) -> dict:
    """COCO JSON as Datumaro writes it for CVAT: key order, 1-based ids, one box per image."""
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(labels)],
        "images": [
            {"id": image_id, "width": w, "height": h, "file_name": name, "license": 0, "flickr_url": "",
             "coco_url": "", "date_captured": 0}
            for image_id, name, w, h in items
        ],
        "annotations": [
            {"id": n + 1, "image_id": image_id, "category_id": 1 + n % len(labels), "segmentation": [],
             "area": 80.0, "bbox": [2.0, 3.0, 10.0, 8.0], "iscrowd": 0,
             "attributes": {"occluded": False, "rotation": 0.0}}
            for n, (image_id, _name, _w, _h) in enumerate(items)
        ],
    }


def build_export(
    tasks: list[FakeTask], *, labels: tuple[str, ...], include_images: bool, nested_images: bool
) -> bytes:
    """The zip CVAT serves for a task or project export: file entries only, stored uncompressed.

    Args:
        tasks: one task for a task export, all of a project's tasks for a project export.
        nested_images: ``images/<subset>/…`` (2.16.1+) rather than flat ``images/…``.
    """
    by_subset: dict[str, list[tuple[int, str, int, int, FakeTask]]] = {}
    image_id = 0
    for task in tasks:
        subset = task.subset or "default"
        for name, w, h in task.images():
            image_id += 1
            by_subset.setdefault(subset, []).append((image_id, name, w, h, task))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for subset, items in by_subset.items():
            doc = coco_json(labels, [(i, n, w, h) for i, n, w, h, _ in items])
            zf.writestr(f"annotations/instances_{subset}.json", json.dumps(doc, separators=(",", ":")))
            if include_images:
                for _i, name, w, h, _t in items:
                    path = f"images/{subset}/{name}" if nested_images else f"images/{name}"
                    zf.writestr(path, jpeg(name, w, h))
        for task in tasks:
            for entry in task.evil_entries:
                zf.writestr(entry, b"should never be written")
    return buf.getvalue()
