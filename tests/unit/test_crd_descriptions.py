"""Every CRD field has a description, so ``kubectl explain modelmonitor.spec.X`` says what it is.

Walks the whole schema, spec and status, through object properties, array items and
additionalProperties.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.unit.status_samples import crd_schema

MIN_WORDS = 2
# The API server forbids anything but name and generateName under the root's metadata;
# kubectl explain shows ObjectMeta's own description there.
EXEMPT = {"metadata"}


def fields(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every field of ``schema`` with its dotted path (``[]`` for items, ``{}`` for values)."""
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        yield here, sub
        yield from fields(sub, here)
    if isinstance(schema.get("items"), Mapping):
        yield from fields(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from fields(schema["additionalProperties"], f"{path}{{}}")


def undescribed(schema: Mapping[str, Any]) -> list[str]:
    return [
        path
        for path, sub in fields(schema)
        if path not in EXEMPT and len(str(sub.get("description") or "").split()) < MIN_WORDS
    ]


def test_every_field_has_a_description() -> None:
    assert undescribed(crd_schema()) == []


def test_the_walk_reaches_items_and_additional_properties() -> None:
    paths = dict(fields(crd_schema()))
    for path in (
        "spec.actions.onSLOBreach",
        "spec.slos[].latency.thresholdMs",
        "status.conditions[].reason",
        "status.incident.pending[].healthyRevisions[].images",
        "status.slos[].firingAlerts[].longWindow",
    ):
        assert path in paths
    assert len(paths) > 200


A = {"description": "the a field"}


@pytest.mark.parametrize(
    ("properties", "missing"),
    [
        ({"a": A, "b": {"type": "string"}}, "b"),
        ({"a": {**A, "items": {"properties": {"b": {"type": "string"}}}}}, "a[].b"),
        ({"a": {**A, "additionalProperties": {"properties": {"b": {}}}}}, "a{}.b"),
        ({"a": {"description": "x"}}, "a"),  # one word says nothing
    ],
)
def test_a_missing_description_is_found_wherever_it_is(
    properties: dict[str, Any], missing: str
) -> None:
    assert undescribed({"properties": properties}) == [missing]
