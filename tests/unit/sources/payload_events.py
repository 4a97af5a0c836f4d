"""Payload-log events for unit tests, built as KServe's logger sends them.

Binary mode: ``ce-*`` headers and the raw inference payload as body; the attribute names
and types are those of kserve/kserve pkg/logger. The clock is a number the test passes in.
"""

from __future__ import annotations

import json
from typing import Any

from modelmonitor.core.codecs.cloudevents import (
    REQUEST_TYPE,
    RESPONSE_TYPE,
    PayloadEvent,
    parse_event,
)
from modelmonitor.core.dataset import CategoricalColumn, Feature
from modelmonitor.sources.payload.limits import WindowLimits
from modelmonitor.sources.payload.window import PayloadWindow

T0 = 1_700_000_000.0
NUM = [Feature("a", "numerical"), Feature("b", "numerical")]


def ce_headers(
    event_id: str,
    kind: str,
    *,
    namespace: str = "ml",
    service: str = "iris",
    endpoint: str = "default",
) -> dict[str, str]:
    """Binary-mode headers as KServe's logger sets them."""
    return {
        "Content-Type": "application/json",
        "Ce-Id": event_id,
        "Ce-Specversion": "1.0",
        "Ce-Type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "Ce-Source": f"http://localhost:9081/{service}",
        "Ce-Time": "2026-11-26T12:00:00.123456789Z",
        "Ce-Inferenceservicename": service,
        "Ce-Namespace": namespace,
        "Ce-Component": "predictor",
        "Ce-Endpoint": endpoint,
        "Ce-Metadata": "{}",
    }


def event(event_id: str, kind: str, body: Any, **kw: str) -> PayloadEvent:
    return parse_event(ce_headers(event_id, kind, **kw), json.dumps(body).encode())


def v1_pair(event_id: str, rows: list[Any], preds: list[Any], **kw: str) -> list[PayloadEvent]:
    return [
        event(event_id, "request", {"instances": rows}, **kw),
        event(event_id, "response", {"predictions": preds}, **kw),
    ]


def window(**kw: Any) -> PayloadWindow:
    limits = {"window_seconds": 60.0, "max_samples": 1000, "min_samples": 1, **kw}
    return PayloadWindow(WindowLimits(**limits))


def feed(w: PayloadWindow, events: list[PayloadEvent], now: float = T0) -> list[str]:
    return [w.add(e, now) for e in events]


def labels(col: Any) -> list[Any]:
    assert isinstance(col, CategoricalColumn)
    return list(col.labels())
