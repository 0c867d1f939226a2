"""One loopback HTTP server for every test peer (the CVAT test server, the ClearML API server, the fault proxy):
a free port on 127.0.0.1, served from a daemon thread, shut down and closed on exit."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: Any = None  # what the handlers read as ``self.server.state``

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up are not server faults
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler: every method goes to ``_route``; ``send_body`` answers with a sized body."""

    protocol_version = "HTTP/1.1"
    server: LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def send_body(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _route(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET


class LoopbackServer:
    """Serves ``handler`` on a free loopback port (``url``) once started; a context manager, or ``close()``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any = None) -> None:
        self._server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
        self._server.state = state
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):  # noqa: ANN204 - subclasses return themselves
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
