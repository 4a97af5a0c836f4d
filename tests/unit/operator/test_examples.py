"""Every documented example is a valid spec for the operator too (not just the schema),
and its PromQL asks each burn-rate window, not a fixed range."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.core.spec import parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "docs" / "examples").glob("*.yaml"))
# A range selector or subquery: metric[5m], metric[$window], expr[$window:1m].
RANGE = re.compile(r"\[([^\]]*)\]")


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_parses(example: Path) -> None:
    doc = yaml.safe_load(example.read_text())
    assert doc["kind"] == "ModelMonitor"
    parse_spec(doc["spec"])


def _queries(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for i, slo in enumerate(spec.get("slos") or []):
        lat = slo.get("latency") or {}
        if lat.get("query"):
            yield f"slos[{i}].latency.query", lat["query"]
        for key in ("errors", "total"):
            query = (slo.get("errorRatio") or {}).get(key)
            if query:
                yield f"slos[{i}].errorRatio.{key}", query


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_promql_ranges_are_window(example: Path) -> None:
    """A fixed range ([5m]) would be asked for every burn-rate window alike: the 1h and
    the 3d windows would both see the last 5 minutes."""
    spec = yaml.safe_load(example.read_text())["spec"]
    for where, query in _queries(spec):
        ranges = RANGE.findall(query)
        assert ranges, f"{example.name} {where}: no range selector in {query!r}"
        for found in ranges:
            assert found.split(":")[0] == "$window", f"{example.name} {where}: [{found}]"


def test_some_example_has_promql() -> None:
    """The check above would pass vacuously if no example had a query."""
    found = [q for p in EXAMPLES for q in _queries(yaml.safe_load(p.read_text())["spec"])]
    assert len(found) >= 3


def test_the_range_check_catches_a_fixed_range() -> None:
    assert RANGE.findall("sum(rate(x_total{a='b'}[5m]))") == ["5m"]
    assert RANGE.findall("max_over_time(up[$window:1m])") == ["$window:1m"]
