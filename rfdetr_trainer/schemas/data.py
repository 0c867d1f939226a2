"""DataConfig: where annotated images come from and how they become train/valid/test."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from rfdetr_trainer.schemas.base import Section


def default_cache_dir() -> Path:
    """The user's cache folder (``~/.cache/rfdetr-trainer`` on Linux), so a fetch from any folder reuses it."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rfdetr-trainer", appauthor=False))


class CvatConfig(Section):
    """CVAT source. Credentials come from CVAT_* environment variables or .env."""

    host: str | None = Field(None, description="CVAT server URL (CVAT_HOST)")
    username: str | None = Field(None, description="CVAT user (CVAT_USERNAME)")
    password: SecretStr | None = Field(None, description="CVAT password (CVAT_PASSWORD)")
    access_token: SecretStr | None = Field(None, description="CVAT personal access token (CVAT_ACCESS_TOKEN)")
    org: str | None = Field(None, description="CVAT organization slug (CVAT_ORG)")
    task_ids: list[int] = Field(default_factory=list, description="CVAT task ids to fetch")
    project_ids: list[int] = Field(default_factory=list, description="CVAT project ids to fetch")
    subsets: list[str] = Field(default_factory=list, description="project subsets to keep (default: all)")
    downloader: Literal["auto", "sdk", "http", "http-legacy"] = Field("auto", description="CVAT client")
    poll_interval: float = Field(2.0, gt=0, description="seconds between export status polls")
    timeout: float = Field(1800.0, gt=0, description="overall seconds allowed for one export")
    concurrency: int = Field(4, ge=1, description="tasks exported and downloaded at once")
    refresh: bool = Field(False, description="export again even if the cached copy is current")
    include_images: bool = Field(True, description="download images with the annotations")
    retries: int = Field(4, ge=0, description="retries on connection errors, timeouts, 429 and 502/503/504")
    retry_backoff: float = Field(1.0, ge=0, description="seconds before the first retry; doubles each time")
    job_stages: list[Literal["annotation", "validation", "acceptance"]] = Field(
        default_factory=list, description="keep only frames of jobs in these stages (default: any)")
    job_states: list[Literal["new", "in-progress", "in progress", "completed", "rejected"]] = Field(
        default_factory=list, description="keep only frames of jobs in these states (default: any)")
    gt_to_test: bool = Field(True, description="frames of ground-truth jobs go to the test split, never to train")
    connect_timeout_s: float = Field(10.0, gt=0, description="seconds to open a connection to CVAT")
    read_timeout_s: float = Field(
        12.0, gt=0, description="seconds CVAT may stay silent on one request (export waits use 'timeout')"
    )


class MinioConfig(Section):
    """MinIO / S3 source. Credentials come from MINIO_* environment variables or .env."""

    endpoint: str | None = Field(None, description="S3 endpoint host[:port] or URL (MINIO_ENDPOINT)")
    access_key: SecretStr | None = Field(None, description="access key (MINIO_ACCESS_KEY)")
    secret_key: SecretStr | None = Field(None, description="secret key (MINIO_SECRET_KEY)")
    region: str | None = Field(None, description="region (MINIO_REGION)")
    secure: bool = Field(True, description="use TLS (MINIO_SECURE)")
    bucket: str | None = Field(None, description="bucket holding the datasets")
    prefixes: list[str] = Field(default_factory=list, description="key prefixes to fetch")
    concurrency: int = Field(16, ge=1, description="parallel transfers")
    refresh: bool = Field(False, description="download again even if unchanged")
    retries: int = Field(4, ge=0, description="retries on connection errors, throttling and 5xx responses")
    upload_to: str | None = Field(None, description="s3://bucket/prefix to upload run artifacts to")
    connect_timeout_s: float = Field(10.0, gt=0, description="seconds to open a connection to the endpoint")
    read_timeout_s: float = Field(12.0, gt=0, description="seconds the endpoint may stay silent on one request")


class LocalConfig(Section):
    """Local COCO folders."""

    dataset_dirs: list[Path] = Field(default_factory=list, description="local dataset folders")


class SplitConfig(Section):
    """How images are split into train/valid/test."""

    mode: Literal["keep", "ratio"] = Field(
        "keep", description="keep the subsets sources have, or re-split by ratio"
    )
    ratios: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train, valid, test fractions")
    seed: int = Field(42, description="seed of the ratio split")
    group_by_source: bool = Field(False, description="keep each source's images in one split")

    @model_validator(mode="after")
    def _ratios_sum(self) -> SplitConfig:
        if (not all(math.isfinite(r) for r in self.ratios) or any(r < 0 for r in self.ratios)
                or abs(sum(self.ratios) - 1.0) > 1e-6):
            raise ValueError(f"split ratios must be finite, non-negative and sum to 1, got {list(self.ratios)}")
        return self


class DataConfig(Section):
    """Data sources and the prepared dataset."""

    source_type: Literal["auto", "local", "cvat", "minio", "clearml"] = Field(
        "auto", description="which source to fetch from (auto: whichever is configured)"
    )
    cvat: CvatConfig = Field(default_factory=CvatConfig)
    minio: MinioConfig = Field(default_factory=MinioConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    class_map: Path | None = Field(None, description="JSON/YAML file renaming, merging or dropping classes")
    box_fix: Literal["clip", "drop", "none"] = Field("clip", description="boxes outside the image: clip or drop")
    strict: bool = Field(False, description="treat dataset warnings as errors")
    skip_missing: bool = Field(
        False, description="drop images that are missing, don't decode or differ in size from the JSON (listed in "
        "the manifest) instead of failing")
    output_dir: Path = Field(Path("data/prepared"), description="where the prepared dataset is written")
    cache_dir: Path = Field(
        default_factory=lambda: default_cache_dir(),
        description="downloaded CVAT/S3 exports, reused when unchanged (default: the user's cache folder)")
    clearml_dataset: str | None = Field(None, description="register the prepared dataset as a ClearML Dataset "
                                        "version of this name (parent: its latest version)")
    clearml_dataset_project: str = Field("rfdetr-trainer", description="ClearML project of registered datasets")
    clearml_dataset_id: str | None = Field(None, description="use this ClearML Dataset version as the source")

    @field_validator("class_map", mode="before")
    @classmethod
    def _empty(cls, value: object) -> object:
        return None if value == "" else value

    def resolved_source(self) -> str:
        """The source to use: ``source_type`` or, for ``auto``, the one that is configured."""
        if self.source_type != "auto":
            return self.source_type
        if self.clearml_dataset_id:
            return "clearml"
        if self.cvat.task_ids or self.cvat.project_ids:
            return "cvat"
        if self.minio.bucket or self.minio.prefixes:
            return "minio"
        return "local"
