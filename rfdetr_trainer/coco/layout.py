"""Find the COCO annotation files and images in a folder or .zip, whatever layout it uses.

Layouts:
    rfdetr: ``train|valid|test/_annotations.coco.json`` with the images beside each file (Roboflow, rfdetr), or
        Roboflow's single root ``_annotations.coco.json`` with the images in ``images/``.
    cvat: CVAT 'COCO 1.0' export, ``annotations/instances_<subset>.json`` with images in
        ``images/<subset>/`` (CVAT >= 2.16.1) or flat in ``images/`` (older servers); also Datumaro's
        ``coco_instances`` and COCO 2017 (``annotations/instances_train2017.json`` + ``train2017/``; the
        captions and keypoints files beside them are not detection annotations and are left alone).
    coco: plain COCO, ``annotations/*.json`` (or one loose ``*.json``, such as Label Studio's ``result.json``)
        with images in ``images/``, ``<subset>/`` or beside the file.
    yolo: Ultralytics ``data.yaml`` or CVAT 'YOLO 1.1' ``obj.data`` (see :mod:`rfdetr_trainer.coco.yolo`),
        converted to COCO in memory.

Each ``file_name`` is looked for beside the annotation file, then in ``images/``, ``images/<subset>/`` and
``<subset>/``, then by its base name anywhere under the dataset root; a base name found twice there is an
error naming both files, never a guess.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from rfdetr_trainer.coco.schema import SPLITS, normalize_subset
from rfdetr_trainer.errors import DatasetError

RFDETR_FILE = "_annotations.coco.json"


class Tree:
    """Read-only view of a dataset's files by relative POSIX path (a folder or a zip archive)."""

    label: str

    def is_file(self, rel: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def read_bytes(self, rel: str) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def size(self, rel: str) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def open(self, rel: str) -> BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def fs_path(self, rel: str) -> Path | None:
        """A real filesystem path (so the file can be hard-linked), or None inside an archive."""
        return None

    def listdir(self, rel: str) -> list[str]:  # pragma: no cover - interface
        """Names directly under folder ``rel`` ('' is the root)."""
        raise NotImplementedError

    def copy_to(self, rel: str, dest: Path, link: bool = True) -> None:
        """Place file ``rel`` at ``dest``: hard-linked where possible (no bytes copied), else copied."""
        src = self.fs_path(rel)
        if src is not None:
            if link:
                try:
                    os.link(src, dest)
                    return
                except OSError:
                    pass  # another filesystem, or links not allowed: copy instead
            shutil.copyfile(src, dest)
            return
        with self.open(rel) as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)

    def describe(self, rel: str) -> str:
        """How to name ``rel`` to a user: the full path, or ``archive.zip:member``."""
        return f"{self.label}/{rel}" if rel else self.label

    def files(self) -> list[str]:  # pragma: no cover - interface
        """Every file in the tree, as relative POSIX paths."""
        raise NotImplementedError


class DirTree(Tree):
    """A dataset folder on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def _p(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def is_file(self, rel: str) -> bool:
        return self._p(rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._p(rel).read_bytes()
        except OSError as exc:
            raise DatasetError(f"{self.describe(rel)}: cannot read ({exc.strerror})") from None

    def size(self, rel: str) -> int:
        return self._p(rel).stat().st_size

    def open(self, rel: str) -> BinaryIO:
        return open(self._p(rel), "rb")

    def fs_path(self, rel: str) -> Path | None:
        return self._p(rel)

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._p(rel)))
        except OSError:
            return []

    def files(self) -> list[str]:
        out = []
        for folder, dirs, names in os.walk(self.root):
            dirs.sort()
            base = Path(folder).relative_to(self.root).as_posix()
            out.extend(n if base == "." else f"{base}/{n}" for n in sorted(names))
        return out


class ZipTree(Tree):
    """A dataset inside a .zip archive; a single top-level folder wrapping everything is looked through."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        try:
            self._zip = zipfile.ZipFile(path)
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path}: not a readable zip archive ({exc})") from None
        names = [i.filename for i in infos]
        tops = {n.split("/", 1)[0] for n in names}
        # Archives made by zipping a folder wrap everything in it; CVAT's do not.
        self.prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in n for n in names) else ""
        self._infos = {i.filename[len(self.prefix) :]: i for i in infos}
        dirs: dict[str, set[str]] = {}
        for name in self._infos:
            parts = name.split("/")
            for depth in range(len(parts)):
                dirs.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
        self._dirs = {k: sorted(v) for k, v in dirs.items()}

    def is_file(self, rel: str) -> bool:
        return rel in self._infos

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self._zip.read(self._infos[rel])
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetError(f"{self.describe(rel)}: cannot read from archive ({exc})") from None

    def size(self, rel: str) -> int:
        return self._infos[rel].file_size

    def open(self, rel: str) -> BinaryIO:
        return self._zip.open(self._infos[rel])

    def listdir(self, rel: str) -> list[str]:
        return self._dirs.get(rel, [])

    def files(self) -> list[str]:
        return sorted(self._infos)

    def describe(self, rel: str) -> str:
        return f"{self.label}:{self.prefix}{rel}"


@dataclass(frozen=True)
class Subset:
    """One annotation file of a dataset and where its images live.

    Attributes:
        name: subset as the source names it (``Train``, ``default``, ``valid``, ``train2017``).
        split: output split it maps to, or None when the name says nothing (``default``).
        json_rel: path of the annotation file inside the tree.
        image_dirs: folders searched, in order, for an image's ``file_name``.
    """

    name: str
    split: str | None
    json_rel: str
    image_dirs: tuple[str, ...]


@dataclass
class Dataset:
    """A dataset found on disk: its layout, file tree and annotation files."""

    layout: str
    tree: Tree
    subsets: list[Subset]
    _by_base: dict[str, list[str]] | None = field(default=None, repr=False)

    def resolve_image(self, subset: Subset, file_name: str) -> str | None:
        """Relative path of an image in the tree, or None when it is not there.

        ``file_name`` is tried in each of the subset's image folders, then (with any folders it names, and
        for absolute or Windows paths from another machine) by its base name anywhere in the tree.

        Raises:
            DatasetError: the base name is found more than once and no folder decides between the files.
        """
        name = safe_relpath(file_name)
        if name is not None:
            for folder in subset.image_dirs:
                rel = posixpath.join(folder, name) if folder else name
                if self.tree.is_file(rel):
                    return rel
        base = PurePosixPath(str(file_name).replace("\\", "/")).name if isinstance(file_name, str) else ""
        if not base:
            return None
        found = self._base_index().get(base, [])
        if len(found) > 1:
            raise DatasetError(
                f"{self.tree.describe(subset.json_rel)}: image {file_name!r} matches "
                f"{self.tree.describe(found[0])} and {self.tree.describe(found[1])}",
                hint="give the file_name with its folder, or remove one of the copies",
            )
        return found[0] if found else None

    def _base_index(self) -> dict[str, list[str]]:
        """Base name -> files, over the whole tree; built on the first name the image folders do not hold."""
        if self._by_base is None:
            index: dict[str, list[str]] = {}
            for rel in self.tree.files():
                if not rel.lower().endswith((".json", ".txt", ".yaml", ".yml", ".xml")):
                    index.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
            self._by_base = index
        return self._by_base


def image_dirs(folder: str, subset: str) -> tuple[str, ...]:
    """Where an annotation file in ``folder`` for ``subset`` has its images, in the order they are tried:
    beside it, ``images/``, ``images/<subset>/``, ``<subset>/`` (relative to its folder, then to the root)."""
    parent = posixpath.dirname(folder) if posixpath.basename(folder) == "annotations" else None
    dirs: list[str] = []
    for base in [folder] + ([parent] if parent is not None else []) + [""]:
        for d in ("", "images", f"images/{subset}", subset):
            rel = posixpath.join(base, d) if base else d
            rel = rel.rstrip("/")
            if rel not in dirs:
                dirs.append(rel)
    return tuple(dirs)


def safe_relpath(file_name: str) -> str | None:
    """``file_name`` as a clean relative POSIX path, or None when it escapes its folder (``..``, absolute)."""
    if not isinstance(file_name, str) or not file_name:
        return None
    path = PurePosixPath(file_name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return None
    clean = "/".join(p for p in path.parts if p not in ("", "."))
    return clean or None


def _open_tree(path: Path) -> Tree:
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".zip":
        return ZipTree(path)
    if path.is_dir():
        return DirTree(path)
    raise DatasetError(f"{path}: not a dataset folder, .zip archive or COCO .json file")


def _check_json_start(tree: Tree, rel: str) -> None:
    """Fail fast, naming the file and position, on an annotation file that cannot be a COCO object."""
    if tree.size(rel) == 0:
        raise DatasetError(f"{tree.describe(rel)}:1:1: malformed JSON (empty file)")
    try:
        with tree.open(rel) as fh:
            head = fh.read(4096)
    except OSError as exc:  # unreadable (permissions, a broken mount): name the file, exit 4
        raise DatasetError(f"{tree.describe(rel)}: cannot read ({exc.strerror or exc})") from None
    text = head.decode("utf-8-sig", errors="replace")
    stripped = text.lstrip()
    if not stripped:
        raise DatasetError(f"{tree.describe(rel)}:1:1: malformed JSON (only whitespace at the start)")
    if stripped[0] != "{":
        skipped = text[: len(text) - len(stripped)]
        line = skipped.count("\n") + 1
        col = len(skipped) - (skipped.rfind("\n") + 1) + 1
        raise DatasetError(
            f"{tree.describe(rel)}:{line}:{col}: malformed JSON (a COCO file is an object, found {stripped[0]!r})"
        )


def _find(tree: Tree, loose_json: str | None) -> tuple[str, list[Subset]]:
    if loose_json is not None:
        folder = posixpath.dirname(loose_json)
        stem = PurePosixPath(loose_json).stem
        return "coco", [Subset(stem, normalize_subset(stem), loose_json, image_dirs(folder, stem))]
    root = tree.listdir("")
    subsets = [
        Subset(d, normalize_subset(d), f"{d}/{RFDETR_FILE}", (d,))
        for d in root
        if tree.is_file(f"{d}/{RFDETR_FILE}")
    ]
    if subsets:
        order = {s: i for i, s in enumerate(SPLITS)}
        subsets.sort(key=lambda s: (order.get(s.split or "", 9), s.name))
        return "rfdetr", subsets
    if tree.is_file(RFDETR_FILE):  # one split folder given directly, or Roboflow's root file with images/
        return "rfdetr", [Subset("default", None, RFDETR_FILE, ("", "images"))]
    files = [f for f in tree.listdir("annotations") if f.lower().endswith(".json")]
    instances = [f for f in files if f.startswith("instances_")]
    if instances:  # COCO 2017 keeps captions_* and person_keypoints_* beside its detection files
        files = instances
    if files:
        # CVAT names its "COCO 1.0" files instances_<subset>.json and its "COCO Keypoints 1.0" files
        # person_keypoints_<subset>.json; both keep the images in images/<subset>/.
        prefixes = ("instances_", "person_keypoints_")
        cvat = all(f.startswith(prefixes) for f in files)
        subsets = []
        for f in files:
            stem = f[: -len(".json")]
            prefix = next((p for p in prefixes if stem.startswith(p)), "")
            name = stem[len(prefix) :]
            dirs = (f"images/{name}", "images", name, "")
            subsets.append(Subset(name, normalize_subset(name), f"annotations/{f}", dirs))
        return ("cvat" if cvat else "coco"), subsets
    loose = [f for f in root if f.lower().endswith(".json") and tree.is_file(f)]
    if len(loose) == 1:
        return _find(tree, loose[0])
    from rfdetr_trainer.coco import yolo

    found = yolo.find_yolo(tree)
    if found is not None:
        return "yolo", found
    hint = ("expected train/_annotations.coco.json, annotations/instances_<subset>.json, annotations/*.json, "
            "a YOLO data.yaml or obj.data")
    raise DatasetError(f"{tree.label}: no COCO dataset found", hint=hint)


def open_dataset(path: Path) -> Dataset:
    """Find the annotation files of a dataset folder, .zip archive or loose COCO .json file (or a YOLO
    dataset, whose labels are converted to COCO annotation files held in memory).

    Raises:
        DatasetError: the path holds no COCO dataset, or an annotation file plainly is not a JSON object.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        tree: Tree = DirTree(path.parent)
        layout, subsets = _find(tree, path.name)
    else:
        tree = _open_tree(path)
        layout, subsets = _find(tree, None)
        if layout == "yolo":
            from rfdetr_trainer.coco import yolo

            tree, subsets = yolo.convert(tree, subsets)
    for subset in subsets:
        _check_json_start(tree, subset.json_rel)
    return Dataset(layout, tree, subsets)


def detect_layout(path: Path) -> str:
    """``"rfdetr"``, ``"cvat"``, ``"coco"`` or ``"yolo"`` for a dataset folder, .zip or .json.

    Raises:
        DatasetError: nothing COCO-shaped is there (the message names the path), or an annotation file is
            malformed at its start (the message names the file and position).
    """
    return open_dataset(path).layout
