"""Parse ``spec.slos``: latency and error-ratio SLOs, from the probe or from Prometheus
(own queries or a ready-made template).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import (
    SLI_TEMPLATE_NAMES,
    SLO_SOURCES,
    ErrorRatioSpec,
    LatencySpec,
    SLITemplateSpec,
    SLOSpec,
)


def parse_slos(r: FieldReader, spec: Mapping[str, Any]) -> tuple[SLOSpec, ...]:
    items = spec.get("slos") or []
    if not isinstance(items, list):
        r.problem("spec.slos", "must be a list")
        return ()
    out: list[SLOSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"spec.slos[{i}]"
        if not isinstance(item, Mapping):
            r.problem(path, "must be an object")
            continue
        name = r.string(item, "name", path, required=True)
        source = r.string(item, "source", path, default=SLOSpec.source, choices=SLO_SOURCES)
        objective = r.number(
            item,
            "objective",
            path,
            default=SLOSpec.objective,
            low=0,
            high=100,
            low_open=True,
            high_open=True,
        )
        window = r.duration(item, "window", path, default=SLOSpec.window_seconds)
        lat = r.obj(item, "latency", path)
        err = r.obj(item, "errorRatio", path)
        tpl = _parse_slo_template(r, item, path, source, lat, err)
        burn = r.obj(item, "burnRate", path) or {}
        scale = r.number(
            burn,
            "windowScale",
            f"{path}.burnRate",
            default=SLOSpec.window_scale,
            low=0,
            high=1,
            low_open=True,
        )
        if (lat is None) == (err is None):
            r.problem(path, "set exactly one of latency or errorRatio")
        latency = error_ratio = None
        if lat is not None:
            threshold = r.number(
                lat, "thresholdMs", f"{path}.latency", default=None, low=0, low_open=True
            )
            if threshold is None:
                r.problem(f"{path}.latency.thresholdMs", "is required")
            latency = LatencySpec(
                threshold_ms=threshold or 0.0,
                percentile=r.number(
                    lat,
                    "percentile",
                    f"{path}.latency",
                    default=LatencySpec.percentile,
                    low=0,
                    high=100,
                    low_open=True,
                )
                or LatencySpec.percentile,
                query=r.string(lat, "query", f"{path}.latency"),
            )
            if source == "prometheus" and not latency.query and tpl is None:
                r.problem(f"{path}.latency.query", "is required for source prometheus")
        if err is not None:
            error_ratio = ErrorRatioSpec(
                errors=r.string(err, "errors", f"{path}.errorRatio"),
                total=r.string(err, "total", f"{path}.errorRatio"),
            )
            if (
                source == "prometheus"
                and tpl is None
                and not (error_ratio.errors and error_ratio.total)
            ):
                r.problem(
                    f"{path}.errorRatio",
                    "errors and total queries are required for source prometheus",
                )
        if name is None:
            continue
        if name in seen:
            r.problem(f"{path}.name", f"duplicate SLO {name!r}")
        seen.add(name)
        out.append(
            SLOSpec(
                name=name,
                source=source or SLOSpec.source,  # type: ignore[arg-type]
                objective=objective or SLOSpec.objective,
                window_seconds=window or SLOSpec.window_seconds,
                latency=latency,
                error_ratio=error_ratio,
                template=tpl,
                window_scale=scale or SLOSpec.window_scale,
            )
        )
    return tuple(out)


_PROM_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _parse_slo_template(
    r: FieldReader,
    item: Mapping[str, Any],
    path: str,
    source: str | None,
    lat: Mapping[str, Any] | None,
    err: Mapping[str, Any] | None,
) -> SLITemplateSpec | None:
    tpl = parse_template(r, item, path)
    if tpl is None:
        return None
    tpath = f"{path}.template"
    if source != "prometheus":
        r.problem(tpath, "an SLO template needs source prometheus")
    if (lat is not None and lat.get("query")) or (
        err is not None and (err.get("errors") or err.get("total"))
    ):
        r.problem(tpath, "set either template or your own queries, not both")
    if tpl.name == "kserve" and err is not None:
        r.problem(
            f"{tpath}.name",
            "template kserve has no error-ratio SLI (KServe's model server exports only "
            "latency histograms); use template mlserver or your own queries",
        )
    return tpl


def parse_template(r: FieldReader, item: Mapping[str, Any], path: str) -> SLITemplateSpec | None:
    """``<path>.template``: a model server's ready-made queries (SLOs and anomalies)."""
    data = r.obj(item, "template", path)
    if data is None:
        return None
    tpath = f"{path}.template"
    name = r.string(data, "name", tpath, required=True, choices=SLI_TEMPLATE_NAMES)
    labels = r.obj(data, "labels", tpath) or {}
    for key, value in labels.items():
        if not _PROM_LABEL.match(str(key)):
            r.problem(f"{tpath}.labels", f"{key!r} is not a Prometheus label name")
        if not isinstance(value, str):
            r.problem(f"{tpath}.labels.{key}", "must be a string")
    if name is None:
        return None
    return SLITemplateSpec(
        name=name,  # type: ignore[arg-type]
        model=r.string(data, "model", tpath),
        labels={str(k): str(v) for k, v in labels.items()},
    )
