"""A real S3 server for tests: versitygw (Apache-2.0) on a POSIX directory, our own process.

versitygw is built once from source through the Go module proxy by
``tests/cluster/build.sh`` into the control plane's binary cache (the pin is
``VERSITYGW_VERSION`` in versions.env). Each :class:`S3Server` runs it on a free
loopback port with one root access key, its buckets as directories under
``<repo>/.state/objectstore/<owner pid>-<name>/``, and an access log a test can read to
see what the operator asked (for example, a conditional GET answered 304).

Uploads go through botocore (a client independent of the operator's own signer), so a
test that passes shows that the operator's SigV4 requests are accepted by a real server.

    with running_s3("refs") as s3:
        s3.create_bucket("refs")
        s3.put("refs", "teams/a/reference.csv", b"...")

The child gets SIGKILL if the test process dies (``PR_SET_PDEATHSIG``), and
:func:`reap_orphans` removes what killed sessions left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import processes
from tests.cluster.binaries import ensure_binaries
from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_ROOT = REPO_ROOT / ".state" / "objectstore"
REGION = "us-east-1"
PID_FILE = "versitygw.pid"


class S3HarnessError(RuntimeError):
    """The server could not be started or did not become ready; carries its log tail."""


def versitygw_binary() -> Path:
    """The cached versitygw (built by build.sh with the control plane, once)."""
    env = os.environ.get("MODELMONITOR_VERSITYGW_BIN")
    path = Path(env) if env else ensure_binaries() / "versitygw"
    if not os.access(path, os.X_OK):
        raise S3HarnessError(f"{path} not found: run `make testbin` (tests/cluster/build.sh)")
    return path


def reap_orphans() -> None:
    """Stop servers (and remove state) of test processes that are gone."""
    processes.reap_orphans(STATE_ROOT, PID_FILE)


class S3Server:
    """versitygw serving ``root`` on 127.0.0.1 with one access key (the root user)."""

    def __init__(
        self, name: str, *, access_key: str = "e2e-access", secret_key: str = "e2e-secret-k3y"
    ) -> None:
        self.state = processes.state_dir(STATE_ROOT, name)
        self.root = self.state / "buckets"
        self.access_log = self.state / "access.log"
        self.log = self.state / "versitygw.log"
        self.access_key = access_key
        self.secret_key = secret_key
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 20.0) -> S3Server:
        binary = versitygw_binary()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ROOT_ACCESS_KEY_ID": self.access_key,
            "ROOT_SECRET_ACCESS_KEY": self.secret_key,
        }
        args = [
            str(binary),
            "--port",
            f"127.0.0.1:{self.port}",
            "--region",
            REGION,
            "--health",
            "/health",
            "--access-log",
            str(self.access_log),
            "--quiet",
            "posix",
            str(self.root),
        ]
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=processes.die_with_parent,
            )
        # reap_orphans finds the server by this file and its state directory on its cmdline
        (self.state / PID_FILE).write_text(str(self._proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise S3HarnessError(f"versitygw exited: {self.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return self
            time.sleep(0.2)
        raise S3HarnessError(f"versitygw not ready within {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        processes.stop_process(self._proc)
        self._proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def requests(self) -> list[str]:
        """The access log's lines so far (one per request)."""
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def client(self) -> Any:
        """A botocore S3 client for this server (path-style, the root user's key)."""
        import botocore.session  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def put(self, bucket: str, key: str, body: bytes) -> str:
        """Upload ``body``; returns the object's ETag."""
        return str(self.client().put_object(Bucket=bucket, Key=key, Body=body)["ETag"])


@contextlib.contextmanager
def running_s3(name: str, **kwargs: Any) -> Iterator[S3Server]:
    reap_orphans()
    server = S3Server(name, **kwargs).start()
    try:
        yield server
    finally:
        server.destroy()
