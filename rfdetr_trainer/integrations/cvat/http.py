"""The project's own CVAT HTTP client, and the current export flow (CVAT 2.16 and later).

Current flow (protocol §3): ``POST /api/{tasks|projects}/{id}/dataset/export?format=…&save_images=…`` → 202
``{"rq_id"}``; poll ``GET /api/requests/{rq_id}`` until ``finished`` (or ``failed`` with the server's message);
download ``result_url`` verbatim (a 2.16–2.31 server hands out the legacy ``…&action=download`` URL there).

Authentication (protocol §1): a personal access token goes out as ``Bearer``; a user and password are
exchanged once at ``…/auth/login`` for a DRF key sent as ``Token``, which every server from 0.5 to 2.7x accepts
without CSRF. Retries are urllib3's, mounted on each session (:mod:`.retry`); the loops here follow the export
state machine only (409, an expired result URL, a body that breaks off).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError

from rfdetr_trainer.errors import AuthError, SourceError
from rfdetr_trainer.integrations.archive import temp_sibling
from rfdetr_trainer.integrations.cvat.base import (
    AUTH_HINT,
    EXPORT_FORMAT,
    Connection,
    Deadline,
    Downloader,
    Target,
    export_failed,
    export_timeout,
    gave_up,
    http_error,
    server_detail,
)
from rfdetr_trainer.integrations.cvat.retry import RETRY_METHODS, RETRY_STATUSES, describe, retry_policy
from rfdetr_trainer.integrations.progress import TransferProgress
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)

_CHUNK = 1 << 20
# Connect and read timeouts of one HTTP call come from Connection (data.cvat.connect_timeout_s,
# read_timeout_s); polling and the overall export deadline (data.cvat.timeout) are separate.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _unreachable(exc: requests.RequestException) -> tuple[BaseException, bool]:
    """The urllib3 error behind a requests exception, and whether the session's Retry used up its retries."""
    cause = exc.args[0] if exc.args else exc
    if isinstance(cause, MaxRetryError):
        return cause.reason or cause, True
    return cause, False


class RestartExport(Exception):
    """The download URL no longer serves the file (expired, or a legacy server deleted the job): export again."""


class TruncatedDownload(requests.ConnectionError):
    """The body ended before Content-Length bytes arrived."""


class CvatHttp:
    """Authenticated requests to one CVAT server, with retries and one-line errors.

    Args:
        conn: connection settings.
        prefix: API root, ``/api`` (2.x) or ``/api/v1`` (1.x).
    """

    def __init__(self, conn: Connection, prefix: str = "/api") -> None:
        self.conn = conn
        self.prefix = prefix
        self._local = threading.local()
        self._auth: dict[str, str] = {}
        self._login_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of an API path (``/tasks/1``) or of an absolute URL the server handed out."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/api"):
            return self.conn.host + path
        return f"{self.conn.host}{self.prefix}{path}"

    def _session(self) -> requests.Session:
        # One session per worker thread: requests.Session is not documented as thread-safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=retry_policy(self.conn))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["Accept"] = "application/vnd.cvat+json"
            if self.conn.org:
                session.headers["X-Organization"] = self.conn.org
            self._local.session = session
            sessions = getattr(self, "_sessions", [])
            sessions.append(session)
            self._sessions = sessions
        return session

    def close(self) -> None:
        for session in getattr(self, "_sessions", []):
            session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        target: Target | None = None,
        doing: str = "request",
        ok: Iterable[int] = (200,),
        passthrough: Iterable[int] = (),
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        auth: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """Send a request; the session's Retry retries connection errors, timeouts and 429/502/503/504.

        Args:
            ok: statuses returned to the caller as success.
            passthrough: other statuses returned to the caller to interpret (e.g. 202, 410).
            auth: send the credentials (``/server/about`` and login need none).

        Raises:
            AuthError: 401 or 403. SourceError: 404, other 4xx, 5xx, or connection errors and 429/502/503/504
            after all retries.
        """
        ok, passthrough = set(ok), set(passthrough)
        url = self.url(path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, quote_via=quote)
        if auth:
            self.ensure_login()
        try:
            resp = self._session().request(
                method,
                url,
                json=json_body,
                headers=self._auth if auth else None,
                timeout=self.conn.http_timeout,
                stream=stream,
            )
        except _TRANSIENT as exc:
            cause, retried = _unreachable(exc)
            raise gave_up(self.conn, target, doing, describe(cause, self.conn), retried=retried) from None
        if resp.status_code in ok or resp.status_code in passthrough:
            return resp
        if resp.status_code in RETRY_STATUSES and method.upper() in RETRY_METHODS:
            detail = f"HTTP {resp.status_code}: {server_detail(resp.content) or 'no details'}"
            resp.close()
            raise gave_up(self.conn, target, doing, detail, retried=True)
        raise http_error(self.conn, target, resp.status_code, resp.content, doing=doing)

    # -- authentication ---------------------------------------------------------------------------------------

    def ensure_login(self) -> None:
        """Set the auth header once: Bearer for a token, else a DRF key from ``/auth/login``."""
        if self._auth:
            return
        with self._login_lock:
            if self._auth:
                return
            if self.conn.access_token:
                self._auth = {"Authorization": f"Bearer {self.conn.access_token}"}
                return
            resp = self.request(
                "POST",
                "/auth/login",
                json_body={"username": self.conn.username, "password": self.conn.password},
                auth=False,
                doing="login",
                passthrough=(400,),
            )
            if resp.status_code == 400:
                # dj-rest-auth answers a wrong password with 400, not 401 (protocol §6).
                raise AuthError(
                    f"CVAT {self.conn.host}: login as {self.conn.username!r} rejected: "
                    f"{server_detail(resp.content) or 'HTTP 400'}",
                    hint=AUTH_HINT,
                )
            try:
                key = resp.json()["key"]
            except (ValueError, KeyError, TypeError):
                raise SourceError(f"CVAT {self.conn.host}: login answered without a token key") from None
            self._auth = {"Authorization": f"Token {key}"}

    # -- shared operations ------------------------------------------------------------------------------------

    def get_json(self, path: str, *, target: Target | None = None, doing: str = "request") -> Any:
        resp = self.request("GET", path, target=target, doing=doing)
        try:
            return resp.json()
        except ValueError:
            raise SourceError(f"CVAT {self.conn.host}: {doing} returned non-JSON ({resp.status_code})") from None

    def info(self, target: Target) -> dict[str, Any]:
        """The task or project record (for ``updated_date`` and ``name``)."""
        data = self.get_json(f"/{target.collection}/{target.id}", target=target, doing="reading")
        if not isinstance(data, dict):
            raise SourceError(f"CVAT {self.conn.host}: {target.label} record is not an object")
        return data

    def stream_to_file(self, resp: requests.Response, out: Path, progress: TransferProgress) -> int:
        """Write a streamed 200 response to ``out`` via a temporary sibling; truncation raises.

        Raises:
            TruncatedDownload: fewer bytes than Content-Length (the server dropped the connection).
        """
        expected = resp.headers.get("Content-Length")
        expected_n = int(expected) if expected and expected.isdigit() else None
        if expected_n:
            progress.expect(nbytes=expected_n)
        tmp = temp_sibling(out, "part")
        written = 0
        try:
            with resp, open(tmp, "wb") as fh:
                for chunk in resp.iter_content(_CHUNK):
                    fh.write(chunk)
                    written += len(chunk)
                    progress.advance(nbytes=len(chunk))
            if expected_n is not None and written != expected_n:
                raise TruncatedDownload(f"got {written} of {expected_n} bytes")
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if expected_n:
                # Undo this attempt's share of the bar so a retry does not count twice.
                progress.expect(nbytes=-expected_n)
                progress.advance(nbytes=-written)
            raise
        return written

    def download(
        self, url: str, out: Path, progress: TransferProgress, *, target: Target, deadline: Deadline
    ) -> None:
        """GET ``url`` into ``out``, asking again when the body breaks off (the transport cannot retry that).

        Raises:
            RestartExport: the URL answers but no longer serves a file (202, 400, 404, 410).
        """
        for attempt in range(self.conn.retries + 1):
            if attempt:
                deadline.sleep(self.conn.backoff(attempt - 1))
            resp = self.request(
                "GET", url, target=target, doing="download", stream=True, passthrough=(202, 400, 404, 410),
            )
            if resp.status_code != 200:
                resp.close()
                raise RestartExport(f"download answered HTTP {resp.status_code}")
            try:
                self.stream_to_file(resp, out, progress)
                return
            except _TRANSIENT:
                continue
        raise SourceError(
            f"CVAT {self.conn.host}: download of {target.label} kept breaking off "
            f"({self.conn.retries + 1} attempts)"
        )


class HttpBackedDownloader(Downloader):
    """A downloader that talks to CVAT through the project's own :class:`CvatHttp` client."""

    def __init__(self, conn: Connection, transport: CvatHttp) -> None:
        super().__init__(conn)
        self.http = transport

    def open(self) -> None:
        self.http.ensure_login()

    def close(self) -> None:
        self.http.close()

    def info(self, target: Target) -> dict[str, Any]:
        return self.http.info(target)


class HttpDownloader(HttpBackedDownloader):
    """Current REST flow: POST export, poll ``/api/requests``, download ``result_url``."""

    name = "http"

    def __init__(self, conn: Connection, transport: CvatHttp | None = None) -> None:
        super().__init__(conn, transport or CvatHttp(conn, "/api"))

    def export(self, target: Target, out_zip: Path, progress: TransferProgress) -> None:
        deadline = Deadline(self.conn.timeout)
        for _ in range(self.conn.retries + 1):
            result_url = self._prepare(target, deadline)
            try:
                self.http.download(result_url, out_zip, progress, target=target, deadline=deadline)
                return
            except RestartExport:
                continue
        raise SourceError(f"CVAT {self.conn.host}: export of {target.label} could not be downloaded")

    def _start(self, target: Target, deadline: Deadline) -> str:
        params = {"format": EXPORT_FORMAT, "save_images": str(self.conn.include_images).lower()}
        delays = self.conn.poll_delays()
        while True:
            resp = self.http.request(
                "POST",
                f"/{target.collection}/{target.id}/dataset/export",
                params=params,
                target=target,
                doing="export",
                ok=(202,),
                passthrough=(404, 405, 409),
            )
            if resp.status_code in (404, 405):
                # info() already found the target, so the endpoint itself is missing: a server before 2.16.
                raise SourceError(
                    f"CVAT {self.conn.host}: the server has no export endpoint for {target.label} "
                    f"(HTTP {resp.status_code}); it predates CVAT 2.16",
                    hint="use --cvat-downloader http-legacy (or auto)",
                )
            body: Any = None
            try:
                body = resp.json()
            except ValueError:
                pass
            rq_id = body.get("rq_id") if isinstance(body, dict) else None
            if rq_id:
                return str(rq_id)
            if resp.status_code == 202:
                raise SourceError(f"CVAT {self.conn.host}: export of {target.label} started without an rq_id")
            # 409 from 2.16-2.36 carries no rq_id: the same export is running; ask again once it has ended.
            if not deadline.sleep(next(delays)):
                raise export_timeout(self.conn, target)

    def _prepare(self, target: Target, deadline: Deadline) -> str:
        rq_id = self._start(target, deadline)
        delays = self.conn.poll_delays()
        while True:
            resp = self.http.request(
                "GET", f"/requests/{quote(rq_id, safe='')}", target=target, doing="export status",
                passthrough=(404,),
            )
            if resp.status_code == 404:
                # The request vanished (server restart, TTL): start the export again.
                rq_id = self._start(target, deadline)
                continue
            status = resp.json()
            state = status.get("status")
            if state == "finished":
                url = status.get("result_url")
                if not url:
                    raise SourceError(f"CVAT {self.conn.host}: export of {target.label} finished without a URL")
                return str(url)
            if state == "failed":
                raise export_failed(self.conn, target, status.get("message") or "no message")
            if not deadline.sleep(next(delays)):
                raise export_timeout(self.conn, target)
