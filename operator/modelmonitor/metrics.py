"""The operator's Prometheus metrics, in one recorder with an injectable registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from modelmonitor import __version__
from modelmonitor.status import Phase


class MetricsRecorder:
    """All ``modelmonitor_`` metrics; tests pass their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.build_info = Gauge(
            "modelmonitor_build_info", "Operator version.", ["version"], registry=self.registry
        )
        self.build_info.labels(version=__version__).set(1)
        self.monitor_phase = Gauge(
            "modelmonitor_monitor_phase",
            "1 for the monitor's current phase, 0 for the others.",
            ["namespace", "monitor", "phase"],
            registry=self.registry,
        )
        self.reconciles = Counter(
            "modelmonitor_reconcile_total",
            "Spec reconciliations by result (ok, invalid, error).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "modelmonitor_reconcile_duration_seconds",
            "Time to validate a monitor and write its status.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def set_phase(self, namespace: str, monitor: str, phase: Phase) -> None:
        for candidate in Phase:
            self.monitor_phase.labels(namespace, monitor, candidate.value).set(
                1 if candidate == phase else 0
            )

    def forget(self, namespace: str, monitor: str) -> None:
        """Drop every series of a deleted monitor, so no stale gauges linger."""
        for candidate in Phase:
            with contextlib.suppress(KeyError):
                self.monitor_phase.remove(namespace, monitor, candidate.value)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
