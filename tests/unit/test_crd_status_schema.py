"""Every status the operator writes survives the CRD's structural status schema.

The API server prunes what the schema does not list and refuses wrong types, so a
status part missing from the schema would vanish without an error. The samples are
built by the operator's own code (tests/unit/status_samples.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.core.incident import Incident, PendingAction, Restore
from tests.unit.status_samples import (
    every_status,
    full_alerting,
    full_incident,
    schema_problems,
    status_schema,
    unset_keys,
)

SAMPLES = every_status()


@pytest.mark.parametrize("status", [s for _, s in SAMPLES], ids=[n for n, _ in SAMPLES])
def test_status_is_kept_whole_by_the_schema(status: dict[str, Any]) -> None:
    assert schema_problems(status, status_schema()) == []


def test_the_incident_sample_sets_every_field_the_records_declare() -> None:
    # A field added to Incident, PendingAction or Restore must join the sample (and so
    # the schema): otherwise the API server would prune it.
    incident = full_incident()
    assert unset_keys(incident) == set()
    assert incident.restore is not None
    assert unset_keys(incident.restore) == set()
    rollback, scale_back = incident.pending
    assert unset_keys(rollback) == set()  # restore is written null
    assert set(PendingAction.from_dict(scale_back.to_dict()).to_dict()) >= {"restore"}
    assert Restore.from_dict(dict(scale_back.restore or {})).extra == {}
    assert Incident.from_dict(incident.to_dict()).extra == {}


def test_the_alerting_sample_sets_every_field_the_records_declare() -> None:
    # A field added to the outbox records must join the sample (and so the schema).
    status = full_alerting()
    entry = next(e for e in status.outbox if e.attempts)
    assert entry.action is not None
    assert unset_keys(entry) == set()
    assert unset_keys(status.sinks[0]) == set()  # the Alertmanager sink: delivered and firing
    measured = status_schema()["properties"]["alerting"]["properties"]["outbox"]["items"]
    assert set(measured["properties"]["measurements"]["items"]["properties"]) == set(
        entry.measurements[0]
    )
    assert set(measured["properties"]["action"]["properties"]) == set(entry.action)


def test_samples_cover_every_status_part_the_schema_lists() -> None:
    written: set[str] = set()
    for _, status in SAMPLES:
        written |= status.keys()
    assert set(status_schema()["properties"]) == written


def test_samples_cover_every_action_detail_the_schema_lists() -> None:
    entry = status_schema()["properties"]["actionHistory"]["items"]["properties"]
    written: set[str] = set()
    for _, status in SAMPLES:
        for item in status.get("actionHistory") or []:
            written |= item.keys()
    assert set(entry) == written


# -- the check itself, attacked --------------------------------------------------------------


def test_a_field_the_schema_does_not_list_is_reported_as_pruned() -> None:
    status = {"incident": {**full_incident().to_dict(), "newField": 1}}
    assert schema_problems(status, status_schema()) == [
        "status.incident.newField is not in the schema: the API server prunes it"
    ]


def test_an_undescribed_action_detail_is_reported() -> None:
    status = {"lastAction": {"type": "rollback", "surprise": "x"}}
    assert schema_problems(status, status_schema()) == [
        "status.lastAction.surprise is kept but not described in the schema"
    ]


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ({"lastRun": {"samples": "12"}}, "status.lastRun.samples is str, the schema says integer"),
        ({"lastRun": {"samples": True}}, "status.lastRun.samples is a boolean"),
        ({"drift": {"features": [{"drifted": None}]}}, "status.drift.features[0].drifted is null"),
        ({"phase": "Sleeping"}, "status.phase 'Sleeping' is not one of"),
        (
            {"lastRun": {"durationSeconds": float("inf")}},
            "status.lastRun.durationSeconds is not finite",
        ),
    ],
)
def test_wrong_types_and_nulls_are_reported(status: dict[str, Any], problem: str) -> None:
    problems = schema_problems(status, status_schema())
    assert len(problems) == 1
    assert problems[0].startswith(problem)
