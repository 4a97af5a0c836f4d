"""A webhook receiver for tests: a threaded HTTP server that records every request.

    with WebhookRecorder(fail_first=2, fail_status=503) as hook:
        ...  # point the code under test at hook.url_for("/hooks/T000/token")
        (first, second, third) = hook.wait_for(3, timeout=5)
        assert third.json["kind"] == "ModelMonitorNotification"

The first ``fail_first`` requests are answered ``fail_status`` (with a ``Retry-After``
header when ``retry_after`` is given), later ones ``status``. ``delay`` holds every
answer back that many seconds (a receiver slower than the sender's timeout). It binds
127.0.0.1 on a free port by default; e2e tests whose senders run elsewhere can pass
``host="0.0.0.0"`` and build the URL from an address the sender can reach.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: method, path (with query), headers, raw body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler held back by `delay` must not block stop()
    recorder: WebhookRecorder

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hung up (a sender's timeout); loud about the rest."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, delay = self.server.recorder._record(
            RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        )
        if delay:
            self.server.recorder._stopping.wait(delay)
        reply = b"ok" if 200 <= status < 300 else b"error"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = do_GET = _handle  # noqa: N815  (http.server's naming)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default writes paths (which may hold test secrets) to stderr."""


class WebhookRecorder:
    """Records requests on a loopback HTTP server; a context manager (start/stop)."""

    def __init__(
        self,
        *,
        fail_first: int = 0,
        fail_status: int = 503,
        status: int = 200,
        retry_after: str | None = None,
        delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.status = status
        self.retry_after = retry_after
        self.delay = delay
        self._host = host
        self._port = port
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _record(self, request: RecordedRequest) -> tuple[int, dict[str, str], float]:
        with self._lock:
            self._requests.append(request)
            failing = len(self._requests) <= self.fail_first
            self._lock.notify_all()
        if not failing:
            return self.status, {}, self.delay
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return self.fail_status, headers, self.delay

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("WebhookRecorder is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>`` (no trailing slash)."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else f"/{path}")

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook received {len(self._requests)} requests, "
                        f"expected {count} within {timeout:g} s"
                    )
                self._lock.wait(left)
            return list(self._requests)

    def start(self) -> WebhookRecorder:
        server = _Server((self._host, self._port), _Handler)
        server.recorder = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> WebhookRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
