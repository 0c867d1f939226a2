"""Fetching the datasets under a bucket's prefixes into ``<dest>/s3/<bucket>/``, resumably."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from rfdetr_trainer.coco import image_probe
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import ConfigError, SourceError
from rfdetr_trainer.integrations.archive import extract_zip, remove_stale_siblings, temp_sibling
from rfdetr_trainer.integrations.progress import TransferProgress, as_progress
from rfdetr_trainer.integrations.s3.client import bucket_label, endpoint_url, make_client, s3_error
from rfdetr_trainer.integrations.s3.discover import S3Object, find_datasets, list_objects, safe_paths
from rfdetr_trainer.integrations.s3.journal import Journal
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.schemas.data import MinioConfig
from rfdetr_trainer.urls import mask_userinfo

log = get_logger(__name__)

# Above this size an object is fetched with parallel ranged GETs (s3transfer) instead of one GET.
_MULTIPART_THRESHOLD = 32 * 1024 * 1024


def download_object(client: Any, cfg: MinioConfig, bucket: str, obj: S3Object, target: Path,
                    progress: TransferProgress) -> S3Object:
    """Land one object at ``target`` via a temporary sibling; returns it with the ETag actually served.

    Retries are the libraries': botocore retries every request (:func:`make_client`); s3transfer fetches a large
    object and re-reads a body that broke off mid-stream, ``retries + 1`` attempts in all; a small object's one
    GET gets that same re-read from :func:`_get_body`, as neither library retries the body of a plain GET.

    Raises:
        AuthError, SourceError: the object could not be fetched (one line naming the key).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target, "part")
    done = 0
    try:
        if obj.size >= _MULTIPART_THRESHOLD:
            from boto3.s3.transfer import TransferConfig

            def on_bytes(n: int) -> None:  # s3transfer reports a re-read body's lost bytes as a negative n
                nonlocal done
                done += n
                progress.advance(nbytes=n)

            client.download_file(bucket, obj.key, str(tmp), Callback=on_bytes,
                                 Config=TransferConfig(max_concurrency=max(2, cfg.concurrency // 2),
                                                       num_download_attempts=cfg.retries + 1))
            etag = obj.etag
        else:
            body, etag = _get_body(client, bucket, obj, cfg.retries + 1)
            tmp.write_bytes(body)
            done = len(body)
            progress.advance(nbytes=done)
        os.replace(tmp, target)
        return S3Object(obj.key, target.stat().st_size, etag)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        progress.advance(nbytes=-done)
        if isinstance(exc, Exception):
            raise s3_error(cfg, bucket, exc, f"downloading {obj.key!r}") from exc
        raise


def _get_body(client: Any, bucket: str, obj: S3Object, attempts: int) -> tuple[bytes, str]:
    """A small object's bytes and served ETag in one GET, the body read again when it breaks off mid-stream.

    The GET itself is botocore's to retry; an error it raises is final, so a silent endpoint still fails in the
    time ``make_client`` states. Only a body that broke after the answer began (the errors s3transfer re-reads
    on, ``S3_RETRYABLE_DOWNLOAD_ERRORS``) is fetched again, up to ``attempts`` reads in all.
    """
    from botocore.exceptions import IncompleteReadError
    from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

    for attempt in range(attempts):
        resp = client.get_object(Bucket=bucket, Key=obj.key)
        try:
            body = resp["Body"].read()
            if len(body) != resp.get("ContentLength", len(body)):
                raise IncompleteReadError(actual_bytes=len(body), expected_bytes=resp["ContentLength"])
        except S3_RETRYABLE_DOWNLOAD_ERRORS:
            if attempt + 1 == attempts:
                raise
            continue
        return body, str(resp.get("ETag", obj.etag)).strip('"')
    raise AssertionError("unreachable")


def _digest(objects: list[S3Object]) -> str:
    h = hashlib.sha1()
    for o in objects:
        h.update(f"{o.key}\0{o.etag}\0{o.size}\n".encode())
    return h.hexdigest()[:16]


def fetch_s3(cfg: MinioConfig, dest: Path, *, progress: Any = None, strict: bool = False) -> list[SourceRef]:
    """Download the datasets under ``cfg.prefixes`` of ``cfg.bucket`` to ``dest/s3/<bucket>/``.

    Args:
        cfg: a ``MinioConfig``.
        dest: root folder for fetched sources.
        progress: None, a ``rich.progress.Progress``, a callback or a TransferProgress.
        strict: a key that can't be written safely fails the fetch instead of being skipped.

    Returns:
        One SourceRef per dataset: a folder holding COCO JSON (``origin`` has the bucket, the folder ``key``
        and ``etag``, a digest of its objects' ETags) or an extracted .zip (``key`` and its ``etag``); each
        ``origin`` lists the ``skipped_keys`` under the prefixes, if any.

    Raises:
        ConfigError: no bucket, incomplete keys. AuthError: access denied (exit 6).
        SourceError: unreachable endpoint, missing bucket, unsafe key with ``strict``, nothing found (exit 5).
    """
    if not cfg.bucket:
        raise ConfigError("no S3/MinIO bucket given", hint="pass --minio-bucket (or data.minio.bucket)")
    bucket = cfg.bucket
    prefixes = list(cfg.prefixes) or [""]
    bar = as_progress(progress, "s3")
    client = make_client(cfg)
    log.info("listing %s (each request waits up to %g s, %d attempts)", bucket_label(cfg, bucket),
             cfg.read_timeout_s, cfg.retries + 1)
    objects = list_objects(client, cfg, bucket, prefixes)
    root = Path(dest) / "s3" / bucket
    # Every key is checked before anything is written.
    paths, skipped = safe_paths(root, objects)
    if skipped:
        first = skipped[0]
        if strict:
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            raise SourceError(
                f"{bucket_label(cfg, bucket)}: refusing key {first['key']!r}: it {first['reason']}{more}",
                hint="rename or remove the object, narrow --minio-prefix, or fetch without --strict to skip it",
            )
        log.warning("%s: skipped %d key(s) that can't be written safely: %s", bucket_label(cfg, bucket), len(skipped),
                    "; ".join(f"{k['key']!r} ({k['reason']})" for k in skipped))
        objects = [o for o in objects if o.key in paths]
    folders, zips = find_datasets(objects)
    if not folders and not zips:
        raise SourceError(
            f"{bucket_label(cfg, bucket)}: no dataset under {', '.join(repr(p) for p in prefixes)}",
            hint="expected COCO JSON files or .zip archives under the prefix",
        )

    journal = Journal(Path(dest) / "s3" / ".journal" / f"{bucket}.jsonl")
    refresh = cfg.refresh

    def extracted_dir(obj: S3Object) -> Path:
        return paths[obj.key].with_name(paths[obj.key].name + ".extracted")

    todo: list[tuple[S3Object, bool]] = []
    for members in folders.values():
        for obj in members:
            path = paths[obj.key]
            try:
                st = path.stat()
            except OSError:
                st = None
            if refresh or st is None or st.st_size != obj.size or not journal.matches(obj):
                todo.append((obj, False))
                continue
            known = journal.probes.get(obj.key)
            if known is not None and known[1] == st.st_mtime_ns:
                # Unchanged since it landed and was probed: validation reuses that probe (coco/image_probe.py).
                image_probe.remember(path, tuple(known[0]), st)  # type: ignore[arg-type]
    for obj in zips:
        if refresh or not (journal.matches(obj) and extracted_dir(obj).is_dir()):
            todo.append((obj, True))

    bar.expect(files=len(todo), nbytes=sum(o.size for o, _ in todo))

    def land(item: tuple[S3Object, bool]) -> None:
        obj, is_zip = item
        path = paths[obj.key]
        remove_stale_siblings(path)
        journal.forget(obj.key)
        landed = download_object(client, cfg, bucket, obj, path, bar)
        probe = mtime_ns = None
        if not is_zip and image_probe.is_image_name(obj.key):
            # Validation on the transfer thread, while other objects are still in flight.
            probe, st = image_probe.probe_and_remember(path)
            mtime_ns = st.st_mtime_ns
        if is_zip:
            try:
                extract_zip(path, extracted_dir(obj))
            except SourceError as exc:
                raise type(exc)(f"{bucket_label(cfg, bucket)}: {obj.key}: {exc.message}") from None
            finally:
                path.unlink(missing_ok=True)
        journal.record(S3Object(obj.key, obj.size, landed.etag if landed.size == obj.size else obj.etag),
                       probe, mtime_ns)
        bar.advance(files=1)

    ok = False
    try:
        if todo:
            with ThreadPoolExecutor(max_workers=min(cfg.concurrency, len(todo))) as pool:
                list(pool.map(land, todo))
        ok = True
    finally:
        journal.close(compact=ok)

    endpoint = mask_userinfo(endpoint_url(cfg) or "") or None  # origins go into dataset_manifest.json
    refs: list[SourceRef] = []
    for prefix_root, members in sorted(folders.items()):
        name = prefix_root.replace("/", "-") or "root"
        refs.append(SourceRef(
            path=root.joinpath(*prefix_root.split("/")) if prefix_root else root,
            name=f"s3-{bucket}-{name}",
            origin={"type": "s3", "endpoint": endpoint, "bucket": bucket, "key": prefix_root + "/" if prefix_root
                    else "", "etag": _digest(members), "objects": len(members),
                    **({"skipped_keys": skipped} if skipped else {})},
        ))
    for obj in zips:
        stem = PurePosixPath(obj.key).with_suffix("").as_posix().replace("/", "-")
        refs.append(SourceRef(
            path=extracted_dir(obj),
            name=f"s3-{bucket}-{stem}",
            origin={"type": "s3", "endpoint": endpoint, "bucket": bucket, "key": obj.key, "etag": obj.etag,
                    "size": obj.size, **({"skipped_keys": skipped} if skipped else {})},
        ))
    return refs

