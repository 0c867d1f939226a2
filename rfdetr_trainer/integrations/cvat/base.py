"""What every CVAT downloader shares: targets, connection settings, error wording, the downloader interface.

A downloader knows one wire protocol (cvat-sdk, the current REST flow, the legacy GET flow). It answers two
questions for a task or project: "what is its ``updated_date``?" and "write its COCO export to this zip".
Caching, safe extraction and concurrency live in :mod:`.fetch`, so they behave the same whichever protocol
is used.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rfdetr_trainer.errors import AuthError, ConfigError, SourceError
from rfdetr_trainer.integrations.progress import TransferProgress
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.urls import mask_userinfo

log = get_logger(__name__)

EXPORT_FORMAT = "COCO 1.0"
AUTH_HINT = "check CVAT_USERNAME and CVAT_PASSWORD, or CVAT_ACCESS_TOKEN"


@dataclass(frozen=True)
class Target:
    """A CVAT task or project to export."""

    kind: Literal["task", "project"]
    id: int

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def collection(self) -> str:
        """URL path segment: ``tasks`` or ``projects``."""
        return f"{self.kind}s"


@dataclass(frozen=True)
class Connection:
    """Resolved connection settings; the only place CVAT secrets exist as plain strings.

    ``repr`` hides the secrets so an accidental log line or traceback cannot leak them.
    """

    host: str
    username: str | None = None
    password: str | None = None
    access_token: str | None = None
    org: str | None = None
    poll_interval: float = 2.0
    timeout: float = 1800.0
    retries: int = 4
    retry_backoff: float = 1.0
    include_images: bool = True
    #: One HTTP call's limits; see :meth:`silent_server_worst_case` for what they add up to.
    connect_timeout: float = 10.0
    read_timeout: float = 12.0

    @property
    def http_timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, as requests and urllib3 take them."""
        return (self.connect_timeout, self.read_timeout)

    def __repr__(self) -> str:
        return f"Connection(host={self.host!r}, username={self.username!r}, org={self.org!r})"

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), doubling and capped at 30 s."""
        return min(self.retry_backoff * (2**attempt), 30.0)

    def silent_server_worst_case(self) -> float:
        """Seconds until a server that accepts connections and never answers fails a request.

        Every attempt waits one read timeout, with a backoff between attempts: 5 x 12 s + (1 + 2 + 4 + 8) s =
        75 s with the defaults, the figure README.md states.
        """
        return (self.retries + 1) * self.read_timeout + sum(self.backoff(n) for n in range(self.retries))

    def announce(self) -> None:
        """One stderr line before the first request, so a silent server is not a silent wait."""
        log.info("connecting to CVAT %s (each request waits up to %g s, %d attempts: at most %g s if it stays "
                 "silent)", mask_userinfo(self.host), self.read_timeout, self.retries + 1,
                 self.silent_server_worst_case())

    def poll_delays(self):  # type: ignore[no-untyped-def]
        """Poll waits: start at a quarter period (small exports finish fast), then grow to the period."""
        delay = self.poll_interval / 4
        while True:
            yield delay
            delay = min(delay * 2, self.poll_interval)


def normalize_host(host: str) -> str:
    """``cvat.example.com`` -> ``https://cvat.example.com`` (as cvat-sdk does); trailing slash removed."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "https://" + host
    return host


def host_slug(host: str) -> str:
    """A folder name for a server, so two servers' task 1 never share a cache entry."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", host.split("://", 1)[-1]).strip("_") or "cvat"


def connection_from_config(cfg: Any) -> Connection:
    """Build a :class:`Connection` from a ``CvatConfig``, naming the env variable to set when one is missing.

    Raises:
        ConfigError: no host, or neither a token nor a username and password.
    """
    if not cfg.host:
        raise ConfigError("CVAT host is not set", hint="set CVAT_HOST (or data.cvat.host in the config file)")
    token = cfg.access_token.get_secret_value() if cfg.access_token else None
    password = cfg.password.get_secret_value() if cfg.password else None
    if not token:
        if not cfg.username and not password:
            raise ConfigError(
                f"no CVAT credentials for {cfg.host}",
                hint="set CVAT_USERNAME and CVAT_PASSWORD, or CVAT_ACCESS_TOKEN",
            )
        if not cfg.username:
            raise ConfigError(f"CVAT password given without a user for {cfg.host}", hint="set CVAT_USERNAME")
        if not password:
            raise ConfigError(f"CVAT user {cfg.username!r} has no password", hint="set CVAT_PASSWORD")
    return Connection(
        host=normalize_host(cfg.host),
        username=None if token else cfg.username,
        password=None if token else password,
        access_token=token,
        org=cfg.org or None,
        poll_interval=cfg.poll_interval,
        timeout=cfg.timeout,
        retries=getattr(cfg, "retries", 4),
        retry_backoff=getattr(cfg, "retry_backoff", 1.0),
        include_images=cfg.include_images,
        connect_timeout=getattr(cfg, "connect_timeout_s", 10.0),
        read_timeout=getattr(cfg, "read_timeout_s", 12.0),
    )


def server_detail(body: Any) -> str:
    """The server's explanation from an error body, flattened to one short line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    if isinstance(body, dict):
        parts = []
        for key, value in body.items():
            text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(text if key in ("detail", "non_field_errors", "message") else f"{key}: {text}")
        body = "; ".join(parts)
    elif isinstance(body, list):
        body = "; ".join(map(str, body))
    text = " ".join(str(body).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def http_error(
    conn: Connection, target: Target | None, status: int, body: Any, *, doing: str = "request"
) -> SourceError:
    """The one-line error for an HTTP failure: names the server, the task or project, and the status."""
    what = target.label if target else "server"
    detail = server_detail(body) or "no details"
    where = f"CVAT {conn.host}"
    if status == 401:
        return AuthError(f"{where}: not authenticated for {what} (HTTP 401: {detail})", hint=AUTH_HINT)
    if status == 403:
        return AuthError(
            f"{where}: access to {what} is forbidden (HTTP 403: {detail})",
            hint="ask its owner for access, or set CVAT_ORG to the organization that owns it",
        )
    if status == 404:
        return SourceError(f"{where}: {what} not found (HTTP 404: {detail})", hint="check the id")
    return SourceError(f"{where}: {doing} for {what} failed (HTTP {status}: {detail})")


def gave_up(conn: Connection, target: Target | None, doing: str, why: str, *, retried: bool) -> SourceError:
    """The error for a request the transport could not complete; ``retried``: its retries are spent."""
    what = f" for {target.label}" if target else ""
    tries = f" after {conn.retries + 1} attempts" if retried else ""
    return SourceError(f"CVAT {conn.host}: {doing}{what} failed{tries}: {why}",
                       hint="check CVAT_HOST and that the server is up")


def export_failed(conn: Connection, target: Target, message: Any) -> SourceError:
    """The error for an export the server ran and reported as failed."""
    return SourceError(f"CVAT {conn.host}: export of {target.label} failed on the server: {server_detail(message)}")


def export_timeout(conn: Connection, target: Target) -> SourceError:
    """The error for an export still not finished after ``timeout`` seconds."""
    return SourceError(
        f"CVAT {conn.host}: export of {target.label} did not finish within {conn.timeout:g} s",
        hint="raise data.cvat.timeout, or check the server's export workers",
    )


class Deadline:
    """Overall time limit of one export, shared by polling and retries."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when the deadline has passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(seconds, left))
        return True


class Downloader(ABC):
    """One CVAT wire protocol. Instances are shared by the worker threads of a fetch and must be thread-safe."""

    name: str = ""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def open(self) -> None:  # noqa: B027 - optional hook
        """Log in once before worker threads start (so a wrong password fails once, not per task)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    def info(self, target: Target) -> dict[str, Any]:
        """The task or project record; must carry ``updated_date`` (``name`` when the server has one)."""

    @abstractmethod
    def export(self, target: Target, out_zip: Path, progress: TransferProgress) -> None:
        """Export ``target`` in COCO 1.0 and write the archive to ``out_zip`` (complete or not at all)."""
