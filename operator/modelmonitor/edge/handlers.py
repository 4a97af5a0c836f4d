"""kopf handlers: the edge where Kubernetes events reach the pure core.

Each handler validates the monitor (:mod:`modelmonitor.engine.validation`), writes status
with one patch, posts an Event only when the Ready condition changes, and records metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelmonitor import GROUP, PLURAL, VERSION
from modelmonitor.adapters.kube import KubeClient
from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.events import REPORTING_COMPONENT
from modelmonitor.core.payload_token import TokenError, payload_status
from modelmonitor.core.report import Report
from modelmonitor.core.scheduling import parse_time
from modelmonitor.core.status import find_condition
from modelmonitor.core.verdict import Event, Verdict
from modelmonitor.edge.config import OperatorConfig
from modelmonitor.engine.leader import AlwaysLeading, LeaseElector
from modelmonitor.engine.remediation import NoRemediation, Remediation
from modelmonitor.engine.runloop import LoopDeps, Runner, run_loop
from modelmonitor.engine.slots import RunSlots
from modelmonitor.engine.validation import ConfigurationResult, evaluate, needs_recheck
from modelmonitor.sources.payload.kafka_feed import KafkaFeeds
from modelmonitor.sources.payload.server import start_payload_server, stop_payload_server
from modelmonitor.sources.payload.store import PayloadStore, PayloadStoreFullError
from modelmonitor.sources.payload.tokens import ensure_token

log = logging.getLogger(__name__)

FINALIZER = "modelmonitor.io/run-loop"  # per shard: <LEASE_NAME>.modelmonitor.io/run-loop
FEED_LEADERSHIP_CHECK_SECONDS = 1.0  # how soon a new leader starts consuming Kafka


@dataclass
class OperatorContext:
    """What the handlers share; passed to kopf as the root ``memo``."""

    config: OperatorConfig
    kube: KubeClient
    metrics: MetricsRecorder
    runner: Runner
    run_slots: RunSlots = field(default_factory=lambda: RunSlots(16))
    payloads: PayloadStore = field(default_factory=PayloadStore)
    payload_port: int = 8082
    payload_server: Any = None
    remediator: Remediation = field(default_factory=NoRemediation)
    kafka_feeds: KafkaFeeds | None = None  # payload logs read from Kafka
    # the Lease this replica competes for; None: a single replica, always leading
    elector: LeaseElector | None = None
    elector_task: Any = None

    @property
    def leadership(self) -> LeaseElector | AlwaysLeading:
        return self.elector if self.elector is not None else AlwaysLeading()


def in_shard(labels: Mapping[str, str], memo: Any, **_: Any) -> bool:
    """kopf's filter on every monitor handler: the monitor is this deployment's to run
    (SHARD_LABEL_SELECTOR matches its labels, or no selector is set)."""
    ctx = getattr(memo, "context", None)
    shard = ctx.config.shard if isinstance(ctx, OperatorContext) else None
    return shard is None or shard.matches(labels)


def _context(memo: Any) -> OperatorContext:
    ctx = getattr(memo, "context", None)
    if not isinstance(ctx, OperatorContext):
        raise kopf.PermanentError("operator context missing: start with `modelmonitor run`")
    return ctx


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    # kopf's own bookkeeping goes into annotations under our prefix, never into status.
    # A shard (SHARD_LABEL_SELECTOR) keeps its own, so that deployments sharing the
    # watched objects never take another's handled-state for theirs.
    prefix = ctx.config.annotation_prefix
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    # The run loop (a kopf daemon) holds this finalizer so that it stops before the
    # object goes; removed as soon as the loop has stopped.
    settings.persistence.finalizer = ctx.config.finalizer
    # Only our explicit Events reach the objects, not every handler log line.
    settings.posting.level = logging.CRITICAL
    settings.posting.reporting_component = REPORTING_COMPONENT  # as the keyed Events' "From"
    # No kopf peering: every replica handles the spec events (idempotent, conflict-safe
    # status writes), and the Lease decides which one runs monitors and acts
    # (engine/leader.py; docs/decisions.md, "Leader election on a Lease").
    settings.peering.standalone = True
    settings.peering.mandatory = False
    # With rights in fixed namespaces only, kopf must not try cluster-wide lists.
    settings.scanning.disabled = ctx.config.scanning_disabled
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # Blocking work (API calls, statistics) runs in threads; asyncio's default of
    # cpu + 4 threads queues status writes behind each other with many monitors.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(
            max_workers=max(16, 2 * ctx.config.max_concurrent_runs),
            thread_name_prefix="modelmonitor",
        )
    )
    ctx.payload_server = await start_payload_server(ctx.payloads, ctx.payload_port)
    if ctx.elector is not None:
        ctx.metrics.leader.set(0)
        ctx.elector_task = asyncio.create_task(ctx.elector.run(), name="lease-elector")
    else:
        ctx.metrics.leader.set(1)  # standalone: this replica always runs and acts
    log.info(
        "modelmonitor operator starting: %s, leader election %s",
        "all namespaces" if ctx.config.clusterwide else ", ".join(ctx.config.namespaces),
        "off (standalone)"
        if ctx.elector is None
        else f"on lease {ctx.config.lease_namespace}/{ctx.config.lease_name} "
        f"as {ctx.config.identity}",
    )


@kopf.on.cleanup()
async def shutdown(memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    if ctx.elector_task is not None:
        ctx.elector_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx.elector_task
        ctx.elector_task = None
    if ctx.elector is not None:
        await asyncio.to_thread(ctx.elector.release)  # a standby takes over at once
        ctx.elector.publish()
    if ctx.payload_server is not None:
        await stop_payload_server(ctx.payload_server)
        ctx.payload_server = None
    if ctx.kafka_feeds is not None:
        await asyncio.to_thread(ctx.kafka_feeds.stop_all)


async def _register_payloads(ctx: OperatorContext, body: kopf.Body, spec: Any, logger: Any) -> None:
    """Give a monitor with spec.data.payloadLog its token and its window in the
    collector (or drop the window). A failure is logged and posted as a Warning Event;
    neither ever holds the token."""
    namespace = body.metadata.namespace or "default"
    name = body.metadata.name or ""
    if spec is None or spec.payload_log is None:
        await _feed_kafka(ctx, namespace, name, None)
        ctx.payloads.forget(namespace, name)
        return
    try:
        token = await asyncio.to_thread(
            ensure_token, ctx.kube, namespace, name, body.metadata.uid or "", ctx.config.payload_url
        )
        ctx.payloads.register(namespace, name, spec, token)
    except (TokenError, PayloadStoreFullError) as exc:
        await _feed_kafka(ctx, namespace, name, None)
        ctx.payloads.forget(namespace, name)
        logger.warning("payload log not collected: %s", exc)
        kopf.event(
            body, type="Warning", reason="PayloadLogUnavailable", message=f"payload log: {exc}"
        )
        return
    missing = await _feed_kafka(ctx, namespace, name, spec.payload_log.kafka)
    if missing is not None:
        logger.warning("payload log not read from Kafka: %s", missing)
        kopf.event(
            body, type="Warning", reason="PayloadLogUnavailable", message=f"payload log: {missing}"
        )


async def _feed_kafka(ctx: OperatorContext, namespace: str, name: str, spec: Any) -> str | None:
    """Start, restart or stop the monitor's Kafka feed (``spec``: its KafkaSpec or None)."""
    if ctx.kafka_feeds is None:
        return None if spec is None else "this operator does not read Kafka"
    return await asyncio.to_thread(ctx.kafka_feeds.ensure, namespace, name, spec)


def _payload_status(ctx: OperatorContext, namespace: str, name: str, spec: Any) -> Any:
    """status.payloadLog: where the logger URL is kept (None clears it)."""
    if spec is None or spec.payload_log is None:
        return None
    try:
        return payload_status(ctx.config.payload_url, namespace, name)
    except TokenError:
        return None


async def _reconcile(body: kopf.Body, memo: Any, logger: Any) -> None:
    """Validate the monitor and write the configuration part of its status."""
    ctx = _context(memo)
    started = time.perf_counter()
    namespace = body.metadata.namespace or "default"
    name = body.metadata.name or ""
    seen: dict[str, Any] = {}

    def compute(obj: dict[str, Any]) -> dict[str, Any]:
        result = evaluate(
            obj,
            ctx.kube,
            now=dt.datetime.now(dt.UTC),
            retrain_service_accounts=ctx.config.retrain_service_accounts,
        )
        seen["old"] = find_condition((obj.get("status") or {}).get("conditions"), "Ready")
        seen["result"] = result
        spec = result.spec if result.valid else None
        return {**result.status_patch, "payloadLog": _payload_status(ctx, namespace, name, spec)}

    try:
        written = await asyncio.to_thread(ctx.kube.update_monitor_status, namespace, name, compute)
    except Exception:
        ctx.metrics.reconciles.labels(result="error").inc()
        raise
    if written is None:
        return  # deleted meanwhile
    result = seen["result"]
    await _register_payloads(ctx, body, result.spec if result.valid else None, logger)
    ctx.metrics.set_phase(namespace, name, result.phase)
    _record_schedule(ctx.metrics, namespace, name, result, written[0])
    ctx.metrics.reconciles.labels(result="ok" if result.valid else "invalid").inc()
    ctx.metrics.reconcile_duration.observe(time.perf_counter() - started)

    old_ready = seen["old"]
    new_ready = result.ready
    if (
        old_ready is None
        or old_ready.get("status") != new_ready.status
        or old_ready.get("reason") != new_ready.reason
    ):
        kopf.event(
            body,
            type="Normal" if new_ready.status == "True" else "Warning",
            reason=new_ready.reason,
            message=new_ready.message,
        )
        logger.info("Ready=%s (%s): %s", new_ready.status, new_ready.reason, new_ready.message)


def _record_schedule(
    metrics: MetricsRecorder,
    namespace: str,
    name: str,
    result: ConfigurationResult,
    obj: Mapping[str, Any],
) -> None:
    """The gauges the "no recent run" alert compares: interval, Ready time, last run."""
    ready = result.ready.status == "True" and result.spec is not None
    condition = find_condition(result.status_patch.get("conditions"), "Ready") or {}
    metrics.record_schedule(
        namespace,
        name,
        interval=result.spec.schedule.interval_seconds if ready and result.spec else None,
        ready_since=parse_time(condition.get("lastTransitionTime")) if ready else None,
        last_run=parse_time(((obj.get("status") or {}).get("lastRun") or {}).get("time")),
    )


@kopf.on.create(GROUP, VERSION, PLURAL, when=in_shard)
async def on_create(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    await _reconcile(body, memo, logger)


@kopf.on.resume(GROUP, VERSION, PLURAL, when=in_shard)
async def on_resume(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    await _reconcile(body, memo, logger)


@kopf.on.update(GROUP, VERSION, PLURAL, when=in_shard)
async def on_update(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    await _reconcile(body, memo, logger)


def _should_recheck(
    status: Mapping[str, Any], labels: Mapping[str, str], memo: Any, **_: Any
) -> bool:
    return in_shard(labels, memo) and needs_recheck(status)


async def recheck_references(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """An invalid monitor recovers by itself once its missing target or data appears."""
    await _reconcile(body, memo, logger)


def register_recheck(interval_seconds: float) -> None:
    """Register :func:`recheck_references` every ``interval_seconds`` (RECHECK_SECONDS).

    kopf takes a timer's interval when the handler is registered, and the interval is an
    operator setting, known only once the configuration is loaded: so the operator's
    main registers this timer instead of a decorator at import time.
    """
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="recheck_references",
        interval=interval_seconds,
        when=_should_recheck,
    )(recheck_references)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=30.0, when=in_shard)
async def monitoring_runs(
    stopped: kopf.DaemonStopped, body: kopf.Body, memo: Any, logger: Any, **_: Any
) -> None:
    """One loop per monitor: runs on schedule, verdict to status, Events and metrics."""
    ctx = _context(memo)
    namespace = body.metadata.namespace or "default"
    name = body.metadata.name or ""

    def post_event(event: Event) -> None:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        logger.info("%s: %s", event.reason, event.message)

    def on_verdict(report: Report, verdict: Verdict, lag: float) -> None:
        ctx.metrics.record_run(namespace, name, report, verdict, lag)

    def on_action(action: str, result: str) -> None:
        ctx.metrics.record_action(namespace, name, action, result)

    def on_notification(sink: str, type_: str, result: str) -> None:
        ctx.metrics.record_notification(namespace, name, sink, type_, result)

    deps = LoopDeps(
        ctx.runner,
        ctx.kube,
        ctx.run_slots,
        post_event,
        on_verdict,
        remediator=ctx.remediator,
        on_action=on_action,
        on_notification=on_notification,
        leader=ctx.leadership,
    )
    feeds = ctx.kafka_feeds
    follower = None
    if feeds is not None:  # a Kafka feed consumes while this replica leads and runs it
        follower = asyncio.ensure_future(
            _feed_while_leading(feeds, namespace, name, ctx.leadership, stopped)
        )
    try:
        await run_loop(
            namespace, name, body, stopped, deps, idle_seconds=ctx.config.recheck_seconds
        )
    finally:
        if follower is not None:
            follower.cancel()
        if feeds is not None:
            await asyncio.to_thread(feeds.pause, namespace, name)


async def _feed_while_leading(
    feeds: KafkaFeeds, namespace: str, name: str, leader: Any, stopped: Any
) -> None:
    """Resume the monitor's Kafka feed when this replica gains the Lease, pause it when
    it loses it (checked every second), so only the leader is in the consumer group."""
    feeding = False
    while not stopped:
        leading = bool(leader.leading())
        if leading != feeding:
            await asyncio.to_thread(feeds.resume if leading else feeds.pause, namespace, name)
            feeding = leading
        await stopped.wait(FEED_LEADERSHIP_CHECK_SECONDS)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, when=in_shard)
async def on_delete(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """Drop the monitor's metric series; owned objects go with Kubernetes garbage collection.

    ``optional=True``: this handler adds no finalizer of its own (the run loop's is the
    only one, see docs/decisions.md).
    """
    ctx = _context(memo)
    ctx.metrics.forget(body.metadata.namespace or "default", body.metadata.name or "")
    await _feed_kafka(ctx, body.metadata.namespace or "default", body.metadata.name or "", None)
    ctx.payloads.forget(body.metadata.namespace or "default", body.metadata.name or "")
    logger.info("monitor deleted")
