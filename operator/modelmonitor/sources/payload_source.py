"""The ``payloadLog`` source: production inputs and outputs from KServe's payload logger.

The collector (:mod:`modelmonitor.sources.payload`) keeps each monitor's rolling window
in the operator process; a run takes a snapshot of it: the monitor's inputs and the
model's predictions, the drift window; with ``spec.performance``, the responses' class
probabilities too. Below ``minSamples`` there is no snapshot, and
the run reports InsufficientData for drift, never a pass.

With ``spec.performance.labels`` the performance rows are the served predictions still
waiting for labels (the last ``labelDelay``), with the late labels joined to them by id
(:mod:`modelmonitor.sources.payload.labels`): estimated on all of them, realized on the
labelled ones.
"""

from __future__ import annotations

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Dataset, FloatArray
from modelmonitor.core.spec import MonitorSpec, PredictionSpec
from modelmonitor.sources.base import CurrentData, Gathered, RunContext, Scored, input_names
from modelmonitor.sources.reference import LoadedReference


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
            scored = _labelled(ctx)
        elif rows is not None and probabilities and ctx.spec.performance is not None:
            scored = Scored(np.column_stack(probabilities))
        return Gathered(
            current=CurrentData(rows, insufficient),
            scored=scored,
            details={"payloadLog": {"rows": rows.n_rows}} if rows is not None else {},
        )


def _labelled(ctx: RunContext) -> Scored | None:
    """The served predictions waiting for labels, with the labels that arrived."""
    payloads = ctx.clients.payloads
    window = payloads.window(ctx.namespace, ctx.name) if payloads is not None else None
    if window is None:
        return None
    found = window.labelled(ctx.clients.clock().timestamp())
    counters = window.label_counters()
    if found is None or counters is None:
        return None
    proba, labels = found
    return Scored(proba, CategoricalColumn.from_values(labels), label_feed=counters)


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
