"""Checks the merge runs besides its own pass 1: image files, class names, class map entries.

A merge must never exit 0 on a dataset ``inspect``/``train`` would refuse. Pass 1 checks every record and box;
the image files the output will hold are checked here, with the same header check ``inspect`` runs, before
anything is written. Reading only headers (on a few threads) keeps this to about one file open per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rfdetr_trainer.coco.schema import ERROR, WARNING, Finding
from rfdetr_trainer.coco.validate import check_image_file
from rfdetr_trainer.errors import DatasetError

#: Findings of the merge a user must see as a warning line (each an error with --strict), not only a counter.
LOUD = ("unknown_category", "unknown_image", "duplicate_category_name", "class_map_unused", "box_invalid",
        "bad_record")
#: Image header checks run at once (I/O bound: each opens a file and reads a few kilobytes).
_THREADS = 8


def check_images(
    images: Sequence[tuple[Any, str, Any, Any, str, Any]], *, strict: bool,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Finding]:
    """Check each ``(tree, rel, width, height, annotation file, id)`` image as ``inspect`` does.

    Returns:
        The warnings (a size that differs from the JSON, often an EXIF rotation).

    Raises:
        DatasetError: an image is unreadable or truncated (or, with ``strict``, has a warning), naming the source
            file; nothing has been written yet.
    """
    def one(item: tuple[Any, str, Any, Any, str, Any]) -> Finding | None:
        tree, rel, width, height, label, image_id = item
        return check_image_file(tree, rel, width, height, label, image_id)

    findings: list[Finding] = []
    with ThreadPoolExecutor(_THREADS) as pool:
        for n, finding in enumerate(pool.map(one, images, chunksize=64), 1):
            if finding is not None:
                findings.append(finding)
            if progress is not None and (n % 500 == 0 or n == len(images)):
                progress("check", n, len(images))
    failing = [f for f in findings if f.severity == ERROR or (strict and f.severity == WARNING)]
    if failing:
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        raise DatasetError(f"{failing[0].message} [{failing[0].code}]{more}; nothing was written",
                           hint="fix or remove it in the source and merge again")
    return findings


def duplicate_name_finding(label: str, name: str, first_id: Any, cid: Any) -> Finding:
    """Two categories of one file share a name: their annotations become one class."""
    return Finding("duplicate_category_name",
                   f"category name {name!r} is used by ids {first_id!r} and {cid!r}; both become one class",
                   label, cid, "merged")


def check_class_map_file(path: str | None, unused: set[str], classes: list[str]) -> None:
    """An entry of the class map *file* that matches no class is an error (a typo would silently keep a class).

    Raises:
        ConfigError: naming the file, the entry and the classes the sources have.
    """
    if not unused:
        return
    from rfdetr_trainer.errors import ConfigError

    names = sorted(unused)
    more = f" (and {len(names) - 1} more: {', '.join(names[1:4])})" if len(names) > 1 else ""
    have = ", ".join(sorted(classes)[:10]) + (", …" if len(classes) > 10 else "")
    raise ConfigError(f"{path or 'class map'}: entry {names[0]!r} matches no class of any source{more}",
                      hint=f"the sources have: {have}")
