"""Datasets in the exact shapes real tools write, built by code (each builder names the tool and version).

Every builder writes the same content, so a merge of any of them gives the same counts: :data:`IMAGES` images
(``ANNS`` annotations over ``CLASSES``) split into train 4 / valid 2 / test 1 where the tool keeps splits.
Images are small JPEGs of distinct colours (distinct bytes: no duplicates).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from support.coco_fixtures import jpeg_bytes

CLASSES = ["raccoon", "fox"]
#: (split, stem, width, height, [(class, x, y, w, h)]) in pixels; 7 images, 9 annotations, one background.
IMAGES = [
    ("train", "r0", 32, 24, [("raccoon", 2, 2, 10, 8), ("fox", 14, 10, 8, 6)]),
    ("train", "r1", 32, 24, [("raccoon", 4, 4, 12, 10)]),
    ("train", "r2", 24, 32, [("fox", 3, 5, 9, 9), ("fox", 12, 14, 6, 6)]),
    ("train", "r3", 32, 24, []),
    ("valid", "v0", 32, 24, [("raccoon", 1, 1, 8, 8)]),
    ("valid", "v1", 32, 24, [("fox", 5, 5, 10, 10)]),
    ("test", "t0", 32, 24, [("raccoon", 6, 3, 12, 12), ("fox", 20, 2, 8, 8)]),
]
SPLIT_COUNTS = {"train": 4, "valid": 2, "test": 1}
N_IMAGES, N_ANNS = len(IMAGES), sum(len(i[4]) for i in IMAGES)
CLASS_COUNTS = {"raccoon": 4, "fox": 5}


def _jpeg(n: int, w: int, h: int) -> bytes:
    return jpeg_bytes((w, h), (20 * n + 5, 40, 200 - 20 * n))


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _rows(split: str | None = None):
    for n, (sp, stem, w, h, anns) in enumerate(IMAGES):
        if split is None or sp == split:
            yield n, sp, stem, w, h, anns


# ---- COCO family ----------------------------------------------------------------------------------------------


def _roboflow_json(rows, file_name) -> str:
    """Roboflow's COCO: synthetic root category 0 (the project) parenting the real classes, ids from 0."""
    cats = [{"id": 0, "name": "raccoons-fox", "supercategory": "none"}]
    cats += [{"id": i + 1, "name": c, "supercategory": "raccoons-fox"} for i, c in enumerate(CLASSES)]
    images, anns = [], []
    for k, (_, _, stem, w, h, boxes) in enumerate(rows):
        images.append({"id": k, "license": 1, "file_name": file_name(stem), "height": h, "width": w,
                       "date_captured": "2024-01-09T12:00:00+00:00"})
        for cls, x, y, bw, bh in boxes:
            anns.append({"id": len(anns), "image_id": k, "category_id": CLASSES.index(cls) + 1,
                         "bbox": [x, y, bw, bh], "area": bw * bh, "segmentation": [], "iscrowd": 0})
    return json.dumps({
        "info": {"year": "2024", "version": "3", "description": "Exported from roboflow.com",
                 "contributor": "", "url": "https://public.roboflow.com", "date_created": "2024-01-09T12:00:00+00:00"},
        "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
        "categories": cats, "images": images, "annotations": anns,
    })


def _rf_name(stem: str) -> str:
    return f"{stem}_jpg.rf.{hashlib.md5(stem.encode()).hexdigest()}.jpg"


def roboflow_coco_splits(root: Path) -> Path:
    """Roboflow "COCO JSON" export (app.roboflow.com, 2024): ``train|valid|test/_annotations.coco.json`` with the
    images beside each file, named ``<stem>_jpg.rf.<hash>.jpg``."""
    for split in SPLIT_COUNTS:
        rows = list(_rows(split))
        _write(root / split / "_annotations.coco.json", _roboflow_json(rows, _rf_name))
        for n, _, stem, w, h, _ in rows:
            _write(root / split / _rf_name(stem), _jpeg(n, w, h))
    return root


def roboflow_coco_root(root: Path) -> Path:
    """Roboflow COCO as downloaded from Universe without splits (2024): one root ``_annotations.coco.json`` whose
    ``file_name``s have no folder, the images in ``images/`` (the raccoon dataset of issue 8)."""
    rows = list(_rows())
    _write(root / "_annotations.coco.json", _roboflow_json(rows, _rf_name))
    for n, _, stem, w, h, _ in rows:
        _write(root / "images" / _rf_name(stem), _jpeg(n, w, h))
    return root


def _cvat_json(rows, file_name=lambda stem: f"{stem}.jpg", ann_extra=None) -> str:
    """CVAT "COCO 1.0" (Datumaro's writer): ids from 1, supercategory "", CVAT's image and annotation keys."""
    cats = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(CLASSES)]
    images, anns = [], []
    for k, (_, _, stem, w, h, boxes) in enumerate(rows, 1):
        images.append({"id": k, "width": w, "height": h, "file_name": file_name(stem), "license": 0,
                       "flickr_url": "", "coco_url": "", "date_captured": 0})
        for cls, x, y, bw, bh in boxes:
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": CLASSES.index(cls) + 1,
                         "segmentation": [], "area": float(bw * bh), "bbox": [float(x), float(y), float(bw), float(bh)],
                         "iscrowd": 0, **(ann_extra or {"attributes": {"occluded": False, "rotation": 0.0,
                                                                       "track_id": 0, "keyframe": True}})})
    return json.dumps({"licenses": [{"name": "", "id": 0, "url": ""}],
                       "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "",
                                "year": ""},
                       "categories": cats, "images": images, "annotations": anns})


def cvat_coco(root: Path, *, flat_images: bool = False) -> Path:
    """CVAT "COCO 1.0" task export, one subset per split: ``annotations/instances_<subset>.json`` with images in
    ``images/<subset>/`` (CVAT >= 2.16.1) or flat in ``images/`` (CVAT 2.4 .. 2.16.0)."""
    subsets = {"Train": "train", "Validation": "valid", "Test": "test"}
    for subset, split in subsets.items():
        rows = list(_rows(split))
        _write(root / "annotations" / f"instances_{subset}.json", _cvat_json(rows))
        for n, _, stem, w, h, _ in rows:
            _write(root / "images" / ("" if flat_images else subset) / f"{stem}.jpg", _jpeg(n, w, h))
    return root


def cvat_coco_renamed_flat(root: Path) -> Path:
    """A CVAT "COCO 1.0" export (2.x) as users keep it: the JSON renamed ``labels.json`` beside the images."""
    rows = list(_rows())
    _write(root / "labels.json", _cvat_json(rows))
    for n, _, stem, w, h, _ in rows:
        _write(root / f"{stem}.jpg", _jpeg(n, w, h))
    return root


def datumaro_coco_instances(root: Path) -> Path:
    """Datumaro 1.x ``dm.Dataset.export(path, "coco_instances", save_media=True)``: one
    ``annotations/instances_default.json`` and the images in ``images/default/``."""
    rows = list(_rows())
    _write(root / "annotations" / "instances_default.json",
           _cvat_json(rows, ann_extra={"attributes": {"occluded": False}}))
    for n, _, stem, w, h, _ in rows:
        _write(root / "images" / "default" / f"{stem}.jpg", _jpeg(n, w, h))
    return root


def coco2017(root: Path) -> Path:
    """COCO 2017 as cocodataset.org ships it: ``annotations/instances_{train,val}2017.json`` (with
    ``captions_*.json`` and ``person_keypoints_*.json`` beside them) and ``train2017/``, ``val2017/``."""
    for subset, splits in (("train2017", ("train",)), ("val2017", ("valid", "test"))):
        rows = [r for sp in splits for r in _rows(sp)]
        _write(root / "annotations" / f"instances_{subset}.json",
               _cvat_json(rows, lambda stem: f"{stem}.jpg", ann_extra={}))
        _write(root / "annotations" / f"captions_{subset}.json",
               json.dumps({"images": [], "annotations": [{"id": 1, "image_id": 1, "caption": "a raccoon"}]}))
        _write(root / "annotations" / f"person_keypoints_{subset}.json",
               json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
        for n, _, stem, w, h, _ in rows:
            _write(root / subset / f"{stem}.jpg", _jpeg(n, w, h))
    return root


def label_studio_coco(root: Path, *, windows: bool = False) -> Path:
    """Label Studio 1.x "COCO" export: ``result.json`` + ``images/``, ``file_name`` ``images/<hash>-<name>.jpg``
    (``images\\\\…`` when exported on Windows), ids from 0, categories without supercategory."""
    cats = [{"id": i, "name": c} for i, c in enumerate(CLASSES)]
    images, anns = [], []
    for k, (n, _, stem, w, h, boxes) in enumerate(_rows()):
        name = f"{n:08x}-{stem}.jpg"
        images.append({"width": w, "height": h, "id": k, "file_name": ("images\\" if windows else "images/") + name})
        _write(root / "images" / name, _jpeg(n, w, h))
        for cls, x, y, bw, bh in boxes:
            anns.append({"id": len(anns), "image_id": k, "category_id": CLASSES.index(cls), "segmentation": [],
                         "bbox": [x, y, bw, bh], "ignore": 0, "iscrowd": 0, "area": bw * bh})
    _write(root / "result.json", json.dumps({
        "images": images, "categories": cats, "annotations": anns,
        "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio", "url": "",
                 "date_created": "2024-01-09 12:00:00.000000"}}))
    return root


# ---- YOLO family ----------------------------------------------------------------------------------------------


def _yolo_lines(w: int, h: int, boxes, polygons: bool = False) -> str:
    lines = []
    for cls, x, y, bw, bh in boxes:
        c = CLASSES.index(cls)
        if polygons:  # the box's corners as a polygon, as Ultralytics -seg labels are written
            pts = [(x, y), (x + bw, y), (x + bw, y + bh), (x, y + bh)]
            lines.append(f"{c} " + " ".join(f"{px / w:.6f} {py / h:.6f}" for px, py in pts))
        else:
            lines.append(f"{c} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


_YOLO_SPLIT = {"train": "train", "valid": "val", "test": "test"}


def ultralytics_yolo(root: Path, *, seg: bool = False) -> Path:
    """Ultralytics 8.x detection (or ``-seg``) dataset: ``data.yaml`` (``path``, ``train: images/train``,
    ``val``, ``test``, ``names: {0: …}``), ``images/<split>/``, ``labels/<split>/*.txt``; the background image has
    no label file."""
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    _write(root / "data.yaml", f"path: .\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n{names}\n")
    for n, sp, stem, w, h, boxes in _rows():
        _write(root / "images" / _YOLO_SPLIT[sp] / f"{stem}.jpg", _jpeg(n, w, h))
        if boxes:
            _write(root / "labels" / _YOLO_SPLIT[sp] / f"{stem}.txt", _yolo_lines(w, h, boxes, seg))
    return root


def roboflow_yolo(root: Path) -> Path:
    """Roboflow "YOLOv8" export (2024): ``data.yaml`` with ``train: ../train/images`` (relative to a parent that
    does not exist), ``nc``, a ``names`` list and a ``roboflow:`` block; ``train|valid|test/images|labels``."""
    _write(root / "data.yaml", "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
           f"nc: {len(CLASSES)}\nnames: {json.dumps(CLASSES)}\n\nroboflow:\n  workspace: w\n  project: raccoons-fox\n"
           "  version: 3\n  license: CC BY 4.0\n  url: https://universe.roboflow.com/w/raccoons-fox/dataset/3\n")
    for n, sp, stem, w, h, boxes in _rows():
        _write(root / sp / "images" / _rf_name(stem), _jpeg(n, w, h))
        _write(root / sp / "labels" / (_rf_name(stem)[:-4] + ".txt"), _yolo_lines(w, h, boxes))
    return root


def handmade_yolo_absolute(root: Path) -> Path:
    """A hand-made Ultralytics ``data.yaml`` from another machine: ``path: C:/Yolo/raccoons`` and absolute
    ``train``/``val`` paths that do not exist here; no test split named (the ``test`` folder is found beside)."""
    _write(root / "data.yaml", "path: C:/Yolo/raccoons\ntrain: C:/Yolo/raccoons/images/train\n"
           "val: C:\\Yolo\\raccoons\\images\\val\nnames:\n  - raccoon\n  - fox\n")
    for n, sp, stem, w, h, boxes in _rows():
        _write(root / "images" / _YOLO_SPLIT[sp] / f"{stem}.jpg", _jpeg(n, w, h))
        _write(root / "labels" / _YOLO_SPLIT[sp] / f"{stem}.txt", _yolo_lines(w, h, boxes))
    return root


def cvat_yolo11(root: Path) -> Path:
    """CVAT "YOLO 1.1" export (darknet, CVAT 2.x), one subset per split: ``obj.names``, ``obj.data``
    (``train = data/train.txt``, ``valid = data/valid.txt``), ``<subset>.txt`` listing ``data/obj_<subset>_data/…``,
    labels beside the images in ``obj_<subset>_data/``; the test subset is not listed in obj.data."""
    _write(root / "obj.names", "\n".join(CLASSES) + "\n")
    _write(root / "obj.data", f"classes = {len(CLASSES)}\ntrain = data/train.txt\nvalid = data/valid.txt\n"
           "names = data/obj.names\nbackup = backup/\n")
    for split in SPLIT_COUNTS:
        listed = []
        for n, _, stem, w, h, boxes in _rows(split):
            _write(root / f"obj_{split}_data" / f"{stem}.jpg", _jpeg(n, w, h))
            _write(root / f"obj_{split}_data" / f"{stem}.txt", _yolo_lines(w, h, boxes))
            listed.append(f"data/obj_{split}_data/{stem}.jpg")
        if split != "test":
            _write(root / f"{split}.txt", "\n".join(listed) + "\n")
    return root


def cvat_ultralytics_yolo(root: Path) -> Path:
    """CVAT "Ultralytics YOLO Detection 1.0" export (CVAT >= 2.17): ``data.yaml`` (``path: ./``,
    ``train: train.txt``, ``val: val.txt``, ``test: test.txt``), ``<subset>.txt`` listing
    ``images/<subset>/x.jpg``, labels in ``labels/<subset>/``."""
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    _write(root / "data.yaml", f"path: ./\ntrain: train.txt\nval: val.txt\ntest: test.txt\nnames:\n{names}\n")
    for split in SPLIT_COUNTS:
        sub = _YOLO_SPLIT[split]
        listed = []
        for n, _, stem, w, h, boxes in _rows(split):
            _write(root / "images" / sub / f"{stem}.jpg", _jpeg(n, w, h))
            _write(root / "labels" / sub / f"{stem}.txt", _yolo_lines(w, h, boxes))
            listed.append(f"images/{sub}/{stem}.jpg")
        _write(root / f"{sub}.txt", "\n".join(listed) + "\n")
    return root


#: name -> (builder, layout detected, whether the tool keeps splits)
LAYOUTS = {
    "roboflow-coco-splits": (roboflow_coco_splits, "rfdetr", True),
    "roboflow-coco-root": (roboflow_coco_root, "rfdetr", False),
    "cvat-coco": (cvat_coco, "cvat", True),
    "cvat-coco-flat-images": (lambda r: cvat_coco(r, flat_images=True), "cvat", True),
    "cvat-coco-renamed-flat": (cvat_coco_renamed_flat, "coco", False),
    "datumaro-coco-instances": (datumaro_coco_instances, "cvat", False),
    "coco2017": (coco2017, "cvat", False),
    "label-studio-coco": (label_studio_coco, "coco", False),
    "label-studio-coco-windows": (lambda r: label_studio_coco(r, windows=True), "coco", False),
    "ultralytics-yolo": (ultralytics_yolo, "yolo", True),
    "ultralytics-yolo-seg": (lambda r: ultralytics_yolo(r, seg=True), "yolo", True),
    "roboflow-yolo": (roboflow_yolo, "yolo", True),
    "handmade-yolo-absolute": (handmade_yolo_absolute, "yolo", True),
    "cvat-yolo-1.1": (cvat_yolo11, "yolo", True),
    "cvat-ultralytics-yolo": (cvat_ultralytics_yolo, "yolo", True),
}
