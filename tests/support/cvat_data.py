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
    #: label name -> its attribute specs (``{"name", "input_type", "mutable", "values", "default_value"}``)
    label_attributes: dict[str, list[dict]] = field(default_factory=dict)
    #: real frames (file name, JPEG/PNG bytes) instead of generated ones; sets ``n_images``
    frames: list[tuple[str, bytes]] | None = None
    #: frames per annotation job (None: one job for the whole task)
    segment_size: int | None = None
    #: (stage, state) of each annotation job, in frame order; missing ones are ("annotation", "new")
    job_states: list[tuple[str, str]] = field(default_factory=list)
    #: frames of the ground-truth job ("gt" validation mode), or the validation pool ("gt_pool")
    gt_frames: tuple[int, ...] = ()
    validation_mode: str | None = None  # None, "gt" or "gt_pool"
    #: gt_pool only: frames inside annotation jobs that show a validation frame (frame -> real frame)
    honeypots: dict[int, int] = field(default_factory=dict)
    #: stored annotations; None until first touched (then one human box per frame, as the export has)
    shapes: list[dict] | None = None
    #: annotations of the ground-truth job; None: one expert box [4, 4, 20, 20] of the first label per GT frame
    gt_shapes: list[dict] | None = None
    tags: list[dict] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)
    version: int = 0

    def __post_init__(self) -> None:
        if self.frames is not None:
            self.n_images = len(self.frames)

    def images(self) -> list[tuple[str, int, int]]:
        if self.frames is not None:
            return [(name, *_size(data)) for name, data in self.frames]
        w, h = self.image_size
        return [(f"t{self.id}/img_{i:03d}.jpg", w + i, h) for i in range(self.n_images)]

    def frame_bytes(self, frame: int) -> bytes:
        if self.frames is not None:
            return self.frames[frame][1]
        name, w, h = self.images()[frame]
        return jpeg(name, w, h)


@dataclass
class FakeProject:
    """A CVAT project: a name and the tasks in it."""

    id: int
    name: str
    task_ids: list[int] = field(default_factory=list)
    updated_date: str = "2025-01-01T00:00:00.000000Z"
    owner: str = "admin"
    labels: tuple[str, ...] = ("car", "person")


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.width, img.height


def human_box(frame: int, label_id: int, x0: float, y0: float, x1: float, y1: float, **extra: object) -> dict:
    """A rectangle as CVAT stores a manually drawn one."""
    return {"type": "rectangle", "frame": frame, "label_id": label_id, "points": [x0, y0, x1, y1], "group": 0,
            "source": "manual", "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0,
            "attributes": [], "elements": [], **extra}


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


def coco_json(labels: tuple[str, ...], items: list[tuple[int, str, int, int]],
              annotations: list[dict] | None = None) -> dict:
    """COCO JSON as Datumaro writes it for CVAT: key order, 1-based ids, one box per image unless
    ``annotations`` (already in COCO form) are given."""
    doc = {
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
    if annotations is not None:
        doc["annotations"] = annotations
    return doc


def coco_annotations(task: FakeTask, first_image_id: int, label_names: tuple[str, ...], label_ids: list[int],
                     start_id: int) -> list[dict]:
    """A task's stored rectangles and polygons as CVAT's COCO exporter writes them (§5)."""
    out = []
    frames = task.images()
    for shape in task.shapes or []:
        if shape["type"] not in ("rectangle", "polygon") or shape["frame"] >= len(frames):
            continue
        cat = label_ids.index(shape["label_id"]) + 1
        pts = shape["points"]
        xs, ys = pts[0::2], pts[1::2]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        bbox = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
        seg = [] if shape["type"] == "rectangle" else [list(pts)]
        attrs: dict = {"occluded": bool(shape.get("occluded"))}
        if shape["type"] == "rectangle":
            attrs["rotation"] = float(shape.get("rotation", 0.0))
        out.append({"id": start_id + len(out), "image_id": first_image_id + shape["frame"], "category_id": cat,
                    "segmentation": seg, "area": round(bbox[2] * bbox[3], 2), "bbox": bbox, "iscrowd": 0,
                    "attributes": attrs})
    del label_names
    return out


def build_export(
    tasks: list[FakeTask], *, labels: tuple[str, ...], include_images: bool, nested_images: bool,
    label_ids: list[int] | None = None,
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
            anns = None
            if label_ids is not None and any(t.shapes is not None for *_, t in items):
                anns = []
                for task in dict.fromkeys(t for *_, t in items):
                    first = next(i for i, *_, t in items if t is task)
                    anns += coco_annotations(task, first, labels, label_ids, len(anns) + 1)
            doc = coco_json(labels, [(i, n, w, h) for i, n, w, h, _ in items], anns)
            zf.writestr(f"annotations/instances_{subset}.json", json.dumps(doc, separators=(",", ":")))
            if include_images:
                for i, name, _w, _h, task in items:
                    path = f"images/{subset}/{name}" if nested_images else f"images/{name}"
                    first = next(j for j, *_, t in items if t is task)
                    zf.writestr(path, task.frame_bytes(i - first))
        for task in tasks:
            for entry in task.evil_entries:
                zf.writestr(entry, b"should never be written")
    return buf.getvalue()
