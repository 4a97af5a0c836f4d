"""A Git repository served over smart HTTP on loopback, for tests that need a real Git remote.

    with GitServer(tmp_path) as git:
        sha = git.commit({"apps/deploy.yaml": text}, "v1")
        ...  # a client clones git.url ("http://127.0.0.1:<port>/apps.git")

Git's own ``git http-backend`` (the CGI program that ships with git) answers the
requests; a threaded HTTP server on 127.0.0.1 runs it per request with the CGI
environment it documents, so any smart-HTTP client (git, go-git in Flux's
source-controller) can clone and fetch. It serves the one bare repository, read-only:
pushes over HTTP are refused; :meth:`GitServer.commit` commits in a work tree beside it
and pushes through the file system.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

MAX_BODY = 16 * 1024 * 1024  # a fetch request of this small repository is a few KiB
BACKEND_TIMEOUT = 30.0
REPO = "apps.git"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "e2e",
    "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
    "GIT_COMMITTER_NAME": "e2e",
    "GIT_COMMITTER_EMAIL": "e2e@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",  # no user config
}


class GitServerError(RuntimeError):
    pass


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise GitServerError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    project_root: Path
    requests_served: int = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        if not path.startswith(f"/{REPO}/") or ".." in path:
            self._reply(404, {}, b"not found")
            return
        if "git-receive-pack" in path or "service=git-receive-pack" in query:
            self._reply(403, {}, b"read-only")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {}, b"too large")
            return
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": "/nonexistent",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type") or "",
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        try:
            done = subprocess.run(
                ["git", "http-backend"],
                input=body,
                env=env,
                capture_output=True,
                timeout=BACKEND_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            self._reply(504, {}, b"git http-backend timed out")
            return
        head, sep, payload = done.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        self.server.requests_served += 1
        self._reply(status, headers, payload)

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle  # noqa: N815  (http.server's naming)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GitServer:
    """A bare repository ``apps.git`` under ``root`` with branch ``main``, served on
    127.0.0.1 (a free port) while the context is open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / "srv" / REPO
        self.work = root / "work"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise GitServerError("the Git server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/{REPO}"

    @property
    def requests_served(self) -> int:
        return self._server.requests_served if self._server else 0

    def __enter__(self) -> GitServer:
        self.bare.mkdir(parents=True)
        self.work.mkdir(parents=True)
        _git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=self.root)
        _git("init", "-q", "-b", "main", cwd=self.work)
        _git("remote", "add", "origin", str(self.bare), cwd=self.work)
        server = _Server(("127.0.0.1", 0), _Handler)
        server.project_root = self.bare.parent
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def commit(self, files: dict[str, str], message: str) -> str:
        """Write ``files`` (path -> text) in the work tree, commit them on ``main`` and
        push; return the commit's SHA-1."""
        for rel, text in files.items():
            path = self.work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        _git("add", "--all", cwd=self.work)
        _git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        _git("push", "-q", "origin", "main", cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work)
