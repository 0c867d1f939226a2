"""Legacy CVAT export flow: servers before 2.16, including ``/api/v1`` (1.x) servers (protocol §4).

The only sequence that works on every legacy version: ``GET {P}/{tasks|projects}/{id}/dataset?format=…``
without ``action`` until it answers 201 (202 means "still running", 500 "failed", with the message as a JSON
string), then one ``GET …&action=download`` expecting 200. The download deletes the server's job, so a
dropped download goes back to polling, which starts a new export. A 410 means the server is 2.32 or later and
only speaks the current flow: :class:`LegacyGone` lets the caller switch.
"""

from __future__ import annotations

from pathlib import Path

from rfdetr_trainer.errors import SourceError
from rfdetr_trainer.integrations.cvat.base import (
    EXPORT_FORMAT,
    Connection,
    Deadline,
    Target,
    export_failed,
    export_timeout,
    server_detail,
)
from rfdetr_trainer.integrations.cvat.http import _TRANSIENT, CvatHttp, HttpBackedDownloader
from rfdetr_trainer.integrations.progress import TransferProgress


class LegacyGone(SourceError):
    """The server answered 410: the legacy export endpoint is gone (CVAT 2.32 and later)."""


class LegacyHttpDownloader(HttpBackedDownloader):
    """GET-polling export flow of CVAT 1.x-2.31.

    Args:
        conn: connection settings.
        prefix: ``/api`` (2.x) or ``/api/v1`` (1.x).
    """

    name = "http-legacy"

    def __init__(self, conn: Connection, prefix: str = "/api", transport: CvatHttp | None = None) -> None:
        super().__init__(conn, transport or CvatHttp(conn, prefix))

    def export(self, target: Target, out_zip: Path, progress: TransferProgress) -> None:
        deadline = Deadline(self.conn.timeout)
        # Without images the legacy API has a separate resource with the same state machine.
        resource = "dataset" if self.conn.include_images else "annotations"
        path = f"/{target.collection}/{target.id}/{resource}"
        params = {"format": EXPORT_FORMAT}
        delays = self.conn.poll_delays()
        broken_downloads = failures = 0
        while True:
            resp = self.http.request(
                "GET", path, params=params, target=target, doing="export", ok=(201,),
                passthrough=(202, 410, 500),
            )
            if resp.status_code == 500:
                # A failed export (the job is deleted, so asking again starts a new one) or a transient
                # server error: both are retried, and the server's message is reported if it persists.
                failures += 1
                if failures > self.conn.retries:
                    raise export_failed(self.conn, target, server_detail(resp.content) or "HTTP 500")
                deadline.sleep(self.conn.backoff(failures - 1))
                continue
            if resp.status_code == 410:
                raise LegacyGone(f"CVAT {self.conn.host}: legacy export endpoint is gone (HTTP 410)")
            if resp.status_code == 202:
                if not deadline.sleep(next(delays)):
                    raise export_timeout(self.conn, target)
                continue
            # 201: ready. The download GET deletes the job on the server once served.
            resp = self.http.request(
                "GET", path, params={**params, "action": "download"}, target=target, doing="download",
                passthrough=(202, 400), stream=True,
            )
            if resp.status_code != 200:
                # <= 2.14.2 re-enqueues (202); >= 2.14.3 says "not finished" (400): poll again.
                resp.close()
                continue
            try:
                self.http.stream_to_file(resp, out_zip, progress)
                return
            except _TRANSIENT:
                broken_downloads += 1
                if broken_downloads > self.conn.retries:
                    raise SourceError(
                        f"CVAT {self.conn.host}: download of {target.label} kept breaking off "
                        f"({broken_downloads} attempts)"
                    ) from None
                continue

