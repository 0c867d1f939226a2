"""MinIO / S3 source and artifact upload.

Fetch: every object under the configured prefixes is listed; ``.zip`` objects are datasets of their own
(downloaded, extracted safely, the zip dropped), and folders holding COCO JSON become one dataset each. A
dataset root is found from each ``*.json`` key: ``<root>/annotations/x.json`` (CVAT export),
``<root>/<split>/_annotations.coco.json`` (Roboflow / rfdetr), otherwise the JSON's own folder; nested roots
fold into the outer one.

Local layout::

    <dest>/s3/<bucket>/<key>                    mirrored objects of folder datasets
    <dest>/s3/<bucket>/<key>.extracted/         extracted .zip datasets
    <dest>/s3/.journal/<bucket>.jsonl           ETag and size of every object landed (append-only)

Each object is written to a hidden temporary sibling and renamed when complete, then journaled, so an
interrupted fetch resumes where it stopped; an object whose ETag and size match the journal (and whose file
is intact) is not downloaded again. A key that can't be written safely (``..``, an absolute path, or a second key
mapping to a file another key already takes) is skipped with one warning naming each key and recorded in the
sources' ``origin`` (so in the dataset manifest), and the rest of the prefix is fetched, as ``aws s3 sync``
does; with ``strict`` such a key fails the fetch (exit 5) before anything is written. boto3 is imported inside
functions only (``--help`` must stay light).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rfdetr_trainer.coco import image_probe
from rfdetr_trainer.coco.source import SourceRef
from rfdetr_trainer.errors import AuthError, ConfigError, OutputError, SourceError, TrainerError
from rfdetr_trainer.integrations.archive import (
    extract_zip,
    remove_stale_siblings,
    safe_relative_path,
    temp_sibling,
)
from rfdetr_trainer.integrations.progress import TransferProgress, as_progress
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.urls import mask_userinfo

log = get_logger(__name__)

_SPLIT_DIRS = {"train", "valid", "val", "validation", "test"}
# Above this size an object is fetched with parallel ranged GETs (s3transfer) instead of one GET.
_MULTIPART_THRESHOLD = 32 * 1024 * 1024
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401", "Forbidden"}


@dataclass(frozen=True)
class S3Object:
    """One listed object."""

    key: str
    size: int
    etag: str


# -- client -----------------------------------------------------------------------------------------------------


def endpoint_url(cfg: Any) -> str | None:
    """``host:port`` + ``secure`` → URL; a URL with a scheme is used as given; None means AWS."""
    if not cfg.endpoint:
        return None
    endpoint = cfg.endpoint.strip().rstrip("/")
    if "://" in endpoint:
        return endpoint
    return f"{'https' if cfg.secure else 'http'}://{endpoint}"


def make_client(cfg: Any) -> Any:
    """A boto3 S3 client for ``cfg`` (thread-safe; one per fetch).

    Raises:
        ConfigError: only one of the two keys is set.
    """
    import boto3
    from botocore.config import Config

    access = cfg.access_key.get_secret_value() if cfg.access_key else None
    secret = cfg.secret_key.get_secret_value() if cfg.secret_key else None
    if bool(access) != bool(secret):
        missing = "MINIO_SECRET_KEY" if access else "MINIO_ACCESS_KEY"
        raise ConfigError(f"S3 credentials are incomplete: {missing} is not set", hint=f"set {missing}")
    url = endpoint_url(cfg)
    config = Config(
        max_pool_connections=max(cfg.concurrency, 10),
        retries={"max_attempts": getattr(cfg, "retries", 4) + 1, "mode": "standard"},
        # A silent endpoint fails after (retries + 1) * read_timeout_s plus botocore's backoffs (<= 15 s): 75 s
        # with the defaults, instead of 5 x 120 s behind a progress bar that never moves.
        connect_timeout=getattr(cfg, "connect_timeout_s", 10.0),
        read_timeout=getattr(cfg, "read_timeout_s", 12.0),
        # MinIO and most S3 look-alikes want path-style addressing; AWS itself handles both.
        s3={"addressing_style": "path"} if url else None,
        # Skip client-side CRC work on every small GET/PUT; ETag/size checks cover integrity of landing.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=cfg.region or "us-east-1",
        config=config,
    )


def _where(cfg: Any, bucket: str) -> str:
    return f"S3 {endpoint_url(cfg) or 'aws'} bucket {bucket!r}"


def s3_error(cfg: Any, bucket: str, exc: BaseException, doing: str) -> TrainerError:
    """One-line error for a boto3/botocore exception; credentials problems become AuthError (exit 6)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = _where(cfg, bucket)
    if isinstance(exc, NoCredentialsError):
        return ConfigError(f"{where}: no credentials", hint="set MINIO_ACCESS_KEY and MINIO_SECRET_KEY")
    if isinstance(exc, EndpointConnectionError):
        return SourceError(f"{where}: cannot reach the endpoint while {doing}", hint="check MINIO_ENDPOINT")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = exc.response.get("Error", {}).get("Message", "") or code
        if code in _AUTH_CODES:
            return AuthError(
                f"{where}: access denied while {doing} ({code}: {message})",
                hint="check MINIO_ACCESS_KEY / MINIO_SECRET_KEY and the bucket policy",
            )
        if code in ("NoSuchBucket", "404") and doing.startswith("listing"):
            return SourceError(f"{where}: bucket not found", hint="check --minio-bucket")
        return SourceError(f"{where}: {doing} failed ({code}: {message})")
    return SourceError(f"{where}: {doing} failed ({type(exc).__name__}: {exc})")


def _transient(exc: BaseException) -> bool:
    from botocore.exceptions import (
        ConnectionClosedError,
        EndpointConnectionError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    return isinstance(
        exc,
        (ConnectionClosedError, EndpointConnectionError, IncompleteReadError, ReadTimeoutError,
         ResponseStreamingError, ConnectionError, TimeoutError),
    )


# -- listing and dataset discovery ------------------------------------------------------------------------------


def list_objects(client: Any, cfg: Any, bucket: str, prefixes: Iterable[str]) -> list[S3Object]:
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


# -- journal ----------------------------------------------------------------------------------------------------


class Journal:
    """Append-only record of landed objects: key → (etag, size). A torn last line is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, tuple[str, int]] = {}
        # key -> the image probe of the landed file and the mtime it was probed at (see coco/image_probe.py)
        self.probes: dict[str, tuple[list, int]] = {}
        self._lock = threading.Lock()
        self._fh: Any = None
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                    self.entries[row["key"]] = (row["etag"], int(row["size"]))
                    if "probe" in row:
                        self.probes[row["key"]] = (list(row["probe"]), int(row["mtime_ns"]))
                except (ValueError, KeyError, TypeError):
                    continue

    def matches(self, obj: S3Object) -> bool:
        return self.entries.get(obj.key) == (obj.etag, obj.size)

    def _row(self, key: str) -> str:
        etag, size = self.entries[key]
        row: dict[str, Any] = {"key": key, "etag": etag, "size": size}
        if key in self.probes:
            row["probe"], row["mtime_ns"] = self.probes[key]
        return json.dumps(row) + "\n"

    def record(self, obj: S3Object, probe: tuple | None = None, mtime_ns: int | None = None) -> None:
        with self._lock:
            self.entries[obj.key] = (obj.etag, obj.size)
            if probe is not None and mtime_ns is not None:
                self.probes[obj.key] = (list(probe), mtime_ns)
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._fh.write(self._row(obj.key))
            self._fh.flush()

    def forget(self, key: str) -> None:
        with self._lock:
            self.entries.pop(key, None)
            self.probes.pop(key, None)

    def close(self, *, compact: bool) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            if compact and self.entries:
                tmp = temp_sibling(self.path)
                tmp.write_text("".join(self._row(k) for k in self.entries), encoding="utf-8")
                os.replace(tmp, self.path)


# -- transfers --------------------------------------------------------------------------------------------------


def _retrying(cfg: Any, bucket: str, doing: str, fn: Callable[[], Any]) -> Any:
    """botocore retries requests; this also retries a body that broke off mid-stream."""
    attempts = getattr(cfg, "retries", 4) + 1
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if _transient(exc) and attempt + 1 < attempts:
                time.sleep(min(0.1 * 2**attempt, 5.0))
                continue
            raise s3_error(cfg, bucket, exc, doing) from exc
    raise AssertionError("unreachable")


def download_object(client: Any, cfg: Any, bucket: str, obj: S3Object, target: Path,
                    progress: TransferProgress) -> S3Object:
    """Land one object at ``target`` via a temporary sibling; returns it with the ETag actually served."""
    target.parent.mkdir(parents=True, exist_ok=True)

    def attempt() -> S3Object:
        tmp = temp_sibling(target, "part")
        done = 0
        try:
            if obj.size >= _MULTIPART_THRESHOLD:
                from boto3.s3.transfer import TransferConfig

                def on_bytes(n: int) -> None:
                    nonlocal done
                    done += n
                    progress.advance(nbytes=n)

                client.download_file(bucket, obj.key, str(tmp), Callback=on_bytes,
                                     Config=TransferConfig(max_concurrency=max(2, cfg.concurrency // 2)))
                etag = obj.etag
            else:
                resp = client.get_object(Bucket=bucket, Key=obj.key)
                body = resp["Body"].read()
                if len(body) != resp.get("ContentLength", len(body)):
                    from botocore.exceptions import IncompleteReadError

                    raise IncompleteReadError(actual_bytes=len(body), expected_bytes=resp["ContentLength"])
                tmp.write_bytes(body)
                done = len(body)
                progress.advance(nbytes=done)
                etag = str(resp.get("ETag", obj.etag)).strip('"')
            os.replace(tmp, target)
            return S3Object(obj.key, target.stat().st_size, etag)
        except BaseException:
            tmp.unlink(missing_ok=True)
            progress.advance(nbytes=-done)
            raise

    return _retrying(cfg, bucket, f"downloading {obj.key!r}", attempt)


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


def _digest(objects: list[S3Object]) -> str:
    h = hashlib.sha1()
    for o in objects:
        h.update(f"{o.key}\0{o.etag}\0{o.size}\n".encode())
    return h.hexdigest()[:16]


def fetch_s3(cfg: Any, dest: Path, *, progress: Any = None, strict: bool = False) -> list[SourceRef]:
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
    log.info("listing %s (each request waits up to %g s, %d attempts)", _where(cfg, bucket),
             getattr(cfg, "read_timeout_s", 12.0), getattr(cfg, "retries", 4) + 1)
    objects = list_objects(client, cfg, bucket, prefixes)
    root = Path(dest) / "s3" / bucket
    # Every key is checked before anything is written.
    paths, skipped = safe_paths(root, objects)
    if skipped:
        first = skipped[0]
        if strict:
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            raise SourceError(
                f"{_where(cfg, bucket)}: refusing key {first['key']!r}: it {first['reason']}{more}",
                hint="rename or remove the object, narrow --minio-prefix, or fetch without --strict to skip it",
            )
        log.warning("%s: skipped %d key(s) that can't be written safely: %s", _where(cfg, bucket), len(skipped),
                    "; ".join(f"{k['key']!r} ({k['reason']})" for k in skipped))
        objects = [o for o in objects if o.key in paths]
    folders, zips = find_datasets(objects)
    if not folders and not zips:
        raise SourceError(
            f"{_where(cfg, bucket)}: no dataset under {', '.join(repr(p) for p in prefixes)}",
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
                raise type(exc)(f"{_where(cfg, bucket)}: {obj.key}: {exc.message}") from None
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


# -- upload -----------------------------------------------------------------------------------------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``.

    Raises:
        ConfigError: not an ``s3://`` URI with a bucket.
    """
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"upload target {uri!r} is not s3://bucket/prefix", hint="e.g. --upload-to s3://models/runs")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def upload_artifacts(cfg: Any, paths: list[Path], target: str, *, progress: Any = None) -> list[str]:
    """Upload files and folders (recursively) under ``target`` = ``s3://bucket/prefix``.

    A file lands at ``prefix/<name>``; a folder at ``prefix/<folder name>/<relative path>``. Large files go
    up in parallel multipart chunks.

    Returns:
        The ``s3://`` URIs written, in upload order.

    Raises:
        ConfigError: bad target. OutputError: a path does not exist. AuthError / SourceError: S3 refused.
    """
    from boto3.s3.transfer import TransferConfig

    bucket, prefix = parse_s3_uri(target)
    jobs: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if path.is_file():
            jobs.append((path, path.name))
        elif path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                jobs.append((file, f"{path.name}/{file.relative_to(path).as_posix()}"))
        else:
            raise OutputError(f"cannot upload {path}: no such file or folder")
    keys = [f"{prefix}/{rel}" if prefix else rel for _, rel in jobs]
    bar = as_progress(progress, "upload")
    bar.expect(files=len(jobs), nbytes=sum(p.stat().st_size for p, _ in jobs))
    client = make_client(cfg)
    transfer = TransferConfig(max_concurrency=max(2, cfg.concurrency // 2))

    def send(item: tuple[Path, str]) -> str:
        path, key = item

        def attempt() -> None:
            client.upload_file(str(path), bucket, key, Config=transfer,
                               Callback=lambda n: bar.advance(nbytes=n))

        _retrying(cfg, bucket, f"uploading {path.name} to {key!r}", attempt)
        bar.advance(files=1)
        return f"s3://{bucket}/{key}"

    with ThreadPoolExecutor(max_workers=max(1, min(cfg.concurrency, len(jobs)))) as pool:
        return list(pool.map(send, [(p, k) for (p, _), k in zip(jobs, keys)]))


__all__ = ["fetch_s3", "upload_artifacts", "make_client", "parse_s3_uri"]
