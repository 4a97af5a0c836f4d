"""The ``payloadLog`` source: production inputs and outputs from KServe's payload logger.

The collector (:mod:`modelmonitor.sources.payload`) keeps each monitor's rolling window
in the operator process; a run takes a snapshot of it: the monitor's inputs and the
model's predictions, the drift window; with ``spec.performance``, the responses' class
probabilities too. Below ``minSamples`` there is no snapshot, and
the run reports InsufficientData for drift, never a pass.

With ``spec.performance.labels`` the performance rows are the served predictions still
waiting for labels (the last ``labelDelay``), with the late labels joined to them by id
(:mod:`modelmonitor.sources.payload.labels`): estimated on all of them, realized on the
labelled ones. A ``configMap`` label feed is read here, before the join, each run its
ConfigMap changed (a feed that cannot be read is noted in ``status.performance.labels``,
never a problem of the monitor: the estimate goes on).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from modelmonitor.core.cluster import ReferenceLookupError
from modelmonitor.core.codecs.labels import MalformedLabelsError, parse_label_csv
from modelmonitor.core.dataset import CategoricalColumn, Dataset, FloatArray
from modelmonitor.core.report import Problem
from modelmonitor.core.spec import LabelsSpec, MonitorSpec, PredictionSpec
from modelmonitor.sources.base import CurrentData, Gathered, RunContext, Scored, input_names
from modelmonitor.sources.payload.window import PayloadWindow
from modelmonitor.sources.reference import LoadedReference

SOURCE_UNAVAILABLE = "PayloadSourceUnavailable"  # the Degraded reason of a feed that cannot read


class PayloadLogSource:
    key = "payloadLog"
    supplies_rows = True

    def configured(self, spec: MonitorSpec) -> bool:
        return spec.payload_log is not None

    async def gather(self, ctx: RunContext) -> Gathered:
        if ctx.reference is None:
            return Gathered()
        probabilities: list[FloatArray] = []
        rows, insufficient = _snapshot(ctx, ctx.reference, probabilities)
        scored = None
        if ctx.spec.performance is not None and ctx.spec.performance.labels is not None:
            scored = await _labelled(ctx, ctx.spec.performance.labels)
        elif rows is not None and probabilities and ctx.spec.performance is not None:
            scored = Scored(np.column_stack(probabilities))
        return Gathered(
            current=CurrentData(rows, insufficient),
            scored=scored,
            details={"payloadLog": {"rows": rows.n_rows}} if rows is not None else {},
            problems=_feed_problems(ctx),
        )


def _feed_problems(ctx: RunContext) -> tuple[Problem, ...]:
    """A Kafka feed that cannot read (refused, unreachable, wrong credentials, untrusted
    certificate) is a problem of the monitor: Degraded names it, even while the window
    still holds rows from before."""
    payloads = ctx.clients.payloads
    window = payloads.window(ctx.namespace, ctx.name) if payloads is not None else None
    problem = window.source_problem if window is not None else None
    return (Problem(SOURCE_UNAVAILABLE, problem),) if problem else ()


async def _labelled(ctx: RunContext, spec: LabelsSpec) -> Scored | None:
    """The served predictions waiting for labels, with the labels that arrived."""
    payloads = ctx.clients.payloads
    window = payloads.window(ctx.namespace, ctx.name) if payloads is not None else None
    if window is None:
        return None
    now = ctx.clients.clock().timestamp()
    note = await _read_config_map(ctx, spec, window, now) if spec.source == "configMap" else None
    found = window.labelled(now)
    counters: dict[str, Any] | None = window.label_counters()
    if found is None or counters is None:
        return None
    if note:
        counters["message"] = note[:512]
    proba, labels = found
    return Scored(proba, CategoricalColumn.from_values(labels), label_feed=counters)


async def _read_config_map(
    ctx: RunContext, spec: LabelsSpec, window: PayloadWindow, now: float
) -> str | None:
    """Join the ConfigMap's labels when it changed since the last run; why not, if not."""
    name, key = spec.config_map_name or "", spec.config_map_key or ""
    where = f"ConfigMap {ctx.namespace}/{name} key {key}"
    try:
        cm = await asyncio.to_thread(ctx.clients.lookup.get, "ConfigMap", ctx.namespace, name)
    except ReferenceLookupError as exc:
        return f"{where}: {exc}"
    if cm is None:
        return f"{where}: the ConfigMap does not exist"
    version = str((cm.get("metadata") or {}).get("resourceVersion"))
    if window.label_feed_version == (name, key, version):
        return None
    text = (cm.get("data") or {}).get(key)
    if not isinstance(text, str):
        return f"{where}: no such key in data"
    try:
        batch = await asyncio.to_thread(parse_label_csv, text)
    except MalformedLabelsError as exc:
        return f"{where}: {exc}"
    window.add_labels(batch, now)
    window.label_feed_version = (name, key, version)
    return None


def _snapshot(
    ctx: RunContext, reference: LoadedReference, probabilities: list[FloatArray]
) -> tuple[Dataset | None, str | None]:
    payloads = ctx.clients.payloads
    window = payloads.window(ctx.namespace, ctx.name) if payloads is not None else None
    if window is None:
        return None, "no payload-log window for this monitor (the collector runs in the operator)"
    now = ctx.clients.clock().timestamp()
    names = set(input_names(ctx.spec, reference))
    inputs = [f for f in reference.features if f.name in names]
    prediction = ctx.spec.prediction or PredictionSpec()
    snapshot = window.snapshot(
        now, inputs, prediction.name, prediction.type, probabilities=probabilities
    )
    if snapshot is None:
        return None, window.status(now).message
    return snapshot, None
