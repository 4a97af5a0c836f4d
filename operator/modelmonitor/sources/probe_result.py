"""What one probe measured: predictions per answered row, latencies and errors per request.

A :class:`ProbeResult` is what :func:`modelmonitor.sources.probe.probe` returns and what
the probe source turns into the current window, model quality and probe SLOs. Failures
are recorded here, never raised: an endpoint that answers nothing gives a result whose
``failure`` is ``EndpointUnreachable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.core.codecs.inference import (
    IntArray,
    label_text,
)
from modelmonitor.core.dataset import CategoricalColumn, Column, FeatureType, FloatArray

ENDPOINT_UNREACHABLE = "EndpointUnreachable"
# The outbound fence refused the endpoint's address: a configuration problem, no SLI.
OUTBOUND_REFUSED = "OutboundRefused"
# No answer could be read for the operator's own reasons (its response buffer was spent).
OPERATOR_BUSY = "OperatorBusy"


BoolArray: TypeAlias = npt.NDArray[np.bool_]


class ErrorKind(StrEnum):
    """Why one request failed (after its retries)."""

    TIMEOUT = "timeout"  # no complete answer within timeoutSeconds
    CONNECTION = "connection"  # refused, reset, DNS failure, connect timeout
    HTTP_5XX = "http_5xx"  # the server answered with a 5xx status
    HTTP_4XX = "http_4xx"  # the server refused the request (wrong model, bad payload)
    BAD_RESPONSE = "bad_response"  # 2xx, but not a body we can read one prediction per row from


def prediction_column(values: Sequence[Any], prediction_type: FeatureType) -> Column:
    if prediction_type == "categorical":
        return CategoricalColumn.from_values(values)
    return np.asarray(values, dtype=np.float64)


def expected_labels(column: Column, idx: IntArray, prediction_type: FeatureType) -> Column:
    if isinstance(column, CategoricalColumn):
        picked = CategoricalColumn(column.codes[idx], column.categories)
        if prediction_type == "categorical":
            return CategoricalColumn.from_values(label_text(v) for v in picked.labels())
        return picked
    values = column[idx]
    if prediction_type == "categorical":
        return CategoricalColumn.from_values(label_text(v) for v in values.tolist())
    return values


@dataclass(frozen=True)
class ProbeErrors:
    """Failed requests by kind, with the first few messages of each kind."""

    counts: Mapping[ErrorKind, int]
    messages: Mapping[ErrorKind, tuple[str, ...]]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, kind: ErrorKind) -> int:
        return self.counts.get(kind, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": {k.value: v for k, v in self.counts.items() if v},
            "messages": {k.value: list(v) for k, v in self.messages.items() if v},
        }


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """What one probe measured.

    ``predictions`` has one value per answered row (``rows`` gives each one's index in
    the probe set); ``labels`` (with a golden set) are the expected values of the same
    rows, encoded like the predictions. ``latencies_ms`` and ``request_ok`` have one entry
    per request sent (a failed request's latency is the time until it failed).
    """

    n_sent: int  # rows sent
    n_skipped: int  # rows not sent: the endpoint answered nothing and the probe stopped
    predictions: Column
    rows: IntArray
    latencies_ms: FloatArray
    request_ok: BoolArray
    errors: ProbeErrors
    attempts: int  # HTTP attempts, retries included
    duration_seconds: float
    probabilities: FloatArray | None = None  # (answered rows, classes) when returned
    labels: Column | None = None
    failure: str | None = None  # ENDPOINT_UNREACHABLE when no request got an HTTP answer
    failure_message: str = ""

    @property
    def n_requests(self) -> int:
        return int(self.latencies_ms.shape[0])

    @property
    def n_answered(self) -> int:
        return int(self.rows.shape[0])

    @property
    def unreachable(self) -> bool:
        return self.failure == ENDPOINT_UNREACHABLE

    @property
    def ok_latencies_ms(self) -> FloatArray:
        return self.latencies_ms[self.request_ok]

    @property
    def error_ratio(self) -> float | None:
        """Failed requests over requests sent; None when nothing was sent."""
        if self.n_requests == 0:
            return None
        return float(np.count_nonzero(~self.request_ok)) / self.n_requests

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest (for reports and logs)."""
        ok = self.ok_latencies_ms
        pct = {f"p{q}": float(np.percentile(ok, q)) for q in (50, 95, 99)} if ok.size else {}
        return {
            "sent": self.n_sent,
            "answered": self.n_answered,
            "skipped": self.n_skipped,
            "requests": self.n_requests,
            "attempts": self.attempts,
            "errorRatio": self.error_ratio,
            "latencyMs": pct,
            "errors": self.errors.to_dict(),
            "failure": self.failure,
            "failureMessage": self.failure_message or None,
        }


def unreachable_result(message: str, prediction_type: FeatureType = "categorical") -> ProbeResult:
    """A result for an endpoint that could not even be addressed (no ready endpoint)."""
    return empty_result(prediction_type, failure=ENDPOINT_UNREACHABLE, message=message)


def empty_result(
    prediction_type: FeatureType, *, failure: str | None = None, message: str = ""
) -> ProbeResult:
    return ProbeResult(
        n_sent=0,
        n_skipped=0,
        predictions=prediction_column([], prediction_type),
        rows=np.zeros(0, dtype=np.intp),
        latencies_ms=np.zeros(0, dtype=np.float64),
        request_ok=np.zeros(0, dtype=bool),
        errors=ProbeErrors({}, {}),
        attempts=0,
        duration_seconds=0.0,
        failure=failure,
        failure_message=message,
    )
