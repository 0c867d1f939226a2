"""The merge from start to end: pass 1, the plan, pass 2 and the manifest, built in a staging folder."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

from rfdetr_trainer.coco.io import staging_dir
from rfdetr_trainer.coco.manifest import MANIFEST_NAME, write_manifest
from rfdetr_trainer.coco.merge.plan import PlanPass
from rfdetr_trainer.coco.merge.progress import Progress
from rfdetr_trainer.coco.merge.read import ReadPass
from rfdetr_trainer.coco.merge.state import MergeOptions, MergeResult
from rfdetr_trainer.coco.merge.summary import SummaryPass
from rfdetr_trainer.coco.merge.write import WritePass
from rfdetr_trainer.coco.schema import ERROR, WARNING, Finding
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import DatasetError, OutputError


class _Merger(ReadPass, PlanPass, WritePass, SummaryPass):
    """One merge's state with every pass over it (each pass lives in its own module)."""


def _raise_if_strict(findings: list[Finding]) -> None:
    failing = [f for f in findings if f.severity in (ERROR, WARNING)]
    if failing:
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        raise DatasetError(
            f"{failing[0].line()} [{failing[0].code}]{more}; --strict allows no findings",
            hint="fix the sources, or merge without --strict and read dataset_manifest.json",
        )


def _check_paths(sources: Sequence[SourceRef], output_dir: Path) -> None:
    out = Path(output_dir).resolve()
    for s in sources:
        src = Path(s.path).resolve()
        if src == out or out in src.parents or src in out.parents:
            raise OutputError(
                f"{output_dir}: overlaps source {s.path}; sources are never modified",
                hint="choose an output folder outside every source",
            )


def merge_datasets(
    sources: Sequence[SourceRef], output_dir: Path, options: MergeOptions, progress: Progress | None = None
) -> MergeResult:
    """Merge ``sources`` into ``output_dir`` in rfdetr's layout, with ``dataset_manifest.json`` beside it.

    The output is built in a temporary sibling folder and renamed into place only when complete; on any
    failure (or interruption) the temporary folder is removed and an earlier output is left as it was.

    Args:
        sources: datasets to merge, in priority order (the first copy of a duplicated image wins).
        output_dir: the dataset folder to create or replace.
        options: class map, split, box fixing, image handling.
        progress: called as ``progress(stage, done, total)`` with stages read, dedupe, write, images.

    Raises:
        DatasetError: a source is missing or malformed, or a split would be empty.
        OutputError: the output overlaps a source or cannot be written.
    """
    if not sources:
        raise DatasetError("no sources to merge")
    output_dir = Path(output_dir)
    _check_paths(sources, output_dir)
    m = _Merger(sources, options, progress)
    # Nothing here builds reference cycles, and collector passes over millions of fresh objects cost ~10%.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _merge(m, sources, output_dir, options)
    finally:
        if gc_was_enabled:
            gc.enable()


def _merge(m: _Merger, sources: Sequence[SourceRef], output_dir: Path, options: MergeOptions) -> MergeResult:
    m.read_all()
    m.dedupe()
    m.assign_splits()
    per_split = m.name_images()
    with staging_dir(output_dir) as tmp:
        counts = m._counts(per_split, m.write(tmp, per_split))
        if options.strict:
            _raise_if_strict(m.findings)
        write_manifest(tmp / MANIFEST_NAME, m.manifest(counts, m.write_origins(tmp, per_split)))
    return MergeResult(
        output_dir=output_dir,
        manifest_path=output_dir / MANIFEST_NAME,
        counts=counts,
        findings=m.findings,
        dropped=dict(sorted(m._all_dropped().items())),
        totals=m.totals(),
        skipped_images=m.unusable,
        dropped_categories=m.dropped_categories,
    )
