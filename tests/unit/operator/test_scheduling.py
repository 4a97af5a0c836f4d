from __future__ import annotations

import datetime as dt

import numpy as np

from modelmonitor.core.scheduling import (
    LATE_GRACE_SECONDS,
    jitter_seconds,
    next_due,
    parse_time,
    start_offset,
)

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def test_jitter_is_stable_and_bounded() -> None:
    assert jitter_seconds("ml/fraud", 60) == jitter_seconds("ml/fraud", 60)
    values = [jitter_seconds(f"ns/m{i}", 60) for i in range(1000)]
    assert all(0 <= v < 6 for v in values)
    assert max(values) - min(values) > 5  # spread over the window
    assert all(v < 30 for v in (jitter_seconds(f"k{i}", 86400) for i in range(100)))


def test_first_runs_spread_evenly_within_30s() -> None:
    offsets = [(next_due(None, 60, NOW, f"ml/m{i}") - NOW).total_seconds() for i in range(1000)]
    assert all(0 <= o < 30 for o in offsets)
    per_second = np.bincount(np.asarray(offsets, dtype=int), minlength=30)
    assert per_second.max() < 3 * 1000 / 30  # no burst: at most ~3x the even rate
    assert next_due(None, 10, NOW, "ml/a") <= NOW + dt.timedelta(seconds=10)


def test_regular_schedule() -> None:
    last = NOW - dt.timedelta(seconds=10)
    due = next_due(last, 60, NOW, "ml/a")
    assert due == last + dt.timedelta(seconds=60 + jitter_seconds("ml/a", 60))


def test_overdue_runs_once_soon_not_catching_up() -> None:
    last = NOW - dt.timedelta(hours=3)
    due = next_due(last, 60, NOW, "ml/a")
    assert NOW <= due <= NOW + dt.timedelta(seconds=30)


def test_parse_time() -> None:
    assert parse_time("2026-05-01T12:00:00Z") == NOW
    assert parse_time("garbage") is None
    assert parse_time(None) is None


def test_a_run_made_late_by_a_failover_starts_at_once() -> None:
    """A standby takes the Lease over ~11 s after the leader died: a run due meanwhile
    is not pushed back by the overdue spread as well."""
    due = NOW - dt.timedelta(seconds=LATE_GRACE_SECONDS)
    last = due - dt.timedelta(seconds=60 + jitter_seconds("ml/a", 60))
    assert next_due(last, 60, NOW, "ml/a") == NOW
    later = last - dt.timedelta(seconds=1)  # late by more: spread as after an outage
    assert next_due(later, 60, NOW, "ml/a") == NOW + dt.timedelta(seconds=start_offset("ml/a", 60))
