"""A small async client for the Prometheus HTTP API (instant and range queries).

Outcomes are explicit, so that a caller can never mistake one for another:

- a value (a float; ``+Inf``/``-Inf`` are kept, e.g. ``histogram_quantile`` answers
  ``+Inf`` when the quantile falls into the last bucket);
- :class:`NoData` when the result is empty or ``NaN`` (e.g. ``0/0`` when there was no
  traffic): InsufficientData for the SLO, never a pass and never a failure;
- :class:`PrometheusQueryError` for PromQL that Prometheus refuses (HTTP 400 / 422),
  carrying Prometheus' own message;
- :class:`PrometheusUnavailable` when the server cannot be reached, times out, or
  answers 5xx;
- :class:`PrometheusResponseError` for anything that is not a Prometheus API answer.

:func:`evaluate_prometheus_slo` turns one ``source: prometheus`` SLO of the spec into an
:class:`~modelmonitor.core.slo.SLOResult`: it asks every burn-rate window (templates or
``$window`` queries) concurrently and applies the no-data policy.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from modelmonitor.adapters.outbound import (
    BufferBusy,
    FenceError,
    Outbound,
    describe,
    find_refusal,
)
from modelmonitor.core.outbound import redact_url, sanitize
from modelmonitor.core.slo.budget import (
    EventCounts,
    counts_from_values,
    required_windows,
    slo_alerts,
)
from modelmonitor.core.slo.evaluation import SLOResult, evaluate_error_ratio, evaluate_latency
from modelmonitor.core.slo.history import EventHistory
from modelmonitor.core.spec import SLOSpec
from modelmonitor.sources.sli_templates import slo_window_queries

API_QUERY = "/api/v1/query"
API_QUERY_RANGE = "/api/v1/query_range"
MAX_QUERY_IN_MESSAGE = 300


class PrometheusError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str, *, url: str = "", query: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.query = query


class PrometheusUnavailable(PrometheusError):  # noqa: N818 (named as the Degraded reason)
    """The server could not be asked: refused, unresolvable, timed out, or 5xx."""


class PrometheusRefused(PrometheusUnavailable):
    """The outbound fence refused Prometheus' address (a setting or the URL to fix)."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused or could not execute the query (the query needs fixing)."""

    def __init__(
        self, message: str, *, url: str = "", query: str | None = None, error_type: str = ""
    ) -> None:
        super().__init__(message, url=url, query=query)
        self.error_type = error_type


class PrometheusResponseError(PrometheusError):
    """The answer is not a well-formed Prometheus API response."""


@dataclass(frozen=True)
class NoData:
    """An empty (or NaN) result: not enough data to judge. Falsy, to read naturally."""

    query: str
    reason: str = "the query returned no data"

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class InstantResult:
    """The answer to an instant query: a vector (0..n samples) or a scalar (1 sample)."""

    query: str
    result_type: str
    samples: tuple[Sample, ...]
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.samples

    def value(self) -> float | NoData:
        """The single value of the result.

        Empty or NaN -> :class:`NoData`; more than one series ->
        :class:`PrometheusQueryError` (aggregate it, e.g. with ``sum``).
        """
        if not self.samples:
            return NoData(self.query)
        if len(self.samples) > 1:
            raise PrometheusQueryError(
                f"query {_short(self.query)} returned {len(self.samples)} series, expected "
                f"one value; aggregate it, e.g. sum(...) or sum by () (...)",
                query=self.query,
                error_type="ambiguous",
            )
        value = self.samples[0].value
        if math.isnan(value):
            return NoData(self.query, "the query returned NaN (no events to divide by)")
        return value


@dataclass(frozen=True)
class RangeSeries:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]  # (timestamp, value)


@dataclass(frozen=True)
class RangeResult:
    query: str
    series: tuple[RangeSeries, ...]
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)

    def values(self) -> tuple[float, ...] | NoData:
        """The finite-or-infinite values of the single series (NaN points dropped)."""
        if self.empty:
            return NoData(self.query)
        if len(self.series) > 1:
            raise PrometheusQueryError(
                f"query {_short(self.query)} returned {len(self.series)} series, expected one",
                query=self.query,
                error_type="ambiguous",
            )
        values = tuple(v for _, v in self.series[0].points if not math.isnan(v))
        return values if values else NoData(self.query, "every point is NaN")


@dataclass
class PrometheusClient:
    """Queries one Prometheus server. Use as ``async with PrometheusClient(url) as prom``.

    Every request goes through ``fence`` (default: the strict outbound fence), which
    checks the address, follows same-origin redirects only and caps the body at
    ``fence.limits.prometheus`` bytes. ``timeout_seconds`` bounds each request, and is
    also sent to Prometheus as the query's evaluation timeout. Messages name the URL
    without userinfo or query (``shown``).
    """

    url: str
    timeout_seconds: float = 5.0
    fence: Outbound = field(default_factory=Outbound)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold secrets
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    server_name: str | None = None  # verify the certificate against this name
    # Credentials sent in headers: blanked out of any error body before it is shown.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    _own_session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.shown = redact_url(self.url)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must start with http:// or https://: {self.shown}")
        if not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be > 0")

    async def __aenter__(self) -> PrometheusClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    def _session(self) -> aiohttp.ClientSession:
        if self._own_session is None or self._own_session.closed:
            self._own_session = self.fence.session(headers=dict(self.headers), tls=self.tls)
        return self._own_session

    # -- queries -----------------------------------------------------------------------------
    async def query(self, promql: str, *, at: float | None = None) -> InstantResult:
        """An instant query, evaluated at ``at`` (epoch seconds; the server's now if None)."""
        form = {"query": promql, "timeout": f"{self.timeout_seconds:g}s"}
        if at is not None:
            form["time"] = _format_time(at)
        data = await self._post(API_QUERY, form, promql)
        result_type = data.get("resultType")
        result = data.get("result")
        try:
            if result_type == "vector" and isinstance(result, list):
                samples = tuple(_sample(item) for item in result)
            elif result_type == "scalar" and isinstance(result, list):
                samples = (Sample(labels={}, value=_number(result[1]), timestamp=float(result[0])),)
            else:
                raise PrometheusResponseError(
                    f"instant query {_short(promql)} gave an unusable result type "
                    f"{sanitize(repr(result_type), 60)} (expected a vector or a scalar)",
                    url=self.shown,
                    query=promql,
                )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._malformed(promql, exc) from exc
        return InstantResult(
            query=promql,
            result_type=str(result_type),
            samples=samples,
            warnings=_warnings(data),
        )

    async def query_value(self, promql: str, *, at: float | None = None) -> float | NoData:
        """The single value of an instant query (see :meth:`InstantResult.value`)."""
        return (await self.query(promql, at=at)).value()

    async def query_range(
        self, promql: str, *, start: float, end: float, step_seconds: float
    ) -> RangeResult:
        """A range query from ``start`` to ``end`` (epoch seconds) every ``step_seconds``."""
        if end < start:
            raise ValueError("end must not be before start")
        if not step_seconds > 0:
            raise ValueError("step_seconds must be > 0")
        form = {
            "query": promql,
            "start": _format_time(start),
            "end": _format_time(end),
            "step": f"{step_seconds:g}",
            "timeout": f"{self.timeout_seconds:g}s",
        }
        data = await self._post(API_QUERY_RANGE, form, promql)
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise PrometheusResponseError(
                f"range query {_short(promql)} gave result type "
                f"{sanitize(repr(data.get('resultType')), 60)}, expected a matrix",
                url=self.shown,
                query=promql,
            )
        try:
            series = tuple(
                RangeSeries(
                    labels=_labels(item),
                    points=tuple((float(t), _number(v)) for t, v in item["values"]),
                )
                for item in data["result"]
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._malformed(promql, exc) from exc
        return RangeResult(
            query=promql,
            series=series,
            warnings=_warnings(data),
        )

    # -- transport ---------------------------------------------------------------------------
    async def _post(self, path: str, form: Mapping[str, str], promql: str) -> dict[str, Any]:
        endpoint = f"{self.url}{path}"
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            reply = await self.fence.fetch(
                self._session(),
                "POST",
                endpoint,
                cap=self.fence.limits.prometheus,
                data=dict(form),
                timeout=timeout,
                server_hostname=self.server_name,
            )
        except TimeoutError as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.shown} did not answer within {self.timeout_seconds:g}s",
                url=self.shown,
                query=promql,
            ) from exc
        except (FenceError, aiohttp.ClientError, OSError) as exc:
            detail = describe(exc, endpoint)
            error: type[PrometheusError]
            if find_refusal(exc) is not None:
                message, error = f"Prometheus at {self.shown}: {detail}", PrometheusRefused
            elif isinstance(exc, BufferBusy):  # the operator's budget, not Prometheus' fault
                message, error = f"Prometheus at {self.shown}: {detail}", PrometheusUnavailable
            elif isinstance(exc, FenceError):  # too large, a redirect: not an API answer
                message, error = f"Prometheus at {self.shown}: {detail}", PrometheusResponseError
            else:
                message, error = (
                    f"Prometheus at {self.shown} is unreachable: {detail}",
                    PrometheusUnavailable,
                )
            raise error(message, url=self.shown, query=promql) from exc
        text = reply.body.decode("utf-8", "replace")
        body = _json_or_none(text)
        if self.secrets and not (
            reply.status == 200 and isinstance(body, dict) and body.get("status") == "success"
        ):  # an error page may echo the request's headers; status must not show them
            text = _scrub(text, self.secrets)
            body = _json_or_none(text)
        return self._check(reply.status, text, body, promql)

    def _check(self, status: int, text: str, body: Any, promql: str) -> dict[str, Any]:
        error_type = str(body.get("errorType", "")) if isinstance(body, dict) else ""
        error = sanitize(str(body.get("error", ""))) if isinstance(body, dict) else ""
        if status in (400, 422) and error:
            kind = "refused" if status == 400 else "could not execute"
            raise PrometheusQueryError(
                f"Prometheus {kind} the query {_short(promql)}: {error}",
                url=self.shown,
                query=promql,
                error_type=error_type,
            )
        if status >= 500 or error_type in ("timeout", "canceled", "unavailable"):
            detail = error or _snippet(text) or f"HTTP {status}"
            raise PrometheusUnavailable(
                f"Prometheus at {self.shown} answered HTTP {status}: {detail}",
                url=self.shown,
                query=promql,
            )
        if not isinstance(body, dict):
            raise PrometheusResponseError(
                f"{self.shown} answered HTTP {status} with something that is not a Prometheus "
                f"API response ({_snippet(text) or 'empty body'}); is this a Prometheus URL?",
                url=self.shown,
                query=promql,
            )
        if status != 200 or body.get("status") != "success":
            raise PrometheusResponseError(
                f"{self.shown} answered HTTP {status}, status "
                f"{sanitize(repr(body.get('status')), 60)}: {error or _snippet(text)}",
                url=self.shown,
                query=promql,
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusResponseError(
                f"{self.shown}: response to {_short(promql)} has no data object",
                url=self.shown,
                query=promql,
            )
        warnings = body.get("warnings")
        if isinstance(warnings, list) and warnings:
            data = {**data, "_warnings": warnings}
        return data

    def _malformed(self, promql: str, exc: Exception) -> PrometheusResponseError:
        return PrometheusResponseError(
            f"{self.shown}: malformed result for {_short(promql)}: "
            f"{exc.__class__.__name__}: {sanitize(str(exc))}",
            url=self.shown,
            query=promql,
        )


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every credential (longest first) replaced by ``[redacted]``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _format_time(epoch_seconds: float) -> str:
    if not math.isfinite(epoch_seconds):
        raise ValueError(f"not a time: {epoch_seconds!r}")
    return f"{epoch_seconds:.3f}"


def _number(text: Any) -> float:
    """Prometheus sends sample values as strings: "1.5", "NaN", "+Inf", "-Inf"."""
    if not isinstance(text, str):
        raise TypeError(f"sample value {text!r} is not a string")
    return float(text)


def _labels(item: Mapping[str, Any]) -> dict[str, str]:
    metric = item.get("metric", {})
    if not isinstance(metric, dict):
        raise TypeError("metric labels are not an object")
    return {str(k): str(v) for k, v in metric.items()}


def _sample(item: Any) -> Sample:
    if not isinstance(item, dict):
        raise TypeError("vector element is not an object")
    timestamp, value = item["value"]
    return Sample(labels=_labels(item), value=_number(value), timestamp=float(timestamp))


def _warnings(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Prometheus' warnings, the first few, each short and printable."""
    return tuple(sanitize(str(w)) for w in list(data.get("_warnings", ()))[:5])


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _short(query: str) -> str:
    text = " ".join(query.split())
    if len(text) > MAX_QUERY_IN_MESSAGE:
        text = text[: MAX_QUERY_IN_MESSAGE - 3] + "..."
    return repr(text)


def _snippet(text: str, limit: int = 200) -> str:
    """A short, printable piece of a body: never more of it reaches status."""
    return sanitize(text, limit)


# -- SLOs from Prometheus ---------------------------------------------------------------------


async def evaluate_prometheus_slo(
    client: PrometheusClient,
    slo: SLOSpec,
    *,
    now: float,
    history: EventHistory | None = None,
    min_window_seconds: float = 0.0,
) -> tuple[SLOResult, EventHistory | None]:
    """Evaluate one ``source: prometheus`` SLO, every query evaluated at ``now``.

    When the queries take ``$window`` (templates always do), each burn-rate window
    (scaled to the SLO window, or by ``burnRate.windowScale``) and the SLO window are
    asked separately; a window shorter than ``min_window_seconds`` is asked over that
    instead (a range under two scrape intervals has no rate). Queries without ``$window``
    answer once per run: that answer goes into ``history`` (returned updated, for status)
    and the windows are read from it, as for probe SLOs.

    Raises :class:`PrometheusUnavailable` or :class:`PrometheusQueryError`; an empty
    answer is never an error, it is InsufficientData in the result.
    """
    alerts = slo_alerts(slo.window_seconds, slo.window_scale)
    windows = required_windows(slo.window_seconds, alerts)
    retention = max(windows)

    def asked(window: float) -> float:
        return max(window, min_window_seconds)

    plans = {w: slo_window_queries(slo, asked(w)) for w in windows}
    per_window = all(p.per_window for p in plans.values())
    wanted: dict[str, str] = {}
    for w, plan in plans.items():
        for kind in ("errors", "total", "fast"):
            query = getattr(plan, kind)
            if query is not None and (per_window or w == windows[0]):
                wanted[f"{kind}@{w!r}"] = query
    value_window = asked(min(a.short_seconds for a in alerts))
    percentile_plan = slo_window_queries(slo, value_window)
    if percentile_plan.percentile is not None:
        wanted["percentile"] = percentile_plan.percentile
    answers = await _ask_all(client, wanted, at=now)

    def counts_at(w: float) -> EventCounts | None:
        key = w if per_window else windows[0]
        total = answers.get(f"total@{key!r}")
        if slo.latency is not None:
            fast = answers.get(f"fast@{key!r}")
            if fast is None or total is None:
                return None
            return counts_from_values(total - fast, total)
        return counts_from_values(answers.get(f"errors@{key!r}"), total)

    window_counts: dict[float, EventCounts | None]
    if per_window:
        window_counts = {w: counts_at(w) for w in windows}
    else:
        current = counts_at(windows[0])
        history = history if history is not None else EventHistory()
        if current is not None and current.total > 0:
            history = history.add(now, current, retention_seconds=retention)
        window_counts = dict(history.window_counts(now, windows))

    if slo.latency is None:
        result = evaluate_error_ratio(
            slo.name,
            objective=slo.objective,
            slo_window_seconds=slo.window_seconds,
            windows=window_counts,
            alerts=alerts,
        )
        return result, history if not per_window else None
    seconds = answers.get("percentile")
    has_budget = any(c is not None for c in window_counts.values())
    result = evaluate_latency(
        slo.name,
        percentile=slo.latency.percentile,
        threshold_ms=slo.latency.threshold_ms,
        value_ms=None if seconds is None else seconds * 1000.0,
        objective=slo.objective,
        slo_window_seconds=slo.window_seconds,
        windows=window_counts if has_budget else None,
        value_window_seconds=value_window if percentile_plan.per_window else None,
        alerts=alerts,
    )
    return result, history if not per_window else None


async def _ask_all(
    client: PrometheusClient, queries: Mapping[str, str], *, at: float
) -> dict[str, float]:
    """Ask every query concurrently; the values that are not NoData, by key.

    If any query fails, the first PrometheusUnavailable (else the first error) is raised.
    """
    keys = list(queries)
    outcomes = await asyncio.gather(
        *(client.query_value(queries[k], at=at) for k in keys), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        unavailable = [e for e in errors if isinstance(e, PrometheusUnavailable)]
        raise (unavailable or errors)[0]
    return {
        k: float(o)
        for k, o in zip(keys, outcomes, strict=True)
        if isinstance(o, float | int) and not isinstance(o, bool)
    }
