"""The ``notify`` action: POST one message about an incident to a webhook (Slack or JSON).

The webhook URL is read from a Secret at the moment of sending and is itself a
credential (a Slack incoming-webhook URL is all anyone needs to post to the channel), so
it never leaves this module: no result message, detail, log line or exception names the
URL or any part of it. Failures are described by an HTTP status or an error *class*
(``ConnectionRefusedError``, ``TimeoutError``), because the text of urllib's errors often
quotes the URL.

Delivery is at least once: a request is retried on connection errors, timeouts, 429 and
5xx, and an operator restarted between sending and recording the result sends the same
request again. Every POST carries ``X-ModelMonitor-Action-Id: <request id>`` (the JSON
body carries the same value as ``id``), so a receiver that must not see duplicates can
drop a repeated id.

Generic JSON body (``format: json``), version ``v1``::

    {
      "kind": "ModelMonitorNotification",
      "version": "v1",
      "id": "fraud-20261126-154501-notify-1",      # the action id; the de-duplication key
      "monitor": {"namespace": "ml", "name": "fraud", "uid": "..."},
      "target": {"kind": "Deployment", "name": "fraud-model"},
      "incident": "fraud-20261126-154501",
      "trigger": ["slo", "drift"],               # what breached
      "phase": "Breached",                       # the monitor's phase when planned
      "reason": "SLO availability burning 14.4x", # for people
      "dryRun": false,
      "time": "2026-11-26T15:45:03Z"             # when this body was built (UTC)
    }

New fields may be added within ``v1``; a change of meaning gets a new ``version``.
Slack bodies (``format: slack``) are Block Kit messages with a plain ``text`` fallback.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import modelmonitor
from modelmonitor.adapters.webhook import (  # re-exported: the notify action's interface
    HttpResponse,
    Post,
    fenced_post,
    urllib_post,
)
from modelmonitor.adapters.webhook import error_class as _error_class
from modelmonitor.adapters.webhook import retryable_error as _retryable_error
from modelmonitor.adapters.webhook import retryable_status as _retryable_status
from modelmonitor.adapters.webhook import valid_url as _valid_url
from modelmonitor.core.cluster import ClusterApi
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec, NotifySpec

log = logging.getLogger(__name__)

PAYLOAD_KIND = "ModelMonitorNotification"
PAYLOAD_VERSION = "v1"
ACTION_ID_HEADER = "X-ModelMonitor-Action-Id"
TIMEOUT_SECONDS = 5.0
# The waits between attempts: 4 attempts in all, about 3.5 s of waiting at most
# (unless the receiver asks for more with Retry-After).
BACKOFF_SECONDS = (0.5, 1.0, 2.0)
MAX_RETRY_AFTER_SECONDS = 10.0
# Block Kit limits (a header's plain text, a section's text, a field's text).
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 3000
_SLACK_FIELD_MAX = 2000


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_payload(
    fmt: str, request: ActionRequest, spec: MonitorSpec, *, now: datetime
) -> dict[str, Any]:
    """The body to POST for ``request`` in format ``fmt`` ("json" or "slack"); pure."""
    if fmt == "json":
        return _json_payload(request, spec, now=now)
    if fmt == "slack":
        return _slack_payload(request, spec, now=now)
    raise ValueError(f"unknown notification format {fmt!r}; expected json or slack")


def _triggers(request: ActionRequest) -> list[str]:
    return [t.strip() for t in request.trigger.split(",") if t.strip()]


def _json_payload(request: ActionRequest, spec: MonitorSpec, *, now: datetime) -> dict[str, Any]:
    return {
        "kind": PAYLOAD_KIND,
        "version": PAYLOAD_VERSION,
        "id": request.id,
        "monitor": {
            "namespace": request.namespace,
            "name": request.monitor,
            "uid": request.monitor_uid,
        },
        "target": {"kind": spec.target.kind, "name": spec.target.name},
        "incident": request.incident,
        "trigger": _triggers(request),
        "phase": request.phase,
        "reason": request.reason,
        "dryRun": request.dry_run,
        "time": _rfc3339(now),
    }


def _mrkdwn(text: str, limit: int) -> str:
    """Escape the three characters Slack's mrkdwn reserves, then cap the length."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _slack_payload(request: ActionRequest, spec: MonitorSpec, *, now: datetime) -> dict[str, Any]:
    monitor = f"{request.namespace}/{request.monitor}"
    target = f"{spec.target.kind}/{spec.target.name}"
    trigger = " + ".join(_triggers(request)) or "unknown"
    phase = request.phase or "unknown"
    header = f"ModelMonitor {monitor}: {phase}"
    if len(header) > _SLACK_HEADER_MAX:
        header = header[: _SLACK_HEADER_MAX - 1] + "…"
    fallback = f"[modelmonitor] {monitor} ({target}) {phase}: {trigger} - {request.reason}"

    def field_(name: str, value: str) -> dict[str, str]:
        return {"type": "mrkdwn", "text": f"*{name}*\n{_mrkdwn(value, _SLACK_FIELD_MAX - 64)}"}

    dry = " (dry run)" if request.dry_run else ""
    return {
        "text": _mrkdwn(fallback, _SLACK_TEXT_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _mrkdwn(request.reason or "(no reason given)", _SLACK_TEXT_MAX),
                },
            },
            {
                "type": "section",
                "fields": [
                    field_("Monitor", monitor),
                    field_("Target", target),
                    field_("Phase", phase),
                    field_("Trigger", trigger),
                    field_("Incident", request.incident or "-"),
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _mrkdwn(f"action {request.id}{dry} · {_rfc3339(now)}", 300),
                    }
                ],
            },
        ],
    }


def _retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def execute_notify(
    api: ClusterApi,
    spec: MonitorSpec,
    request: ActionRequest,
    *,
    post: Post | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = _utcnow,
    timeout: float = TIMEOUT_SECONDS,
) -> ActionResult:
    """Send the notification for ``request``; never raises, never reveals the URL.

    ``post``, ``sleep`` and ``now`` are injectable so tests run without waiting.
    """
    notify = spec.actions.notify
    if notify is None:
        return ActionResult(Outcome.SKIPPED, "NotConfigured", "spec.actions.notify is not set")
    where = f"secret {request.namespace}/{notify.secret_name} key {notify.secret_key}"
    try:
        url = api.secret_value(request.namespace, notify.secret_name, notify.secret_key)
    except Exception as exc:  # an ApiError (403: RBAC) or a client bug; no URL involved yet
        return ActionResult(
            Outcome.FAILED,
            "NotifyFailed",
            f"could not read the webhook URL from {where}: {_error_class(exc)}",
            {"format": notify.format, "error": _error_class(exc)},
        )
    if url is None:
        return ActionResult(
            Outcome.SKIPPED,
            "SecretNotFound",
            f"no webhook URL: {where} does not exist",
            {"format": notify.format},
        )
    url = url.strip()  # `echo url | kubectl create secret --from-file` leaves a newline
    if not _valid_url(url):
        return ActionResult(
            Outcome.SKIPPED,
            "InvalidWebhookUrl",
            f"the webhook URL in {where} is not an absolute http(s) URL",
            {"format": notify.format},
        )
    if request.dry_run:
        return ActionResult(
            Outcome.DRY_RUN,
            "DryRun",
            f"would POST a {notify.format} notification to the webhook in {where}",
            {"format": notify.format},
        )
    body = json.dumps(build_payload(notify.format, request, spec, now=now())).encode()
    return _deliver(
        url,
        body,
        notify,
        request,
        where,
        post=post or urllib_post,
        sleep=sleep,
        now=now,
        timeout=timeout,
    )


def _deliver(
    url: str,
    body: bytes,
    notify: NotifySpec,
    request: ActionRequest,
    where: str,
    *,
    post: Post,
    sleep: Callable[[float], None],
    now: Callable[[], datetime],
    timeout: float,
) -> ActionResult:
    """POST with retries; the result names statuses and error classes only."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"modelmonitor/{modelmonitor.__version__}",
        ACTION_ID_HEADER: request.id,
    }
    attempts_max = len(BACKOFF_SECONDS) + 1
    status, error = 0, ""
    for attempt in range(1, attempts_max + 1):
        retry_after: float | None = None
        try:
            response = post(url, body, headers, timeout)
        except Exception as exc:  # the text may quote the URL: keep the class only
            status, error = 0, _error_class(exc)
            retry = _retryable_error(exc)
        else:
            status, error = response.status, ""
            if 200 <= status < 300:
                log.info(
                    "action %s: webhook in %s answered HTTP %d (attempt %d)",
                    request.id,
                    where,
                    status,
                    attempt,
                )
                return ActionResult(
                    Outcome.SUCCEEDED,
                    "Notified",
                    f"posted a {notify.format} notification to the webhook in {where} "
                    f"(HTTP {status}, attempt {attempt})",
                    {"format": notify.format, "attempts": attempt, "status": status},
                )
            retry = _retryable_status(status)
            if retry:
                retry_after = _retry_after(response.headers, now())
        if not retry or attempt == attempts_max:
            break
        delay = BACKOFF_SECONDS[attempt - 1]
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        log.warning(
            "action %s: webhook in %s: %s (attempt %d of %d); retrying in %.1f s",
            request.id,
            where,
            f"HTTP {status}" if status else error,
            attempt,
            attempts_max,
            delay,
        )
        sleep(delay)
    what = f"HTTP {status}" if status else error
    final = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
    if not retry:
        final += ", not retryable"
    log.warning("action %s: webhook in %s failed: %s (%s)", request.id, where, what, final)
    details: dict[str, Any] = {"format": notify.format, "attempts": attempt, "status": status}
    if error:
        details["error"] = error
    return ActionResult(
        Outcome.FAILED,
        "NotifyFailed",
        f"the webhook in {where} failed: {what} ({final})",
        details,
    )


__all__ = [
    "ACTION_ID_HEADER",
    "HttpResponse",
    "Post",
    "build_payload",
    "execute_notify",
    "fenced_post",
    "urllib_post",
]
