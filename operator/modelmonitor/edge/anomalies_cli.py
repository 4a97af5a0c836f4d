"""``modelmonitor anomalies``: robust seasonal anomalies of one time series in a file.

The series is read through the bounded data readers (csv, tsv, jsonl, parquet; the
``--max-*`` caps apply); times are epoch seconds (a numerical column) or ISO-8601 text
(naive times are UTC). The detection is :func:`modelmonitor.core.anomaly.detect`, the
same the operator runs on Prometheus range queries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from modelmonitor.adapters.files import DataError, column_names, read_columns, read_dataset
from modelmonitor.core.anomaly import SeasonalOptions, SeasonalResult, SeriesError, detect
from modelmonitor.core.anomaly import parse_seasons as _parse_seasons
from modelmonitor.core.dataset import CategoricalColumn, Feature, FeatureType
from modelmonitor.core.spec.fields import parse_duration
from modelmonitor.edge.offline import EXIT_BAD_INPUT, EXIT_OK, UsageError, _run
from modelmonitor.edge.offline_inputs import limits_from

EXIT_ANOMALOUS = 1


def anomalies_command(args: argparse.Namespace) -> int:
    """``modelmonitor anomalies``; exit 0 (1 with --fail-on-anomaly and an anomaly), 2 on
    bad input."""
    return _run(lambda: _anomalies(args))


def _anomalies(args: argparse.Namespace) -> int:
    options = _options(args)
    path = Path(args.series)
    times, values = read_series(path, args.time_column, args.value_column, limits=limits_from(args))
    try:
        result = detect(times, values, options)
    except SeriesError as exc:
        raise UsageError(f"{path}: {exc}") from None
    out = result_json(result)
    if args.format == "json":
        sys.stdout.write(json.dumps(out, allow_nan=False) + "\n")
    else:
        sys.stdout.write(format_table(out))
    if args.fail_on_anomaly and result.anomalies:
        return EXIT_ANOMALOUS
    return EXIT_OK


def _options(args: argparse.Namespace) -> SeasonalOptions:
    try:
        return SeasonalOptions(
            seasons=_parse_seasons(args.season),
            slot_seconds=_duration(args.slot, "--slot"),
            sensitivity=args.sensitivity,
            min_cycles=args.min_cycles,
            max_cycles=max(SeasonalOptions.max_cycles, args.min_cycles),
            relative_floor=args.relative_floor,
            absolute_floor=args.absolute_floor,
            for_seconds=_duration(args.for_, "--for"),
        )
    except SeriesError as exc:
        raise UsageError(str(exc)) from None


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def read_series(
    path: Path, time_column: str, value_column: str, *, limits: Any
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """Times (epoch seconds) and values (NaN: missing) of two columns of a data file."""
    if time_column == value_column:
        raise UsageError("--time-column and --value-column must differ")
    names = column_names(path)
    for flag, column in (("--time-column", time_column), ("--value-column", value_column)):
        if column not in names:
            raise DataError(
                path,
                f"{flag} {column!r} is not a column of the file (columns: {', '.join(names[:20])})",
            )
    inferred = {f.name: f.type for f in read_columns(path)}
    time_type: FeatureType = (
        "numerical" if inferred.get(time_column) == "numerical" else "categorical"
    )
    data = read_dataset(
        path,
        features=[Feature(time_column, time_type), Feature(value_column, "numerical")],
        limits=limits,
    )
    raw_times = data[time_column]
    values = np.asarray(data[value_column], dtype=np.float64)
    if isinstance(raw_times, CategoricalColumn):
        parsed = np.asarray([_iso_seconds(path, c) for c in raw_times.categories], dtype=float)
        codes = np.asarray(raw_times.codes)
        times = np.where(codes >= 0, parsed[np.clip(codes, 0, None)] if parsed.size else 0, np.nan)
    else:
        times = np.asarray(raw_times, dtype=np.float64)
    missing = ~np.isfinite(times)
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 1
        raise DataError(path, f"{time_column!r} has no time in data row {row}")
    return times, values


def _iso_seconds(path: Path, text: str) -> float:
    try:
        value = float(text)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataError(
            path,
            f"not a time: {text[:60]!r} (ISO-8601 such as 2026-01-31T12:00:00Z, or epoch seconds)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def iso(seconds: float) -> str:
    """Epoch seconds as ISO-8601 UTC (``2026-01-31T12:00:00Z``)."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def result_json(result: SeasonalResult) -> dict[str, Any]:
    """The stable JSON shape: ``points``, ``anomalies`` (``start``, ``end``, ``peak``,
    ``lower``, ``upper``; ``open`` added), ``warmup_points``; and a few extras."""
    o = result.options
    return {
        "points": result.points,
        "anomalies": [
            {
                "start": iso(a.start),
                "end": iso(a.end),
                "peak": _number(a.peak),
                "lower": _number(a.lower),
                "upper": _number(a.upper),
                "open": a.open,
            }
            for a in result.anomalies
        ],
        "warmup_points": result.warmup_points,
        "missing_points": result.missing_points,
        "options": {
            "seasons": list(o.seasons),
            "slot_seconds": o.slot_seconds,
            "sensitivity": o.sensitivity,
            "for_seconds": o.for_seconds,
            "min_cycles": o.min_cycles,
            "relative_floor": o.relative_floor,
            "absolute_floor": o.absolute_floor,
        },
    }


def format_table(out: dict[str, Any]) -> str:
    lines = [
        f"{out['points']} points, {out['warmup_points']} in warm-up, "
        f"{out['missing_points']} missing; {len(out['anomalies'])} anomalies",
    ]
    if out["anomalies"]:
        header = ("START", "END", "PEAK", "LOWER", "UPPER", "")
        rows = [
            (
                a["start"],
                a["end"],
                _fmt(a["peak"]),
                _fmt(a["lower"]),
                _fmt(a["upper"]),
                "open" if a["open"] else "",
            )
            for a in out["anomalies"]
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        for r in (header, *rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


__all__ = ["EXIT_ANOMALOUS", "EXIT_BAD_INPUT", "anomalies_command", "read_series", "result_json"]
