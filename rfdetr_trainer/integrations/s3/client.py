"""The boto3 client for a ``MinioConfig``, with its retry policy, and botocore errors as one-line errors."""

from __future__ import annotations

from typing import Any

from rfdetr_trainer.errors import AuthError, ConfigError, SourceError, TrainerError
from rfdetr_trainer.schemas.data import MinioConfig

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401", "Forbidden"}


def endpoint_url(cfg: MinioConfig) -> str | None:
    """``host:port`` + ``secure`` → URL; a URL with a scheme is used as given; None means AWS."""
    if not cfg.endpoint:
        return None
    endpoint = cfg.endpoint.strip().rstrip("/")
    if "://" in endpoint:
        return endpoint
    return f"{'https' if cfg.secure else 'http'}://{endpoint}"


def make_client(cfg: MinioConfig) -> Any:
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
        # The one retry policy of every request (connection errors, timeouts, throttling, 5xx); nothing loops
        # around it. A silent endpoint fails after (retries + 1) * read_timeout_s plus botocore's backoffs
        # (<= 15 s): 75 s with the defaults, instead of 5 x 120 s behind a progress bar that never moves.
        retries={"max_attempts": cfg.retries + 1, "mode": "standard"},
        connect_timeout=cfg.connect_timeout_s,
        read_timeout=cfg.read_timeout_s,
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


def bucket_label(cfg: MinioConfig, bucket: str) -> str:
    """``S3 <endpoint> bucket '<name>'``: how every message names the place."""
    return f"S3 {endpoint_url(cfg) or 'aws'} bucket {bucket!r}"


def s3_error(cfg: MinioConfig, bucket: str, exc: BaseException, doing: str) -> TrainerError:
    """One-line error for a boto3/botocore exception; credentials problems become AuthError (exit 6)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = bucket_label(cfg, bucket)
    # boto3's download_file gives up with RetriesExceededError once s3transfer's attempts are spent: name the cause.
    exc = getattr(exc, "last_exception", None) or exc
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
