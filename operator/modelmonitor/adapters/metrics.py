"""The operator's Prometheus metrics, in one recorder with an injectable registry."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelmonitor import __version__
from modelmonitor.core.anomaly.outcome import AnomalyOutcome
from modelmonitor.core.report import Report, timed_out_run
from modelmonitor.core.report_seal import REPORT_UNVERIFIED
from modelmonitor.core.status import Phase
from modelmonitor.core.verdict import Verdict


class CounterSet(Protocol):
    def as_dict(self) -> Mapping[str, int]: ...


class BlockCounting(Protocol):
    """What the outbound fence tells the metrics: requests it stopped, by rule, and the
    bytes of bodies being read now, by namespace."""

    @property
    def blocked(self) -> Mapping[str, int]: ...

    @property
    def buffer_held(self) -> Mapping[str, int]: ...


class KafkaCounting(Protocol):
    """What the Kafka feeds tell the metrics: each monitor's record counters."""

    def counters(self) -> Mapping[tuple[str, str], Mapping[str, int]]: ...


class PayloadCounting(Protocol):
    """What the payload-log store tells the metrics: counters per monitor, refusals by reason."""

    @property
    def rejected(self) -> Mapping[str, int]: ...

    @property
    def max_bytes(self) -> int: ...

    def counters(self) -> Mapping[tuple[str, str], CounterSet]: ...

    def window_bytes(self) -> Mapping[tuple[str, str], int]: ...

    def label_counters(self) -> Mapping[tuple[str, str], Mapping[str, int]]: ...


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
        self.interval = Gauge(
            "modelmonitor_monitor_interval_seconds",
            "spec.schedule.interval of a Ready monitor (absent while it is not Ready).",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.ready_since = Gauge(
            "modelmonitor_monitor_ready_timestamp_seconds",
            "When a Ready monitor last became Ready (Unix time; absent while not Ready).",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.last_run = Gauge(
            "modelmonitor_monitor_last_run_timestamp_seconds",
            "When the monitor's last run finished (Unix time; status.lastRun.time).",
            ["namespace", "monitor"],
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

        self.run_duration = Histogram(
            "modelmonitor_run_duration_seconds",
            "Duration of monitoring runs.",
            ["namespace", "monitor"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.run_start_lag = Histogram(
            "modelmonitor_run_start_lag_seconds",
            "How late runs start against their schedule (all monitors).",
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.runs = Counter(
            "modelmonitor_runs_total",
            "Monitoring runs by the phase they concluded.",
            ["namespace", "monitor", "phase"],
            registry=self.registry,
        )
        self.run_timeouts = Counter(
            "modelmonitor_run_timeouts_total",
            "Runs stopped at their deadline (spec.schedule.runTimeout).",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.reports_unverified = Counter(
            "modelmonitor_reports_unverified_total",
            "Job-mode runs whose report ConfigMap did not match the digest its run pod "
            "wrote to its termination message (ReportUnverified): rejected, never acted on.",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.feature_drift_score = Gauge(
            "modelmonitor_feature_drift_score",
            "Per-feature drift statistic of the last run (distance, or test statistic).",
            ["namespace", "monitor", "feature", "method"],
            registry=self.registry,
        )
        self.feature_drift_pvalue = Gauge(
            "modelmonitor_feature_drift_p_value",
            "Per-feature corrected p-value of the last run (test methods only).",
            ["namespace", "monitor", "feature", "method"],
            registry=self.registry,
        )
        self.feature_drifted = Gauge(
            "modelmonitor_feature_drifted",
            "1 when the feature drifted in the last run.",
            ["namespace", "monitor", "feature"],
            registry=self.registry,
        )
        self.dataset_drift_share = Gauge(
            "modelmonitor_dataset_drift_share",
            "Share of monitored features that drifted in the last run.",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.drifted_features = Gauge(
            "modelmonitor_drifted_features",
            "Number of drifted features in the last run.",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.slo_met = Gauge(
            "modelmonitor_slo_met",
            "1 when the SLO is met, 0 when breached; absent without data.",
            ["namespace", "monitor", "slo"],
            registry=self.registry,
        )
        self.slo_burn_rate = Gauge(
            "modelmonitor_slo_burn_rate",
            "Error-budget burn rate over a window (1 = spending exactly the budget).",
            ["namespace", "monitor", "slo", "window"],
            registry=self.registry,
        )
        self.slo_budget_remaining = Gauge(
            "modelmonitor_slo_error_budget_remaining",
            "Share of the error budget left over the SLO window (negative when overspent).",
            ["namespace", "monitor", "slo"],
            registry=self.registry,
        )
        self.anomaly_score = Gauge(
            "modelmonitor_anomaly_score",
            "A spec.anomalies series' latest value against its seasonal band: "
            "(value - median) / half-width, beyond +-1 is outside; absent in warm-up.",
            ["namespace", "monitor", "series"],
            registry=self.registry,
        )
        self.anomaly_value = Gauge(
            "modelmonitor_anomaly_value",
            "A spec.anomalies series' latest judged value.",
            ["namespace", "monitor", "series"],
            registry=self.registry,
        )
        self.anomaly_band = Gauge(
            "modelmonitor_anomaly_band",
            "The seasonal band of a spec.anomalies series at its latest point (bound: "
            "lower, median, upper).",
            ["namespace", "monitor", "series", "bound"],
            registry=self.registry,
        )
        self.anomalous = Gauge(
            "modelmonitor_anomalous",
            "1 while a spec.anomalies series has an open anomaly, 0 when judged normal; "
            "absent in warm-up or without data.",
            ["namespace", "monitor", "series"],
            registry=self.registry,
        )
        self.performance_estimated = Gauge(
            "modelmonitor_performance_estimated",
            "Estimated model performance of the last run (CBPE from calibrated probabilities); "
            "bound: value, lower or upper of its interval.",
            ["namespace", "monitor", "metric", "bound"],
            registry=self.registry,
        )
        self.performance_realized = Gauge(
            "modelmonitor_performance_realized",
            "Realized model performance of the last run (a golden set's labels); "
            "bound: value, lower or upper.",
            ["namespace", "monitor", "metric", "bound"],
            registry=self.registry,
        )
        self.performance_reference = Gauge(
            "modelmonitor_performance_reference",
            "The reference's own model performance (its labels against its probabilities).",
            ["namespace", "monitor", "metric"],
            registry=self.registry,
        )
        self.concept_drift = Gauge(
            "modelmonitor_concept_drift",
            "1 when realized performance fell outside the estimate's intervals in the last run.",
            ["namespace", "monitor"],
            registry=self.registry,
        )
        self.actions = Counter(
            "modelmonitor_actions_total",
            "Remediation decisions and actions by type and result.",
            ["namespace", "monitor", "action", "result"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "modelmonitor_notifications_total",
            "Incident notification attempts by sink (spec.alerting.sinks[].name), sink type "
            "and result: delivered, retrying, failed (refused or out of attempts), dropped.",
            ["namespace", "monitor", "sink", "type", "result"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "modelmonitor_leader",
            "1 while this replica runs monitors and acts (holds the leader Lease, or runs "
            "standalone), 0 while it stands by.",
            registry=self.registry,
        )
        self.leader_transitions = Counter(
            "modelmonitor_leader_transitions_total",
            "Times this replica started (change=acquired) or stopped (change=lost) leading.",
            ["change"],
            registry=self.registry,
        )
        self._series: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}
        self._last_runs: dict[tuple[str, str], float] = {}

    def watch_payloads(self, store: PayloadCounting) -> None:
        """Export the payload-log collector's counters at scrape time."""
        self.registry.register(_PayloadCollector(store))

    def watch_kafka(self, feeds: KafkaCounting) -> None:
        """Export the Kafka feeds' record counters at scrape time."""
        self.registry.register(_KafkaCollector(feeds))

    def watch_outbound(self, fence: BlockCounting) -> None:
        """Export the outbound fence's refusals at scrape time."""
        self.registry.register(_OutboundCollector(fence))

    def record_run(
        self, namespace: str, monitor: str, report: Report, verdict: Verdict, lag: float
    ) -> None:
        """Everything one run measured; series of features/SLOs gone since are removed."""
        self._clear_series(namespace, monitor)
        self.run_duration.labels(namespace, monitor).observe(report.duration_seconds)
        self.run_start_lag.observe(lag)
        self.runs.labels(namespace, monitor, verdict.phase.value).inc()
        if timed_out_run(report):
            self.run_timeouts.labels(namespace, monitor).inc()
        if any(p.reason == REPORT_UNVERIFIED for p in report.problems):
            self.reports_unverified.labels(namespace, monitor).inc()
        self.set_phase(namespace, monitor, verdict.phase)
        self._note_last_run(namespace, monitor, report.finished)
        drift = report.drift
        if drift.status == "ok":
            self._set(self.dataset_drift_share, (namespace, monitor), drift.share)
            self._set(self.drifted_features, (namespace, monitor), drift.drifted_features)
            for f in drift.features:
                if f.statistic is not None and math.isfinite(f.statistic):
                    self._set(
                        self.feature_drift_score,
                        (namespace, monitor, f.name, f.method),
                        f.statistic,
                    )
                if f.p_value is not None:
                    self._set(
                        self.feature_drift_pvalue,
                        (namespace, monitor, f.name, f.method),
                        f.p_value,
                    )
                self._set(self.feature_drifted, (namespace, monitor, f.name), float(f.drifted))
        effective = {s.get("name"): s for s in verdict.status_patch.get("slos", [])}
        for slo in report.slos:
            data = effective.get(slo.name) or slo.to_dict()
            met = data.get("met")
            if met is not None:
                self._set(self.slo_met, (namespace, monitor, slo.name), float(bool(met)))
            remaining = data.get("budgetRemaining")
            if isinstance(remaining, int | float):
                self._set(self.slo_budget_remaining, (namespace, monitor, slo.name), remaining)
            for window, rate in (data.get("burnRates") or {}).items():
                if isinstance(rate, int | float):
                    self._set(self.slo_burn_rate, (namespace, monitor, slo.name, window), rate)

        for a in report.anomalies:
            self._record_anomaly(namespace, monitor, a)
        if report.performance is not None:
            self._record_performance(namespace, monitor, report.performance)

    def _record_anomaly(self, namespace: str, monitor: str, a: AnomalyOutcome) -> None:
        labels = (namespace, monitor, a.name)
        if a.state not in ("Normal", "Anomalous"):
            return
        self._set(self.anomalous, labels, float(a.state == "Anomalous"))
        score = a.score
        if score is not None and math.isfinite(score):
            self._set(self.anomaly_score, labels, score)
        if a.value is not None:
            self._set(self.anomaly_value, labels, a.value)
        for bound, value in (("lower", a.lower), ("median", a.median), ("upper", a.upper)):
            if value is not None:
                self._set(self.anomaly_band, (*labels, bound), value)

    def _record_performance(self, namespace: str, monitor: str, perf: Mapping[str, Any]) -> None:
        """status.performance's numbers; nothing for a run without an estimate."""
        for gauge, part in (
            (self.performance_estimated, "estimated"),
            (self.performance_realized, "realized"),
        ):
            for metric, interval in (perf.get(part) or {}).items():
                for bound in ("value", "lower", "upper"):
                    x = interval.get(bound)
                    if isinstance(x, int | float) and math.isfinite(x):
                        self._set(gauge, (namespace, monitor, metric, bound), float(x))
        for metric, x in (perf.get("reference") or {}).items():
            if isinstance(x, int | float) and math.isfinite(x):
                self._set(self.performance_reference, (namespace, monitor, metric), float(x))
        if perf.get("labelledRows"):
            self._set(
                self.concept_drift, (namespace, monitor), float(bool(perf.get("conceptDrift")))
            )

    def _set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        gauge.labels(*labels).set(value)
        self._series.setdefault((labels[0], labels[1]), []).append((gauge, labels))

    def _clear_series(self, namespace: str, monitor: str) -> None:
        for gauge, labels in self._series.pop((namespace, monitor), []):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)

    def set_phase(self, namespace: str, monitor: str, phase: Phase) -> None:
        for candidate in Phase:
            self.monitor_phase.labels(namespace, monitor, candidate.value).set(
                1 if candidate == phase else 0
            )

    def record_schedule(
        self,
        namespace: str,
        monitor: str,
        *,
        interval: float | None,
        ready_since: dt.datetime | None,
        last_run: dt.datetime | None,
    ) -> None:
        """What an alert needs to tell a monitor that stopped running: its interval and
        Ready time (both only while Ready, so an Invalid monitor is not "late") and its
        last run as status has it (so a restarted operator still knows it)."""
        for gauge, value in (
            (self.interval, interval),
            (self.ready_since, ready_since.timestamp() if ready_since else None),
        ):
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, monitor)
            else:
                gauge.labels(namespace, monitor).set(value)
        if last_run is not None:
            self._note_last_run(namespace, monitor, last_run)

    def _note_last_run(self, namespace: str, monitor: str, finished: dt.datetime) -> None:
        """Keep the latest: status read at a reconcile may lag behind a run just recorded."""
        key = (namespace, monitor)
        latest = max(self._last_runs.get(key, 0.0), finished.timestamp())
        self._last_runs[key] = latest
        self.last_run.labels(namespace, monitor).set(latest)

    def record_action(self, namespace: str, monitor: str, action: str, result: str) -> None:
        """One remediation decision or action and how it ended (succeeded, dryrun, ...)."""
        self.actions.labels(namespace, monitor, action, result).inc()

    def record_leadership(self, leading: bool) -> None:
        """This replica started or stopped leading."""
        self.leader.set(1 if leading else 0)
        self.leader_transitions.labels("acquired" if leading else "lost").inc()

    def record_notification(
        self, namespace: str, monitor: str, sink: str, type_: str, result: str
    ) -> None:
        """One attempt to deliver an incident notification and its result."""
        self.notifications.labels(namespace, monitor, sink, type_, result).inc()

    def forget(self, namespace: str, monitor: str) -> None:
        """Drop every series of a deleted monitor, so no stale gauges linger."""
        self._clear_series(namespace, monitor)
        self._last_runs.pop((namespace, monitor), None)
        for series in (
            self.run_timeouts,
            self.reports_unverified,
            self.interval,
            self.ready_since,
            self.last_run,
        ):
            with contextlib.suppress(KeyError):
                series.remove(namespace, monitor)
        for candidate in Phase:
            with contextlib.suppress(KeyError):
                self.monitor_phase.remove(namespace, monitor, candidate.value)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)


class _PayloadCollector(Collector):
    """Reads the collector's counters when Prometheus scrapes (no bookkeeping twice)."""

    def __init__(self, store: PayloadCounting) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        events = CounterMetricFamily(
            "modelmonitor_payload_events",
            "Payload-log CloudEvents and rows by outcome, per monitor.",
            labels=["namespace", "monitor", "result"],
        )
        for (namespace, monitor), counters in self._store.counters().items():
            for result, value in counters.as_dict().items():
                events.add_metric([namespace, monitor, result], float(value))
        yield events
        rejected = CounterMetricFamily(
            "modelmonitor_payload_rejected",
            "Payload-log requests turned away before reaching a window, by reason "
            "(token_missing, token_wrong, unknown_monitor, foreign_source, ...).",
            labels=["reason"],
        )
        for reason, value in self._store.rejected.items():
            rejected.add_metric([reason], float(value))
        yield rejected
        held = GaugeMetricFamily(
            "modelmonitor_payload_window_bytes",
            "Memory a monitor's payload-log window holds, as counted against its share.",
            labels=["namespace", "monitor"],
        )
        for (namespace, monitor), value in self._store.window_bytes().items():
            held.add_metric([namespace, monitor], float(value))
        yield held
        labels = CounterMetricFamily(
            "modelmonitor_payload_labels",
            "Late labels by what the join made of them (received, matched, unknownIds, "
            "duplicates, late) and served predictions that left unlabelled (expired).",
            labels=["namespace", "monitor", "result"],
        )
        awaiting = GaugeMetricFamily(
            "modelmonitor_payload_labels_awaiting",
            "Served predictions waiting for a late label.",
            labels=["namespace", "monitor"],
        )
        for (namespace, monitor), found in self._store.label_counters().items():
            for result, value in found.items():
                if result == "awaiting":
                    awaiting.add_metric([namespace, monitor], float(value))
                else:
                    labels.add_metric([namespace, monitor, result], float(value))
        yield labels
        yield awaiting
        yield GaugeMetricFamily(
            "modelmonitor_payload_budget_bytes",
            "The payload-log store's byte budget, shared equally by the windows.",
            value=float(self._store.max_bytes),
        )


class _KafkaCollector(Collector):
    """The Kafka feeds' counters, read when Prometheus scrapes."""

    def __init__(self, feeds: KafkaCounting) -> None:
        self._feeds = feeds

    def collect(self) -> Iterable[Metric]:
        records = CounterMetricFamily(
            "modelmonitor_payload_kafka_records",
            "Kafka records of payload-log topics, per monitor: read, applied (offered to the "
            "window), skipped (re-delivered, already applied), too_large, and the partitions "
            "rewound to the window's start (rewinds) and commits made.",
            labels=["namespace", "monitor", "result"],
        )
        for (namespace, monitor), counts in self._feeds.counters().items():
            for result, value in counts.items():
                records.add_metric([namespace, monitor, result], float(value))
        yield records


class _OutboundCollector(Collector):
    """The outbound fence's counters, read when Prometheus scrapes."""

    def __init__(self, fence: BlockCounting) -> None:
        self._fence = fence

    def collect(self) -> Iterable[Metric]:
        blocked = CounterMetricFamily(
            "modelmonitor_outbound_blocked",
            "Outbound requests the fence stopped, by rule (an address refused, a redirect "
            "to another host, a body over its cap).",
            labels=["rule"],
        )
        for rule, value in dict(self._fence.blocked).items():
            blocked.add_metric([rule], float(value))
        yield blocked
        held = GaugeMetricFamily(
            "modelmonitor_outbound_buffer_bytes",
            "Bytes of response bodies being read now, by namespace (OUTBOUND_BUFFER_BYTES is "
            "shared between the namespaces reading; a namespace reading nothing is absent).",
            labels=["namespace"],
        )
        for namespace, value in sorted(self._fence.buffer_held.items()):
            held.add_metric([namespace], float(value))
        yield held
