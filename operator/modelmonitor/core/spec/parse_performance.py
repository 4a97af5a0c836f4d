"""``spec.performance``: estimated (CBPE-style) and realized model performance.

The columns are the reference's; the label column defaults to
``spec.prediction.labelColumn``. Thresholds are per metric: ``minimum`` (an absolute
floor) and ``maxDrop`` (how far below the reference's own value), both on the metric's
0-1 scale. See docs/spec.md and docs/statistics.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.names import key_problem, subdomain_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import (
    LABEL_SOURCES,
    PERFORMANCE_METRICS,
    PERFORMANCE_TASKS,
    LabelsSpec,
    MonitorSpec,
    PerformanceSpec,
)

MAX_PROBABILITY_COLUMNS = 100
OUTPUT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # the CRD's pattern
MIN_ROWS_FLOOR = 10  # fewer rows than this give intervals too wide to be any verdict
LABEL_DELAY_SECONDS = (60.0, 30 * 86400.0)  # the CRD's bounds of labels.labelDelay
MAX_PREDICTIONS = 1_000_000  # the CRD's maximum of labels.maxPredictions


def parse_performance(r: FieldReader, spec: Mapping[str, Any]) -> PerformanceSpec | None:
    data = r.obj(spec, "performance", "spec")
    if data is None:
        return None
    path = "spec.performance"
    prediction = spec.get("prediction") if isinstance(spec.get("prediction"), Mapping) else {}
    label_default = prediction.get("labelColumn") if isinstance(prediction, Mapping) else None
    target = r.string(
        data,
        "target",
        path,
        default=label_default if isinstance(label_default, str) else None,
    )
    if target is None:
        r.problem(f"{path}.target", "is required (or set spec.prediction.labelColumn)")
    task = r.string(data, "task", path, default=PerformanceSpec.task, choices=PERFORMANCE_TASKS)
    probabilities = _columns(r, data, path)
    if target is not None and target in probabilities:
        r.problem(f"{path}.probabilities", f"{target!r} is the label column (target)")
    metrics = _metrics(r, data, path)
    minimum = _per_metric(r, data, "minimum", path)
    max_drop = _per_metric(r, data, "maxDrop", path)
    for key, limits in (("minimum", minimum), ("maxDrop", max_drop)):
        for m in limits:
            if m not in metrics:
                r.problem(f"{path}.{key}.{m}", f"{m} is not in {path}.metrics")
    output = r.string(data, "probabilityOutput", path)
    pred_output = (
        r.string(data, "predictionOutput", path, default=PerformanceSpec.prediction_output)
        or PerformanceSpec.prediction_output
    )
    for key, name in (("probabilityOutput", output), ("predictionOutput", pred_output)):
        if name is not None and not OUTPUT_NAME.match(name):
            r.problem(f"{path}.{key}", "must be 1-128 letters, digits, '_', '.', ':' or '-'")
    if output is not None and pred_output == output:
        r.problem(f"{path}.predictionOutput", "must differ from probabilityOutput")
    confidence = r.number(
        data, "confidence", path, default=PerformanceSpec.confidence, low=0.5, high=0.999
    )
    min_rows = r.integer(
        data, "minRows", path, default=PerformanceSpec.min_rows, low=MIN_ROWS_FLOOR, high=1000000
    )
    labels = _labels(r, data, path)
    if target is None or not probabilities:
        return None
    return PerformanceSpec(
        target=target,
        probabilities=probabilities,
        task=task or PerformanceSpec.task,  # type: ignore[arg-type]
        metrics=metrics,
        minimum=minimum,
        max_drop=max_drop,
        confidence=confidence or PerformanceSpec.confidence,
        min_rows=min_rows,
        probability_output=output,
        prediction_output=pred_output,
        labels=labels,
    )


def _labels(r: FieldReader, data: Mapping[str, Any], path: str) -> LabelsSpec | None:
    value = r.obj(data, "labels", path)
    if value is None:
        return None
    where = f"{path}.labels"
    source = r.string(value, "source", where, default=LabelsSpec.source, choices=LABEL_SOURCES)
    delay = r.duration(value, "labelDelay", where, default=LabelsSpec.delay_seconds)
    low, high = LABEL_DELAY_SECONDS
    if delay is not None and not low <= delay <= high:
        r.problem(f"{where}.labelDelay", "must be between 1m and 30d")
        delay = None
    most = r.integer(
        value,
        "maxPredictions",
        where,
        default=LabelsSpec.max_predictions,
        low=1,
        high=MAX_PREDICTIONS,
    )
    name = key = None
    ref = r.obj(value, "configMapRef", where)
    if (source == "configMap") != (ref is not None):
        r.problem(f"{where}.configMapRef", "is required with source configMap, and only then")
    if ref is not None:
        name = r.name(ref, "name", f"{where}.configMapRef", subdomain_problem)
        key = r.name(ref, "key", f"{where}.configMapRef", key_problem)
    return LabelsSpec(
        source=source or LabelsSpec.source,  # type: ignore[arg-type]
        delay_seconds=delay if delay is not None else LabelsSpec.delay_seconds,
        max_predictions=most,
        config_map_name=name,
        config_map_key=key,
    )


def _columns(r: FieldReader, data: Mapping[str, Any], path: str) -> tuple[str, ...]:
    value = data.get("probabilities")
    where = f"{path}.probabilities"
    if value is None:
        r.problem(where, "is required: the reference's class probability column(s)")
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        r.problem(where, "must be a non-empty list of column names")
        return ()
    if len(value) > MAX_PROBABILITY_COLUMNS:
        r.problem(where, f"at most {MAX_PROBABILITY_COLUMNS} columns")
        return ()
    if len(set(value)) != len(value):
        r.problem(where, "lists a column twice")
    return tuple(value)


def _metrics(r: FieldReader, data: Mapping[str, Any], path: str) -> tuple[str, ...]:
    value = data.get("metrics")
    if value is None:
        return PERFORMANCE_METRICS
    where = f"{path}.metrics"
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        r.problem(where, "must be a non-empty list of metric names")
        return PERFORMANCE_METRICS
    unknown = [v for v in value if v not in PERFORMANCE_METRICS]
    if unknown:
        r.problem(
            where,
            f"unsupported metric(s) {', '.join(map(repr, unknown))}; expected "
            f"{', '.join(PERFORMANCE_METRICS)}",
        )
    if len(set(value)) != len(value):
        r.problem(where, "lists a metric twice")
    return tuple(m for m in PERFORMANCE_METRICS if m in value)


def _per_metric(r: FieldReader, data: Mapping[str, Any], key: str, path: str) -> dict[str, float]:
    value = r.obj(data, key, path)
    if value is None:
        return {}
    out: dict[str, float] = {}
    for metric in value:
        where = f"{path}.{key}"
        if metric not in PERFORMANCE_METRICS:
            r.problem(
                f"{where}.{metric}",
                f"unsupported metric; expected one of {', '.join(PERFORMANCE_METRICS)}",
            )
            continue
        number = r.number(value, metric, where, default=None, low=0, high=1)
        if number is not None:
            out[metric] = number
    return out


def check_performance(r: FieldReader, spec: MonitorSpec) -> None:
    """The cross-field rules of spec.performance and onPerformanceDrop."""
    perf = spec.performance
    if spec.actions.on_performance_drop and (perf is None or not perf.thresholds()):
        r.problem(
            "spec.actions.onPerformanceDrop",
            "needs spec.performance with a minimum or maxDrop: nothing else can drop",
        )
    if perf is None:
        return
    if spec.probe is None and spec.payload_log is None:
        r.problem(
            "spec.performance",
            "needs spec.data.probe or spec.data.payloadLog: their answers carry the class "
            "probabilities",
        )
    if perf.labels is not None and spec.payload_log is None:
        r.problem(
            "spec.performance.labels",
            "needs spec.data.payloadLog: labels are joined to the served predictions it logs",
        )
    names = {f.name for f in spec.features}
    for column in (perf.target, *perf.probabilities):
        if column in names:
            r.problem("spec.performance", f"{column!r} is also listed as a feature")
    if spec.prediction is not None and spec.prediction.type == "numerical":
        r.problem("spec.performance", "needs a categorical spec.prediction (a classifier)")
    if perf.probability_output is not None and (
        spec.target.endpoint is not None and spec.target.endpoint.protocol != "v2"
    ):
        r.problem("spec.performance.probabilityOutput", "applies to protocol v2 only")
