"""The points of ``spec.anomalies`` series between runs, so a run fetches only the tail.

A series' baseline needs its whole lookback (14 days by default); asking Prometheus for
all of it every minute would cost it thousands of points per series per run. The cache
keeps, per monitor and series, the points on the step's grid and the fingerprint they
were asked with (server, query, step): a run asks only from the last cached point
(minus a few steps, which Prometheus may still revise as late samples arrive) to now,
and the baseline is recomputed from the cached points (vectorised: milliseconds).

Bounded: at most ``max_series`` series (least recently used dropped first), each at most
``MAX_ANOMALY_POINTS`` points (the spec's cap), so the cache holds at most
``max_series x 20,160 x 16`` bytes (~320 MiB for the default 1,000 series at the cap;
the default 14d at 5m is 4,032 points, 64 KiB a series). It lives in the operator's
memory: a restart, or a job-mode run (a new pod each time), fetches the whole lookback
once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Steps asked again at each run: the newest points of a rate change as samples arrive.
OVERLAP_STEPS = 3
DEFAULT_MAX_SERIES = 1000


@dataclass(frozen=True)
class CachedSeries:
    fingerprint: tuple[str, ...]
    times: FloatArray
    values: FloatArray
    asked_until: float  # the end of the last range asked (even when it had no point)


class SeriesCache:
    """Points per (namespace, monitor, series), bounded, least recently used first out."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        if max_series < 1:
            raise ValueError("max_series must be >= 1")
        self.max_series = max_series
        self._entries: OrderedDict[tuple[str, str, str], CachedSeries] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str, str], fingerprint: tuple[str, ...]) -> CachedSeries | None:
        """The cached points, or None when absent or asked differently (then dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, str, str], entry: CachedSeries) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_series:
            self._entries.popitem(last=False)

    def forget(self, namespace: str, monitor: str) -> None:
        """Drop every series of a monitor (deleted, or its spec changed)."""
        for key in [k for k in self._entries if k[:2] == (namespace, monitor)]:
            del self._entries[key]


def merge(
    cached: CachedSeries | None,
    times: FloatArray,
    values: FloatArray,
    *,
    asked_from: float,
    keep_from: float,
) -> tuple[FloatArray, FloatArray]:
    """The cached points before ``asked_from``, then the new ones; none before
    ``keep_from`` (the lookback's start). Points are on one step grid, sorted."""
    if cached is None:
        old_t = np.zeros(0)
        old_v = np.zeros(0)
    else:
        keep = (cached.times < asked_from) & (cached.times >= keep_from)
        old_t, old_v = cached.times[keep], cached.values[keep]
    new = times >= keep_from
    t = np.concatenate([old_t, times[new]])
    v = np.concatenate([old_v, values[new]])
    order = np.argsort(t, kind="stable")
    return t[order], v[order]
