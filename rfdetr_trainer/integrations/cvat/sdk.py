"""CVAT exports through the official ``cvat-sdk`` (``--cvat-downloader sdk``).

Two departures from ``make_client`` (protocol §2):

- ``Client(url, check_server_version=False)``: SDK 2.80 crashes on ``/server/about`` of servers older than
  2.30 (missing ``logo_url``/``subtitle``), and the version check only ever warns anyway.
- ``wait_for_completion`` is overridden to honour the overall export timeout and our poll period; the SDK's
  own loop has no timeout.

Retries are the SDK's own: ``Configuration.retries`` holds the policy of :mod:`.retry` (the SDK's default is 3
retries of 502/503/504 with no read-timeout limit). The one hand loop left is around a whole export whose
download body broke off, which no transport can retry.

The SDK speaks the current flow only (``POST …/dataset/export``), so it needs a 2.16+ server. Each worker
thread gets its own client because the SDK's ApiClient keeps per-session cookie state.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rfdetr_trainer.errors import AuthError, SourceError
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
from rfdetr_trainer.integrations.cvat.retry import RETRY_STATUSES, describe, retry_policy
from rfdetr_trainer.integrations.progress import TransferProgress
from rfdetr_trainer.logs import get_logger

log = get_logger(__name__)


def _make_client(conn: Connection, deadline_box: threading.local) -> Any:
    from cvat_sdk import Client, Config
    from cvat_sdk.core.client import AccessTokenCredentials

    class _DeadlineClient(Client):
        def wait_for_completion(self, rq_id, *, status_check_period=None, log_prefix=None):  # type: ignore[override]
            from cvat_sdk.core.exceptions import BackgroundRequestException

            deadline: Deadline = getattr(deadline_box, "deadline", None) or Deadline(conn.timeout)
            delays = conn.poll_delays()
            while True:
                request, response = self.api_client.requests_api.retrieve(rq_id)
                if request.status.value == "finished":
                    return request, response
                if request.status.value == "failed":
                    raise BackgroundRequestException(request.message)
                if not deadline.sleep(next(delays)):
                    raise TimeoutError(rq_id)

    client = _DeadlineClient(conn.host, config=Config(status_check_period=conn.poll_interval),
                             check_server_version=False)
    _with_retries(client, conn)
    _default_timeout(client, conn.http_timeout)
    if conn.org is not None:
        client.organization_slug = conn.org
    if conn.access_token:
        client.login(AccessTokenCredentials(conn.access_token))
    else:
        client.login((conn.username or "", conn.password or ""))
    return client


def _with_retries(client: Any, conn: Connection) -> None:
    """Set ``Configuration.retries`` to our policy and rebuild the REST client that reads it.

    ``Client`` creates its ``Configuration`` itself and the REST client copies ``retries`` into its urllib3 pool
    when it is built, so the REST client is built again (before any request: the version check is off).
    """
    from cvat_sdk.api_client.rest import RESTClientObject

    api = client.api_client
    api.configuration.retries = retry_policy(conn)
    api.rest_client.pool_manager.clear()
    api.rest_client = RESTClientObject(api.configuration)


def _default_timeout(client: Any, timeout: tuple[float, float]) -> None:
    """Give every SDK request ``(connect, read)`` limits unless the call sets its own.

    cvat-sdk has no client-wide timeout: its generated REST client passes ``timeout=None`` (wait forever) to
    urllib3 on every call without ``_request_timeout``, which overrides any pool default. All its calls go
    through ``rest_client.request`` (the generated ``GET``/``POST``… helpers call it), so that one method is
    wrapped on this client instance; ``tests/integrations/test_source_timeouts.py`` pins it with a silent server.
    """
    rest = client.api_client.rest_client
    request = rest.request

    def with_timeout(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest.request = with_timeout


class _Reporter:
    """Adapts cvat-sdk's ProgressReporter calls to a TransferProgress (duck-typed; the SDK only calls these)."""

    def __init__(self, progress: TransferProgress) -> None:
        self.progress = progress
        self.total = self.done = 0

    def task(self, **kwargs: Any) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def _ctx():  # type: ignore[no-untyped-def]
            self.start2(**kwargs)
            try:
                yield None
            finally:
                self.finish()

        return _ctx()

    def start2(self, total: int | None = None, **_: Any) -> None:
        self.total = int(total or 0)
        self.progress.expect(nbytes=self.total)

    def advance(self, delta: int) -> None:
        self.done += delta
        self.progress.advance(nbytes=delta)

    def report_status(self, progress: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def rollback(self) -> None:
        """Undo a broken attempt's bytes so a retry does not count twice."""
        self.progress.expect(nbytes=-self.total)
        self.progress.advance(nbytes=-self.done)
        self.total = self.done = 0


class SdkDownloader(Downloader):
    """Exports via ``cvat_sdk`` task/project proxies (``export_dataset``)."""

    name = "sdk"

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._call(None, "login", lambda: _make_client(self.conn, self._local))
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def open(self) -> None:
        self._client()

    def close(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                pass

    def _call(self, target: Target | None, doing: str, fn: Any) -> Any:
        """Run an SDK call once (its transport retries), mapping its exceptions to ours."""
        import urllib3
        from cvat_sdk.api_client.exceptions import ApiException
        from cvat_sdk.core.exceptions import BackgroundRequestException

        try:
            return fn()
        except BackgroundRequestException as exc:
            raise export_failed(self.conn, target, str(exc)) from None  # type: ignore[arg-type]
        except TimeoutError:
            raise export_timeout(self.conn, target) from None  # type: ignore[arg-type]
        except ApiException as exc:
            status = exc.status or 0
            if doing == "login" and status == 400:
                raise AuthError(
                    f"CVAT {self.conn.host}: login as {self.conn.username!r} rejected: {server_detail(exc.body)}",
                    hint=AUTH_HINT,
                ) from None
            if status in RETRY_STATUSES:  # the transport's retries are spent (raise_on_status=False)
                why = f"HTTP {status}: {server_detail(exc.body)}"
                raise gave_up(self.conn, target, doing, why, retried=True) from None
            raise http_error(self.conn, target, status, exc.body, doing=doing) from None
        except urllib3.exceptions.MaxRetryError as exc:
            raise gave_up(self.conn, target, doing, describe(exc.reason, self.conn), retried=True) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, FileExistsError):
                raise
            raise gave_up(self.conn, target, doing, describe(exc, self.conn), retried=False) from None

    def _proxy(self, target: Target) -> Any:
        client = self._client()
        repo = client.tasks if target.kind == "task" else client.projects
        return self._call(target, "reading", lambda: repo.retrieve(target.id))

    def info(self, target: Target) -> dict[str, Any]:
        proxy = self._proxy(target)
        updated = getattr(proxy, "updated_date", None)
        info = {
            "id": target.id,
            "name": getattr(proxy, "name", None),
            "updated_date": updated.isoformat() if hasattr(updated, "isoformat") else updated,
        }
        absent = object()
        # An absent field raises cvat-sdk's ApiAttributeError, an AttributeError, so getattr's default tells a
        # server that has no such field (before 2.24) from a null one, without the proxy's private model.
        mode = getattr(proxy, "validation_mode", absent) if target.kind == "task" else absent
        if mode is not absent:
            info["validation_mode"] = mode
        return info

    def export(self, target: Target, out_zip: Path, progress: TransferProgress) -> None:
        proxy = self._proxy(target)
        self._local.deadline = Deadline(self.conn.timeout)
        reporter = _Reporter(progress)

        def attempts() -> None:
            import urllib3

            for attempt in range(self.conn.retries + 1):
                if attempt:
                    self._local.deadline.sleep(self.conn.backoff(attempt - 1))
                try:
                    proxy.export_dataset(
                        EXPORT_FORMAT,
                        out_zip,
                        include_images=self.conn.include_images,
                        pbar=reporter,
                        status_check_period=self.conn.poll_interval,
                    )
                    return
                except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
                    # A body that broke off after the headers (a request the transport gave up on raises
                    # MaxRetryError instead): export again, as the http downloader does.
                    reporter.rollback()
                    if attempt == self.conn.retries:
                        raise
                    log.warning("CVAT %s: download of %s broke off (%s); exporting again (attempt %d of %d)",
                                self.conn.host, target.label, type(exc).__name__, attempt + 2,
                                self.conn.retries + 1)
                except BaseException:
                    reporter.rollback()
                    raise

        self._call(target, "export", attempts)
        if not out_zip.is_file():
            raise SourceError(
                f"CVAT {self.conn.host}: export of {target.label} went to cloud storage, not to this machine",
                hint="set the task's target storage to local, or use --cvat-downloader http",
            )
