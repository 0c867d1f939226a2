"""Merge COCO datasets into one dataset in rfdetr's layout (``train|valid|test/_annotations.coco.json``).

How it stays fast and small on large exports: each annotation file is read twice, never held as objects.
The first pass walks it with the C scanner (:mod:`reader`), checks every record and keeps four integers per
annotation (text span, image, class). The second pass re-emits each annotation's original text with only
``id``, ``image_id`` and ``category_id`` rewritten, so polygons, RLE masks, ``iscrowd``, CVAT ``attributes``
and any other field come out byte for byte as they went in. Only boxes that were clipped, annotations in an
unusual key order, and annotations on duplicated images are re-serialised.

One job per module: :mod:`.state` (options, result, the state the passes share), :mod:`.read` (pass 1),
:mod:`.plan` (duplicates, splits, names), :mod:`.write` (pass 2), :mod:`.summary` (counts, manifest),
:mod:`.merger` (the whole merge), :mod:`.progress` (the progress adapter).
"""

from rfdetr_trainer.coco.merge.merger import _Merger, merge_datasets
from rfdetr_trainer.coco.merge.progress import Progress, stage_progress
from rfdetr_trainer.coco.merge.state import MergeOptions, MergeResult
from rfdetr_trainer.coco.merge.summary import DUPLICATE_RULE
from rfdetr_trainer.coco.merge.write import OUTPUT_INFO

__all__ = [
    "DUPLICATE_RULE", "OUTPUT_INFO", "MergeOptions", "MergeResult", "Progress", "_Merger", "merge_datasets",
    "stage_progress",
]
