"""The data sources a run asks: one per spec data type, each answering its SLOs."""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import pytest

from modelmonitor.core.spec import MonitorSpec, SLOSpec, parse_spec
from modelmonitor.sources.base import Source, configured_sources
from modelmonitor.sources.builtin import SOURCES
from modelmonitor.sources.registry import UnknownSourceError


def keys(sources: list[Source]) -> list[str]:
    return [s.key for s in sources]


def spec(**extra: Any) -> MonitorSpec:
    base: dict[str, Any] = {
        "target": {"name": "m", "kind": "InferenceService", "endpoint": {"url": "http://m"}},
        "reference": {"inline": [{"x": 1}]},
    }
    return parse_spec(base | extra)


def test_the_registry_order_is_the_order_a_run_asks() -> None:
    assert SOURCES.keys() == ("probe", "payloadLog", "partitions", "prometheus", "anomalies")
    assert [s.supplies_rows for s in SOURCES] == [True, True, True, False, False]


def test_every_slo_source_the_spec_accepts_is_a_registered_source() -> None:
    assert set(get_args(get_type_hints(SLOSpec)["source"])) <= set(SOURCES.keys())


def test_a_spec_configures_the_sources_it_names() -> None:
    prometheus_slo = {
        "name": "p",
        "source": "prometheus",
        "window": "1h",
        "errorRatio": {"errors": "e", "total": "t"},
    }
    assert keys(configured_sources(SOURCES, spec())) == []
    assert keys(configured_sources(SOURCES, spec(data={"probe": {}}))) == ["probe"]
    both = spec(data={"payloadLog": {}, "probe": {}})
    assert keys(configured_sources(SOURCES, both)) == ["probe", "payloadLog"]
    prometheus = spec(prometheus={"url": "http://prom"}, slos=[prometheus_slo])
    assert keys(configured_sources(SOURCES, prometheus)) == ["prometheus"]
    # a Prometheus server but no SLO for it: nothing to ask
    assert keys(configured_sources(SOURCES, spec(prometheus={"url": "http://prom"}))) == []


def test_an_slo_naming_an_unknown_source_is_an_error() -> None:
    odd = MonitorSpec(
        target=spec().target,
        reference=spec().reference,
        slos=(SLOSpec("odd", source="statsd"),),  # type: ignore[arg-type]
    )
    with pytest.raises(UnknownSourceError, match="no data source 'statsd'; known: probe"):
        configured_sources(SOURCES, odd)
