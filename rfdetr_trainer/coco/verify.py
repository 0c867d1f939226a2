"""Checks the merge runs besides its own pass 1: class names and class map entries.

A merge must never exit 0 on a dataset ``inspect``/``train`` would refuse. Pass 1 checks every record and box,
and every image file with the decoder (``coco/images.py``) before anything is written.
"""

from __future__ import annotations

from typing import Any

from rfdetr_trainer.coco.schema import Finding

#: Findings of the merge a user must see as a warning line (each an error with --strict), not only a counter.
LOUD = ("unknown_category", "unknown_image", "duplicate_category_name", "class_map_unused", "box_invalid",
        "bad_record")


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
