"""Delivering ``status.alerting.outbox`` entries to their sinks: one try each, fenced.

Not an action the policy plans: the incident's notifications are queued by remediation
(:mod:`modelmonitor.core.alerting`) and this module makes one attempt per due entry,
in order per sink, stopping a sink at its first failure (the outbox schedules the retry
with backoff). Every POST goes through the operator's outbound fence
(:func:`modelmonitor.adapters.webhook.fenced_post`: addresses checked, no redirect across
hosts, a bounded read of the answer). Credentials (webhook URLs, PagerDuty routing keys)
are read from Secrets in the monitor's namespace at the moment of sending, through an API
scoped to that namespace, and never appear in a result, a log line or status.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

import modelmonitor
from modelmonitor.adapters.webhook import (
    Post,
    error_class,
    retryable_error,
    retryable_status,
    urllib_post,
    valid_url,
)
from modelmonitor.core.alerting import Attempt, OutboxEntry
from modelmonitor.core.alerting.payloads import MissingCredentialError, Subject, render
from modelmonitor.core.cluster import ClusterApi
from modelmonitor.core.spec import SinkSpec

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0


def _secret(api: ClusterApi, namespace: str, sink: SinkSpec) -> tuple[str | None, Attempt | None]:
    """The sink's credential, or the failed attempt that says why there is none."""
    if sink.secret is None:
        return None, None
    try:
        value = api.secret_value(namespace, sink.secret.name, sink.secret.key)
    except Exception as exc:  # 403 (RBAC), a refused path: no credential involved yet
        return None, Attempt("", sink.name, ok=False, retryable=True, error=error_class(exc))
    if value is None:  # may be created later: retried with backoff
        return None, Attempt("", sink.name, ok=False, retryable=True, error="SecretNotFound")
    return value.strip(), None


def deliver(
    api: ClusterApi,
    subject: Subject,
    sinks: Sequence[SinkSpec],
    entries: Sequence[OutboxEntry],
    *,
    post: Post | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    timeout: float = TIMEOUT_SECONDS,
) -> list[Attempt]:
    """One attempt per entry, in order per sink; a sink stops at its first failure."""
    send = post or urllib_post
    by_name = {s.name: s for s in sinks}
    stopped: set[str] = set()
    secrets: dict[str, tuple[str | None, Attempt | None]] = {}
    attempts: list[Attempt] = []
    headers_common = {"User-Agent": f"modelmonitor/{modelmonitor.__version__}"}
    for entry in entries:
        sink = by_name.get(entry.sink)
        if sink is None or entry.sink in stopped:
            continue  # removed from the spec (the outbox drops it), or waiting its turn
        if sink.name not in secrets:
            secrets[sink.name] = _secret(api, subject.namespace, sink)
        secret, problem = secrets[sink.name]
        if problem is not None:
            attempts.append(Attempt(entry.id, sink.name, False, problem.retryable, problem.error))
            stopped.add(sink.name)
            continue
        attempt = _send(entry, sink, subject, secret, send, now(), timeout, headers_common)
        attempts.append(attempt)
        if not attempt.ok:
            stopped.add(sink.name)
    return attempts


def _send(
    entry: OutboxEntry,
    sink: SinkSpec,
    subject: Subject,
    secret: str | None,
    post: Post,
    now: dt.datetime,
    timeout: float,
    extra: dict[str, str],
) -> Attempt:
    try:
        requests = render(entry, sink, subject, secret=secret, now=now)
    except MissingCredentialError:
        return Attempt(entry.id, sink.name, ok=False, retryable=True, error="SecretEmpty")
    except ValueError as exc:  # a notice this version cannot render: never sendable
        return Attempt(entry.id, sink.name, ok=False, retryable=False, error=type(exc).__name__)
    for request in requests:
        if not valid_url(request.url):
            return Attempt(entry.id, sink.name, ok=False, retryable=False, error="InvalidUrl")
        try:
            response = post(request.url, request.body, {**extra, **request.headers}, timeout)
        except Exception as exc:  # the text may quote the URL: keep the class only
            return Attempt(entry.id, sink.name, False, retryable_error(exc), error_class(exc))
        if not 200 <= response.status < 300:
            status = response.status
            retry = retryable_status(status) or status == 408
            log.warning(
                "notice %s to sink %s (%s): HTTP %d", entry.id, sink.name, sink.type, status
            )
            return Attempt(entry.id, sink.name, ok=False, retryable=retry, error=f"HTTP {status}")
    log.info("notice %s delivered to sink %s (%s)", entry.id, sink.name, sink.type)
    return Attempt(entry.id, sink.name, ok=True)
