"""Merge stage: local COCO datasets (any layout) -> one dataset in rfdetr's layout with a manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rfdetr_trainer.coco.classmap import ClassMap, load_class_map
from rfdetr_trainer.coco.merge import MergeOptions, MergeResult, Progress, merge_datasets
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.coco.verify import LOUD
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.schemas.data import DataConfig

log = get_logger(__name__)

__all__ = ["MergeResult", "merge", "merge_options", "publish_version"]


def merge_options(
    data: DataConfig, *, copy_images: bool = True, class_map: ClassMap | None = None, link_images: bool = True
) -> MergeOptions:
    """MergeOptions from the data settings; ``class_map`` (from flags) overrides entries of the class map file."""
    from_file = load_class_map(data.class_map) if data.class_map else ClassMap()
    combined = from_file.combine(class_map) if class_map is not None else from_file
    split = data.split
    return MergeOptions(
        class_map=combined,
        split_mode=split.mode,
        ratios=tuple(split.ratios),
        seed=split.seed,
        group_by_source=split.group_by_source,
        box_fix=data.box_fix,
        copy_images=copy_images,
        link_images=link_images,
        strict=data.strict,
        skip_missing=data.skip_missing,
        class_map_file=str(data.class_map) if data.class_map else None,
        class_map_file_names=frozenset(from_file.names() - (class_map.names() if class_map is not None else set())),
    )


def merge(
    sources: Sequence[SourceRef],
    output_dir: Path,
    data: DataConfig,
    *,
    copy_images: bool = True,
    progress: Progress | None = None,
    class_map: ClassMap | None = None,
    link_images: bool = True,
) -> MergeResult:
    """Merge ``sources`` into ``output_dir`` (``train|valid|test/_annotations.coco.json`` + images) and write
    ``output_dir/dataset_manifest.json``.

    Args:
        sources: datasets on local disk, in priority order (first copy of a duplicated image wins).
        output_dir: folder to create, or a previous merge output to replace atomically.
        data: split, class map file, box fix and strictness settings.
        copy_images: place images in the output (hard links where possible); False writes annotations only.
        progress: called as ``progress(stage, done, total)``.
        class_map: renames/drops from command-line flags, applied over the class map file.
        link_images: allow hard links (False always copies bytes).

    Raises:
        DatasetError: a source is missing or malformed, a split would be empty, or ``data.strict`` is set
            and the sources have findings.
        ConfigError: the class map file is unreadable or malformed, or one of its entries matches no class.
        OutputError: the output folder overlaps a source or cannot be written.
    """
    options = merge_options(data, copy_images=copy_images, class_map=class_map, link_images=link_images)
    result = merge_datasets(sources, Path(output_dir), options, progress)
    if result.skipped_images:
        first = ", ".join(s["file"] for s in result.skipped_images[:3])
        more = f" and {len(result.skipped_images) - 3} more" if len(result.skipped_images) > 3 else ""
        log.warning("--skip-missing dropped %d of %d images (%s%s); each is listed in %s",
                    len(result.skipped_images), result.totals.get("images", 0), first, more, result.manifest_path)
    log.info("kept %d / %d images and %d / %d annotations", result.counts["images"], result.totals.get("images", 0),
             result.counts["annotations"], result.totals.get("annotations", 0))
    for finding in result.findings:
        if finding.code in LOUD:  # each on its own line; a counter in the summary is easy to miss
            log.warning("%s [%s]", finding.line(), finding.code)
    return result


def publish_version(folder: Path, manifest_path: Path | None, data: DataConfig) -> str | None:
    """Register ``folder`` as a new ClearML Dataset version when ``data.clearml_dataset`` names one.

    The parent is the latest version of that name, and the dataset manifest is the version's metadata.

    Returns:
        The new version's id, or None when no dataset name is configured.

    Raises:
        TrackingError: ClearML refused the upload or is unreachable.
    """
    if not data.clearml_dataset:
        return None
    from rfdetr_trainer.integrations.clearml.dataset import register_version

    return register_version(Path(folder), name=data.clearml_dataset, project=data.clearml_dataset_project,
                            manifest_path=manifest_path)
