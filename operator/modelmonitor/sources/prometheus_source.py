"""The ``prometheus`` source: the SLIs of the SLOs with ``source: prometheus``.

Each SLO's queries (its own, or a template's) go to ``spec.prometheus`` concurrently
(:func:`~modelmonitor.sources.prometheus.evaluate_prometheus_slo`), with the
credentials ``spec.prometheus`` names, read again at each run
(:mod:`~modelmonitor.sources.prometheus_auth`). An unreachable
server is ``PrometheusUnavailable``, refused PromQL ``PrometheusQueryFailed``: the SLO
then has no data this run and keeps the history it had; each reason is reported once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelmonitor.core.report import Problem, SLOOutcome, StoredSLO
from modelmonitor.core.slo.history import EventHistory
from modelmonitor.core.spec import MonitorSpec, SLOSpec
from modelmonitor.sources.base import Gathered, RunContext
from modelmonitor.sources.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusRefused,
    PrometheusUnavailable,
    evaluate_prometheus_slo,
)
from modelmonitor.sources.prometheus_auth import CredentialsUnavailable, load_prometheus_auth


class PrometheusSource:
    key = "prometheus"
    supplies_rows = False

    def configured(self, spec: MonitorSpec) -> bool:
        return spec.prometheus is not None and any(slo.source == self.key for slo in spec.slos)

    async def gather(self, ctx: RunContext) -> Gathered:
        prometheus = ctx.spec.prometheus
        assert prometheus is not None
        slos = ctx.slos(self.key)
        now = ctx.started.timestamp()
        min_window = ctx.clients.prometheus_min_window_seconds
        try:
            auth = await load_prometheus_auth(ctx.clients.lookup, ctx.namespace, prometheus)
        except CredentialsUnavailable as exc:
            return _without_credentials(ctx, slos, exc)
        async with PrometheusClient(
            prometheus.url,
            timeout_seconds=prometheus.timeout_seconds,
            fence=ctx.clients.outbound.for_namespace(ctx.namespace),
            headers=auth.headers,
            tls=auth.tls,
            server_name=auth.server_name,
            secrets=auth.secrets,
        ) as client:
            results = await asyncio.gather(
                *(
                    _evaluate(client, slo, ctx.stored_history(slo.name), now, min_window)
                    for slo in slos
                )
            )
        outcomes: list[SLOOutcome] = []
        histories: dict[str, Any] = {}
        problems: list[Problem] = []
        for slo, (outcome, history, problem) in zip(slos, results, strict=True):
            outcomes.append(outcome)
            if history is not None:
                histories[slo.name] = history
            if problem is not None and problem.reason not in {p.reason for p in problems}:
                problems.append(problem)
        return Gathered(slos=tuple(outcomes), histories=histories, problems=tuple(problems))


def _without_credentials(
    ctx: RunContext, slos: list[SLOSpec], exc: CredentialsUnavailable
) -> Gathered:
    """No query is sent without its credentials: each SLO has no data this run and keeps
    its history; the problem names the Secret or ConfigMap and the field, never a value."""
    stored = {slo.name: ctx.stored_history(slo.name) for slo in slos}
    return Gathered(
        slos=tuple(StoredSLO(slo.name, None, f"no data: {exc}") for slo in slos),
        histories={name: h for name, h in stored.items() if h is not None},
        problems=(Problem(exc.reason, str(exc)),),
    )


async def _evaluate(
    client: PrometheusClient,
    slo: SLOSpec,
    stored: Any,
    now: float,
    min_window: float,
) -> tuple[SLOOutcome, Any, Problem | None]:
    history = EventHistory.from_dict(stored) if stored else None
    try:
        result, updated = await evaluate_prometheus_slo(
            client, slo, now=now, history=history, min_window_seconds=min_window
        )
    except PrometheusError as exc:
        if isinstance(exc, PrometheusRefused):
            reason, what = "OutboundRefused", "outbound request refused"
        elif isinstance(exc, PrometheusUnavailable):
            reason, what = "PrometheusUnavailable", "Prometheus unavailable"
        else:
            reason, what = "PrometheusQueryFailed", "query failed"
        return (
            StoredSLO(slo.name, None, f"no data: {what} ({exc})"),
            stored,
            Problem(reason, str(exc)),
        )
    return result, (updated.to_dict() if updated is not None else None), None
