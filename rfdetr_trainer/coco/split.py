"""Assign images to train/valid/test: keep the subsets sources have, or re-split by ratio with a seed.

The unit of assignment is an image, or with ``group_by_source`` all of one source's images together, so a
CVAT task's frames (near-duplicates of each other) never straddle splits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from rfdetr_trainer.coco.schema import SPLITS, Finding
from rfdetr_trainer.errors import DatasetError

TRAIN, VALID, TEST = 0, 1, 2


def ratio_split(units: Sequence[Sequence[int]], ratios: Sequence[float], seed: int) -> list[int]:
    """Split index for each unit, close to ``ratios`` by image count, every split non-empty.

    Units are shuffled with ``seed`` (so the result depends only on the inputs) and then dealt to the split
    furthest below its target, except that the last units go to splits still empty. Needs len(units) >= 3.
    """
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    if all(len(u) == 1 for u in units):
        # Single images: exact counts, each split at least one.
        n = len(units)
        n_valid = max(1, round(n * ratios[VALID]))
        n_test = max(1, round(n * ratios[TEST]))
        n_valid = min(n_valid, n - 2)
        n_test = min(n_test, n - 1 - n_valid)
        out = [TRAIN] * n
        for unit in order[:n_valid]:
            out[unit] = VALID
        for unit in order[n_valid : n_valid + n_test]:
            out[unit] = TEST
        return out
    total = sum(len(u) for u in units)
    targets = [r * total for r in ratios]
    sizes = [0, 0, 0]
    out = [TRAIN] * len(units)
    for pos, unit in enumerate(order):
        remaining = len(order) - pos
        empty = [s for s in range(3) if sizes[s] == 0]
        candidates = empty if remaining <= len(empty) else range(3)
        best = max(candidates, key=lambda s: (targets[s] - sizes[s], -s))
        out[unit] = best
        sizes[best] += len(units[unit])
    return out


def _units(images: Sequence[int], groups: Sequence[str] | None) -> list[list[int]]:
    if groups is None:
        return [[i] for i in images]
    by_group: dict[str, list[int]] = {}
    for i in images:
        by_group.setdefault(groups[i], []).append(i)
    return list(by_group.values())


def plan_splits(
    presets: Sequence[int | None],
    groups: Sequence[str],
    *,
    mode: str,
    ratios: Sequence[float],
    seed: int,
    group_by_source: bool,
) -> tuple[list[int], list[Finding]]:
    """Split index (0 train, 1 valid, 2 test) of every image.

    Args:
        presets: split each image's source subset maps to, or None (``default`` and unknown subsets).
        groups: source name of each image.
        mode: ``keep`` (presets stand; unsplit images are split by ratio) or ``ratio`` (all re-split).
        ratios: train, valid, test fractions.
        seed: shuffle seed.
        group_by_source: deal whole sources instead of single images.

    Returns:
        ``(splits, findings)``; findings say when grouping had to fall back to single images.

    Raises:
        DatasetError: fewer than three images, so some split would be empty.
    """
    n = len(presets)
    if n < 3:
        raise DatasetError(
            f"{n} usable image(s): train, valid and test need at least one each",
            hint="add images, or check the findings for images that were dropped",
        )
    findings: list[Finding] = []
    grouping = groups if group_by_source else None

    def units_of(images: list[int]) -> list[list[int]]:
        units = _units(images, grouping)
        if grouping is not None and len(units) < 3 <= len(images):
            findings.append(
                Finding(
                    "split_group_fallback",
                    f"{len(units)} source(s) cannot fill train/valid/test by source; split by image instead",
                )
            )
            return _units(images, None)
        return units

    splits: list[int | None] = [None] * n if mode == "ratio" else list(presets)
    unsplit = [i for i in range(n) if splits[i] is None]
    if unsplit:
        filled = {s for s in splits if s is not None}
        if len(unsplit) >= 3 or not filled:
            units = units_of(unsplit)
            for unit, s in zip(units, ratio_split(units, ratios, seed)):
                for i in unit:
                    splits[i] = s
        else:  # too few to split: they join train
            for i in unsplit:
                splits[i] = TRAIN
    final: list[int] = [s if s is not None else TRAIN for s in splits]
    sizes = [final.count(s) for s in range(3)]
    empty = {s for s in range(3) if sizes[s] == 0}
    if empty:
        # A source with only Train (or only default) subsets: carve the missing splits out of the largest one.
        donor = max(range(3), key=lambda s: (sizes[s], -s))
        units = units_of([i for i in range(n) if final[i] == donor])
        if len(units) >= 3:
            for unit, s in zip(units, ratio_split(units, ratios, seed)):
                if s in empty:
                    for i in unit:
                        final[i] = s
    return final, findings


def split_name(index: int) -> str:
    """``train``, ``valid`` or ``test``."""
    return SPLITS[index]
