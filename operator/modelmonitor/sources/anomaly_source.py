"""The ``anomalies`` source: ``spec.anomalies`` series from Prometheus range queries.

Each series is asked with ``/api/v1/query_range`` through the same fenced client, with
the same credentials, as the Prometheus SLOs (``spec.prometheus``). The step grid is
aligned to multiples of ``step``, so runs ask the same instants; the first run of a
series asks its whole ``lookback`` (in queries of at most ``MAX_POINTS_PER_QUERY``
points: Prometheus refuses more than 11,000), later runs only the tail since the last
cached point (:mod:`.anomaly_cache`). The baseline and band come from
:func:`modelmonitor.core.anomaly.detect`, run in a worker thread.

A query that returns more than one series is refused (aggregate it); an unreachable
server or a refused query is a problem of the run (Degraded) and the series' state is
``Unavailable`` (the verdict keeps what it said before).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from modelmonitor.core.anomaly import SeasonalOptions, SeriesError, detect
from modelmonitor.core.anomaly.outcome import AnomalyOutcome, summarize
from modelmonitor.core.report import Problem
from modelmonitor.core.spec import AnomalySpec, MonitorSpec
from modelmonitor.sources.anomaly_cache import OVERLAP_STEPS, CachedSeries, merge
from modelmonitor.sources.base import Gathered, RunContext
from modelmonitor.sources.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusQueryError,
    PrometheusRefused,
    PrometheusResponseError,
    PrometheusUnavailable,
)
from modelmonitor.sources.prometheus_auth import CredentialsUnavailable, load_prometheus_auth
from modelmonitor.sources.sli_templates import TemplateError, anomaly_query

MAX_POINTS_PER_QUERY = 10_000
SLOT_SECONDS = 3600.0


def options_for(anomaly: AnomalySpec) -> SeasonalOptions:
    """The detector's options for one series: hourly slots (or the step, when longer);
    a run breaks when more than three steps are missing."""
    return SeasonalOptions(
        seasons=anomaly.seasons,
        slot_seconds=max(SLOT_SECONDS, anomaly.step_seconds),
        sensitivity=anomaly.sensitivity,
        min_cycles=anomaly.warmup_cycles,
        max_cycles=max(anomaly.warmup_cycles, 14),
        relative_floor=anomaly.relative_floor,
        absolute_floor=anomaly.absolute_floor,
        for_seconds=anomaly.for_seconds,
        max_gap_seconds=3 * anomaly.step_seconds,
    )


class AnomalySource:
    key = "anomalies"
    supplies_rows = False

    def configured(self, spec: MonitorSpec) -> bool:
        return bool(spec.anomalies) and spec.prometheus is not None

    async def gather(self, ctx: RunContext) -> Gathered:
        prometheus = ctx.spec.prometheus
        assert prometheus is not None
        try:
            auth = await load_prometheus_auth(ctx.clients.lookup, ctx.namespace, prometheus)
        except CredentialsUnavailable as exc:
            return Gathered(
                anomalies=tuple(
                    AnomalyOutcome(a.name, "Unavailable", f"{a.name}: no data: {exc}")
                    for a in ctx.spec.anomalies
                ),
                problems=(Problem(exc.reason, str(exc)),),
            )
        async with PrometheusClient(
            prometheus.url,
            timeout_seconds=prometheus.timeout_seconds,
            fence=ctx.clients.outbound.for_namespace(ctx.namespace),
            headers=auth.headers,
            tls=auth.tls,
            server_name=auth.server_name,
            secrets=auth.secrets,
        ) as client:
            results = await asyncio.gather(*(self._one(ctx, client, a) for a in ctx.spec.anomalies))
        problems: list[Problem] = []
        for _, problem in results:
            if problem is not None and problem.reason not in {p.reason for p in problems}:
                problems.append(problem)
        return Gathered(
            anomalies=tuple(outcome for outcome, _ in results), problems=tuple(problems)
        )

    async def _one(
        self, ctx: RunContext, client: PrometheusClient, anomaly: AnomalySpec
    ) -> tuple[AnomalyOutcome, Problem | None]:
        now = ctx.started.timestamp()
        step = anomaly.step_seconds
        end = math.floor(now / step) * step
        start = end - anomaly.lookback_seconds
        window = max(step, ctx.clients.prometheus_min_window_seconds)
        try:
            query = anomaly_query(anomaly, window)
        except TemplateError as exc:
            return _unavailable(anomaly, "PrometheusQueryFailed", str(exc))
        key = (ctx.namespace, ctx.name, anomaly.name)
        fingerprint = (client.url, query, f"{step:g}")
        cache = ctx.clients.series_cache
        cached = cache.get(key, fingerprint)
        asked_from = start
        if cached is not None and cached.asked_until >= start:
            asked_from = max(start, cached.asked_until - OVERLAP_STEPS * step)
        try:
            times, values = await fetch_range(client, query, asked_from, end, step)
        except PrometheusError as exc:
            if isinstance(exc, PrometheusRefused):
                reason = "OutboundRefused"
            elif isinstance(exc, PrometheusUnavailable):
                reason = "PrometheusUnavailable"
            else:
                reason = "PrometheusQueryFailed"
            return _unavailable(anomaly, reason, str(exc))
        t, v = merge(cached, times, values, asked_from=asked_from, keep_from=start)
        cache.put(key, CachedSeries(fingerprint, t, v, end))
        options = options_for(anomaly)
        try:
            result = await asyncio.to_thread(detect, t, v, options)
        except SeriesError as exc:
            return _unavailable(anomaly, "AnomalyDetectionFailed", str(exc))
        stale_after = max(3 * step, anomaly.for_seconds, 2 * window)
        outcome = summarize(
            anomaly.name,
            result,
            now=now,
            stale_after=stale_after,
            for_seconds=anomaly.for_seconds,
        )
        return outcome, None


def _unavailable(anomaly: AnomalySpec, reason: str, message: str) -> tuple[AnomalyOutcome, Problem]:
    return (
        AnomalyOutcome(anomaly.name, "Unavailable", f"{anomaly.name}: no data: {message}"),
        Problem(reason, message),
    )


async def fetch_range(
    client: PrometheusClient, query: str, start: float, end: float, step: float
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """Times and values of the single series ``query`` returns from ``start`` to ``end``
    every ``step``, asked in pieces of at most ``MAX_POINTS_PER_QUERY`` points; NaN points
    are dropped (missing). More than one series is a :class:`PrometheusQueryError`."""
    times: list[float] = []
    values: list[float] = []
    piece = (MAX_POINTS_PER_QUERY - 1) * step
    lo = start
    while lo <= end:
        hi = min(end, lo + piece)
        result = await client.query_range(query, start=lo, end=hi, step_seconds=step)
        if len(result.series) > 1:
            raise PrometheusQueryError(
                f"the query returned {len(result.series)} series, expected one; aggregate it, "
                "e.g. sum(...) or max(...)",
                url=client.shown,
                query=query,
                error_type="ambiguous",
            )
        for series in result.series:
            if len(series.points) > (hi - lo) / step + 2:
                raise PrometheusResponseError(
                    f"{client.shown}: {len(series.points)} points for a range of "
                    f"{(hi - lo) / step + 1:.0f} steps",
                    url=client.shown,
                    query=query,
                )
            for ts, value in series.points:
                # a point outside the range asked is not an answer to it
                if lo <= ts <= hi and not math.isnan(value):
                    times.append(ts)
                    values.append(value)
        lo = hi + step
    return np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
