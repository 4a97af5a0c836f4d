"""Anomalies in a Prometheus series, end to end: the real operator, the real Prometheus.

A seasonal baseline needs days of history, and Prometheus holds only what it scraped,
so the test writes two days of a daily-periodic series into a fresh Prometheus' TSDB
with Prometheus' own backfill (``promtool tsdb create-blocks-from openmetrics``) before
it starts; the same series then goes on live, scraped every second from a small local
exporter that continues the same formula. The monitor judges the live points against
the band of the same hour yesterday: quiet, then a spike (Anomalous, the band and the
value in the message, a Warning Event), then quiet again (back to NoAnomaly after the
hysteresis). A second series that never misbehaves stays Normal throughout.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_crd import _monitor, assert_refused, spec_with
from tests.e2e.test_runs import condition, wait_status
from tests.prometheus import PrometheusServer, ScrapeTarget, free_port

DAY = 86400.0
STEP = 10  # seconds between points, history and queries alike
HISTORY_DAYS = 2.1


def latency(t: float) -> float:
    return 0.2 + 0.05 * math.sin(2 * math.pi * t / DAY)


def traffic(t: float) -> float:
    return 50 + 20 * math.cos(2 * math.pi * t / DAY)


class Exporter:
    """Serves both series at the time of each scrape; ``spike`` is added to latency."""

    def __init__(self) -> None:
        self.spike = 0.0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                now = time.time()
                body = (
                    "# TYPE mm_test_latency_seconds gauge\n"
                    f"mm_test_latency_seconds {latency(now) + exporter.spike:.6f}\n"
                    "# TYPE mm_test_requests_per_second gauge\n"
                    f"mm_test_requests_per_second {traffic(now):.6f}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def history(instance: str, until: float) -> str:
    """Both series every STEP seconds for HISTORY_DAYS up to ``until``, as OpenMetrics,
    with the labels the live scrape gives them (so history and live are one series)."""
    labels = f'{{job="synthetic",instance="{instance}"}}'
    start = int((until - HISTORY_DAYS * DAY) // STEP * STEP)
    times = range(start, int(until), STEP)
    lines = ["# TYPE mm_test_latency_seconds gauge"]
    lines += [f"mm_test_latency_seconds{labels} {latency(t):.6f} {t}" for t in times]
    lines.append("# TYPE mm_test_requests_per_second gauge")
    lines += [f"mm_test_requests_per_second{labels} {traffic(t):.6f} {t}" for t in times]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture
def seasonal_prometheus() -> Iterator[tuple[PrometheusServer, Exporter]]:
    with Exporter() as exporter:
        address = f"127.0.0.1:{exporter.port}"
        server = PrometheusServer(
            "anomalies", targets=[ScrapeTarget("synthetic", address)], retention="7d"
        )
        server.backfill(history(address, time.time() - 5))
        server.start()
        try:
            server.wait_for("mm_test_latency_seconds", timeout=30)
            yield server, exporter
        finally:
            server.destroy()


def anomaly_monitor(url: str) -> dict[str, Any]:
    common = {"step": f"{STEP}s", "lookback": "2d", "seasons": ["1d"], "warmupCycles": 1}
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": "seasonal"},
        "spec": {
            "target": {"kind": "External", "name": "api", "endpoint": {"url": "http://api"}},
            "schedule": {"interval": "10s"},
            "reference": {"inline": [{"x": 1}]},
            "drift": {"enabled": False},
            "prometheus": {"url": url, "timeoutSeconds": 5},
            "anomalies": [
                {
                    "name": "latency",
                    "query": "max(mm_test_latency_seconds)",
                    "for": "20s",
                    **common,
                },
                {"name": "traffic", "query": "max(mm_test_requests_per_second)", **common},
            ],
        },
    }


def series(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next((a for a in status.get("anomalies") or [] if a.get("name") == name), {})


def test_a_spike_in_a_seasonal_series_is_anomalous_and_recovers(
    operator_process: OperatorProcess,
    namespace: str,
    seasonal_prometheus: tuple[PrometheusServer, Exporter],
) -> None:
    prometheus, exporter = seasonal_prometheus
    cluster = operator_process.cluster
    cluster.apply(anomaly_monitor(prometheus.url), "-n", namespace)

    st = wait_status(
        cluster,
        namespace,
        "seasonal",
        lambda s: condition(s, "Anomalous").get("reason") == "NoAnomaly",
        "Anomalous=False (NoAnomaly) on the quiet series",
    )
    quiet = series(st, "latency")
    assert quiet["state"] == "Normal", quiet
    assert quiet["lower"] < quiet["value"] < quiet["upper"]
    assert quiet["upper"] < 0.3  # yesterday's band at this hour, not a fixed threshold
    assert st["phase"] == "Healthy"
    assert series(st, "traffic")["state"] == "Normal"

    exporter.spike = 1.0
    st = wait_status(
        cluster,
        namespace,
        "seasonal",
        lambda s: condition(s, "Anomalous").get("status") == "True",
        "Anomalous=True after the spike",
    )
    cond = condition(st, "Anomalous")
    assert cond["reason"] == "AnomalyDetected"
    assert cond["message"].startswith("latency: 1.")
    assert "outside band [" in cond["message"]
    assert "since" in cond["message"]
    assert "traffic" not in cond["message"]  # the quiet series is not named
    assert series(st, "traffic")["state"] == "Normal"
    assert st["phase"] == "Healthy"  # a signal: no phase of its own, no remediation

    exporter.spike = 0.0
    st = wait_status(
        cluster,
        namespace,
        "seasonal",
        lambda s: condition(s, "Anomalous").get("status") == "False",
        "Anomalous=False once the spike is over and `for` has passed",
    )
    assert series(st, "latency")["state"] == "Normal"
    events = cluster.get(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=seasonal"
    )
    anomalous = [e for e in events["items"] if e["reason"] == "AnomalyDetected"]
    assert len(anomalous) == 1, [e["reason"] for e in events["items"]]
    assert anomalous[0]["type"] == "Warning"
    assert "outside band [" in anomalous[0]["message"]
    assert any(e["reason"] == "NoAnomaly" for e in events["items"])


PROM = {"url": "http://prometheus.monitoring:9090"}
LATENCY = {"name": "p95", "sli": "latency", "template": {"name": "mlserver", "model": "m"}}

# (case, spec, the field path the API server's message must name)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("anomalies without prometheus", spec_with("anomalies", [LATENCY]), "spec.prometheus"),
    (
        "query and sli",
        spec_with("anomalies", [{**LATENCY, "query": "up"}], spec_with("prometheus", PROM)),
        "spec.anomalies[0]",
    ),
    (
        "sli without template",
        spec_with("anomalies", [{"name": "a", "sli": "traffic"}], spec_with("prometheus", PROM)),
        "spec.anomalies[0].template",
    ),
    (
        "kserve traffic",
        spec_with(
            "anomalies",
            [{"name": "a", "sli": "traffic", "template": {"name": "kserve"}}],
            spec_with("prometheus", PROM),
        ),
        "spec.anomalies[0].template.name",
    ),
    (
        "a season of minutes",
        spec_with("anomalies", [{**LATENCY, "seasons": ["30m"]}], spec_with("prometheus", PROM)),
        "spec.anomalies[0].seasons[0]",
    ),
    (
        "a step of a day",
        spec_with("anomalies", [{**LATENCY, "step": "1d"}], spec_with("prometheus", PROM)),
        "spec.anomalies[0].step",
    ),
    (
        "sensitivity 0",
        spec_with("anomalies", [{**LATENCY, "sensitivity": 0}], spec_with("prometheus", PROM)),
        "spec.anomalies[0].sensitivity",
    ),
    (
        "sensitivity 0.4",
        spec_with("anomalies", [{**LATENCY, "sensitivity": 0.4}], spec_with("prometheus", PROM)),
        "spec.anomalies[0].sensitivity",
    ),
]


@pytest.mark.parametrize(("case", "spec", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_anomaly_specs_are_refused_by_the_api_server(
    crds: KubeCluster, namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    assert_refused(crds, namespace, case, spec, field)


def test_a_full_anomaly_spec_is_accepted_with_its_defaults(
    crds: KubeCluster, namespace: str
) -> None:
    spec = spec_with(
        "anomalies",
        [LATENCY, {"name": "q", "query": "sum(rate(x[$window]))", "seasons": ["1d", "7d"]}],
        spec_with("prometheus", PROM),
    )
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("full", spec))
    stored = crds.get("mm", "full", "-n", namespace)["spec"]["anomalies"]
    assert stored[0]["step"] == "5m"
    assert stored[0]["lookback"] == "14d"
    assert stored[0]["for"] == "10m"
    assert stored[0]["warmupCycles"] == 2
    assert stored[1]["seasons"] == ["1d", "7d"]
