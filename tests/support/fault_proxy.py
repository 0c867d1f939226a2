"""An HTTP proxy in front of a loopback server that injects faults: 5xx answers and connections dropped
halfway through a body. Used to put moto's S3 server through the same faults as the fake CVAT server."""

from __future__ import annotations

import http.client
import re
import threading
from urllib.parse import urlsplit

from support.loopback import Handler, LoopbackServer


class FaultProxy:
    """Forwards to ``upstream``; ``fail(pattern, n, status)`` / ``drop(pattern, n)`` arm faults by request line."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.rules: list[list] = []
        self.log: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Proxy(Handler):
            def _route(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                line = f"{self.command} {self.path}"
                action = None
                with proxy.lock:
                    proxy.log.append(line)
                    for rule in proxy.rules:
                        if rule[1] > 0 and rule[0].search(line):
                            rule[1] -= 1
                            action = rule[2]
                            break
                if isinstance(action, int):
                    data = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_body(action, data, "application/xml")
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if action == "drop" and data:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)
                conn.close()

        self._server = LoopbackServer(Proxy).start()
        self.url = self._server.url

    def fail(self, pattern: str, times: int, status: int = 500) -> None:
        self.rules.append([re.compile(pattern), times, status])

    def drop(self, pattern: str, times: int) -> None:
        self.rules.append([re.compile(pattern), times, "drop"])

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in self.log if rx.search(line))

    def close(self) -> None:
        self._server.close()
