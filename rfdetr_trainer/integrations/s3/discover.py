"""Listing a bucket and finding the datasets in it: folders holding COCO JSON, and ``.zip`` archives."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rfdetr_trainer.integrations.archive import safe_relative_path
from rfdetr_trainer.integrations.s3.client import s3_error
from rfdetr_trainer.schemas.data import MinioConfig

_SPLIT_DIRS = {"train", "valid", "val", "validation", "test"}


@dataclass(frozen=True)
class S3Object:
    """One listed object."""

    key: str
    size: int
    etag: str



def list_objects(client: Any, cfg: MinioConfig, bucket: str, prefixes: Iterable[str]) -> list[S3Object]:
    """All objects under the prefixes (de-duplicated, folder markers dropped), sorted by key.

    Each prefix is listed one level deep first; its sub-folders (``train/``, ``valid/``, ``test/``, …) are then
    listed at the same time, so the pages of one folder don't wait for another's (a listing is paged 1,000 keys
    at a time, one round trip each).
    """
    found: dict[str, S3Object] = {}
    paginator = client.get_paginator("list_objects_v2")

    def pages(prefix: str, delimiter: str | None) -> tuple[list[S3Object], list[str]]:
        objects: list[S3Object] = []
        subs: list[str] = []
        kwargs = {"Bucket": bucket, "Prefix": prefix, **({"Delimiter": delimiter} if delimiter else {})}
        try:
            for page in paginator.paginate(**kwargs):
                subs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):
                        objects.append(S3Object(item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"')))
        except Exception as exc:  # noqa: BLE001 - mapped to one clear line
            raise s3_error(cfg, bucket, exc, f"listing prefix {prefix!r}") from exc
        return objects, subs

    for prefix in prefixes:
        top, subs = pages(prefix, "/")
        listed = [top]
        if subs:
            with ThreadPoolExecutor(max_workers=min(len(subs), max(1, cfg.concurrency))) as pool:
                listed.extend(objects for objects, _ in pool.map(lambda sub: pages(sub, None), subs))
        for objects in listed:
            for obj in objects:
                found[obj.key] = obj
    return [found[k] for k in sorted(found)]


def dataset_root(key: str) -> str:
    """The dataset folder a COCO JSON key belongs to (``""`` is the bucket root)."""
    parts = key.split("/")
    folders = parts[:-1]
    if folders and folders[-1] == "annotations":
        folders = folders[:-1]
    elif folders and folders[-1].lower() in _SPLIT_DIRS:
        folders = folders[:-1]
    return "/".join(folders)


def _inside(key: str, root: str) -> bool:
    return root == "" or key.startswith(root + "/")


def find_datasets(objects: list[S3Object]) -> tuple[dict[str, list[S3Object]], list[S3Object]]:
    """Split listed objects into folder datasets (root → members) and .zip datasets."""
    zips = [o for o in objects if o.key.lower().endswith(".zip")]
    files = [o for o in objects if not o.key.lower().endswith(".zip")]
    roots = sorted({dataset_root(o.key) for o in files if o.key.lower().endswith(".json")}, key=len)
    outer: list[str] = []
    for root in roots:
        if not any(_inside(root, r) for r in outer):
            outer.append(root)
    members: dict[str, list[S3Object]] = {r: [] for r in outer}
    for obj in files:
        root = next((r for r in outer if _inside(obj.key, r)), None)
        if root is not None:
            members[root].append(obj)
    return members, zips



def safe_paths(root: Path, objects: list[S3Object]) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """Local path of every key that can be written safely under ``root``, and the keys that can't.

    Unsafe: a key with ``..`` or an absolute path (``safe_relative_path``), and a key whose file another key
    already takes (``a//b`` and ``a/b``; ``a`` as a file and ``a/b`` beneath it). Of two colliding keys the one
    already in its plain form (``a/b``) is kept, else the first in sorted order.

    Returns:
        ``(paths, skipped)``; each skipped entry is ``{"key", "reason"}``.
    """
    paths: dict[str, Path] = {}
    skipped: list[dict[str, str]] = []
    files: dict[PurePosixPath, str] = {}
    dirs: dict[PurePosixPath, str] = {}
    def plain_first(obj: S3Object) -> tuple[bool, str]:
        return ("//" in obj.key or "/./" in obj.key or obj.key.startswith("./") or "\\" in obj.key, obj.key)

    for obj in sorted(objects, key=plain_first):
        try:
            rel = safe_relative_path(obj.key)
        except ValueError as exc:
            skipped.append({"key": obj.key, "reason": f"would escape the output folder ({exc})"})
            continue
        clash = files.get(rel) or dirs.get(rel) or next(
            (files[p] for p in rel.parents if p in files), None)
        if clash is not None:
            skipped.append({"key": obj.key, "reason": f"maps to the same file as key {clash!r}"})
            continue
        files[rel] = obj.key
        for parent in rel.parents:
            dirs.setdefault(parent, obj.key)
        paths[obj.key] = root.joinpath(*rel.parts)
    return paths, skipped

