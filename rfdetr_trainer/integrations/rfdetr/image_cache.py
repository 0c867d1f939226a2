"""Decode each training image once: a cache of decoded, resized pixels that later epochs read instead of JPEGs.

rfdetr's ``CocoDetection.__getitem__`` decodes the file through ``self._decode_image(image_id)``, which returns the
RGB image *and* its decode scales, and then scales the image's annotations by those scales before any transform
runs (that is how rfdetr's own JPEG draft decoding keeps boxes right). The cache replaces that one method on the
dataset instance: it returns the cached image, already resized to what the pipeline needs, with the scales of that
resize, so rfdetr moves the boxes exactly as it does for its own reduced decode, and every random augmentation
still runs afterwards, per sample, on every epoch. ``_decode_image`` is private; it is the only seam that sits
between decoding and augmentation, and ``tests/integrations/test_image_cache.py`` pins its signature.

The size cached is the one rfdetr itself decides is lossless for the pipeline: the dataset's draft size
(``max(largest training scale, 600)`` with scale jitter) on the shorter side for the train split, never upscaled;
validation images stay at full size because rfdetr's evaluator scores against the unscaled annotation file.

All images go into one ``uint8`` buffer filled in the main process before the data loaders start their workers
(threads: the JPEG decoder and Pillow's resize release the GIL), so forked workers share its pages and nothing is
decoded twice. ``ram`` keeps the buffer in memory (shared memory where workers are spawned, not forked); ``disk``
keeps it in a file that every process maps; over ``max_bytes`` a ``ram`` cache falls back to ``disk`` with a
warning, and without room on disk either to no cache.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

MODES = ("ram", "disk", "none")


def memory_budget(cache_max_gb: float) -> int:
    """Bytes a RAM cache may take: ``cache_max_gb``, but never more than half of the memory available now."""
    limit = int(cache_max_gb * 1024**3)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: trust the configured limit
        return limit
    return min(limit, available // 2)


def cached_shape(height: int, width: int, min_side: int | None) -> tuple[int, int]:
    """(height, width) stored for an image: shorter side brought down to ``min_side``, never up."""
    if not min_side or min(height, width) <= min_side:
        return height, width
    scale = min_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class SplitCache:
    """Decoded pixels of one dataset split: slot per image id, all in one flat ``uint8`` buffer.

    ``store`` is a numpy array (RAM), a torch tensor in shared memory (RAM with spawned workers), or ``None`` with
    ``path`` set (disk; mapped lazily in each process, so the object pickles small).
    """

    slots: dict[int, tuple[int, int, int]]  # image_id -> (offset, height, width)
    scales: dict[int, tuple[float, float]]  # image_id -> decode scales as rfdetr defines them
    nbytes: int
    mode: str
    path: Path | None = None
    store: Any = None
    hits: int = 0
    misses: int = 0
    _view: Any = field(default=None, repr=False)

    def buffer(self) -> Any:
        """The flat uint8 numpy view of the cache (opened on first use in each process)."""
        if self._view is None:
            import numpy as np

            if self.path is not None:
                self._view = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(max(1, self.nbytes),))
            elif hasattr(self.store, "numpy"):
                self._view = self.store.numpy()
            else:
                self._view = self.store
        return self._view

    def put(self, image_id: int, pixels: Any, scales: tuple[float, float]) -> bool:
        """Store the RGB ``pixels`` (H, W, 3) of ``image_id``; False when they don't fit the planned slot."""
        offset, height, width = self.slots[image_id]
        if tuple(pixels.shape) != (height, width, 3):
            return False
        self.buffer()[offset:offset + height * width * 3] = pixels.reshape(-1)
        self.scales[image_id] = scales
        return True

    def get(self, image_id: int) -> tuple[Any, tuple[float, float]] | None:
        """The cached ``(PIL image, scales)`` of ``image_id``, or None when it isn't cached."""
        scales = self.scales.get(image_id)
        if scales is None:
            self.misses += 1
            return None
        from PIL import Image

        offset, height, width = self.slots[image_id]
        pixels = self.buffer()[offset:offset + height * width * 3].reshape(height, width, 3)
        self.hits += 1
        return Image.fromarray(pixels), scales  # (H, W, 3) uint8 -> RGB

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_view"] = None  # a memmap or a tensor view re-opens in the process that unpickles it
        return state


class CachedDecode:
    """Stands in for ``dataset._decode_image``: the cached image when there is one, else the original decode."""

    def __init__(self, original: Any, cache: SplitCache) -> None:
        self.original = original
        self.cache = cache

    def __call__(self, image_id: int) -> tuple[Any, tuple[float, float]]:
        hit = self.cache.get(image_id)
        return hit if hit is not None else self.original(image_id)


def coco_datasets(dataset: Any) -> list[Any]:
    """The rfdetr ``CocoDetection`` datasets inside ``dataset`` (unwrapping Subset/Concat/alignment wrappers)."""
    if dataset is None:
        return []
    if callable(getattr(dataset, "_decode_image", None)) and hasattr(dataset, "coco"):
        return [dataset]
    found: list[Any] = []
    for inner in getattr(dataset, "datasets", None) or []:
        found.extend(coco_datasets(inner))
    if hasattr(dataset, "dataset"):
        found.extend(coco_datasets(dataset.dataset))
    return found


def plan(dataset: Any, min_side: int | None) -> tuple[dict[int, tuple[int, int, int]], int]:
    """Slots for every image of ``dataset`` from the sizes in its annotation file, and the total bytes."""
    slots: dict[int, tuple[int, int, int]] = {}
    offset = 0
    for image_id in dataset.ids:
        record = dataset.coco.imgs[image_id]
        height, width = cached_shape(int(record["height"]), int(record["width"]), min_side)
        slots[int(image_id)] = (offset, height, width)
        offset += height * width * 3
    return slots, offset


def _allocate(nbytes: int, mode: str, path: Path | None) -> tuple[Any, Path | None]:
    import numpy as np

    if mode == "disk":
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            fh.truncate(max(1, nbytes))
        return None, path
    if multiprocessing.get_start_method(allow_none=True) in (None, "fork") and os.name == "posix":
        return np.empty(max(1, nbytes), dtype=np.uint8), None  # forked workers share these pages
    import torch

    # Spawned workers receive the dataset by pickling; a shared-memory tensor travels as a handle, not a copy.
    return torch.empty(max(1, nbytes), dtype=torch.uint8).share_memory_(), None


def fill(dataset: Any, cache: SplitCache, threads: int) -> tuple[int, int]:
    """Decode (rfdetr's own decoder) and resize every image of ``dataset`` into ``cache``.

    Returns:
        (images cached, images total); the rest keep rfdetr's decode path.
    """
    import numpy as np
    from PIL import Image

    original = dataset._decode_image

    def one(image_id: int) -> bool:
        image, (sx, sy) = original(image_id)
        _, height, width = cache.slots[image_id]
        decoded_w, decoded_h = image.size
        if decoded_w < width or decoded_h < height:
            return False  # smaller than the record says (EXIF-rotated, wrong record): rfdetr decodes it each time
        if image.mode != "RGB":
            image = image.convert("RGB")
        if (decoded_h, decoded_w) != (height, width):
            image = image.resize((width, height), Image.BILINEAR)  # reducing, so antialiased
        # Scales stay relative to the source file, as rfdetr's draft decode reports them.
        scales = (sx * width / decoded_w, sy * height / decoded_h)
        return cache.put(image_id, np.asarray(image), scales)

    ids = list(cache.slots)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        done = sum(pool.map(one, ids))
    return done, len(ids)


def install(dataset: Any, cache: SplitCache) -> None:
    """Route ``dataset``'s decoding through ``cache`` (an instance attribute shadowing rfdetr's method)."""
    original = dataset._decode_image
    if isinstance(original, CachedDecode):
        original = original.original
    dataset._decode_image = CachedDecode(original, cache)


def uninstall(dataset: Any) -> None:
    """Undo :func:`install`."""
    if isinstance(dataset.__dict__.get("_decode_image"), CachedDecode):
        del dataset.__dict__["_decode_image"]


def build(datasets: list[tuple[str, Any]], *, mode: str, max_bytes: int, cache_dir: Path,
          threads: int | None = None) -> list[tuple[Any, SplitCache]]:
    """Cache every ``(split, dataset)`` pair and install the caches; returns what was installed.

    The RAM budget covers all splits together: a split that no longer fits goes to disk (with a warning), and
    to no cache when the disk lacks the room too.
    """
    if mode == "none":
        return []
    threads = threads or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
    installed: list[tuple[Any, SplitCache]] = []
    ram_left = max_bytes
    for split, dataset in datasets:
        # Train: the draft size rfdetr computed for its own reduced decode (private; pinned by a test).
        min_side = getattr(dataset, "_draft_size", None) if split == "train" else None
        slots, nbytes = plan(dataset, min_side)
        split_mode = mode
        if mode == "ram" and nbytes > ram_left:
            log.warning("image cache: %s split needs %.2f GB, over training.cache_max_gb (%.2f GB left); "
                        "caching it on disk instead", split, nbytes / 1e9, max(0, ram_left) / 1e9)
            split_mode = "disk"
        path = cache_dir / f"{split}-{os.getpid()}-{len(installed)}.u8" if split_mode == "disk" else None
        if path is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(cache_dir).free < nbytes * 1.1:
                log.warning("image cache: no room on disk for the %s split (%.2f GB) in %s; not caching it",
                            split, nbytes / 1e9, cache_dir)
                continue
        store, path = _allocate(nbytes, split_mode, path)
        cache = SplitCache(slots=slots, scales={}, nbytes=nbytes, mode=split_mode, path=path, store=store)
        started = time.monotonic()
        done, total = fill(dataset, cache, threads)
        if split_mode == "ram":
            ram_left -= nbytes
        log.info("image cache (%s): %s split, %d/%d images, %.2f GB, %.1f s", split_mode, split, done, total,
                 nbytes / 1e9, time.monotonic() - started)
        install(dataset, cache)
        installed.append((dataset, cache))
    return installed


def release(installed: list[tuple[Any, SplitCache]]) -> None:
    """Uninstall the caches and delete their disk files."""
    for dataset, cache in installed:
        uninstall(dataset)
        cache._view = None
        cache.store = None
        if cache.path is not None:
            cache.path.unlink(missing_ok=True)


def make_callback(mode: str, *, cache_max_gb: float, cache_dir: Path) -> Any:
    """The Lightning callback that caches the train/valid images of the fit it joins (None for ``none``)."""
    if mode == "none":
        return None
    from pytorch_lightning import Callback

    class ImageCacheCallback(Callback):
        """Fills the caches after rfdetr's datamodule built its datasets, before any data loader starts."""

        def __init__(self) -> None:
            super().__init__()
            self.installed: list[tuple[Any, SplitCache]] = []

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if stage != "fit" or self.installed:
                return
            datamodule = trainer.datamodule
            # rfdetr's RFDETRDataModule keeps its datasets in these attributes (private; pinned by a test): the
            # public train_dataloader() would build (and log) a loader only to reach the same objects.
            splits = [("train", d) for d in coco_datasets(getattr(datamodule, "_dataset_train", None))]
            splits += [("valid", d) for d in coco_datasets(getattr(datamodule, "_dataset_val", None))]
            if not splits:
                log.warning("image cache: rfdetr's datamodule holds no COCO datasets; training without a cache")
                return
            self.installed = build(splits, mode=mode, max_bytes=memory_budget(cache_max_gb), cache_dir=cache_dir)

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if stage == "fit":
                release(self.installed)
                self.installed = []

    return ImageCacheCallback()
