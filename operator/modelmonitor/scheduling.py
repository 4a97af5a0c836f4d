"""When a monitor's next run is due: pure, with the clock passed in.

Runs are spread, not bunched: each monitor gets a fixed jitter derived from its identity
(so the offset survives restarts), runs never overlap for one monitor, and an operator
that was down does not catch up missed runs: an overdue monitor runs once, soon.
"""

from __future__ import annotations

import datetime as dt
import hashlib

JITTER_FRACTION = 0.1  # of the interval
MAX_JITTER_SECONDS = 30.0
OVERDUE_SPREAD_SECONDS = 5.0  # overdue monitors start within this after a restart


def jitter_seconds(key: str, interval: float) -> float:
    """A stable offset in [0, min(10% of interval, 30 s)) for ``key`` (namespace/name)."""
    digest = hashlib.sha256(key.encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    return unit * min(interval * JITTER_FRACTION, MAX_JITTER_SECONDS)


def next_due(
    last_run: dt.datetime | None, interval: float, now: dt.datetime, key: str
) -> dt.datetime:
    """When the next run should start.

    * never ran: soon, spread by the jitter (so 1,000 new monitors don't start at once);
    * ran before: ``last_run + interval + jitter``;
    * overdue (the operator was down, or a run overran): now, spread over a few seconds,
      and only once: the schedule continues from that run.
    """
    spread = jitter_seconds(key, interval)
    if last_run is None:
        return now + dt.timedelta(seconds=min(spread, OVERDUE_SPREAD_SECONDS))
    due = last_run + dt.timedelta(seconds=interval + spread)
    if due < now:
        return now + dt.timedelta(seconds=min(spread, OVERDUE_SPREAD_SECONDS))
    return due


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 time from status, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
