"""A small synthetic detection dataset: real JPEGs with drawn shapes, COCO boxes and polygons.

Used by ``make demo``, the tests and the benchmarks, because no dataset can be downloaded here. Torch-free.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

CLASSES = ("square", "circle", "triangle")
_COLORS = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (230, 180, 20), (160, 60, 200))

SPLITS = {"train": 0.6, "valid": 0.2, "test": 0.2}


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[float]:
    if kind == "square":
        pts = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    elif kind == "triangle":
        pts = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    else:
        pts = [(cx + r * math.cos(2 * math.pi * i / 16), cy + r * math.sin(2 * math.pi * i / 16)) for i in range(16)]
    return [round(v, 2) for p in pts for v in p]


def _draw_image(rng: random.Random, size: int, max_objects: int, classes: tuple[str, ...] = CLASSES,
                sizes: tuple[float, float] = (0.08, 0.2)):
    from PIL import Image, ImageDraw

    background = tuple(rng.randint(0, 60) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(rng.randint(1, max_objects)):
        cls = rng.randrange(len(classes))
        r = rng.uniform(size * sizes[0], size * sizes[1])
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
        poly = _polygon(classes[cls], cx, cy, r)
        color = _COLORS[rng.randrange(len(_COLORS))]
        if classes[cls] == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        else:
            draw.polygon(list(zip(poly[::2], poly[1::2])), fill=color)
        xs, ys = poly[::2], poly[1::2]
        x0, y0, x1, y1 = max(min(xs), 0), max(min(ys), 0), min(max(xs), size), min(max(ys), size)
        box = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
        objects.append({"category": cls, "bbox": box, "segmentation": [poly], "area": round(box[2] * box[3], 2)})
    return image, objects


def make_dataset(
    output_dir: Path,
    *,
    num_images: int = 30,
    image_size: int = 128,
    max_objects: int = 3,
    seed: int = 0,
    layout: str = "rfdetr",
    splits: dict[str, float] | None = None,
    classes: tuple[str, ...] | list[str] = CLASSES,
    object_size: tuple[float, float] = (0.08, 0.2),
) -> Path:
    """Write a synthetic dataset and return its folder.

    Args:
        output_dir: folder to create (must not hold a dataset already).
        num_images: total images over all splits.
        image_size: width and height in pixels.
        max_objects: at most this many shapes per image (at least one).
        seed: makes the dataset reproducible byte for byte.
        layout: ``rfdetr`` (``<split>/_annotations.coco.json``) or ``cvat`` (CVAT 'COCO 1.0' export:
            ``annotations/instances_<Subset>.json`` and ``images/<Subset>/``).
        splits: fraction of images per split; default 60/20/20 train/valid/test.
        classes: class names in category-id order; each is drawn as its shape (square, triangle; anything else
            is a circle), so a test can reorder, add or drop classes.
        object_size: a shape's half-size as a fraction of the image, (smallest, largest).
    """
    classes = tuple(classes)
    rng = random.Random(seed)
    output_dir = Path(output_dir)
    fractions = splits or SPLITS
    names = list(fractions)
    counts = [max(1, int(round(num_images * fractions[n]))) for n in names]
    counts[0] = max(1, num_images - sum(counts[1:]))
    cvat_subset = {"train": "Train", "valid": "Validation", "test": "Test"}
    for split, count in zip(names, counts):
        if layout == "rfdetr":
            image_dir = output_dir / split
            ann_path = image_dir / "_annotations.coco.json"
        elif layout == "cvat":
            subset = cvat_subset.get(split, split)
            image_dir = output_dir / "images" / subset
            ann_path = output_dir / "annotations" / f"instances_{subset}.json"
        else:
            raise ValueError(f"unknown layout {layout!r}")
        image_dir.mkdir(parents=True, exist_ok=True)
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        coco = {
            "info": {"description": "rfdetr-trainer synthetic shapes", "version": "1.0"},
            "licenses": [],
            "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(classes)],
            "images": [],
            "annotations": [],
        }
        for i in range(count):
            image, objects = _draw_image(rng, image_size, max_objects, classes, tuple(object_size))
            file_name = f"{split}_{i:04d}.jpg"
            image.save(image_dir / file_name, quality=90)
            image_id = i + 1
            coco["images"].append({"id": image_id, "file_name": file_name, "width": image_size, "height": image_size})
            for obj in objects:
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": obj["category"] + 1,
                        "bbox": obj["bbox"],
                        "area": obj["area"],
                        "segmentation": obj["segmentation"],
                        "iscrowd": 0,
                    }
                )
        ann_path.write_text(json.dumps(coco, indent=1), encoding="utf-8")
    return output_dir


#: The keypoints of a synthetic square, in CVAT "COCO Keypoints 1.0" category form.
SQUARE_KEYPOINTS = ("top_left", "top_right", "bottom_right", "bottom_left")
SQUARE_SKELETON = [[1, 2], [2, 3], [3, 4], [4, 1]]


def make_keypoint_dataset(output_dir: Path, *, num_images: int = 12, image_size: int = 96, seed: int = 0,
                          layout: str = "rfdetr") -> Path:
    """A COCO keypoints dataset: squares with their four corners as keypoints (visibility 2).

    ``layout="cvat"`` writes CVAT's "COCO Keypoints 1.0" export (``annotations/person_keypoints_<Subset>.json``,
    ``images/<Subset>/``, ``attributes`` and empty ``segmentation`` on each annotation); ``"rfdetr"`` the
    train/valid/test layout rfdetr reads.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    output_dir = Path(output_dir)
    counts = {"train": max(1, num_images - 2 * max(1, num_images // 5))}
    counts.update(valid=max(1, num_images // 5), test=max(1, num_images // 5))
    subset_names = {"train": "Train", "valid": "Validation", "test": "Test"}
    category = {"id": 1, "name": "square", "supercategory": "" if layout == "cvat" else "shape",
                "keypoints": list(SQUARE_KEYPOINTS), "skeleton": SQUARE_SKELETON}
    for split, count in counts.items():
        if layout == "cvat":
            image_dir = output_dir / "images" / subset_names[split]
            ann_path = output_dir / "annotations" / f"person_keypoints_{subset_names[split]}.json"
        else:
            image_dir = output_dir / split
            ann_path = image_dir / "_annotations.coco.json"
        image_dir.mkdir(parents=True, exist_ok=True)
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        coco: dict = {"licenses": [], "info": {}, "categories": [category], "images": [], "annotations": []}
        for i in range(count):
            image = Image.new("RGB", (image_size, image_size), tuple(rng.randint(0, 60) for _ in range(3)))
            draw = ImageDraw.Draw(image)
            r = rng.uniform(image_size * 0.15, image_size * 0.3)
            cx, cy = rng.uniform(r, image_size - r), rng.uniform(r, image_size - r)
            corners = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
            draw.polygon(corners, fill=_COLORS[rng.randrange(len(_COLORS))])
            file_name = f"{split}_{i:04d}.jpg"
            image.save(image_dir / file_name, quality=90)
            coco["images"].append({"id": i + 1, "file_name": file_name, "width": image_size, "height": image_size,
                                   "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0})
            box = [round(cx - r, 2), round(cy - r, 2), round(2 * r, 2), round(2 * r, 2)]
            coco["annotations"].append({
                "id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": round(4 * r * r, 2),
                "segmentation": [], "iscrowd": 0, "attributes": {"occluded": False},
                "keypoints": [round(v, 2) for x, y in corners for v in (x, y, 2)], "num_keypoints": 4,
            })
        ann_path.write_text(json.dumps(coco), encoding="utf-8")
    return output_dir


def make_photo_dataset(
    output_dir: Path,
    *,
    num_images: int = 30,
    width: int = 1280,
    height: int = 720,
    grain: float = 12.0,
    quality: int = 90,
    max_objects: int = 4,
    seed: int = 0,
    splits: dict[str, float] | None = None,
) -> Path:
    """Write distinct camera-sized JPEGs (smooth colour fields, shapes and sensor-like grain) with COCO boxes.

    Flat drawn shapes compress to a few KB and decode faster than photos; the grain gives these JPEGs the byte
    size and decode cost of real camera frames (1280x720 at quality 90 with the default grain: ~150-250 KB;
    640x480, grain 6, quality 85: ~60 KB), so fetch and data-loader benchmarks measure realistic work.

    Args:
        output_dir: folder to create, laid out as ``<split>/_annotations.coco.json`` with the images beside.
        num_images: total images over all splits.
        width: image width in pixels.
        height: image height in pixels.
        grain: standard deviation of the per-pixel noise (0 for flat images).
        quality: JPEG quality.
        max_objects: at most this many boxes per image (at least one).
        seed: makes the dataset reproducible byte for byte.
        splits: fraction of images per split; default 60/20/20 train/valid/test.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    output_dir = Path(output_dir)
    fractions = splits or SPLITS
    names = list(fractions)
    counts = [max(1, int(round(num_images * fractions[n]))) for n in names]
    counts[0] = max(1, num_images - sum(counts[1:]))
    for split, count in zip(names, counts):
        image_dir = output_dir / split
        image_dir.mkdir(parents=True, exist_ok=True)
        coco: dict = {"info": {"description": "rfdetr-trainer synthetic photos"}, "licenses": [],
                      "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)],
                      "images": [], "annotations": []}
        for i in range(count):
            coarse = rng.uniform(0, 255, size=(9, 16, 3)).astype(np.uint8)
            base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
            pixels = base + rng.normal(0, grain, size=base.shape) if grain else base
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            image_id = i + 1
            for _ in range(int(rng.integers(1, max_objects + 1))):
                w, h = rng.uniform(0.08, 0.3) * width, rng.uniform(0.08, 0.3) * height
                x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
                cls = int(rng.integers(len(CLASSES)))
                draw.rectangle([x, y, x + w, y + h], outline=_COLORS[cls], width=4)
                box = [round(float(x), 2), round(float(y), 2), round(float(w), 2), round(float(h), 2)]
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                            "category_id": cls + 1, "bbox": box, "area": round(box[2] * box[3], 2),
                                            "segmentation": [], "iscrowd": 0})
            file_name = f"{split}_{i:05d}.jpg"
            image.save(image_dir / file_name, quality=quality)
            coco["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        (image_dir / "_annotations.coco.json").write_text(json.dumps(coco), encoding="utf-8")
    return output_dir
