"""The part of a kubelet's HTTPS API that the node agent serves: container logs."""

from __future__ import annotations

import logging
import ssl
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.cluster import pki
from tests.cluster.containers import Container

if TYPE_CHECKING:
    from tests.cluster.node import NodeAgent

log = logging.getLogger(__name__)


class LogServer(ThreadingHTTPServer):
    """The part of a kubelet's HTTPS API that ``kubectl logs`` reaches through the API
    server: ``GET /containerLogs/<namespace>/<pod>/<container>``. The API server does
    not verify a kubelet's certificate unless told to, so a self-signed one serves."""

    daemon_threads = True

    def __init__(self, agent: NodeAgent, host: str, cert: pki.KeyPair) -> None:
        self.agent = agent
        super().__init__((host, 0), _LogHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert.cert), str(cert.key))
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _LogHandler(BaseHTTPRequestHandler):
    server: LogServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet API: " + format, *args)

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if parts == ["healthz"]:
            return self._reply(200, "ok")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._reply(404, f"{url.path}: the node agent serves only /containerLogs")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        container = self.server.agent.find_container(parts[1], parts[2], parts[3])
        if container is None:
            return self._reply(404, f"container {parts[3]!r} of pod {parts[1]}/{parts[2]} unknown")
        previous = query.get("previous") == "true"
        data = container.output(previous=previous)
        if data is None:
            what = "previous terminated container" if previous else "container"
            return self._reply(400, f"{what} {container.name!r} has not run yet")
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[len(lines) - min(len(lines), int(query["tailLines"])) :])
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"])]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            self.wfile.write(data)
            if query.get("follow") == "true" and not previous:
                self._follow(container, container.runs[-1][1] + len(data))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def _follow(self, container: Container, offset: int) -> None:
        """Stream new output until the container stops (or the node does)."""
        run = len(container.runs)
        with open(container.log_path, "rb") as log_file:
            log_file.seek(offset)
            while True:
                alive = container.running and len(container.runs) == run
                chunk = log_file.read(65536)
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not alive or self.server.agent.stopping.is_set():
                    return
                else:
                    time.sleep(0.2)
