"""Builders of tiny COCO datasets, in every layout the dataset engine reads (imported by the tests)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

# The COCO segmentation shapes a merge must carry through untouched.
POLYGON = [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0, 1.0, 9.0]]
RLE_UNCOMPRESSED = {"counts": [0, 5, 12, 3], "size": [16, 20]}
RLE_COMPRESSED = {"counts": "PPZ10O10000O1O1O1", "size": [16, 20]}


@dataclass
class Img:
    """One image of a fixture: its file name, size, colour (same colour and size -> same bytes) and boxes."""

    file_name: str
    anns: list[dict] = field(default_factory=list)
    size: tuple[int, int] = (20, 16)
    color: tuple[int, int, int] = (10, 20, 30)
    extra: dict = field(default_factory=dict)


def ann(cat: str, bbox: list[float] | None = None, **extra: Any) -> dict:
    """An annotation of class ``cat`` (bbox defaults to a box inside a 20x16 image)."""
    return {"cat": cat, "bbox": bbox if bbox is not None else [2.0, 2.0, 6.0, 5.0], **extra}


def png_bytes(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int], color: tuple[int, int, int], *, orientation: int = 1,
               trailer: bytes = b"", box: tuple[int, int, int, int] | None = None) -> bytes:
    """A JPEG as cameras write it: optional EXIF orientation, optional bytes after the end marker (a phone's
    "motion photo" video), optional white box (x0, y0, x1, y1) in stored-pixel coordinates."""
    img = Image.new("RGB", size, color)
    if box is not None:
        img.paste((255, 255, 255), box)
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    img.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue() + trailer


def coco_json(images: list[Img], categories: list[str], *, ann_id_start: int = 1) -> dict:
    """COCO dict with CVAT's key order: ids 1..N, categories in the given order."""
    cat_ids = {name: i + 1 for i, name in enumerate(categories)}
    out_images, out_anns = [], []
    next_ann = ann_id_start
    for n, img in enumerate(images, 1):
        out_images.append(
            {"id": n, "width": img.size[0], "height": img.size[1], "file_name": img.file_name, "license": 0,
             **img.extra}
        )
        for a in img.anns:
            record = {"id": next_ann, "image_id": n, "category_id": cat_ids[a["cat"]]}
            extra = {k: v for k, v in a.items() if k not in ("cat", "bbox")}
            record.update({"segmentation": [], "area": 1.0, "bbox": a["bbox"], "iscrowd": 0})
            record.update(extra)
            out_anns.append(record)
            next_ann += 1
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"description": ""},
        "categories": [{"id": cat_ids[c], "name": c, "supercategory": ""} for c in categories],
        "images": out_images,
        "annotations": out_anns,
    }


def categories_of(subsets: dict[str, list[Img]]) -> list[str]:
    names: dict[str, None] = {}
    for images in subsets.values():
        for img in images:
            for a in img.anns:
                names.setdefault(a["cat"])
    return list(names)


def write_dataset(
    root: Path,
    subsets: dict[str, list[Img]],
    layout: str = "rfdetr",
    *,
    categories: list[str] | None = None,
    images: bool = True,
    as_zip: bool = False,
) -> Path:
    """Write ``subsets`` ({subset name: images}) under ``root`` in ``layout``.

    Layouts: ``rfdetr`` (``<subset>/_annotations.coco.json``), ``cvat`` (``annotations/instances_<subset>.json``
    + ``images/<subset>/``), ``cvat-flat`` (images flat in ``images/``, CVAT < 2.16.1), ``coco``
    (``annotations/<subset>.json`` + ``images/``). With ``as_zip`` the same tree is written to ``root.zip``
    (CVAT-style: no folder entries) and that path is returned.
    """
    cats = categories if categories is not None else categories_of(subsets)
    files: dict[str, bytes] = {}
    for subset, imgs in subsets.items():
        data = json.dumps(coco_json(imgs, cats)).encode()
        if layout == "rfdetr":
            files[f"{subset}/_annotations.coco.json"] = data
            img_dir = subset
        elif layout in ("cvat", "cvat-flat"):
            files[f"annotations/instances_{subset}.json"] = data
            img_dir = f"images/{subset}" if layout == "cvat" else "images"
        elif layout == "coco":
            files[f"annotations/{subset}.json"] = data
            img_dir = "images"
        else:
            raise ValueError(layout)
        if images:
            for img in imgs:
                files[f"{img_dir}/{img.file_name}"] = png_bytes(img.size, img.color)
    if as_zip:
        target = root.with_suffix(".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return target
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def load_split(root: Path, split: str) -> dict:
    return json.loads((root / split / "_annotations.coco.json").read_text())


def class_counts(root: Path) -> dict[str, int]:
    """Annotations per class name over all splits of a merged dataset."""
    counts: dict[str, int] = {}
    for split in ("train", "valid", "test"):
        data = load_split(root, split)
        names = {c["id"]: c["name"] for c in data["categories"]}
        for a in data["annotations"]:
            counts[names[a["category_id"]]] = counts.get(names[a["category_id"]], 0) + 1
    return counts


def tree_digest(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes (to prove sources are untouched and outputs reproducible)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def three_images(prefix: str, cat: str = "car", color_base: int = 0) -> list[Img]:
    return [Img(f"{prefix}{i}.png", [ann(cat)], color=(color_base + i, 1, 2)) for i in range(3)]
