"""A merged dataset is validated as written, before it is renamed into place, and its counts are read from it.

The merge engine keeps compact per-annotation tables instead of objects, and its running counts have missed
annotations moved onto duplicated images; the written files are what training reads, so the summary and
``dataset_manifest.json`` count those. Validation is the same one ``inspect``, ``fetch`` and ``train`` run, so a
merge never exits 0 on a dataset they would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rfdetr_trainer.coco.schema import ERROR, SPLITS, WARNING, Finding
from rfdetr_trainer.coco.validate import validate_dataset
from rfdetr_trainer.errors import DatasetError

#: Findings of the merge a user must see as a warning line (each an error with --strict), not only a counter.
LOUD = ("unknown_category", "unknown_image", "duplicate_category_name", "class_map_unused", "box_invalid",
        "bad_record")
#: Findings the merge derives from its counts; replaced by the ones counted from the written files.
RECOUNTED = ("image_unannotated", "category_unused")


def verify_written(
    staging: Path, final: Path, source_of: Mapping[str, str], *, strict: bool, check_images: bool,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, Any], list[Finding]]:
    """Validate the dataset written in ``staging`` (to be renamed to ``final``); its counts and background findings.

    Args:
        staging: the temporary folder the merge wrote.
        final: where it will be renamed to (named in messages instead of the temporary folder).
        source_of: written image path (as the validator names it) -> the source file it came from.
        strict: warnings fail too.
        check_images: open every written image (off for ``--no-images``).
        progress: ``progress("validate", done, total)``.

    Raises:
        DatasetError: the written dataset has an error (or, with ``strict``, a warning): named by source file.
    """
    report = validate_dataset(staging, box_fix="none", check_images=check_images, progress=progress)
    failing = [f for f in report.findings if f.severity == ERROR or (strict and f.severity == WARNING)]
    if failing:
        first = failing[0]
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        raise DatasetError(
            f"{_rename(first, staging, final, source_of)} [{first.code}]{more}; nothing was written",
            hint="fix or remove it in the source and merge again",
        )
    background = [
        Finding("image_unannotated", f"{entry['background']} image(s) without annotations kept as background",
                f"{name}/_annotations.coco.json", None, "kept")
        for name, entry in ((s, report.counts["splits"].get(s, {})) for s in SPLITS) if entry.get("background")
    ]
    unused = [Finding("category_unused", f"class {name!r} has no annotations", "", n + 1, "kept")
              for n, (name, count) in enumerate(report.counts["classes"].items()) if not count]
    return report.counts, background + unused


def _rename(finding: Finding, staging: Path, final: Path, source_of: Mapping[str, str]) -> str:
    """The finding's line naming source files: an image by its source path, anything else in ``final``."""
    for written, source in source_of.items():
        if written in finding.message:
            return finding.message.replace(written, source)
    return finding.line().replace(str(staging), str(final))


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
