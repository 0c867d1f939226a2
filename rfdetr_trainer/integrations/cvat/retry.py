"""The one retry policy of every CVAT client: a urllib3 ``Retry``, given to the library that sends the requests.

``http`` and ``http-legacy`` mount it on their ``requests.Session`` (``HTTPAdapter(max_retries=…)``); ``sdk``
sets it as cvat-sdk's ``Configuration.retries``. Nothing loops around it: the hand loops left in the
downloaders follow CVAT's export state machine (202/201 polling, 409, 410, an expired result URL, a body that
breaks off mid-download), which no transport can retry.

With ``data.cvat.retries`` = 4, ``retry_backoff`` = 1 s and ``read_timeout_s`` = 12 s, a server that accepts
connections and never answers fails after 5 x 12 s + (1 + 2 + 4 + 8) s = 75 s
(:meth:`Connection.silent_server_worst_case`).
"""

from __future__ import annotations

from itertools import takewhile
from typing import Any

from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from rfdetr_trainer.integrations.cvat.base import Connection
from rfdetr_trainer.logs import get_logger
from rfdetr_trainer.urls import mask_userinfo

log = get_logger(__name__)

#: Throttling and gateway statuses: the request never reached a CVAT worker, or CVAT asks to come back later.
#: A plain 500 is CVAT's own failure (the legacy export flow even uses it to report a failed export), not retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: Methods retried after a read timeout or a retry status. The only POSTs the CVAT clients send are idempotent:
#: login (another key for the same user) and starting an export (the server answers 409 while the same export
#: runs, or runs it again). PATCH (creating annotations) is not, so it is retried only when the connection was
#: never made, which urllib3 always retries.
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"})

#: The longest ``Retry-After`` obeyed, in seconds (the backoff's own cap).
RETRY_AFTER_MAX = 30.0


def describe(error: BaseException | None, conn: Connection) -> str:
    """What went wrong with one call, in words: a silent server reads differently from a refused connection."""
    if isinstance(error, NewConnectionError):  # a ConnectTimeoutError subclass in urllib3 2: test it first
        return f"cannot reach the server ({type(error).__name__})"
    if isinstance(error, ReadTimeoutError):
        return f"no answer within {conn.read_timeout:g} s (data.cvat.read_timeout_s)"
    if isinstance(error, ConnectTimeoutError):
        return f"no connection within {conn.connect_timeout:g} s (data.cvat.connect_timeout_s)"
    return f"cannot reach the server ({type(error).__name__})"


class CvatRetry(Retry):
    """urllib3's ``Retry`` with the schedule ``data.cvat.retry_backoff`` documents and a warning per retry.

    urllib3 retries the first time at once and then waits ``backoff_factor * 2**n``; the setting promises
    ``retry_backoff`` before the first retry, doubling, capped at 30 s (:meth:`Connection.backoff`, the one
    formula). A ``Retry-After`` header is honoured up to :data:`RETRY_AFTER_MAX`, so a proxy asking for an hour
    cannot stall a fetch.
    """

    conn: Connection | None = None

    def new(self, **kw: Any) -> CvatRetry:
        retry = super().new(**kw)
        retry.conn = self.conn
        return retry

    def get_backoff_time(self) -> float:
        errors = len(list(takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
        if errors == 0 or self.conn is None:
            return 0.0
        return self.conn.backoff(errors - 1)

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_MAX)

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, *args: Any, **kwargs: Any) -> CvatRetry:
        retry = super().increment(method, url, response, error, *args, **kwargs)  # raises when exhausted
        if self.conn is not None:
            why = f"HTTP {response.status}" if response is not None and error is None else describe(error, self.conn)
            path = (url or "").split("?", 1)[0]
            log.warning("CVAT %s: %s on %s %s; retrying (attempt %d of %d)", mask_userinfo(self.conn.host), why,
                        method, path, len(retry.history) + 1, self.conn.retries + 1)
        return retry


def retry_policy(conn: Connection) -> CvatRetry:
    """The ``Retry`` for one CVAT server: ``conn.retries`` retries in all, whatever mix of failures uses them.

    ``raise_on_status=False`` hands the last 429/5xx response back, so the error line can quote the server.
    """
    retry = CvatRetry(
        total=conn.retries,
        connect=conn.retries,
        read=conn.retries,
        status=conn.retries,
        other=0,
        allowed_methods=RETRY_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=conn.retry_backoff,
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    retry.conn = conn
    return retry

