"""The ``payloadLog`` source: production inputs and outputs from KServe's payload logger.

The collector (:mod:`modelmonitor.sources.payload`) keeps each monitor's rolling window
in the operator process; a run takes a snapshot of it: the monitor's inputs and the
model's predictions, the drift window. Below ``minSamples`` there is no snapshot, and
the run reports InsufficientData for drift, never a pass.
"""

from __future__ import annotations

from modelmonitor.core.dataset import Dataset
from modelmonitor.core.spec import MonitorSpec, PredictionSpec
from modelmonitor.sources.base import CurrentData, Gathered, RunContext, input_names
from modelmonitor.sources.reference import LoadedReference


class PayloadLogSource:
    key = "payloadLog"
    supplies_rows = True

    def configured(self, spec: MonitorSpec) -> bool:
        return spec.payload_log is not None

    async def gather(self, ctx: RunContext) -> Gathered:
        if ctx.reference is None:
            return Gathered()
        rows, insufficient = _snapshot(ctx, ctx.reference)
        return Gathered(
            current=CurrentData(rows, insufficient),
            details={"payloadLog": {"rows": rows.n_rows}} if rows is not None else {},
        )


def _snapshot(ctx: RunContext, reference: LoadedReference) -> tuple[Dataset | None, str | None]:
    payloads = ctx.clients.payloads
    window = payloads.window(ctx.namespace, ctx.name) if payloads is not None else None
    if window is None:
        return None, "no payload-log window for this monitor (the collector runs in the operator)"
    now = ctx.clients.clock().timestamp()
    names = set(input_names(ctx.spec, reference))
    inputs = [f for f in reference.features if f.name in names]
    prediction = ctx.spec.prediction or PredictionSpec()
    snapshot = window.snapshot(now, inputs, prediction.name, prediction.type)
    if snapshot is None:
        return None, window.status(now).message
    return snapshot, None
