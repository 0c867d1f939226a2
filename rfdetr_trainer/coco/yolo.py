"""YOLO detection (and -seg) datasets as COCO: found in a tree, converted to annotation files held in memory.

Shapes read (as the tools write them):
    Ultralytics ``data.yaml``: ``names`` (list or ``{index: name}``), ``path``, ``train``/``val``/``test`` naming
        image folders or ``.txt`` lists; images in ``images/<split>/``, labels in ``labels/<split>/*.txt``.
        Roboflow's YOLO export writes ``train: ../train/images`` (relative to a parent that does not exist) with
        ``train/images`` + ``train/labels`` beside the yaml; hand-made files carry absolute paths from another
        machine (``C:/Yolo/data/images/train``). Each path is resolved to the longest tail of it that exists in
        the dataset, and a split the yaml does not name is looked for in the split folders beside it.
    CVAT "Ultralytics YOLO Detection 1.0": ``data.yaml`` + ``train.txt`` listing ``images/train/x.jpg``.
    CVAT "YOLO 1.1" (darknet): ``obj.names``, ``obj.data`` (``train = data/train.txt``), ``train.txt`` listing
        ``data/obj_train_data/x.jpg``, the labels beside each image in ``obj_<subset>_data/``.

Label lines are ``class cx cy w h`` normalized to the image (a detection box) or ``class x1 y1 x2 y2 …`` (a
segmentation polygon, which becomes a COCO polygon with its bounding box). Image sizes come from the file
headers, as viewers show them (EXIF orientation applied), since that is the frame the labels were drawn in.
A line that is neither, or a class index the names do not have, fails with the file and line number.

An image that a list names but the tree lacks, or whose header can't be read, is not an error here: it is kept in
the converted file with a placeholder size of 1x1 (its labels on that frame), so the COCO checks every source
goes through (``merge``, ``fetch``, ``inspect``) find it missing, unreadable or of another size and report it as
they report any unusable image: a failure giving the count and the first files, or with ``--skip-missing`` a
dropped image listed in the manifest, its annotations still counted in the totals.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, replace
from io import BytesIO
from typing import Any, BinaryIO

from rfdetr_trainer.coco.images import image_size
from rfdetr_trainer.coco.layout import Subset, Tree
from rfdetr_trainer.coco.schema import normalize_subset
from rfdetr_trainer.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
#: Split keys of a data.yaml, and the folder names a split goes by when the yaml names none.
_SPLIT_KEYS = {"train": ("train",), "valid": ("val", "valid", "validation"), "test": ("test",)}
_SPLIT_FOLDERS = {"train": ("train",), "valid": ("valid", "val", "validation"), "test": ("test",)}
VIRTUAL = ".rfdetr-trainer-yolo"


#: The size an image gets when its file can't be read: no real image is 1x1 and unreadable at once, so the
#: decode check that follows always reports the file rather than using it.
_UNKNOWN_SIZE = (1, 1)


@dataclass(frozen=True)
class _Split:
    name: str
    images: tuple[str, ...]
    missing: frozenset[str] = frozenset()  # images a list names that the tree does not hold


class YoloTree(Tree):
    """A YOLO dataset's tree with one converted COCO file per split under :data:`VIRTUAL` (memory only)."""

    def __init__(self, base: Tree, virtual: dict[str, bytes], described: dict[str, str]) -> None:
        self.base, self.virtual, self.described = base, virtual, described
        self.label = base.label

    def is_file(self, rel: str) -> bool:
        return rel in self.virtual or self.base.is_file(rel)

    def read_bytes(self, rel: str) -> bytes:
        return self.virtual[rel] if rel in self.virtual else self.base.read_bytes(rel)

    def size(self, rel: str) -> int:
        return len(self.virtual[rel]) if rel in self.virtual else self.base.size(rel)

    def open(self, rel: str) -> BinaryIO:
        return BytesIO(self.virtual[rel]) if rel in self.virtual else self.base.open(rel)

    def fs_path(self, rel: str) -> Any:
        return None if rel in self.virtual else self.base.fs_path(rel)

    def listdir(self, rel: str) -> list[str]:
        return self.base.listdir(rel)

    def files(self) -> list[str]:
        return self.base.files()

    def describe(self, rel: str) -> str:
        return self.described.get(rel) or self.base.describe(rel)

    def copy_to(self, rel: str, dest: Any, link: bool = True) -> None:
        self.base.copy_to(rel, dest, link=link)


def _is_dir(tree: Tree, rel: str) -> bool:
    return bool(tree.listdir(rel)) and not tree.is_file(rel)


def _existing_tail(tree: Tree, value: str, base: str) -> str | None:
    """The longest tail of path ``value`` that exists in the tree, tried relative to ``base`` then the root.

    Leading ``..`` and a drive or absolute root are dropped (the dataset is all there is); a tail still
    holding ``..`` is never tried.
    """
    parts = [p for p in value.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[0].endswith(":"):  # C:/…
        parts = parts[1:]
    while parts and parts[0] == "..":
        parts = parts[1:]
    if not parts:
        return base or None
    for start in range(len(parts)):
        tail = parts[start:]
        if ".." in tail:
            continue
        for root in ([base] if base else []) + [""]:
            rel = posixpath.join(root, *tail) if root else "/".join(tail)
            if tree.is_file(rel) or _is_dir(tree, rel):
                return rel
    return None


def _images_under(tree: Tree, folder: str) -> list[str]:
    prefix = folder.rstrip("/") + "/"
    return [f for f in tree.files() if f.startswith(prefix) and f.lower().endswith(IMAGE_EXTENSIONS)]


def _missing_rel(tree: Tree, line: str, folder: str) -> str:
    """Where a listed image that the tree lacks would be: in the existing folder its path ends with, if any."""
    path = line.strip().replace("\\", "/")
    parent = _existing_tail(tree, posixpath.dirname(path), folder) if posixpath.dirname(path) else folder
    if parent is not None and _is_dir(tree, parent):
        return posixpath.join(parent, posixpath.basename(path))
    parts = [p for p in path.split("/") if p not in ("", ".", "..") and not p.endswith(":")]
    return posixpath.join(folder, *parts) if folder else "/".join(parts)


def _images_of(tree: Tree, spec: str, base: str, missing: set[str]) -> list[str]:
    """Images a split entry names: a folder (searched recursively) or a .txt list of image paths.

    A listed image the tree lacks is returned all the same (where it would be) and added to ``missing``.
    """
    rel = _existing_tail(tree, spec, base)
    if rel is None:
        return []
    if tree.is_file(rel):
        if not rel.lower().endswith(".txt"):
            return [rel] if rel.lower().endswith(IMAGE_EXTENSIONS) else []
        out = []
        folder = posixpath.dirname(rel)
        for line in tree.read_bytes(rel).decode("utf-8-sig", "replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            found = _existing_tail(tree, line, folder)
            if found is None or not tree.is_file(found):
                found = _missing_rel(tree, line, folder)
                missing.add(found)
            out.append(found)
        return out
    return _images_under(tree, rel)


def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, dict):
        try:
            items = sorted((int(k), str(v)) for k, v in value.items())
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: 'names' keys must be class indices") from None
        if [k for k, _ in items] != list(range(len(items))):
            raise DatasetError(f"{where}: 'names' must number the classes 0..{len(items) - 1}")
        return [v for _, v in items]
    if isinstance(value, list) and value:
        return [str(v) for v in value]
    raise DatasetError(f"{where}: no class 'names' (a list, or a mapping of index to name)")


def _ultralytics(tree: Tree, yaml_rel: str) -> tuple[list[str], list[_Split]]:
    import yaml

    where = tree.describe(yaml_rel)
    try:
        data = yaml.safe_load(tree.read_bytes(yaml_rel).decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{where}: not readable YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: not a YOLO data.yaml (expected a mapping with 'names')")
    names = _names(data.get("names"), where)
    folder = posixpath.dirname(yaml_rel)
    root = data.get("path")
    base = folder
    if isinstance(root, str) and root.strip():
        found = _existing_tail(tree, root, folder)
        base = found if found is not None and _is_dir(tree, found) else folder
    splits = []
    for split, keys in _SPLIT_KEYS.items():
        specs = next((data[k] for k in keys if data.get(k)), None)
        images: list[str] = []
        missing: set[str] = set()
        for spec in (specs if isinstance(specs, list) else [specs] if specs else []):
            images += _images_of(tree, str(spec), base, missing)
        if not images:  # the yaml names none (or a path from elsewhere): the split folders beside it
            images = _split_folder_images(tree, folder, split)
        if images:
            splits.append(_Split(split, tuple(dict.fromkeys(images)), frozenset(missing)))
    return names, splits


def _split_folder_images(tree: Tree, folder: str, split: str) -> list[str]:
    for name in _SPLIT_FOLDERS[split]:
        for rel in (f"{name}/images", f"images/{name}", name):
            rel = posixpath.join(folder, rel) if folder else rel
            if _is_dir(tree, rel):
                found = _images_under(tree, rel)
                if found:
                    return found
    return []


def _darknet(tree: Tree, data_rel: str | None, names_rel: str) -> tuple[list[str], list[_Split]]:
    names = [n.strip() for n in tree.read_bytes(names_rel).decode("utf-8-sig", "replace").splitlines() if n.strip()]
    if not names:
        raise DatasetError(f"{tree.describe(names_rel)}: no class names")
    folder = posixpath.dirname(names_rel)
    lists: dict[str, str] = {}
    if data_rel is not None:
        for line in tree.read_bytes(data_rel).decode("utf-8-sig", "replace").splitlines():
            key, _, value = line.partition("=")
            key, value = key.strip().lower(), value.strip()
            if key in ("train", "valid", "val", "test") and value:
                lists[key] = value
    splits = []
    seen: set[str] = set()
    for value in lists.values():
        missing: set[str] = set()
        images = _images_of(tree, value, folder, missing)
        stem = posixpath.splitext(posixpath.basename(value))[0]
        seen.add(stem)
        if images:
            splits.append(_Split(stem, tuple(dict.fromkeys(images)), frozenset(missing)))
    for entry in tree.listdir(folder):  # obj_<subset>_data folders no list names
        if entry.startswith("obj_") and entry.endswith("_data") and entry[4:-5] not in seen:
            images = _images_under(tree, posixpath.join(folder, entry) if folder else entry)
            if images:
                splits.append(_Split(entry[4:-5], tuple(images)))
    return names, splits


def find_yolo(tree: Tree) -> list[Subset] | None:
    """Subsets of a YOLO dataset at the tree's root (annotation files not yet converted), or None."""
    root = tree.listdir("")
    yaml_rel = next((n for n in _YAML_NAMES if n in root and tree.is_file(n)), None)
    if yaml_rel is None:
        yaml_rel = next((n for n in root if n.lower().endswith((".yaml", ".yml")) and tree.is_file(n)
                         and b"names" in tree.read_bytes(n)), None)
    if yaml_rel is not None:
        return [Subset("yolo", None, yaml_rel, ())]
    if "obj.names" in root:
        return [Subset("yolo", None, "obj.names", ())]
    return None


def _label_candidates(image: str) -> list[str]:
    stem = posixpath.splitext(image)[0]
    parts = stem.split("/")
    out = []
    for i in range(len(parts) - 2, -1, -1):  # the last images/ folder becomes labels/, as Ultralytics does
        if parts[i] == "images":
            out.append("/".join(parts[:i] + ["labels"] + parts[i + 1:]) + ".txt")
            break
    out.append(stem + ".txt")  # darknet and CVAT YOLO 1.1: beside the image
    return out


def _file_names(split: _Split) -> tuple[list[str], tuple[str, ...]]:
    """COCO ``file_name`` per image and the folders to find them in: base names when they are unique in the
    split (so a merge writes ``train/a.jpg``, not ``train/train/images/a.jpg``), else paths from the root."""
    bases = [posixpath.basename(rel) for rel in split.images]
    if len(set(bases)) == len(bases):
        return bases, tuple(dict.fromkeys(posixpath.dirname(rel) for rel in split.images))
    return list(split.images), ("",)


def _header_size(tree: Tree, rel: str) -> tuple[int, int]:
    """The image's size from its header, or :data:`_UNKNOWN_SIZE` when no header can be read (the decode check
    downstream names the fault, as it does for a COCO source's image)."""
    try:
        return image_size(tree, rel)
    except (OSError, ValueError, SyntaxError, EOFError):  # what Pillow raises on a file it can't identify
        return _UNKNOWN_SIZE


def _convert_split(tree: Tree, split: _Split, names: list[str]) -> bytes:
    images, annotations = [], []
    file_names, _ = _file_names(split)
    for image_id, (rel, file_name) in enumerate(zip(split.images, file_names), 1):
        width, height = _UNKNOWN_SIZE if rel in split.missing else _header_size(tree, rel)
        digits = 6 if (width, height) == _UNKNOWN_SIZE else 2  # normalized values on the placeholder frame
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        label = next((c for c in _label_candidates(rel) if tree.is_file(c)), None)
        if label is None:
            continue  # Ultralytics reads an image without a label file as background
        for n, line in enumerate(tree.read_bytes(label).decode("utf-8-sig", "replace").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{tree.describe(label)}:{n}"
            try:
                cls = int(fields[0])
                values = [float(v) for v in fields[1:]]
            except ValueError:
                raise DatasetError(f"{where}: not a YOLO label line ({line.strip()[:60]!r})") from None
            if not 0 <= cls < len(names):
                raise DatasetError(f"{where}: class {cls} is not in the {len(names)} names")
            if len(values) == 4:
                cx, cy, w, h = values
                box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
                segmentation: list = []
            elif len(values) >= 6 and len(values) % 2 == 0:
                xs = [v * width for v in values[0::2]]
                ys = [v * height for v in values[1::2]]
                box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                segmentation = [[round(v, digits) for xy in zip(xs, ys) for v in xy]]
            else:
                raise DatasetError(f"{where}: expected 'class cx cy w h' or a polygon, got {len(values)} numbers")
            box = [round(v, digits) for v in box]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls,
                                "bbox": box, "area": round(box[2] * box[3], digits), "segmentation": segmentation,
                                "iscrowd": 0})
    categories = [{"id": i, "name": name, "supercategory": ""} for i, name in enumerate(names)]
    return json.dumps({"categories": categories, "images": images, "annotations": annotations}).encode()


def convert(tree: Tree, found: list[Subset]) -> tuple[YoloTree, list[Subset]]:
    """Convert the YOLO dataset ``found`` in ``tree``: one in-memory COCO file per split.

    Images that are listed but absent, or whose header can't be read, are kept with a 1x1 placeholder size for
    the COCO checks to report (see the module's docstring).

    Raises:
        DatasetError: no class names, no images in any split, a label line that is neither a box nor a
            polygon, or a class index outside the names (each names the file and line).
    """
    source = found[0].json_rel
    if source == "obj.names":
        names, splits = _darknet(tree, "obj.data" if tree.is_file("obj.data") else None, source)
    else:
        names, splits = _ultralytics(tree, source)
    if not splits:
        raise DatasetError(f"{tree.describe(source)}: no images found for any split",
                           hint="expected images/<split>/, <split>/images/ or the folders data.yaml names")
    virtual: dict[str, bytes] = {}
    described: dict[str, str] = {}
    subsets = []
    for split in splits:
        rel = f"{VIRTUAL}/{split.name}.json"
        virtual[rel] = _convert_split(tree, split, names)
        described[rel] = f"{tree.describe(source)}[{split.name}]"
        subsets.append(replace(found[0], name=split.name, split=normalize_subset(split.name), json_rel=rel,
                               image_dirs=_file_names(split)[1]))
    return YoloTree(tree, virtual, described), subsets
