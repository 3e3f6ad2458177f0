"""A misbehaving S3 in front of the moto server: a real HTTP proxy on 127.0.0.1 that forwards every
request to moto, counts them (S3 by method, LIST apart; JSON APIs such as Glue and Athena by
operation), and answers chosen requests with an error instead.

The code under test talks to it exactly as it would to S3 (boto3 over a socket), so a fault seen
here is a fault as the pipeline would meet it: AccessDenied on one prefix, a PUT that keeps failing
with 500 (boto3's retries included), and so on.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}

_ERRORS = {
    403: ("AccessDenied", "Access Denied"),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


@dataclass
class Fault:
    method: str
    path_contains: str
    status: int
    remaining: int | None = None  # None: every matching request

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.path_contains in path and self.remaining != 0


class S3FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target")  # JSON APIs (Glue, Athena): the operation
                fault = proxy._fault(target or self.command, self.path)
                if fault is not None:
                    code, message = _ERRORS[fault.status]
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> S3FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fault(self, method: str, path: str) -> Fault | None:
        path = unquote(path)  # boto3 sends `date=…` as `date%3D…`
        with self._lock:
            kind = method
            if method == "GET" and "list-type=2" in path:
                kind = "LIST"
            self.counts[kind] += 1
            self.log.append((kind, path))
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    def fail(self, method: str, path_contains: str, status: int = 500, times: int | None = None) -> Fault:
        """Answer matching requests with `status` (every time, or the next `times` times)."""
        fault = Fault(method, path_contains, status, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def heal(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()
