"""Parse ``spec.anomalies``: Prometheus series judged against robust seasonal baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmonitor.core.spec.fields import FieldReader, parse_duration
from modelmonitor.core.spec.model import (
    ANOMALY_SLIS,
    MAX_ANOMALIES,
    MAX_ANOMALY_POINTS,
    MAX_ANOMALY_SEASON_SECONDS,
    MAX_ANOMALY_STEP_SECONDS,
    MIN_ANOMALY_SEASON_SECONDS,
    MIN_ANOMALY_STEP_SECONDS,
    AnomalySpec,
)
from modelmonitor.core.spec.parse_slos import parse_template


def parse_anomalies(r: FieldReader, spec: Mapping[str, Any]) -> tuple[AnomalySpec, ...]:
    items = spec.get("anomalies") or []
    if not isinstance(items, list):
        r.problem("spec.anomalies", "must be a list")
        return ()
    if len(items) > MAX_ANOMALIES:
        r.problem("spec.anomalies", f"at most {MAX_ANOMALIES} series")
    out: list[AnomalySpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items[:MAX_ANOMALIES]):
        path = f"spec.anomalies[{i}]"
        if not isinstance(item, Mapping):
            r.problem(path, "must be an object")
            continue
        parsed = _parse_one(r, item, path)
        if parsed is None:
            continue
        if parsed.name in seen:
            r.problem(f"{path}.name", f"duplicate series {parsed.name!r}")
        seen.add(parsed.name)
        out.append(parsed)
    return tuple(out)


def _parse_one(r: FieldReader, item: Mapping[str, Any], path: str) -> AnomalySpec | None:
    d = AnomalySpec
    name = r.string(item, "name", path, required=True)
    query = r.string(item, "query", path)
    sli = r.string(item, "sli", path, choices=ANOMALY_SLIS)
    template = parse_template(r, item, path)
    if (query is None) == (sli is None):
        r.problem(path, "set exactly one of query or sli")
    if sli is not None and template is None:
        r.problem(f"{path}.template", "is required with sli (the model server's metrics)")
    if query is not None and template is not None:
        r.problem(f"{path}.template", "is only used with sli, not with query")
    if sli == "errorRatio" and template is not None and template.name == "kserve":
        r.problem(f"{path}.template.name", "template kserve has no error counter (errorRatio)")
    if sli == "traffic" and template is not None and template.name == "kserve":
        r.problem(f"{path}.template.name", "template kserve has no request counter (traffic)")
    step = r.duration(item, "step", path, default=d.step_seconds)
    if step is not None and not MIN_ANOMALY_STEP_SECONDS <= step <= MAX_ANOMALY_STEP_SECONDS:
        r.problem(f"{path}.step", "must be between 10s and 1h")
        step = None
    lookback = r.duration(item, "lookback", path, default=d.lookback_seconds)
    seasons = _seasons(r, item, path)
    if step and lookback and lookback / step > MAX_ANOMALY_POINTS:
        r.problem(
            f"{path}.lookback",
            f"lookback / step is {lookback / step:,.0f} points, more than {MAX_ANOMALY_POINTS:,}: "
            "raise step or shorten lookback",
        )
    warmup = r.integer(item, "warmupCycles", path, default=d.warmup_cycles, low=1, high=8)
    if lookback and seasons and lookback < (warmup + 1) * min(seasons):
        r.problem(
            f"{path}.lookback",
            f"must cover warmupCycles + 1 = {warmup + 1} of the shortest season, or no point "
            "ever leaves warm-up",
        )
    sensitivity = r.number(item, "sensitivity", path, default=d.sensitivity, low=0.5, high=20)
    for_seconds = r.duration(item, "for", path, default=d.for_seconds)
    floor = r.obj(item, "floor", path) or {}
    absolute = r.number(floor, "absolute", f"{path}.floor", default=d.absolute_floor, low=0)
    relative = r.number(floor, "relative", f"{path}.floor", default=d.relative_floor, low=0, high=1)
    percentile = r.number(
        item, "percentile", path, default=d.percentile, low=0, high=100, low_open=True
    )
    if item.get("percentile") is not None and sli != "latency":
        r.problem(f"{path}.percentile", "is only used with sli latency")
    if name is None:
        return None
    return AnomalySpec(
        name=name,
        query=query,
        sli=sli,  # type: ignore[arg-type]
        template=template,
        percentile=percentile if percentile is not None else d.percentile,
        step_seconds=step or d.step_seconds,
        lookback_seconds=lookback or d.lookback_seconds,
        seasons=seasons or d.seasons,
        sensitivity=sensitivity if sensitivity is not None else d.sensitivity,
        for_seconds=for_seconds if for_seconds is not None else d.for_seconds,
        warmup_cycles=warmup,
        absolute_floor=absolute if absolute is not None else d.absolute_floor,
        relative_floor=relative if relative is not None else d.relative_floor,
    )


def _seasons(r: FieldReader, item: Mapping[str, Any], path: str) -> tuple[float, ...] | None:
    raw = item.get("seasons")
    if raw is None:
        return AnomalySpec.seasons
    if not isinstance(raw, list) or not raw or len(raw) > 4:
        r.problem(f"{path}.seasons", "must be a list of 1 to 4 durations, e.g. [1d, 7d]")
        return None
    seasons: list[float] = []
    for j, text in enumerate(raw):
        try:
            seconds = parse_duration(str(text)) if isinstance(text, str) else -1.0
        except ValueError:
            seconds = -1.0
        if not MIN_ANOMALY_SEASON_SECONDS <= seconds <= MAX_ANOMALY_SEASON_SECONDS:
            r.problem(f"{path}.seasons[{j}]", "must be a duration between 1h and 28d, e.g. 1d")
            return None
        seasons.append(seconds)
    if len(set(seasons)) != len(seasons):
        r.problem(f"{path}.seasons", "a season is named twice")
        return None
    return tuple(seasons)
