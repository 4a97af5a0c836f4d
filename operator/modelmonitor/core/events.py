"""Kubernetes Events that must be posted exactly once, even across operator restarts.

Most of a monitor's Events (a condition that changed) are posted as they happen and a
crash may lose one, which the next transition makes up for. The Events of an incident's
intent (``IncidentConfirmed``, ``ActionPlanned``) are promised for every incident: an
operator killed after recording the intent and before posting them posts them after
its restart. So each carries a stable key (the incident or request id it announces),
and the Event's name is derived from the monitor's UID and that key: the API server
refuses a second Event of the same name (409), which is how "already posted" is told,
with no bookkeeping in status that a crash could leave behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from modelmonitor import GROUP, KIND, VERSION

REPORTING_COMPONENT = "modelmonitor"
MAX_EVENT_MESSAGE = 1024
_NAME_DIGEST = 20  # hex characters of sha256: 80 bits, unique per monitor UID and key


def once_name(monitor: str, monitor_uid: str, key: str) -> str:
    """``<monitor>.<digest of UID and key>``: the same Event name for the same announcement."""
    digest = hashlib.sha256(f"{monitor_uid}\n{key}".encode()).hexdigest()[:_NAME_DIGEST]
    return f"{monitor[: 252 - _NAME_DIGEST].rstrip('.-')}.{digest}"


def build_event(
    *,
    monitor: Mapping[str, Any],
    key: str,
    type_: str,
    reason: str,
    message: str,
    now: dt.datetime,
    instance: str = "",
) -> dict[str, Any]:
    """A core/v1 Event about ``monitor`` (a ModelMonitor object) named after ``key``."""
    meta = monitor.get("metadata") or {}
    name, namespace, uid = str(meta["name"]), str(meta["namespace"]), str(meta.get("uid") or "")
    stamp = now.astimezone(dt.UTC)
    text = message if len(message) <= MAX_EVENT_MESSAGE else message[:1021] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": once_name(name, uid, key),
            "namespace": namespace,
            "annotations": {f"{GROUP}/event-key": key},
        },
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "type": type_,
        "reason": reason,
        "message": text,
        "action": reason,
        "count": 1,
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": instance or REPORTING_COMPONENT,
        "firstTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventTime": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
