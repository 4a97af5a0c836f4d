"""A bounded, mergeable history of an SLO's good and total events, kept in the status.

For probe-sourced SLOs the operator has only its own measurements, one batch per run:
:class:`EventHistory` keeps them in time buckets whose count is bounded by the
windows the burn-rate alerts need, so the history fits in the monitor's status and
survives restarts. Time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelmonitor.core.slo.budget import EventCounts

HISTORY_VERSION = 1


@dataclass(frozen=True)
class Bucket:
    """Events recorded between ``first`` and ``last`` (epoch seconds) in one bucket."""

    counts: EventCounts
    first: float
    last: float

    def __add__(self, other: Bucket) -> Bucket:
        return Bucket(
            counts=self.counts + other.counts,
            first=min(self.first, other.first),
            last=max(self.last, other.last),
        )

    def share_in(self, lo: float, hi: float) -> float:
        """Share of this bucket's events inside ``(lo, hi]``, assuming them spread evenly
        between ``first`` and ``last``."""
        if self.last <= self.first:  # one point in time
            return 1.0 if lo < self.first <= hi else 0.0
        overlap = min(self.last, hi) - max(self.first, lo)
        return min(max(overlap / (self.last - self.first), 0.0), 1.0)


@dataclass(frozen=True)
class EventHistory:
    """Event counts over time in aligned, power-of-two time buckets (bounded, mergeable).

    A bucket at ``level`` k sits on the grid cell ``[index * w, (index + 1) * w)`` with
    ``w = base_seconds * 2**k``, measured from the epoch, so any two cells either nest or
    are disjoint. New counts go into level 0; as buckets age they fold into their
    parents, so a bucket's width stays between about 1/(2r) and 1/r of its age
    (r = ``resolution``): recent data keeps fine detail for the short burn-rate windows,
    old data is coarse but still counts for the SLO window. The history holds about
    ``r`` buckets per doubling of its span (28 days at a 10 s base: ~ 18 doublings);
    ``max_buckets`` is a hard cap (the oldest go first). Histories with the same base
    merge exactly (counts add), e.g. those written by two operator replicas.

    Each bucket also remembers when its first and last events were recorded. A window
    query counts a bucket that straddles the window's start pro rata over that span, so
    its error is bounded by the events of that one bucket, and is nil while the history
    is younger than the window.
    """

    base_seconds: float = 10.0
    resolution: int = 4
    max_buckets: int = 160
    buckets: Mapping[tuple[int, int], Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.base_seconds > 0 and math.isfinite(self.base_seconds)):
            raise ValueError("base_seconds must be > 0")
        if self.resolution < 1 or self.max_buckets < 1:
            raise ValueError("resolution and max_buckets must be >= 1")

    # geometry
    def _width(self, level: int) -> float:
        return self.base_seconds * (1 << level)

    def _span(self, key: tuple[int, int]) -> tuple[float, float]:
        level, index = key
        width = self._width(level)
        return index * width, (index + 1) * width

    def __len__(self) -> int:
        return len(self.buckets)

    def add(
        self, now: float, counts: EventCounts, *, retention_seconds: float | None = None
    ) -> EventHistory:
        """A new history with ``counts`` recorded at ``now``, compacted and pruned."""
        key = (0, math.floor(now / self.base_seconds))
        merged = dict(self.buckets)
        bucket = Bucket(counts=counts, first=now, last=now)
        merged[key] = merged[key] + bucket if key in merged else bucket
        return self._replace(merged).compact(now, retention_seconds=retention_seconds)

    def merge(
        self, other: EventHistory, now: float, *, retention_seconds: float | None = None
    ) -> EventHistory:
        """Both histories' counts together (the same event must not be in both)."""
        if other.base_seconds != self.base_seconds:
            raise ValueError(
                f"cannot merge histories with base {self.base_seconds}s and {other.base_seconds}s"
            )
        merged = dict(self.buckets)
        for key, bucket in other.buckets.items():
            merged[key] = merged[key] + bucket if key in merged else bucket
        return self._replace(merged).compact(now, retention_seconds=retention_seconds)

    def compact(self, now: float, *, retention_seconds: float | None = None) -> EventHistory:
        """Fold aged buckets into their parents, drop expired ones, apply the cap."""
        buckets: dict[tuple[int, int], Bucket] = {}
        for key, bucket in self.buckets.items():
            target = self._aged_key(key, now)
            buckets[target] = buckets[target] + bucket if target in buckets else bucket
        # A bucket nested in a coarser one (after a merge) folds into the coarsest.
        top = max((k[0] for k in buckets), default=0)
        for key in sorted(buckets, key=lambda k: k[0]):
            level, index = key
            for up in range(level + 1, top + 1):
                ancestor = (up, index >> (up - level))
                if ancestor in buckets:
                    buckets[ancestor] = buckets[ancestor] + buckets.pop(key)
                    break
        if retention_seconds is not None:
            horizon = now - retention_seconds
            buckets = {k: b for k, b in buckets.items() if b.last > horizon}
        if len(buckets) > self.max_buckets:
            newest = sorted(buckets, key=lambda k: buckets[k].last)[-self.max_buckets :]
            buckets = {k: buckets[k] for k in newest}
        return self._replace(buckets)

    def _aged_key(self, key: tuple[int, int], now: float) -> tuple[int, int]:
        level, index = key
        while level < 62:
            parent = (level + 1, index >> 1)
            start, end = self._span(parent)
            if now - end < self.resolution * (end - start):
                break
            level, index = parent
        return level, index

    def counts(self, now: float, window_seconds: float) -> EventCounts:
        """Events recorded in ``(now - window, now]``."""
        lo = now - window_seconds
        good = total = 0.0
        for bucket in self.buckets.values():
            share = bucket.share_in(lo, now)
            good += bucket.counts.good * share
            total += bucket.counts.total * share
        return EventCounts(good=min(good, total), total=total)

    def window_counts(self, now: float, windows: Iterable[float]) -> dict[float, EventCounts]:
        return {w: self.counts(now, w) for w in windows}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for status (a few KiB at most).

        Each bucket is ``[level, index, good, total, first, last]``, ``first`` and
        ``last`` as offsets in seconds from the start of the bucket's grid cell.
        """
        rows = []
        for key, b in sorted(self.buckets.items(), key=lambda kv: kv[1].last):
            start = self._span(key)[0]
            rows.append(
                [
                    key[0],
                    key[1],
                    _compact_number(b.counts.good),
                    _compact_number(b.counts.total),
                    _compact_number(round(b.first - start, 3)),
                    _compact_number(round(b.last - start, 3)),
                ]
            )
        return {
            "version": HISTORY_VERSION,
            "baseSeconds": _compact_number(self.base_seconds),
            "resolution": self.resolution,
            "buckets": rows,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, base_seconds: float = 10.0, max_buckets: int = 160
    ) -> EventHistory:
        """Read :meth:`to_dict`'s output; an absent, foreign or broken one starts empty.

        A history of another ``base_seconds`` is re-bucketed onto this base's grid
        (each old bucket moves whole to the level-0 cell of its last event).
        """
        empty = cls(base_seconds=base_seconds, max_buckets=max_buckets)
        if not data or data.get("version") != HISTORY_VERSION:
            return empty
        try:
            stored_base = float(data["baseSeconds"])
            resolution = int(data.get("resolution", empty.resolution))
            grid = cls(base_seconds=stored_base)
            buckets: dict[tuple[int, int], Bucket] = {}
            for level, index, good, total, first, last in data["buckets"]:
                key = (int(level), int(index))
                if not 0 <= key[0] <= 62:
                    return empty
                start = grid._span(key)[0]
                bucket = Bucket(
                    EventCounts(float(good), float(total)),
                    first=start + float(first),
                    last=start + float(last),
                )
                if stored_base != base_seconds:
                    key = (0, math.floor(bucket.last / base_seconds))
                buckets[key] = buckets[key] + bucket if key in buckets else bucket
            return cls(
                base_seconds=base_seconds,
                resolution=max(resolution, 1),
                max_buckets=max_buckets,
                buckets=buckets,
            )
        except (KeyError, TypeError, ValueError):
            return empty

    def _replace(self, buckets: Mapping[tuple[int, int], Bucket]) -> EventHistory:
        return EventHistory(
            base_seconds=self.base_seconds,
            resolution=self.resolution,
            max_buckets=self.max_buckets,
            buckets=buckets,
        )


def _compact_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)
