"""When a monitor's next run is due: pure, with the clock passed in.

Runs are spread, not bunched: each monitor gets a fixed jitter derived from its identity
(so the offset survives restarts), runs never overlap for one monitor, and an operator
that was down does not catch up missed runs: an overdue monitor runs once, soon.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

JITTER_FRACTION = 0.1  # of the interval
MAX_JITTER_SECONDS = 30.0
# New and overdue monitors start within this (or the interval, if shorter), each at its
# own stable point: 1,000 monitors applied at once, or found overdue after a restart,
# then run at an even rate instead of in one burst.
START_SPREAD_SECONDS = 30.0
# A run late by at most this starts at once instead of being spread again: late because
# a standby replica just took the Lease over (about 11 s with the default Lease) or a
# run slot was busy, not because the operator was down. The run slots still bound how
# many run at the same time.
LATE_GRACE_SECONDS = 15.0


def jitter_seconds(key: str, interval: float) -> float:
    """A stable offset in [0, min(10% of interval, 30 s)) for ``key`` (namespace/name)."""
    digest = hashlib.sha256(key.encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    return unit * min(interval * JITTER_FRACTION, MAX_JITTER_SECONDS)


def start_offset(key: str, interval: float) -> float:
    """A stable offset in [0, min(interval, 30 s)) for a first or overdue run of ``key``."""
    digest = hashlib.sha256(f"start:{key}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    return unit * min(interval, START_SPREAD_SECONDS)


def next_due(
    last_run: dt.datetime | None, interval: float, now: dt.datetime, key: str
) -> dt.datetime:
    """When the next run should start.

    * never ran: within ``min(interval, 30 s)``, at the monitor's own stable point (so
      1,000 new monitors run at an even rate, not in one burst);
    * ran before: ``last_run + interval + jitter``;
    * late by at most ``LATE_GRACE_SECONDS`` (a failover to a standby replica, a busy
      slot): now;
    * overdue by more (the operator was down, or a run overran): likewise spread, and
      only once: the schedule continues from that run, missed runs are not caught up.
    """
    if last_run is None:
        return now + dt.timedelta(seconds=start_offset(key, interval))
    due = last_run + dt.timedelta(seconds=interval + jitter_seconds(key, interval))
    if due < now <= due + dt.timedelta(seconds=LATE_GRACE_SECONDS):
        return now
    if due < now:
        return now + dt.timedelta(seconds=start_offset(key, interval))
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


# -- fair shares of the operator's run slots ------------------------------------------------
# Slots kept free, in the automatic share, for namespaces that run nothing yet: a tenant
# whose monitors are all stuck cannot take every slot before another tenant's run is due.
RESERVE_FRACTION = 0.25


def namespace_share(capacity: int, active: int, cap: int = 0) -> int:
    """How many of ``capacity`` slots one namespace may hold at once.

    ``cap`` > 0 is the operator's fixed per-namespace cap. Otherwise the share is
    automatic: ``(capacity - reserve) // active`` (at least 1), where ``reserve`` is a
    quarter of the slots (at least 1, when there are two or more) and ``active`` counts
    the namespaces that hold or wait for a slot.
    """
    if cap > 0:
        return max(1, min(cap, capacity))
    reserve = max(1, int(capacity * RESERVE_FRACTION)) if capacity > 1 else 0
    return max(1, (capacity - reserve) // max(1, active))


def next_namespace(
    running: Mapping[str, int],
    turns: Mapping[str, int],
    capacity: int,
    cap: int = 0,
) -> str | None:
    """The namespace whose oldest waiting run gets the next free slot, or None.

    ``running`` counts the slots each namespace holds; ``turns`` maps each namespace with
    queued runs to when it was last given a slot (a number that grows with each grant; -1:
    never), ties going to the earlier key. Max-min fair: among the namespaces below their
    share, the one holding fewest slots, then the one served longest ago, so namespaces
    take turns whatever the length of their queues. A namespace at its share waits even if
    slots are free.
    """
    if sum(running.values()) >= capacity or not turns:
        return None
    active = len({ns for ns, n in running.items() if n > 0} | set(turns))
    share = namespace_share(capacity, active, cap)
    eligible = [ns for ns in turns if running.get(ns, 0) < share]
    if not eligible:
        return None
    return min(eligible, key=lambda ns: (running.get(ns, 0), turns[ns]))
