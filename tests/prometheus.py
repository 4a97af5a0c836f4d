"""A real Prometheus server for tests (Debian's ``prometheus`` package, our own process).

The package also installs a systemd unit; it is never used. Each :class:`PrometheusServer`
runs ``/usr/bin/prometheus`` on a free loopback port with a generated configuration
(a 1 s scrape interval, Prometheus scraping itself plus the targets a test gives), its
own TSDB directory and log under ``<repo>/.state/prometheus/<owner pid>-<name>/``.

    with running_prometheus("demo", targets=[ScrapeTarget("model", "127.0.0.1:8082")]) as prom:
        prom.wait_for("up{job='model'} == 1")

With ``web=WebAuth(...)`` the server sits behind its own ``--web.config.file``: TLS with
a test CA and HTTP basic auth on every endpoint, so nothing reaches it without both (the
harness's own requests and its self-scrape carry them).

``stop()`` and ``start()`` keep the port and the data, so a test can take Prometheus
away and bring it back. The child gets SIGKILL if the test process dies
(``PR_SET_PDEATHSIG``), and :func:`reap_orphans` removes what killed sessions left.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import processes
from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_BIN = os.environ.get("MODELMONITOR_PROMETHEUS_BIN", "/usr/bin/prometheus")
STATE_ROOT = REPO_ROOT / ".state" / "prometheus"
SCRAPE_INTERVAL = "1s"
PID_FILE = "prometheus.pid"


class PrometheusHarnessError(RuntimeError):
    """Prometheus could not be started or did not become ready; carries its log tail."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job: ``address`` is ``host:port``; ``labels`` are added to its series."""

    job: str
    address: str
    metrics_path: str = "/metrics"
    labels: dict[str, str] = field(default_factory=dict)


def reap_orphans(root: Path = STATE_ROOT) -> None:
    """Stop servers (and remove state) of test processes that are gone."""
    processes.reap_orphans(root, PID_FILE)


@dataclass(frozen=True)
class WebAuth:
    """What the server's ``--web.config.file`` demands: TLS (``cert_file``/``key_file``,
    issued by ``ca_file``) and basic auth (``password_hash`` is bcrypt's hash of
    ``password``)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    username: str
    password: str
    password_hash: str

    def web_config(self) -> dict[str, Any]:
        return {
            "tls_server_config": {"cert_file": str(self.cert_file), "key_file": str(self.key_file)},
            "basic_auth_users": {self.username: self.password_hash},
        }


class PrometheusServer:
    """One Prometheus process; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        targets: Sequence[ScrapeTarget] = (),
        state_root: Path = STATE_ROOT,
        binary: str = PROMETHEUS_BIN,
        web: WebAuth | None = None,
        retention: str = "1d",
    ) -> None:
        self.name = name
        self.retention = retention
        self.web = web
        self.binary = binary
        self.state_dir = processes.state_dir(state_root, name)
        self.web_config_file = self.state_dir / "web.yml"
        self.data_dir = self.state_dir / "data"
        self.config_file = self.state_dir / "prometheus.yml"
        self.log_file = self.state_dir / "prometheus.log"
        self.port = free_port()
        self.targets: list[ScrapeTarget] = list(targets)
        self.rule_files: list[Path] = []
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.web else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- configuration -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        jobs: list[dict[str, Any]] = [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]}
        ]
        if self.web is not None:  # scraping itself needs what everyone needs
            jobs[0].update(
                scheme="https",
                tls_config={"ca_file": str(self.web.ca_file)},
                basic_auth={"username": self.web.username, "password": self.web.password},
            )
        for t in self.targets:
            static: dict[str, Any] = {"targets": [t.address]}
            if t.labels:
                static["labels"] = dict(t.labels)
            jobs.append(
                {"job_name": t.job, "metrics_path": t.metrics_path, "static_configs": [static]}
            )
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "evaluation_interval": SCRAPE_INTERVAL,
            },
            "scrape_configs": jobs,
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        return config

    def _write_config(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        if self.web is not None:
            self.web_config_file.write_text(yaml.safe_dump(self.web.web_config()))

    def set_targets(self, targets: Sequence[ScrapeTarget]) -> None:
        """Replace the scrape targets (besides itself) and reload a running server."""
        self.targets = list(targets)
        self._write_config()
        if self.running:
            self._request("POST", "/-/reload", timeout=10)

    def add_target(self, target: ScrapeTarget) -> None:
        self.set_targets([*[t for t in self.targets if t.job != target.job], target])

    def set_rule_files(self, paths: Sequence[Path]) -> None:
        """Evaluate these rule files (every second) and reload a running server."""
        self.rule_files = list(paths)
        self.set_targets(self.targets)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, timeout: float = 30.0) -> PrometheusServer:
        if self.running:
            return self
        if not os.access(self.binary, os.X_OK):
            raise PrometheusHarnessError(
                f"{self.binary} not found: install Debian's prometheus package "
                "(bash tests/cluster/system-deps.sh)"
            )
        self._write_config()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            f"--storage.tsdb.retention.time={self.retention}",
            "--log.level=info",
        ]
        if self.web is not None:
            argv.append(f"--web.config.file={self.web_config_file}")
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=processes.die_with_parent,
            )
        (self.state_dir / PID_FILE).write_text(str(self._process.pid))
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PrometheusHarnessError(
                    f"prometheus exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                status, _ = self._request("GET", "/-/ready", timeout=2)
                if status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise PrometheusHarnessError(f"prometheus not ready after {timeout:g}s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the data and port are kept."""
        process, self._process = self._process, None
        processes.stop_process(process, timeout=timeout)

    def restart(self) -> PrometheusServer:
        self.stop()
        return self.start()

    def destroy(self) -> None:
        """Stop and remove the state directory."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def backfill(self, openmetrics: str) -> None:
        """Write history into the TSDB with Prometheus' own backfill (``promtool tsdb
        create-blocks-from openmetrics``) before the server starts: Prometheus can only
        hold what it scraped, and a test cannot wait days for a seasonal history. The
        samples' timestamps must fall inside ``retention``."""
        if self.running:
            raise PrometheusHarnessError("backfill before start(): the TSDB is in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        source = self.state_dir / "backfill.om"
        source.write_text(openmetrics)
        promtool = str(Path(self.binary).with_name("promtool"))
        done = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        source.unlink()
        if done.returncode != 0:
            raise PrometheusHarnessError(f"promtool backfill failed: {done.stderr[-2000:]}")

    # -- queries (synchronous, for test set-up; the code under test has its own client) ------
    def _request(
        self, method: str, path: str, *, data: bytes | None = None, timeout: float = 5
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        context = None
        if self.web is not None:
            context = ssl.create_default_context(cafile=str(self.web.ca_file))
            pair = f"{self.web.username}:{self.web.password}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result list (raises on an error answer)."""
        body = urllib.parse.urlencode({"query": promql}).encode()
        status, raw = self._request("POST", "/api/v1/query", data=body)
        answer = json.loads(raw)
        if status != 200 or answer.get("status") != "success":
            raise PrometheusHarnessError(f"query {promql!r}: HTTP {status}: {answer}")
        return list(answer["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts as ``/api/v1/alerts`` lists them (pending and firing)."""
        status, raw = self._request("GET", "/api/v1/alerts")
        answer = json.loads(raw)
        if status != 200 or answer.get("status") != "success":
            raise PrometheusHarnessError(f"alerts: HTTP {status}: {answer}")
        return list(answer["data"]["alerts"])

    def wait_for(self, promql: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``promql`` returns a non-empty result; return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusHarnessError(f"{promql!r} still empty after {timeout:g}s")
            time.sleep(0.25)


@contextlib.contextmanager
def running_prometheus(
    name: str, *, targets: Sequence[ScrapeTarget] = (), keep: bool = False
) -> Iterator[PrometheusServer]:
    """A started server, stopped (and its state removed unless ``keep``) afterwards."""
    server = PrometheusServer(name, targets=targets)
    try:
        yield server.start()
    finally:
        if keep:
            server.stop()
        else:
            server.destroy()
