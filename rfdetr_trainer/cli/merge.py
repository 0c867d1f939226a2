"""``rfdetr-trainer merge SRC… --output-dir OUT``: several datasets -> one rfdetr train/valid/test folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from rfdetr_trainer.cli import options as o
from rfdetr_trainer.cli.common import emit, load, stdout_to_stderr

Sources = Annotated[list[Path], typer.Argument(
    help="dataset folders, .zip archives or COCO .json files (rfdetr, CVAT or plain COCO layout).",
    show_default=False)]
MergeOutput = Annotated[Optional[Path], typer.Option(
    "--output-dir", "-o", "--data-dir", help="the merged dataset folder (created or replaced atomically).",
    rich_help_panel=o.DATA, show_default=False)]
Rename = Annotated[Optional[list[str]], typer.Option(
    "--rename", help="rename a class: --rename old=new (two old names onto one new name merge them); repeatable.",
    rich_help_panel=o.DATA, show_default=False)]
Drop = Annotated[Optional[list[str]], typer.Option(
    "--drop", help="drop a class and its annotations; repeatable.", rich_help_panel=o.DATA, show_default=False)]


class BoxFixChoice(str, Enum):
    """Values of ``--box-fix`` (Typer renders an Enum as a choice; ``click.Choice`` would tie us to Click)."""

    clip = "clip"
    drop = "drop"
    none = "none"


BoxFix = Annotated[Optional[BoxFixChoice], typer.Option(
    "--box-fix",
    help="boxes outside the image: clip, drop or none (keep).", rich_help_panel=o.DATA, show_default=False)]
NoImages = Annotated[bool, typer.Option(
    "--no-images", help="annotations only: read and write no image files.", rich_help_panel=o.DATA)]
NoLinks = Annotated[bool, typer.Option(
    "--no-links", help="copy image bytes instead of hard-linking them.", rich_help_panel=o.DATA)]


def source_refs(paths: list[Path]) -> list:
    """SourceRefs for local paths, named after the folder or file (made unique with a counter)."""
    from rfdetr_trainer.coco.source import SourceRef

    refs, used = [], set()
    for path in paths:
        base = path.stem if path.suffix.lower() in (".zip", ".json") else path.name
        name, n = base or "source", 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        refs.append(SourceRef(path, name, {"type": "local", "path": str(path)}))
    return refs


def merge_command(
    sources: Sources,
    data_dir: MergeOutput = None,
    split: o.Split = None, split_seed: o.SplitSeed = None, group_by_source: o.GroupBySource = None,
    class_map: o.ClassMap = None, rename: Rename = None, drop: Drop = None, box_fix: BoxFix = None,
    strict: o.Strict = None, skip_missing: o.SkipMissing = None, no_images: NoImages = False,
    no_links: NoLinks = False,
    clearml_dataset: o.ClearMLDataset = None,
    config: o.ConfigFile = None, env_file: o.EnvFile = None, json_out: o.JsonOut = False,
) -> None:
    """Merge datasets: classes united by name, ids renumbered, duplicates stored once, split into
    train/valid/test, with dataset_manifest.json. Prints the output folder last."""
    from rfdetr_trainer.coco.classmap import class_map_from_flags
    from rfdetr_trainer.integrations.progress import stderr_progress
    from rfdetr_trainer.services.merge import merge, publish_version

    settings = load(locals(), {"data.box_fix": box_fix.value} if box_fix is not None else None)
    with stdout_to_stderr(), stderr_progress() as progress:
        result = merge(
            source_refs(sources), settings.data.output_dir, settings.data, copy_images=not no_images,
            link_images=not no_links, class_map=class_map_from_flags(rename or [], drop or []), progress=progress,
        )
        clearml_id = publish_version(result.output_dir, result.manifest_path, settings.data)
    summary = {
        "output_dir": str(result.output_dir),
        "manifest": str(result.manifest_path),
        "images": result.counts["images"],
        "annotations": result.counts["annotations"],
        "kept": f"{result.counts['images']} / {result.totals.get('images', 0)} images, "
                f"{result.counts['annotations']} / {result.totals.get('annotations', 0)} annotations",
        "splits": {s: {k: v for k, v in c.items() if k != "classes"} for s, c in result.counts["splits"].items()},
        "classes": result.counts["classes"],
        "dropped": result.dropped,
        "dropped_categories": [c["name"] for c in result.dropped_categories],
        "skipped_images": len(result.skipped_images),
        "findings": {code: sum(1 for f in result.findings if f.code == code)
                     for code in sorted({f.code for f in result.findings})},
    }
    if clearml_id:
        summary["clearml_dataset_id"] = clearml_id
    emit(summary, as_json=json_out, last_line=None if json_out else str(result.output_dir))
