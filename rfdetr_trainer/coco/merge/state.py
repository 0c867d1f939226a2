"""What a merge is asked to do, what it returns, and what its passes share while it runs."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.classmap import ClassMap
from rfdetr_trainer.coco.io import decode_text, sha256_bytes
from rfdetr_trainer.coco.layout import Dataset, Subset
from rfdetr_trainer.coco.merge.progress import Progress, stage_progress
from rfdetr_trainer.coco.schema import Finding
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.coco.split import TRAIN


@dataclass(frozen=True)
class MergeOptions:
    """How sources become one dataset.

    Attributes:
        class_map: renames and drops, applied by class name before categories are united.
        split_mode: ``keep`` the subsets sources have, or re-split everything by ``ratio``.
        ratios: train, valid, test fractions.
        seed: seed of every ratio split.
        group_by_source: keep each source's images in one split.
        box_fix: ``clip``, ``drop`` or ``none`` for boxes outside their image.
        copy_images: place image files in the output; False is annotations-only (no image is read,
            so missing files and duplicates are not detected).
        link_images: hard-link images where the filesystem allows, instead of copying bytes.
        strict: fail (leaving no output) when the sources had any error or warning finding.
        skip_missing: drop images that are missing, don't decode or whose size differs from the JSON (with
            their annotations; each is listed in the manifest) instead of failing the merge.
        class_map_file: the class map file, named when one of its entries matches no class.
        class_map_file_names: the class names that file mentions; an unused one is an error (a flag's is a
            warning).
    """

    class_map: ClassMap = field(default_factory=ClassMap)
    split_mode: str = "keep"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    group_by_source: bool = False
    box_fix: str = "clip"
    copy_images: bool = True
    link_images: bool = True
    strict: bool = False
    skip_missing: bool = False
    class_map_file: str | None = None
    class_map_file_names: frozenset[str] = frozenset()


@dataclass
class MergeResult:
    """What a merge produced.

    Attributes:
        output_dir: the dataset folder (``train/``, ``valid/``, ``test/``, manifest).
        manifest_path: ``output_dir/dataset_manifest.json``.
        counts: ``{"images", "annotations", "classes": {name: n}, "splits": {split: {"images",
            "annotations", "background", "classes": {name: n}}}}``.
        findings: problems found in the sources and what was done about each.
        dropped: annotations dropped, by reason.
        totals: images and annotations the sources hold (``{"images", "annotations"}``), for kept / total.
        skipped_images: images ``skip_missing`` dropped (``{"file", "code", "message"}`` each).
        dropped_categories: categories left out as rfdetr leaves them out (Roboflow's synthetic root).
    """

    output_dir: Path
    manifest_path: Path
    counts: dict[str, Any]
    findings: list[Finding]
    dropped: dict[str, int]
    totals: dict[str, int] = field(default_factory=dict)
    skipped_images: list[dict[str, Any]] = field(default_factory=list)
    dropped_categories: list[dict[str, Any]] = field(default_factory=list)


class _Image:
    __slots__ = ("src", "sub", "rec", "rel", "kept", "split", "out_id", "out_name")

    def __init__(self, src: int, sub: int, rec: dict, rel: str | None) -> None:
        self.src, self.sub, self.rec, self.rel = src, sub, rec, rel
        self.kept = -1  # index of the image this one is a byte-identical copy of; set to itself when unique
        self.split = TRAIN
        self.out_id = 0
        self.out_name = ""


class _File:
    """One annotation file: what pass 1 learned, for pass 2 to write.

    Read by the stdlib path, ``starts``/``ends`` are each kept annotation's text span; read by the fast path
    (``span`` set to the annotations array's byte range), ``starts`` holds each kept annotation's index in
    that array and ``ends`` stays empty.
    """

    def __init__(self, src: int, dataset: Dataset, subset: Subset) -> None:
        self.src, self.dataset, self.subset = src, dataset, subset
        self.label = dataset.tree.describe(subset.json_rel)
        self.sha256 = ""
        self.nbytes = 0
        self.starts = array("q")
        self.ends = array("q")
        self.images = array("q")  # global image index, or -1 when the annotation is dropped
        self.cats = array("q")  # output category index
        self.overrides: dict[int, dict] = {}  # annotations whose box was clipped
        self.span: tuple[int, int] | None = None
        self.n_images = 0
        self.n_annotations = 0

    def read_text(self) -> tuple[str, str, int]:
        data = self.dataset.tree.read_bytes(self.subset.json_rel)
        return decode_text(data, self.label), sha256_bytes(data), len(data)

    def read_bytes(self) -> bytes:
        """The file's bytes, checked to be UTF-8 (DatasetError as ``read_text`` raises it)."""
        data = self.dataset.tree.read_bytes(self.subset.json_rel)
        if not data.isascii():
            decode_text(data, self.label)
        return data



class MergeState:
    """The state the passes share: every source's images, annotation files, classes and findings.

    Each pass (:mod:`.read`, :mod:`.plan`, :mod:`.write`, :mod:`.summary`) is a class over this state; the
    merger combines them.
    """

    def __init__(self, sources: Sequence[SourceRef], options: MergeOptions, progress: Progress | None) -> None:
        self.sources = list(sources)
        self.opt = options
        self.progress = stage_progress(progress)
        self.findings: list[Finding] = []
        self.files: list[_File] = []
        self.images: list[_Image] = []
        self.cat_names: list[str] = []
        self.cat_records: list[dict] = []
        self.cat_index: dict[str, int] = {}
        self.class_maps: list[list[dict]] = [[] for _ in self.sources]
        self.dropped: Counter[str] = Counter()
        self.src_dropped: list[Counter[str]] = [Counter() for _ in self.sources]
        self.used_class_map_names: set[str] = set()
        self._split_base: list[int] | None = None  # pass 2: split * classes of each image's stored copy
        self.renamed = 0
        self.duplicate_images = 0
        self.unusable: list[dict[str, Any]] = []  # images missing, undecodable or of another size
        self.rotate: set[int] = set()  # images stored EXIF-rotated: written upright
        self.dropped_categories: list[dict[str, Any]] = []
        self.parent_names: set[str] = set()  # categories that group others in their own file (Roboflow's root)
        self.has_ann = bytearray()  # pass 2: 1 for each stored image that received an annotation
