"""spec.prometheus credentials against the real Prometheus behind TLS and basic auth.

The Prometheus here sits behind its own ``--web.config.file`` (TLS with a test CA, basic
auth with a bcrypt hash): nothing reaches it without both, which the test shows first.
A monitor then reads its SLO through it with the CA from a ConfigMap and the user and
password from a Secret. A tenant header is checked by a test front: a small HTTP server
in this test that answers only requests carrying ``X-Scope-OrgID: team-a`` and passes
them on to that Prometheus (with the credentials), as a Mimir or Cortex gateway would.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import condition, monitor, setup, wait_status
from tests.modelserver import ModelServer
from tests.prometheus import PrometheusServer, WebAuth
from tests.tls_certs import make_ca

USER = "modelmonitor"
PASSWORD = "pw-7c1e0b9a44f2"  # never to be seen in status, Events or logs
TENANT = "team-a"
SLOS: list[dict[str, Any]] = [
    {
        "name": "scraped",
        "source": "prometheus",
        "objective": 90,
        "window": "1h",
        # Prometheus scraping itself through the same TLS and basic auth: one good target.
        "errorRatio": {
            "errors": "count(up{job='prometheus'} == 0) or vector(0)",
            "total": "count(up{job='prometheus'} == 1)",
        },
    }
]


@pytest.fixture(scope="module")
def secure_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    ca = make_ca()
    directory = tmp_path_factory.mktemp("prom-tls")
    for name, data in (
        ("ca.crt", ca.ca.cert),
        ("tls.crt", ca.server.cert),
        ("tls.key", ca.server.key),
    ):
        (directory / name).write_bytes(data)
    web = WebAuth(
        cert_file=directory / "tls.crt",
        key_file=directory / "tls.key",
        ca_file=directory / "ca.crt",
        username=USER,
        password=PASSWORD,
        password_hash=bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode(),
    )
    server = PrometheusServer("secure", web=web)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def _status(url: str, *, context: ssl.SSLContext | None, auth: bool) -> int | str:
    request = urllib.request.Request(f"{url}/api/v1/query?query=up")
    if auth:
        pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {pair}")
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except urllib.error.URLError as exc:
        return type(exc.reason).__name__


class TenantFront:
    """The test front: only requests with the tenant header pass, to Prometheus with auth."""

    def __init__(self, upstream: PrometheusServer) -> None:
        web = upstream.web
        assert web is not None
        context = ssl.create_default_context(cafile=str(web.ca_file))
        pair = base64.b64encode(f"{web.username}:{web.password}".encode()).decode()
        self.seen: list[str | None] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                tenant = self.headers.get("X-Scope-OrgID")
                front.seen.append(tenant)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if tenant != TENANT:
                    self._answer(401, b"no tenant")
                    return
                request = urllib.request.Request(
                    f"{upstream.url}{self.path}",
                    data=body,
                    headers={
                        "Authorization": f"Basic {pair}",
                        "Content-Type": self.headers.get("Content-Type", ""),
                    },
                )
                with urllib.request.urlopen(request, timeout=5, context=context) as resp:
                    self._answer(resp.status, resp.read(), "application/json")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_prometheus_behind_tls_basic_auth_and_a_tenant_front(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    secure_prometheus: PrometheusServer,
) -> None:
    web = secure_prometheus.web
    assert web is not None
    trusted = ssl.create_default_context(cafile=str(web.ca_file))
    # Nothing reaches it without both the CA and the password.
    assert _status(secure_prometheus.url, context=None, auth=True) == "SSLCertVerificationError"
    assert _status(secure_prometheus.url, context=trusted, auth=False) == 401
    assert _status(secure_prometheus.url, context=trusted, auth=True) == 200
    secure_prometheus.wait_for("up{job='prometheus'} == 1")

    cluster = operator_process.cluster
    setup(cluster, namespace)
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "prom-basic"},
                "stringData": {"username": USER, "password": PASSWORD},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "prom-ca"},
                "data": {"ca.crt": Path(web.ca_file).read_text()},
            },
        ],
        "-n",
        namespace,
    )
    basic = {
        "username": {"name": "prom-basic", "key": "username"},
        "password": {"name": "prom-basic", "key": "password"},
    }
    direct = monitor(
        "prom-tls",
        model_server.url,
        "iris",
        slos=SLOS,
        drift={"enabled": False},
        prometheus={
            "url": secure_prometheus.url,
            "timeoutSeconds": 3,
            "basicAuth": basic,
            "tlsConfig": {"ca": {"configMapKeyRef": {"name": "prom-ca", "key": "ca.crt"}}},
        },
    )
    front = TenantFront(secure_prometheus)
    try:
        tenant = monitor(
            "prom-tenant",
            model_server.url,
            "iris",
            slos=SLOS,
            drift={"enabled": False},
            prometheus={
                "url": front.url,
                "timeoutSeconds": 3,
                "headers": [{"name": "X-Scope-OrgID", "value": TENANT}],
            },
        )
        cluster.apply([direct, tenant], "-n", namespace)
        for name in ("prom-tls", "prom-tenant"):
            st = wait_status(
                cluster,
                namespace,
                name,
                lambda s: bool(s.get("slos")) and s["slos"][0].get("met") is True,
                "the SLO measured through the authenticated Prometheus",
            )
            assert condition(st, "Degraded").get("status") != "True", st
        assert front.seen
        assert set(front.seen) == {TENANT}
    finally:
        front.close()

    # The password is in no status, Event or log line.
    shown = json.dumps(cluster.get("mm", "-n", namespace)) + json.dumps(
        cluster.get("events", "-n", namespace)
    )
    assert PASSWORD not in shown
    assert PASSWORD not in operator_process.logs()
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in operator_process.logs()
