"""Choosing a downloader: explicit, or ``auto`` from the server's ``/server/about`` version (protocol §3-4).

``auto``: 2.16 and later → ``http`` (current flow); older, unknown, or a ``/api/v1`` server → ``http-legacy``,
which switches to ``http`` for good the first time the server answers 410 (legacy endpoint gone, 2.32+).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import ConfigError
from rfdetr_trainer.integrations.cvat.base import Connection, Downloader, Target
from rfdetr_trainer.integrations.cvat.http import CvatHttp, HttpDownloader
from rfdetr_trainer.integrations.cvat.http_legacy import LegacyGone, LegacyHttpDownloader
from rfdetr_trainer.integrations.progress import TransferProgress

CURRENT_FLOW_SINCE = (2, 16)
_API_V1_UNTIL = (2, 0)


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"v2.14.4"`` → ``(2, 14, 4)``; None when there is no version number."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def server_about(conn: Connection) -> tuple[tuple[int, ...] | None, str]:
    """The server's version and API prefix; ``(None, "/api")`` when ``/server/about`` tells nothing.

    ``/api/server/about`` exists on 2.x; 1.x answers only under ``/api/v1``.
    """
    http = CvatHttp(conn)
    try:
        for prefix in ("/api", "/api/v1"):
            resp = http.request("GET", f"{prefix}/server/about", auth=False, doing="reading /server/about",
                                passthrough=(401, 403, 404, 405))
            if resp.status_code == 200:
                try:
                    version = parse_version(str(resp.json().get("version")))
                except (ValueError, AttributeError):
                    version = None
                if version is None:
                    return None, prefix
                return version, "/api/v1" if version < _API_V1_UNTIL else "/api"
        return None, "/api"
    finally:
        http.close()


class FallbackDownloader(Downloader):
    """Legacy flow first; on 410 switch to the current flow for this and every later target."""

    def __init__(self, conn: Connection, prefix: str) -> None:
        super().__init__(conn)
        self.legacy = LegacyHttpDownloader(conn, prefix)
        self.current = HttpDownloader(conn, self.legacy.http if prefix == "/api" else None)
        self._active: Downloader = self.legacy
        self._lock = threading.Lock()

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._active.name

    def open(self) -> None:
        self.legacy.open()

    def close(self) -> None:
        self.legacy.close()
        self.current.close()

    def info(self, target: Target) -> dict[str, Any]:
        return self._active.info(target)

    def export(self, target: Target, out_zip: Path, progress: TransferProgress) -> None:
        active = self._active
        if active is self.legacy:
            try:
                active.export(target, out_zip, progress)
                return
            except LegacyGone:
                with self._lock:
                    self._active = self.current
        self.current.export(target, out_zip, progress)


def make_downloader(conn: Connection, choice: str) -> Downloader:
    """The downloader for ``choice`` (``auto``, ``sdk``, ``http``, ``http-legacy``)."""
    if choice == "sdk":
        from rfdetr_trainer.integrations.cvat.sdk import SdkDownloader

        return SdkDownloader(conn)
    if choice == "http":
        return HttpDownloader(conn)
    if choice not in ("auto", "http-legacy"):
        raise ConfigError(f"unknown CVAT downloader {choice!r}", hint="use auto, sdk, http or http-legacy")
    version, prefix = server_about(conn)
    if choice == "http-legacy":
        return LegacyHttpDownloader(conn, prefix)
    if version is not None and version >= CURRENT_FLOW_SINCE:
        return HttpDownloader(conn)
    return FallbackDownloader(conn, prefix)
