"""Fetching CVAT tasks and projects: concurrency, the ``updated_date`` cache, safe landing on disk.

Layout under ``dest``::

    cvat/<server>/task-12/                  extracted COCO 1.0 export (annotations/, images/)
    cvat/<server>/task-12.complete.json     completion marker: updated_date and export options
    cvat/<server>/project-7/ …

A folder counts as complete only when its marker exists and matches; the marker is removed before a folder
is replaced and written after the new one is renamed into place, so an interrupted fetch is redone, never
trusted. Downloads land under hidden temporary names that the next fetch of the same target cleans up.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import ConfigError, SourceError, TrainerError
from rfdetr_trainer.integrations.archive import (
    UnsafeArchiveError,
    extract_zip,
    read_json,
    remove_stale_siblings,
    temp_sibling,
    write_json_atomic,
)
from rfdetr_trainer.integrations.cvat.base import (
    EXPORT_FORMAT,
    Connection,
    Downloader,
    Target,
    connection_from_config,
    host_slug,
)
from rfdetr_trainer.integrations.progress import TransferProgress, as_progress
from rfdetr_trainer.urls import mask_userinfo

_INSTANCES = re.compile(r"^instances_(.+)\.json$")


def targets_from_config(cfg: Any) -> list[Target]:
    """Tasks then projects, de-duplicated, in the order given."""
    seen: dict[Target, None] = {}
    for task_id in cfg.task_ids:
        seen[Target("task", int(task_id))] = None
    for project_id in cfg.project_ids:
        seen[Target("project", int(project_id))] = None
    return list(seen)


def _subset_filter(zip_path: Path, wanted: list[str], conn: Connection, target: Target):  # type: ignore[no-untyped-def]
    """An entry filter keeping only the wanted subsets of a project export (names compared case-blind)."""
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    present = {}
    for name in names:
        parts = name.replace("\\", "/").split("/")
        match = _INSTANCES.match(parts[-1]) if len(parts) == 2 and parts[0] == "annotations" else None
        if match:
            present[match.group(1)] = None
    keep_names = {s for s in present if s.lower() in {w.lower() for w in wanted}}
    if not keep_names:
        raise SourceError(
            f"CVAT {conn.host}: {target.label} has none of the subsets {', '.join(wanted)}",
            hint=f"it has: {', '.join(present) or 'no annotation files'}",
        )

    def keep(rel: PurePosixPath) -> bool:
        parts = rel.parts
        if parts[0] == "annotations" and len(parts) == 2:
            match = _INSTANCES.match(parts[1])
            return match is None or match.group(1) in keep_names
        if parts[0] == "images" and len(parts) >= 3 and parts[1] in present:
            return parts[1] in keep_names
        return True  # flat images/ (pre-2.16.1 layout) cannot be told apart by path: keep

    return keep, sorted(keep_names)


def _fetch_one(
    downloader: Downloader,
    conn: Connection,
    target: Target,
    root: Path,
    *,
    subsets: list[str],
    refresh: bool,
    progress: TransferProgress,
) -> SourceRef:
    folder = root / f"{target.kind}-{target.id}"
    marker = folder.with_name(folder.name + ".complete.json")
    remove_stale_siblings(folder)
    remove_stale_siblings(marker)

    record = downloader.info(target)
    wanted = sorted(subsets) if target.kind == "project" else []
    key = {
        "server": mask_userinfo(conn.host),  # written to the cache marker and the manifest: no password
        "kind": target.kind,
        "id": target.id,
        "updated_date": record.get("updated_date"),
        "format": EXPORT_FORMAT,
        "include_images": conn.include_images,
        "subsets_requested": wanted,
    }
    saved = read_json(marker)
    origin: dict[str, Any] = {
        "type": "cvat",
        "server": mask_userinfo(conn.host),
        f"{target.kind}_id": target.id,
        "name": record.get("name"),
        "updated_date": record.get("updated_date"),
    }
    if "validation_mode" in record:  # 2.24+: null says the task has no ground truth (no jobs lookup needed)
        origin["validation_mode"] = record["validation_mode"]
    cached = (
        not refresh
        and folder.is_dir()
        and isinstance(saved, dict)
        and key["updated_date"] is not None
        and all(saved.get(k) == v for k, v in key.items())
    )
    if cached:
        origin.update(downloader=saved.get("downloader"), cached=True)
        if saved.get("subsets"):
            origin["subsets"] = saved["subsets"]
        progress.advance(files=1)
        return SourceRef(path=folder, name=f"cvat-{target.kind}-{target.id}", origin=origin)

    zip_path = temp_sibling(folder, "zip")
    try:
        downloader.export(target, zip_path, progress)
        keep, kept = None, []
        if wanted:
            keep, kept = _subset_filter(zip_path, wanted, conn, target)
        # The old folder stops counting as complete before it is touched.
        marker.unlink(missing_ok=True)
        try:
            extract_zip(zip_path, folder, keep=keep)
        except UnsafeArchiveError as exc:
            raise UnsafeArchiveError(f"CVAT {conn.host}: {target.label}: {exc.message}") from None
    finally:
        zip_path.unlink(missing_ok=True)
    write_json_atomic(marker, {**key, "downloader": downloader.name, "subsets": kept})
    origin.update(downloader=downloader.name, cached=False)
    if kept:
        origin["subsets"] = kept
    progress.advance(files=1)
    return SourceRef(path=folder, name=f"cvat-{target.kind}-{target.id}", origin=origin)


def fetch_cvat(cfg: Any, dest: Path, *, progress: Any = None) -> list[SourceRef]:
    """Export CVAT tasks and projects in COCO 1.0 and extract them under ``dest/cvat/<server>/``.

    One :class:`SourceRef` per task and one per project (a project export holds all its tasks, one
    ``instances_<subset>.json`` per subset; ``cfg.subsets`` keeps only those, case-blind). A target whose
    ``updated_date`` and options match the cached copy is not exported again unless ``cfg.refresh``.

    Args:
        cfg: a ``CvatConfig``.
        dest: root folder for fetched sources.
        progress: None, a ``rich.progress.Progress``, a callback or a TransferProgress (files = targets).

    Returns:
        SourceRefs in the order of ``cfg.task_ids`` then ``cfg.project_ids``; ``origin`` names the server,
        the id, its ``updated_date`` and the downloader used.

    Raises:
        ConfigError: no ids, no host, or no credentials (the message names the variable to set).
        AuthError: credentials rejected or access forbidden (exit 6).
        SourceError: missing id, failed export, unreachable server, unsafe archive (exit 5).
    """
    targets = targets_from_config(cfg)
    if not targets:
        raise ConfigError("no CVAT task or project ids given", hint="pass --cvat-task-ids or --cvat-project-ids")
    conn = connection_from_config(cfg)
    bar = as_progress(progress, "cvat")
    root = Path(dest) / "cvat" / host_slug(conn.host)
    root.mkdir(parents=True, exist_ok=True)

    # Local import keeps select's imports off the --help path (it is cheap, but nothing needs it there).
    from rfdetr_trainer.integrations.cvat.select import make_downloader

    conn.announce()
    downloader = make_downloader(conn, cfg.downloader)
    try:
        downloader.open()
        bar.expect(files=len(targets))
        with ThreadPoolExecutor(max_workers=min(cfg.concurrency, len(targets))) as pool:
            futures = [
                pool.submit(
                    _fetch_one, downloader, conn, t, root, subsets=list(cfg.subsets), refresh=cfg.refresh,
                    progress=bar,
                )
                for t in targets
            ]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            first = failed[0]
            if isinstance(first, TrainerError) and len(failed) > 1:
                more = f" ({len(failed) - 1} more of {len(targets)} targets failed too; the rest are cached)"
                raise type(first)(first.message + more, hint=first.hint) from first
            raise first
        refs = [f.result() for f in futures]
        from rfdetr_trainer.integrations.cvat.jobs import apply_job_views, split_projects

        # A project whose tasks need job views is fetched again task by task (cached like any task).
        def fetch_task(task_id: int) -> SourceRef:
            bar.expect(files=1)
            return _fetch_one(downloader, conn, Target("task", task_id), root, subsets=[], refresh=cfg.refresh,
                              progress=bar)

        refs = split_projects(conn, cfg, refs, fetch_task)
    finally:
        downloader.close()

    return apply_job_views(conn, cfg, refs)
