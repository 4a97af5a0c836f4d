"""Payload logs read from Kafka: one consumer per monitor fills the monitor's window.

A monitor with ``spec.data.payloadLog.kafka`` gets a :class:`KafkaFeed`: a thread that
consumes the topic in the monitor's consumer group and adds each record's CloudEvent to
the same :class:`~.window.PayloadWindow` the HTTP collector fills (same pairing, caps
and byte share; the run's snapshot does not know where rows came from).

**Surviving a restart.** The window lives in memory; what survives is the topic. When a
partition is assigned and this process has not read it yet, the feed seeks it by
timestamp to *now - windowSeconds - a pairing margin* (``offsets_for_times``) and reads
from there, so a new process rebuilds the window it lost, events produced while no
operator ran included. Rows are timed by the record's timestamp (never later than
now), so a replayed row ages out of the window when it would have. Committed offsets are
progress, not the window's start: after each batch has reached the window, the feed
commits the offset after the last record it applied, so ``kafka-consumer-groups
--describe`` shows how far behind the operator is; nothing is committed before its
events are in the window.

**Each event once.** Within a process, the feed remembers the next offset of every
partition it read and skips records below it (a rebalance that gives a partition back
re-delivers from the committed offset; those records are already in the window). After
a restart the window is empty and the replay adds each record once. A record that was
produced twice (a retrying producer without idempotence) is the same CloudEvent id:
the window's pairing counts it as a duplicate.

**Credentials.** With ``tlsConfig`` or ``sasl`` the feed reads the monitor's Secrets
(:mod:`.kafka_auth`) each time it opens a consumer, so a rotated password is used from
the next connection on. A missing Secret, a wrong password or an untrusted broker
certificate is the feed's problem (the window's ``source_problem``): the run reports it
as ``PayloadSourceUnavailable`` and never acts on a window it could not fill.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelmonitor.adapters import kafka as kafka_client
from modelmonitor.adapters.outbound import FenceError, Outbound, find_refusal
from modelmonitor.core.codecs.cloudevents import MalformedEventError, parse_events
from modelmonitor.core.kafka import client_id, default_group, record_message
from modelmonitor.core.outbound import sanitize
from modelmonitor.core.spec import KafkaSpec
from modelmonitor.sources.endpoint import EndpointLookup
from modelmonitor.sources.payload.kafka_auth import load_kafka_auth
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.payload.window import PayloadWindow
from modelmonitor.sources.prometheus_auth import CredentialsUnavailable

log = logging.getLogger(__name__)

POLL_MS = 500
PAIRING_MARGIN_SECONDS = 60.0  # read this much before the window, so edge pairs pair
RETRY_SECONDS = 5.0  # between attempts after the broker failed us
LOOKUP_TIMEOUT_MS = 10_000
STALL_SECONDS = 15.0  # subscribed this long without a partition: report why
# A problem names the topic (249 characters at most) and the brokers before saying what
# failed: long enough that the cause is never cut out of the middle.
MAX_PROBLEM = 800


@dataclass
class FeedStats:
    """What one feed did (for status messages and metrics)."""

    records: int = 0  # records read from the topic
    applied: int = 0  # records whose events were offered to the window
    skipped: int = 0  # records already applied (re-delivered after a rebalance)
    too_large: int = 0  # values over the body cap, not decoded
    rewinds: int = 0  # partitions sought back to the window's start
    commits: int = 0
    problem: str | None = None  # the last connection or broker problem; None when fine
    started: float = field(default_factory=time.monotonic)


class KafkaFeed:
    """One monitor's consumer, in a daemon thread of its own."""

    def __init__(
        self,
        namespace: str,
        monitor: str,
        spec: KafkaSpec,
        store: PayloadStore,
        fence: Outbound,
        *,
        max_value_bytes: int,
        lookup: EndpointLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.monitor = monitor
        self.spec = spec
        self.group = spec.consumer_group or default_group(namespace, monitor)
        self.store = store
        self.fence = fence.for_namespace(namespace)
        self.max_value_bytes = max_value_bytes
        self.lookup = lookup
        self.client_id = client_id(namespace, monitor)
        self.clock = clock
        self.stats = FeedStats()
        self._stop = threading.Event()
        self._next: dict[Any, int] = {}  # partition -> next offset to apply
        self._rewind: set[Any] = set()  # partitions assigned, not yet sought
        self._sought: set[Any] = set()  # partitions sought during this poll
        self._thread = threading.Thread(
            target=self._run, name=f"kafka-{namespace}/{monitor}", daemon=True
        )

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Empty the window and start reading: the window is rebuilt from the topic
        (every (re)start: the operator's, a changed ``kafka`` spec, a replica taking
        the monitor back after a pause), so no event is in it twice."""
        window = self.store.window(self.namespace, self.monitor)
        if window is not None:
            window.clear()
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait a little; a thread still connecting ends once
        its connection attempt does, without consuming."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the loop --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = kafka_client.open_consumer(
                    self.fence,
                    self.spec.bootstrap_servers,
                    self.group,
                    client_id=self.client_id,
                    session_timeout_ms=10_000,
                    heartbeat_interval_ms=3_000,
                    bootstrap_timeout_ms=15_000,
                    **self._connection(),
                )
                consumer.subscribe(
                    [self.spec.topic],
                    listener=kafka_client.rebalance_listener(self.assigned, self.revoked),
                )
                subscribed = time.monotonic()
                while not self._stop.is_set():
                    self._poll_once(consumer)
                    if not consumer.assignment() and time.monotonic() - subscribed > STALL_SECONDS:
                        self._stalled(consumer)
            except Exception as exc:
                self._problem(exc)
                self._stop.wait(RETRY_SECONDS)
            finally:
                if consumer is not None:
                    try:
                        kafka_client.close_consumer(consumer)
                    except Exception:
                        log.debug("kafka %s/%s: close failed", self.namespace, self.monitor)
        kafka_client.forget_failure(self.client_id)

    def _connection(self) -> dict[str, Any]:
        """kafka-python's security settings, the Secrets read now (never logged)."""
        if not self.spec.refs():
            return {"security_protocol": self.spec.security_protocol}
        if self.lookup is None:
            raise CredentialsUnavailable(
                "LookupFailed", "this operator process reads no Secrets for Kafka"
            )
        return load_kafka_auth(self.lookup, self.namespace, self.spec)

    def _stalled(self, consumer: Any) -> None:
        refused = kafka_client.last_refusal(consumer) or kafka_client.last_failure(self.client_id)
        why = refused or (
            f"no partition of the topic assigned after {STALL_SECONDS:g} s (brokers"
            " unreachable or the topic missing)"
        )
        text = sanitize(f"Kafka {self.spec.topic} via {_servers(self.spec)}: {why}", MAX_PROBLEM)
        if text != self.stats.problem:
            log.warning("payload log %s/%s: %s", self.namespace, self.monitor, text)
        self.stats.problem = text
        self._set_window_problem(text)

    def _problem(self, exc: BaseException) -> None:
        refused = find_refusal(exc)
        failure = kafka_client.last_failure(self.client_id)
        if refused is not None or isinstance(exc, FenceError):
            text = str(refused or exc)
        elif isinstance(exc, CredentialsUnavailable):
            text = f"{exc.reason}: {exc}"
        elif failure is not None:
            text = failure
        else:
            text = f"{type(exc).__name__}: {exc}"
        where = f"Kafka {self.spec.topic} via {_servers(self.spec)}"
        self.stats.problem = sanitize(f"{where}: {text}", MAX_PROBLEM)
        log.warning("payload log %s/%s: %s", self.namespace, self.monitor, self.stats.problem)
        self._set_window_problem(self.stats.problem)

    def _set_window_problem(self, text: str | None) -> None:
        window = self.store.window(self.namespace, self.monitor)
        if window is not None:
            window.source_problem = text

    def _poll_once(self, consumer: Any) -> None:
        batches = consumer.poll(timeout_ms=POLL_MS)
        if self._rewind:
            self._seek_window(consumer)
            # Records fetched before the seek came from the committed offset: drop them,
            # the next poll reads from the window's start.
            batches = {tp: rs for tp, rs in batches.items() if tp not in self._sought}
            self._sought = set()
        window = self.store.window(self.namespace, self.monitor)
        if window is None:
            return
        commit: dict[Any, int] = {}
        for tp, records in batches.items():
            for record in records:
                self.stats.records += 1
                if record.offset < self._next.get(tp, -1):
                    self.stats.skipped += 1
                    continue
                self._apply(window, record)
                self._next[tp] = record.offset + 1
                commit[tp] = record.offset + 1
        if commit:
            from kafka.structs import OffsetAndMetadata  # the kafka extra

            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in commit.items()})
            self.stats.commits += 1
        if self.stats.problem is not None:
            self.stats.problem = None
            window.source_problem = None

    def _seek_window(self, consumer: Any) -> None:
        """Seek each newly assigned partition to the window's start (by timestamp)."""
        pending, self._rewind = self._rewind, set()
        start_ms = int(1000 * (self.clock() - self._window_seconds() - PAIRING_MARGIN_SECONDS))
        found = consumer.offsets_for_times(
            {tp: max(start_ms, 0) for tp in pending}, timeout_ms=LOOKUP_TIMEOUT_MS
        )
        ends = consumer.end_offsets(list(pending), timeout_ms=LOOKUP_TIMEOUT_MS)
        for tp in pending:
            hit = found.get(tp)
            offset = hit.offset if hit is not None else ends.get(tp, 0)
            consumer.seek(tp, offset)
            self.stats.rewinds += 1
        self._sought = pending

    def _window_seconds(self) -> float:
        window = self.store.window(self.namespace, self.monitor)
        return window.limits.window_seconds if window is not None else 3600.0

    def _apply(self, window: PayloadWindow, record: Any) -> None:
        value = record.value
        if value is not None and len(value) > self.max_value_bytes:
            self.stats.too_large += 1
            window.record_malformed()
            return
        now = self.clock()
        stamp = record.timestamp / 1000.0 if record.timestamp and record.timestamp > 0 else now
        when = min(stamp, now)
        headers, body = record_message(_headers(record.headers), value)
        try:
            events = parse_events(headers, body)
        except MalformedEventError as exc:
            window.record_malformed()
            log.debug("payload log %s/%s: %s", self.namespace, self.monitor, exc)
            return
        self.stats.applied += 1
        for event in events:
            if self.store.mismatch(self.namespace, self.monitor, event) is not None:
                window.record_malformed()
                self.store.reject("foreign_source")
                continue
            try:
                window.add(event, when)
            except MalformedEventError as exc:
                log.debug("payload log %s/%s: %s", self.namespace, self.monitor, exc)

    # -- called by the rebalance listener (in the polling thread) -------------------------
    def assigned(self, partitions: Iterable[Any]) -> None:
        fresh = {tp for tp in partitions if tp not in self._next}
        self._rewind |= fresh

    def revoked(self, partitions: Iterable[Any]) -> None:
        self._rewind -= set(partitions)


def _servers(spec: KafkaSpec) -> str:
    return ",".join(f"{h}:{p}" for h, p in spec.bootstrap_servers)


def _headers(raw: Any) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = []
    for item in raw or ():
        try:
            key, value = item
        except (TypeError, ValueError):
            continue
        if isinstance(key, str) and (value is None or isinstance(value, bytes)):
            out.append((key, value))
    return out


class KafkaFeeds:
    """Every monitor's feed, keyed by (namespace, monitor); started and stopped by the
    handlers as monitors are registered and forgotten."""

    def __init__(
        self,
        store: PayloadStore,
        fence: Outbound,
        *,
        max_value_bytes: int,
        leading: Callable[[], bool] | None = None,
        lookup: EndpointLookup | None = None,
    ) -> None:
        self.store = store
        self.fence = fence
        self.max_value_bytes = max_value_bytes
        self.lookup = lookup  # reads the Secrets of tlsConfig and sasl
        # Only the replica holding the Lease consumes: a standby's consumer in the group
        # would take half the partitions into a window nobody runs.
        self._leading = leading or (lambda: True)
        self._feeds: dict[tuple[str, str], KafkaFeed] = {}
        self._paused: dict[tuple[str, str], KafkaSpec] = {}  # stopped with the run loop
        self._lock = threading.Lock()

    def ensure(self, namespace: str, monitor: str, spec: KafkaSpec | None) -> str | None:
        """Run a feed for the monitor as ``spec`` says (None: none). A changed spec
        restarts the feed. Returns why no feed runs when one should (the extra missing)."""
        key = (namespace, monitor)
        with self._lock:
            self._paused.pop(key, None)
            feed = self._feeds.get(key)
            if feed is not None and (spec is None or feed.spec != spec or not feed.alive):
                feed.stop()
                del self._feeds[key]
                feed = None
            if spec is None or feed is not None:
                return None
            if not kafka_client.available():
                return "the operator image lacks the kafka extra (pip install modelmonitor[kafka])"
            if not self._leading():
                self._paused[key] = spec  # started by resume() once this replica leads
                return None
            feed = self._feeds[key] = KafkaFeed(
                namespace,
                monitor,
                spec,
                self.store,
                self.fence,
                max_value_bytes=self.max_value_bytes,
                lookup=self.lookup,
            )
            feed.start()
            return None

    def pause(self, namespace: str, monitor: str) -> None:
        """Stop the monitor's feed, remembering it: its run loop stopped, or this replica
        lost the Lease. The consumer leaves the group, so the replica that leads gets the
        partitions at once."""
        with self._lock:
            feed = self._feeds.pop((namespace, monitor), None)
            if feed is not None:
                self._paused[(namespace, monitor)] = feed.spec
        if feed is not None:
            feed.stop()

    def resume(self, namespace: str, monitor: str) -> str | None:
        """Start a paused feed again (its run loop runs and this replica leads)."""
        with self._lock:
            spec = self._paused.get((namespace, monitor))
        return None if spec is None else self.ensure(namespace, monitor, spec)

    def problem(self, namespace: str, monitor: str) -> str | None:
        with self._lock:
            feed = self._feeds.get((namespace, monitor))
        return feed.stats.problem if feed is not None else None

    def counters(self) -> dict[tuple[str, str], dict[str, int]]:
        """Each running feed's counters (for the metrics)."""
        with self._lock:
            feeds = list(self._feeds.items())
        return {
            key: {
                "read": f.stats.records,
                "applied": f.stats.applied,
                "skipped": f.stats.skipped,
                "too_large": f.stats.too_large,
                "rewinds": f.stats.rewinds,
                "commits": f.stats.commits,
            }
            for key, f in feeds
        }

    def stats(self) -> dict[tuple[str, str], FeedStats]:
        with self._lock:
            return {k: f.stats for k, f in self._feeds.items()}

    def stop_all(self) -> None:
        with self._lock:
            feeds = list(self._feeds.values())
            self._feeds.clear()
            self._paused.clear()
        for feed in feeds:
            feed.stop()
