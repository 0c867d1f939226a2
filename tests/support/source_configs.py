"""Config builders for the loopback peers (importable by name: a bare ``conftest`` import is ambiguous when
several test folders have one)."""

from __future__ import annotations

from typing import Any

from rfdetr_trainer.schemas.data import CvatConfig, MinioConfig


def cvat_config(server: Any, **kw: object) -> CvatConfig:
    """A CvatConfig for ``server`` with tiny poll and retry delays so the suite stays fast."""
    base: dict[str, object] = dict(
        host=server.url, username="admin", password="secret", poll_interval=0.02, timeout=20,
        retry_backoff=0.01, retries=3,
    )
    base.update(kw)
    return CvatConfig(**base)  # type: ignore[arg-type]


def minio_config(endpoint: str, bucket: str, **kw: object) -> MinioConfig:
    """A MinioConfig pointing at the moto server."""
    base: dict[str, object] = dict(
        endpoint=endpoint, access_key="testing", secret_key="testing", region="us-east-1", secure=False,
        bucket=bucket, retries=2,
    )
    base.update(kw)
    return MinioConfig(**base)  # type: ignore[arg-type]
