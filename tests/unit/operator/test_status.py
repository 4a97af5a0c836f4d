"""Conditions follow the API conventions: transition time moves only when status flips."""

from __future__ import annotations

import datetime as dt

from modelmonitor.core.status import Condition, merge_conditions

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def test_new_condition_gets_time_and_generation() -> None:
    conds = merge_conditions(
        [], [Condition("Ready", "True", "Configured", "ok")], generation=2, now=T0
    )
    assert conds == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Configured",
            "message": "ok",
            "lastTransitionTime": "2026-01-01T12:00:00Z",
            "observedGeneration": 2,
        }
    ]


def test_same_status_keeps_transition_time() -> None:
    first = merge_conditions(
        [], [Condition("Ready", "False", "TargetNotFound", "a")], generation=1, now=T0
    )
    second = merge_conditions(
        first, [Condition("Ready", "False", "ReferenceNotFound", "b")], generation=2, now=T1
    )
    assert second[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert second[0]["reason"] == "ReferenceNotFound"
    assert second[0]["observedGeneration"] == 2


def test_flip_moves_transition_time_and_keeps_others() -> None:
    first = merge_conditions(
        [],
        [
            Condition("Ready", "False", "TargetNotFound", "a"),
            Condition("Degraded", "False", "Ok", ""),
        ],
        generation=1,
        now=T0,
    )
    second = merge_conditions(
        first, [Condition("Ready", "True", "Configured", "ok")], generation=1, now=T1
    )
    by_type = {c["type"]: c for c in second}
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert by_type["Degraded"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert [c["type"] for c in second] == ["Ready", "Degraded"]


def test_replacing_turns_dropped_keys_into_nulls_at_every_depth() -> None:
    from modelmonitor.core.status import replacing

    old = {"id": "a", "acted": {"rollback": "succeeded"}, "restore": {"x": 1}, "n": 1}
    new = {"id": "b", "acted": {}, "n": 2}
    assert replacing(old, new) == {"id": "b", "acted": {"rollback": None}, "restore": None, "n": 2}
    assert replacing(None, new) == new
