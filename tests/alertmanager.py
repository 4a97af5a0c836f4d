"""A real Alertmanager for tests (Debian's ``prometheus-alertmanager`` package, our process).

The package also installs a systemd unit; it is never used. Each :class:`AlertmanagerServer`
runs ``/usr/bin/prometheus-alertmanager`` on a free loopback port with a generated
configuration (one route to a receiver that sends nowhere, ``resolve_timeout`` 5m),
clustering off, its own storage and log under ``<repo>/.state/alertmanager/<owner
pid>-<name>/``. The child gets SIGKILL if the test process dies (``PR_SET_PDEATHSIG``) and
:func:`reap_orphans` removes what killed sessions left.

    with running_alertmanager("demo") as am:
        am.alerts(filter='monitor="iris"')   # GET /api/v2/alerts
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests import processes
from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
ALERTMANAGER_BIN = os.environ.get(
    "MODELMONITOR_ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager"
)
STATE_ROOT = REPO_ROOT / ".state" / "alertmanager"
PID_FILE = "alertmanager.pid"


class AlertmanagerHarnessError(RuntimeError):
    """Alertmanager could not be started or did not become ready; carries its log tail."""


def reap_orphans(root: Path = STATE_ROOT) -> None:
    """Stop servers (and remove state) of test processes that are gone."""
    processes.reap_orphans(root, PID_FILE)


class AlertmanagerServer:
    """One Alertmanager process; see the module docstring."""

    def __init__(self, name: str, *, binary: str = ALERTMANAGER_BIN) -> None:
        self.name = name
        self.binary = binary
        self.state_dir = processes.state_dir(STATE_ROOT, name)
        self.config_file = self.state_dir / "alertmanager.yml"
        self.log_file = self.state_dir / "alertmanager.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"resolve_timeout": "5m"},
            "route": {
                "receiver": "nowhere",
                "group_by": ["alertname", "namespace", "monitor"],
                "group_wait": "1s",
                "group_interval": "5s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "nowhere"}],
        }

    def start(self, timeout: float = 30.0) -> None:
        if not Path(self.binary).exists():
            raise AlertmanagerHarnessError(
                f"{self.binary} not found: install Debian's prometheus-alertmanager "
                "(tests/cluster/system-deps.sh)"
            )
        (self.state_dir / "data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config()))
        log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.path={self.state_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # a single instance: no gossip port
                "--log.level=info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=processes.die_with_parent,
        )
        log.close()
        (self.state_dir / PID_FILE).write_text(str(self._process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AlertmanagerHarnessError(f"alertmanager exited:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.2)
        raise AlertmanagerHarnessError(f"alertmanager not ready in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        processes.stop_process(self._process)
        self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-chars:]
        return ""

    def alerts(
        self, *, active: bool = True, resolved_too: bool = False, filter: str = ""
    ) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds (active ones by default)."""
        query = {"active": "true" if active else "false", "silenced": "true", "inhibited": "true"}
        if filter:
            query["filter"] = filter
        url = f"{self.url}/api/v2/alerts?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            found = json.loads(resp.read())
        return list(found)


@contextlib.contextmanager
def running_alertmanager(name: str) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(name)
    server.start()
    try:
        yield server
    finally:
        server.destroy()
