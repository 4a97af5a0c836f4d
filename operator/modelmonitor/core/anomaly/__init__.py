"""Anomalies in time series: robust seasonal baselines (:mod:`.seasonal`)."""

from modelmonitor.core.anomaly.seasonal import (
    DAY,
    WEEK,
    Anomaly,
    SeasonalOptions,
    SeasonalResult,
    SeriesError,
    detect,
    parse_seasons,
)

__all__ = [
    "DAY",
    "WEEK",
    "Anomaly",
    "SeasonalOptions",
    "SeasonalResult",
    "SeriesError",
    "detect",
    "parse_seasons",
]
