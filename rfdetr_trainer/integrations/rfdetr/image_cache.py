"""Decode each training image once: a cache of decoded, resized pixels that later epochs read instead of JPEGs.

rfdetr's ``CocoDetection`` decodes every file through the public module function
``rfdetr.datasets.coco.decode_pil_image(path, draft_size)``, which returns the RGB image *and* its decode scales;
``__getitem__`` then scales the image's annotations by those scales before any transform runs (that is how rfdetr's
own JPEG draft decoding keeps boxes right). For the duration of a fit the cache replaces that module attribute
(``CocoDetection`` looks the name up at each call) with :class:`CachedDecode`, keyed by the file's absolute path
and the draft size rfdetr asks for: it returns the cached image, already resized to what the pipeline needs, with
the scales of that resize, so rfdetr moves the boxes exactly as for its own reduced decode, and every random
augmentation still runs afterwards, per sample, on every epoch. Any file it does not hold goes to rfdetr's
decoder unchanged. Only public names are used (issue 10): the datasets' private ``_decode_image``/``_draft_size``
are not touched; the draft size is the argument rfdetr itself passes (recorded from one sample, see
:func:`probe_draft_size`), and ``tests/integrations/rfdetr/test_image_cache.py`` pins the call this relies on.

The size cached is the one rfdetr itself decides is lossless for the pipeline: the draft size
(``max(largest training scale, 600)`` with scale jitter) on the shorter side for the train split, never upscaled;
validation images stay at full size because rfdetr's evaluator scores against the unscaled annotation file.

All images go into one ``uint8`` buffer filled in the main process before the data loaders start their workers
(threads: the JPEG decoder and Pillow's resize release the GIL), so forked workers share its pages and the patched
function. ``ram`` keeps the buffer in memory; ``disk`` in a file that every process maps; over ``max_bytes`` a
``ram`` cache falls back to ``disk`` with a warning, and without room on disk either to no cache. Workers started
by ``spawn`` re-import rfdetr without the patch and decode from the files, as without a cache.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

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


def key_of(path: Any) -> str:
    """The cache key of an image file: its absolute path (rfdetr passes ``Path(root) / file_name``)."""
    return os.path.abspath(os.fspath(path))


@dataclass(frozen=True)
class Split:
    """One split to cache: its image files (key, height, width from the annotation file) and rfdetr's draft size."""

    name: str
    images: list[tuple[str, int, int]]
    draft_size: int | None


def split_images(folder: Path) -> list[tuple[str, int, int]]:
    """``(key, height, width)`` of every image record in ``folder/_annotations.coco.json`` (rfdetr's layout)."""
    data = json.loads((folder / "_annotations.coco.json").read_text(encoding="utf-8"))
    return [(key_of(folder / img["file_name"]), int(img["height"]), int(img["width"])) for img in data["images"]]


@dataclass
class SplitCache:
    """Decoded pixels of one dataset split: slot per image id, all in one flat ``uint8`` buffer.

    ``store`` is a numpy array (RAM) or ``None`` with ``path`` set (disk; mapped lazily in each process).
    """

    slots: dict[str, tuple[int, int, int]]  # key -> (offset, height, width)
    scales: dict[str, tuple[float, float]]  # key -> decode scales as rfdetr defines them
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
            else:
                self._view = self.store
        return self._view

    def put(self, key: str, pixels: Any, scales: tuple[float, float]) -> bool:
        """Store the RGB ``pixels`` (H, W, 3) of ``key``; False when they don't fit the planned slot."""
        offset, height, width = self.slots[key]
        if tuple(pixels.shape) != (height, width, 3):
            return False
        self.buffer()[offset:offset + height * width * 3] = pixels.reshape(-1)
        self.scales[key] = scales
        return True

    def get(self, key: str) -> tuple[Any, tuple[float, float]] | None:
        """The cached ``(PIL image, scales)`` of ``key``, or None when it isn't cached."""
        scales = self.scales.get(key)
        if scales is None:
            self.misses += 1
            return None
        from PIL import Image

        offset, height, width = self.slots[key]
        pixels = self.buffer()[offset:offset + height * width * 3].reshape(height, width, 3)
        self.hits += 1
        return Image.fromarray(pixels), scales  # (H, W, 3) uint8 -> RGB

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_view"] = None  # a memmap or a tensor view re-opens in the process that unpickles it
        return state


class CachedDecode:
    """Stands in for ``rfdetr.datasets.coco.decode_pil_image``: the cached image when there is one, else rfdetr's.

    Same signature and return value as the original: ``(RGB image, (x_scale, y_scale))``.
    """

    def __init__(self, original: Any, caches: dict[int | None, SplitCache]) -> None:
        self.original = original
        self.caches = caches  # draft size -> the cache filled at that draft size

    def __call__(self, path: Any, draft_size: int | None = None) -> tuple[Any, tuple[float, float]]:
        cache = self.caches.get(draft_size)
        hit = cache.get(key_of(path)) if cache is not None else None
        return hit if hit is not None else self.original(path, draft_size)


def _coco_module() -> Any:
    import rfdetr.datasets.coco as coco_module

    return coco_module


def rfdetr_decoder() -> Any:
    """rfdetr's own ``decode_pil_image`` (the original, also while a cache is installed)."""
    current = _coco_module().decode_pil_image
    return current.original if isinstance(current, CachedDecode) else current


def probe_draft_size(dataset: Any) -> tuple[bool, int | None]:
    """The draft size rfdetr's decoding of ``dataset`` asks for, recorded from one public ``dataset[0]``.

    Returns:
        ``(seen, draft_size)``: ``seen`` is False when the dataset never called ``decode_pil_image`` (not a COCO
        folder dataset: nothing to cache). Random states are restored, so the probe's augmentation draws leave the
        training's sequence as it was.
    """
    import numpy as np
    import torch

    module = _coco_module()
    original = module.decode_pil_image
    asked: list[int | None] = []

    def recording(path: Any, draft_size: int | None = None) -> Any:
        asked.append(draft_size)
        return original(path, draft_size)

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    module.decode_pil_image = recording
    try:
        if len(dataset):
            dataset[0]
    finally:
        module.decode_pil_image = original
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    return (bool(asked), asked[0] if asked else None)


def plan(images: list[tuple[str, int, int]], min_side: int | None) -> tuple[dict[str, tuple[int, int, int]], int]:
    """Slots for every image from the sizes in its annotation file, and the total bytes."""
    slots: dict[str, tuple[int, int, int]] = {}
    offset = 0
    for key, height, width in images:
        height, width = cached_shape(height, width, min_side)
        slots[key] = (offset, height, width)
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
    return np.empty(max(1, nbytes), dtype=np.uint8), None  # forked workers share these pages


def fill(cache: SplitCache, draft_size: int | None, threads: int, decode: Any = None) -> tuple[int, int]:
    """Decode (rfdetr's own decoder, at rfdetr's draft size) and resize every image of ``cache`` into it.

    Returns:
        (images cached, images total); the rest keep rfdetr's decode path.
    """
    import numpy as np
    from PIL import Image

    decode = decode or rfdetr_decoder()

    def one(key: str) -> bool:
        try:
            image, (sx, sy) = decode(Path(key), draft_size)
        except Exception:  # noqa: BLE001 - a file rfdetr can't decode fails there, in rfdetr's words
            return False
        _, height, width = cache.slots[key]
        decoded_w, decoded_h = image.size
        if decoded_w < width or decoded_h < height:
            return False  # smaller than the record says (EXIF-rotated, wrong record): rfdetr decodes it each time
        if image.mode != "RGB":
            image = image.convert("RGB")
        if (decoded_h, decoded_w) != (height, width):
            image = image.resize((width, height), Image.BILINEAR)  # reducing, so antialiased
        # Scales stay relative to the source file, as rfdetr's draft decode reports them.
        scales = (sx * width / decoded_w, sy * height / decoded_h)
        return cache.put(key, np.asarray(image), scales)

    keys = list(cache.slots)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        done = sum(pool.map(one, keys))
    return done, len(keys)


def install(caches: dict[int | None, SplitCache]) -> CachedDecode:
    """Route rfdetr's ``decode_pil_image`` through ``caches`` (until :func:`uninstall`)."""
    decoder = CachedDecode(rfdetr_decoder(), caches)
    _coco_module().decode_pil_image = decoder
    return decoder


def uninstall() -> None:
    """Put rfdetr's own ``decode_pil_image`` back."""
    module = _coco_module()
    if isinstance(module.decode_pil_image, CachedDecode):
        module.decode_pil_image = module.decode_pil_image.original


def build(splits: list[Split], *, mode: str, max_bytes: int, cache_dir: Path,
          threads: int | None = None) -> list[SplitCache]:
    """Cache every split and install the caches in rfdetr's decoder; returns the caches installed.

    The RAM budget covers all splits together: a split that no longer fits goes to disk (with a warning), and
    to no cache when the disk lacks the room too. Two splits asking for the same draft size share one cache.
    """
    if mode == "none":
        return []
    threads = threads or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
    by_draft: dict[int | None, list[Split]] = {}
    for split in splits:
        by_draft.setdefault(split.draft_size, []).append(split)
    caches: dict[int | None, SplitCache] = {}
    ram_left = max_bytes
    for draft_size, group in by_draft.items():
        name = "+".join(s.name for s in group)
        images = list({key: (key, h, w) for s in group for key, h, w in s.images}.values())
        slots, nbytes = plan(images, draft_size)
        split_mode = mode
        if mode == "ram" and nbytes > ram_left:
            log.warning("image cache: %s split needs %.2f GB, over training.cache_max_gb (%.2f GB left); "
                        "caching it on disk instead", name, nbytes / 1e9, max(0, ram_left) / 1e9)
            split_mode = "disk"
        path = cache_dir / f"{name}-{os.getpid()}-{len(caches)}.u8" if split_mode == "disk" else None
        if path is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(cache_dir).free < nbytes * 1.1:
                log.warning("image cache: no room on disk for the %s split (%.2f GB) in %s; not caching it",
                            name, nbytes / 1e9, cache_dir)
                continue
        store, path = _allocate(nbytes, split_mode, path)
        cache = SplitCache(slots=slots, scales={}, nbytes=nbytes, mode=split_mode, path=path, store=store)
        started = time.monotonic()
        done, total = fill(cache, draft_size, threads)
        if split_mode == "ram":
            ram_left -= nbytes
        log.info("image cache (%s): %s split, %d/%d images, %.2f GB, %.1f s", split_mode, name, done, total,
                 nbytes / 1e9, time.monotonic() - started)
        caches[draft_size] = cache
    if caches:
        install(caches)
    return list(caches.values())


def release(installed: list[SplitCache]) -> None:
    """Put rfdetr's decoder back and delete the caches' disk files."""
    uninstall()
    for cache in installed:
        cache._view = None
        cache.store = None
        if cache.path is not None:
            cache.path.unlink(missing_ok=True)


def fit_splits(datamodule: Any) -> list[Split]:
    """The train and valid splits rfdetr's datamodule trains on, from public names only.

    The folder is ``train_config.dataset_dir`` (rfdetr's COCO layout, ``<split>/_annotations.coco.json``); the
    train draft size is what rfdetr's decoding of one sample of the public ``train_dataloader().dataset`` asks
    for; validation decodes at full size (``draft_size_for_transforms`` returns None for every non-train split).
    """
    root = Path(str(datamodule.train_config.dataset_dir))
    if not all((root / name / "_annotations.coco.json").is_file() for name in ("train", "valid")):
        return []
    seen, draft_size = probe_draft_size(datamodule.train_dataloader().dataset)
    if not seen:
        return []
    return [Split("train", split_images(root / "train"), draft_size),
            Split("valid", split_images(root / "valid"), None)]


def make_callback(mode: str, *, cache_max_gb: float, cache_dir: Path) -> Any:
    """The Lightning callback that caches the train/valid images of the fit it joins (None for ``none``)."""
    if mode == "none":
        return None
    from pytorch_lightning import Callback

    class ImageCacheCallback(Callback):
        """Fills the caches after rfdetr's datamodule built its datasets, before any data loader starts."""

        def __init__(self) -> None:
            super().__init__()
            self.installed: list[SplitCache] = []

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            # Lightning runs the datamodule's setup before the callbacks', and forks loader workers only later.
            if stage != "fit" or self.installed:
                return
            splits = fit_splits(trainer.datamodule)
            if not splits:
                log.warning("image cache: rfdetr's datamodule reads no COCO folder dataset; training without a cache")
                return
            self.installed = build(splits, mode=mode, max_bytes=memory_budget(cache_max_gb), cache_dir=cache_dir)

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if stage == "fit":
                release(self.installed)
                self.installed = []

    return ImageCacheCallback()
