"""Robust seasonal baselines for a time series, and the anomalies that leave them.

The baseline of a point is the median and the MAD of the values in the same *slot* of
earlier *cycles* of a season: with a daily season and hourly slots, the value at 14:20
on Tuesday is judged against every value between 14:00 and 15:00 of the days before,
never against itself or anything later (so a long incident does not hide itself, and the
operator can judge new points against a baseline it already computed). Seasons are
tried longest first: with ``1d,7d`` a point uses the same hour of the same weekday
(hour-of-week) once each of its slots holds ``min_cycles`` earlier weeks, and the same
hour of earlier days until then. A point none of the seasons is ready for is
*warm-up*: it gets no band and is never an anomaly; a missing value (NaN) neither.

The band is ``median +- k * 1.4826 * MAD`` (1.4826 makes the MAD a standard deviation
for normal noise), widened to at least ``relative_floor * |median|`` and
``absolute_floor`` on each side, so a flat series (MAD 0) does not flag its own noise.

Anomalies follow a Prometheus alert's ``for``: a point outside the band starts a run;
the run is an anomaly once it has lasted ``for_seconds`` without an inside point, a
missing stretch longer than ``max_gap_seconds`` or a warm-up point in between.
Hysteresis as for SLOs: an open anomaly ends only after its values have been back
inside the band for ``for_seconds`` too (at least one point), so a value that flaps
around the band's edge is one anomaly, not many.

All of it is vectorised over points (sorting in a padded grid of slot x cycle x values);
only the runs of outside points are walked in Python, and there are few of them.
Times are seconds since the epoch, in UTC: slots are UTC hours and days (no DST).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

MAD_TO_SIGMA = 1.4826
DAY = 86400.0
WEEK = 7 * DAY
#: A grid larger than this (slots x cycles x values per cell x history) is refused: the
#: series is too irregular to be binned (resample it) or too long (shorten it).
MAX_GRID_CELLS = 20_000_000
WARMUP = -1  # season_index of a point without a baseline
#: Times beyond this many seconds from the epoch (the year 5138) are refused: no series
#: holds them, and they would overflow the cycle arithmetic.
MAX_ABS_TIME = 1e11


class SeriesError(ValueError):
    """The series or the options cannot be used (the message says which and why)."""


@dataclass(frozen=True, kw_only=True)
class SeasonalOptions:
    """How a baseline is built and when a departure from it is an anomaly.

    ``seasons``: cycle lengths in seconds (``86400`` = hour-of-day, ``604800`` =
    hour-of-week when ``slot_seconds`` is an hour); ``slot_seconds``: the width of a
    slot inside a cycle; ``sensitivity``: ``k``, the band's half-width in robust
    standard deviations; ``min_cycles``: earlier cycles a slot needs (warm-up);
    ``min_slot_points``: values those cycles must hold together; ``max_cycles``: the
    most recent cycles a baseline uses; the floors: the least half-width of the band;
    ``for_seconds``: how long a departure (and a recovery) must last;
    ``max_gap_seconds``: the longest stretch without data inside one run (None: three
    times the series' typical step).
    """

    seasons: tuple[float, ...] = (DAY,)
    slot_seconds: float = 3600.0
    sensitivity: float = 3.0
    min_cycles: int = 2
    min_slot_points: int = 3
    max_cycles: int = 14
    relative_floor: float = 0.05
    absolute_floor: float = 0.0
    for_seconds: float = 0.0
    max_gap_seconds: float | None = None

    def __post_init__(self) -> None:
        _check_options(self)


def _check_options(o: SeasonalOptions) -> None:
    if not o.seasons:
        raise SeriesError("at least one season is required")
    for s in o.seasons:
        if not (math.isfinite(s) and s > 0):
            raise SeriesError(f"a season must be a positive duration, got {s!r}")
        if not (math.isfinite(o.slot_seconds) and 0 < o.slot_seconds <= s):
            raise SeriesError(
                f"the slot ({o.slot_seconds:g}s) must be positive and at most the season ({s:g}s)"
            )
        if s / o.slot_seconds > 100_000:
            raise SeriesError(f"a season of {s:g}s has too many {o.slot_seconds:g}s slots")
    if not (math.isfinite(o.sensitivity) and o.sensitivity > 0):
        raise SeriesError(f"sensitivity must be > 0, got {o.sensitivity!r}")
    if o.min_cycles < 1 or o.max_cycles < o.min_cycles:
        raise SeriesError("need 1 <= min_cycles <= max_cycles")
    if o.min_slot_points < 1:
        raise SeriesError("min_slot_points must be >= 1")
    for name in ("relative_floor", "absolute_floor", "for_seconds"):
        value = getattr(o, name)
        if not (math.isfinite(value) and value >= 0):
            raise SeriesError(f"{name} must be >= 0, got {value!r}")
    if o.max_gap_seconds is not None and not (
        math.isfinite(o.max_gap_seconds) and o.max_gap_seconds > 0
    ):
        raise SeriesError("max_gap_seconds must be > 0")


@dataclass(frozen=True)
class Anomaly:
    """One sustained departure: its first and last outside point (epoch seconds), the
    value furthest outside (``peak``) and the band at that point; ``open`` when the
    series ends before the values have recovered."""

    start: float
    end: float
    peak: float
    lower: float
    upper: float
    open: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "peak": self.peak,
            "lower": self.lower,
            "upper": self.upper,
            "open": self.open,
        }


@dataclass(frozen=True)
class SeasonalResult:
    """Per point (sorted by time): the baseline and band (NaN in warm-up), which season
    judged it (``WARMUP``: none), whether it is outside; and the anomalies."""

    times: FloatArray
    values: FloatArray
    median: FloatArray
    lower: FloatArray
    upper: FloatArray
    season_index: IntArray
    outside: BoolArray
    anomalies: tuple[Anomaly, ...]
    options: SeasonalOptions

    @property
    def points(self) -> int:
        """Points with a value (missing ones excluded)."""
        return int(np.isfinite(self.values).sum())

    @property
    def warmup_points(self) -> int:
        """Points with a value but no baseline yet."""
        return int((np.isfinite(self.values) & (self.season_index == WARMUP)).sum())

    @property
    def missing_points(self) -> int:
        return int((~np.isfinite(self.values)).sum())

    def score(self) -> FloatArray:
        """``(value - median) / half-width``: beyond +-1 is outside the band; NaN in
        warm-up and where the value is missing."""
        half = (self.upper - self.lower) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray((self.values - self.median) / half, dtype=np.float64)

    def last_judged(self) -> int | None:
        """Index of the last point with a value and a band (None: none yet)."""
        judged = np.flatnonzero(np.isfinite(self.values) & (self.season_index != WARMUP))
        return int(judged[-1]) if judged.size else None

    def pending_seconds(self) -> float:
        """How long the series has been outside its band at its last judged point
        without (yet) being an open anomaly; 0 when it is inside."""
        i = self.last_judged()
        if i is None or not self.outside[i]:
            return 0.0
        start = _run_start(
            self.outside, self.times, self.values, i, _max_gap(self.times, self.options)
        )
        return float(self.times[i] - self.times[start])


def detect(
    times: Sequence[float] | FloatArray,
    values: Sequence[float] | FloatArray,
    options: SeasonalOptions | None = None,
) -> SeasonalResult:
    """Baselines, bands and anomalies of the series ``(times, values)``.

    ``times`` are epoch seconds (any order; sorted here, stable), ``values`` floats
    with NaN for a missing value. Raises :class:`SeriesError` for unusable input (lengths
    differ, a time not finite, a grid too large to build).
    """
    o = options or SeasonalOptions()
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or v.ndim != 1 or t.shape != v.shape:
        raise SeriesError(f"times and values must be 1-d and of one length ({t.shape}, {v.shape})")
    if not np.isfinite(t).all():
        raise SeriesError("every time must be a finite number of seconds")
    if t.size and float(np.abs(t).max()) > MAX_ABS_TIME:
        raise SeriesError(
            "a time is out of range (more than 1e11 seconds from 1970): are these "
            "milliseconds or nanoseconds instead of seconds?"
        )
    v = np.where(np.isinf(v), np.nan, v)  # +Inf (a quantile past the last bucket): no value
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    n = t.size
    median = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    season_index = np.full(n, WARMUP, dtype=np.int64)
    if n:
        # longest season first: it is the most specific baseline once it is ready
        for idx in sorted(range(len(o.seasons)), key=lambda i: -o.seasons[i]):
            med_s, mad_s, ready = _season_baseline(t, v, o.seasons[idx], o)
            take = ready & (season_index == WARMUP)
            median[take], mad[take] = med_s[take], mad_s[take]
            season_index[take] = idx
    half = np.maximum.reduce(
        [
            o.sensitivity * MAD_TO_SIGMA * np.nan_to_num(mad),
            o.relative_floor * np.abs(np.nan_to_num(median)),
            np.full(n, o.absolute_floor),
            1e-12 * np.maximum(1.0, np.abs(np.nan_to_num(median))),  # float noise only
        ]
    )
    judged = season_index != WARMUP
    lower = np.where(judged, median - half, np.nan)
    upper = np.where(judged, median + half, np.nan)
    with np.errstate(invalid="ignore"):
        outside = judged & np.isfinite(v) & ((v > upper) | (v < lower))
    anomalies = _anomalies(t, v, median, lower, upper, outside, judged, o)
    return SeasonalResult(t, v, median, lower, upper, season_index, outside, anomalies, o)


def _season_baseline(
    t: FloatArray, v: FloatArray, season: float, o: SeasonalOptions
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per point: median and MAD of its slot in the ``max_cycles`` cycles before its
    own, and whether those hold ``min_cycles`` cycles and ``min_slot_points`` values."""
    n_slots = max(1, math.ceil(season / o.slot_seconds - 1e-9))
    cycle_abs = np.floor(t / season).astype(np.int64)
    cycle = cycle_abs - cycle_abs.min()
    n_cycles = int(cycle.max()) + 1
    slot = np.floor((t - cycle_abs * season) / o.slot_seconds).astype(np.int64)
    slot = np.clip(slot, 0, n_slots - 1)
    cell = slot * n_cycles + cycle
    valid = np.isfinite(v)
    n_cells = n_slots * n_cycles
    if n_cells > MAX_GRID_CELLS:
        raise SeriesError(
            f"the series spans {n_cycles:,} cycles of {season:g}s: too long to bin "
            "(shorten it, or use a longer season)"
        )
    counts = np.bincount(cell[valid], minlength=n_cells)
    width = int(counts.max()) if counts.size else 0
    history = min(o.max_cycles, n_cycles)
    median = np.full(t.size, np.nan)
    mad = np.full(t.size, np.nan)
    if width == 0 or history == 0:
        return median, mad, np.zeros(t.size, dtype=bool)
    if n_cells * width * (history + 1) > MAX_GRID_CELLS:
        raise SeriesError(
            f"the series is too irregular or too long to bin for a {season:g}s season "
            f"({n_cells} slots x cycles, up to {width} values in one): resample it to a "
            "regular step or shorten it"
        )
    # grid[slot, cycle, k]: the k-th value of that slot in that cycle (NaN padded)
    vc = cell[valid]
    order = np.argsort(vc, kind="stable")
    sorted_cells = vc[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(sorted_cells.size) - starts
    grid = np.full((n_slots, n_cycles, width), np.nan)
    grid.reshape(n_cells, width)[sorted_cells, rank] = v[valid][order]
    # each cycle's window: the `history` cycles before it (NaN before the first)
    padded = np.concatenate([np.full((n_slots, history, width), np.nan), grid], axis=1)
    windows = sliding_window_view(padded, history, axis=1)[:, :n_cycles]
    pooled = np.ascontiguousarray(np.moveaxis(windows, 3, 2)).reshape(
        n_slots, n_cycles, history * width
    )
    med_cell, count_cell = _nan_median_last(pooled)
    mad_cell, _ = _nan_median_last(np.abs(pooled - med_cell[..., None]))
    cycles_present = np.isfinite(windows).any(axis=2).sum(axis=2)  # [slot, cycle]
    ready_cell = (cycles_present >= o.min_cycles) & (count_cell >= o.min_slot_points)
    median = med_cell[slot, cycle]
    mad = mad_cell[slot, cycle]
    return median, mad, ready_cell[slot, cycle]


def _nan_median_last(a: FloatArray) -> tuple[FloatArray, IntArray]:
    """Median over the last axis ignoring NaN (NaN where all are NaN), and the counts."""
    s = np.sort(a, axis=-1)  # NaN sorts last
    k = np.isfinite(s).sum(axis=-1)
    lo = np.clip((k - 1) // 2, 0, None)[..., None]
    hi = np.clip(k // 2, 0, None)[..., None]
    with np.errstate(invalid="ignore"):
        med = 0.5 * (
            np.take_along_axis(s, lo, axis=-1)[..., 0] + np.take_along_axis(s, hi, axis=-1)[..., 0]
        )
    return np.where(k > 0, med, np.nan), k.astype(np.int64)


def _max_gap(t: FloatArray, o: SeasonalOptions) -> float:
    if o.max_gap_seconds is not None:
        return o.max_gap_seconds
    if t.size < 2:
        return math.inf
    steps = np.diff(t)
    steps = steps[steps > 0]
    return 3.0 * float(np.median(steps)) if steps.size else math.inf


def _run_start(outside: BoolArray, t: FloatArray, v: FloatArray, i: int, max_gap: float) -> int:
    """The first index of the run of outside points that ends at ``i`` (see _runs)."""
    firsts, _lasts = _runs(outside[: i + 1], t[: i + 1], v[: i + 1], max_gap)
    return int(firsts[-1])


def _runs(
    outside: BoolArray, t: FloatArray, v: FloatArray, max_gap: float
) -> tuple[IntArray, IntArray]:
    """First and last index of each run of outside points. A point with a value that
    is not outside (inside the band, or warm-up) ends a run, and so does a stretch
    without data longer than ``max_gap``; a shorter stretch of missing values does not."""
    idx = np.flatnonzero(outside)
    if idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    blocking = np.cumsum(np.isfinite(v) & ~outside)
    breaks = (np.diff(blocking[idx]) > 0) | (np.diff(t[idx]) > max_gap)
    first = np.concatenate([[0], np.flatnonzero(breaks) + 1])
    last = np.concatenate([np.flatnonzero(breaks), [idx.size - 1]])
    return idx[first].astype(np.int64), idx[last].astype(np.int64)


def _anomalies(
    t: FloatArray,
    v: FloatArray,
    median: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    outside: BoolArray,
    judged: BoolArray,
    o: SeasonalOptions,
) -> tuple[Anomaly, ...]:
    firsts, lasts = _runs(outside, t, v, _max_gap(t, o))
    if firsts.size == 0:
        return ()
    inside = judged & np.isfinite(v) & ~outside
    inside_idx = np.flatnonzero(inside)
    half = (upper - lower) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(outside, np.abs(v - median) / half, -np.inf)
    found: list[Anomaly] = []
    open_from: int | None = None  # index of the first point of the anomaly being built
    open_to = -1

    def close(is_open: bool) -> None:
        assert open_from is not None
        span = slice(open_from, open_to + 1)
        peak = open_from + int(np.argmax(excess[span]))
        found.append(
            Anomaly(
                float(t[open_from]),
                float(t[open_to]),
                float(v[peak]),
                float(lower[peak]),
                float(upper[peak]),
                is_open,
            )
        )

    for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
        if open_from is not None:
            if _recovered(t, inside_idx, open_to, first, o.for_seconds):
                close(False)
                open_from = None
            else:
                open_to = last  # still the same incident (hysteresis)
                continue
        if t[last] - t[first] >= o.for_seconds:
            open_from, open_to = first, last
    if open_from is not None:
        recovered = _recovered(t, inside_idx, open_to, t.size, o.for_seconds)
        close(not recovered)
    return tuple(found)


def _recovered(
    t: FloatArray, inside_idx: IntArray, after: int, before: int, for_seconds: float
) -> bool:
    """Whether the inside points strictly between ``after`` and ``before`` span at least
    ``for_seconds`` (and there is at least one)."""
    lo = int(np.searchsorted(inside_idx, after, side="right"))
    hi = int(np.searchsorted(inside_idx, before, side="left"))
    if hi <= lo:
        return False
    return bool(t[inside_idx[hi - 1]] - t[inside_idx[lo]] >= for_seconds)


def parse_seasons(text: str) -> tuple[float, ...]:
    """``1d,7d`` -> ``(86400.0, 604800.0)``; each part a duration (s, m, h, d, w)."""
    from modelmonitor.core.spec.fields import parse_duration

    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise SeriesError(f"no season in {text!r} (example: 1d,7d)")
    try:
        seasons = tuple(parse_duration(p) for p in parts)
    except ValueError as exc:
        raise SeriesError(str(exc)) from None
    if len(set(seasons)) != len(seasons):
        raise SeriesError(f"a season is named twice in {text!r}")
    return seasons
