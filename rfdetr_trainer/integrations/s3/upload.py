"""Uploading run artifacts (files and folders) to ``s3://bucket/prefix``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ConfigError, OutputError
from rfdetr_trainer.integrations.progress import as_progress
from rfdetr_trainer.integrations.s3.client import make_client, s3_error
from rfdetr_trainer.schemas.data import MinioConfig


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``.

    Raises:
        ConfigError: not an ``s3://`` URI with a bucket.
    """
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"upload target {uri!r} is not s3://bucket/prefix", hint="e.g. --upload-to s3://models/runs")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def upload_artifacts(cfg: MinioConfig, paths: list[Path], target: str, *, progress: Any = None) -> list[str]:
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
        try:  # botocore retries each request of the upload (make_client); nothing loops around it
            client.upload_file(str(path), bucket, key, Config=transfer, Callback=lambda n: bar.advance(nbytes=n))
        except Exception as exc:  # noqa: BLE001 - mapped to one clear line
            raise s3_error(cfg, bucket, exc, f"uploading {path.name} to {key!r}") from exc
        bar.advance(files=1)
        return f"s3://{bucket}/{key}"

    with ThreadPoolExecutor(max_workers=max(1, min(cfg.concurrency, len(jobs)))) as pool:
        return list(pool.map(send, [(p, k) for (p, _), k in zip(jobs, keys)]))

