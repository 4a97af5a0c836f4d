"""``modelmonitor anomalies`` end to end, as a user runs it: stable JSON, table, errors."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmonitor.core.anomaly import SeasonalOptions
from modelmonitor.edge.cli import build_parser

DAY = 86400.0
START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()  # a Monday, 00:00 UTC
SPIKE = START + 9 * DAY + 14 * 3600


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelmonitor", "anomalies", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(5)
    t = START + np.arange(0.0, 12 * DAY, 300.0)
    v = 100 + 40 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 3, t.size)
    hit = (t >= SPIKE) & (t < SPIKE + 3600)
    v[hit] += 60
    values: list[float | None] = [float(x) for x in v]
    values[10] = None  # a missing value
    csv = d / "latency.csv"
    csv.write_text(
        "time,p95\n"
        + "\n".join(f"{_iso(a)},{'' if b is None else b}" for a, b in zip(t, values, strict=True))
        + "\n"
    )
    epoch = d / "latency_epoch.jsonl"
    epoch.write_text(
        "\n".join(json.dumps({"ts": a, "p95": b}) for a, b in zip(t, values, strict=True)) + "\n"
    )
    parquet = d / "latency.parquet"
    pq.write_table(
        pa.table({"ts": pa.array((t * 1000).astype("int64"), pa.timestamp("ms", "UTC")), "p95": v}),
        parquet,
    )
    return {"csv": csv, "jsonl": epoch, "parquet": parquet, "t": t, "hit": hit}


def test_json_shape_is_stable_and_finds_the_spike(series: dict[str, Any]) -> None:
    r = _run(
        "--series",
        str(series["csv"]),
        "--time-column",
        "time",
        "--value-column",
        "p95",
        "--for",
        "10m",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"points", "anomalies", "warmup_points"} <= set(out)
    assert out["points"] == series["t"].size - 1
    assert out["warmup_points"] == int(2 * DAY / 300) - 1  # the missing one is not counted
    assert len(out["anomalies"]) == 1
    a = out["anomalies"][0]
    assert {"start", "end", "peak", "lower", "upper"} <= set(a)
    assert a["start"] == _iso(SPIKE)
    assert a["end"] == _iso(SPIKE + 3300)
    assert a["lower"] < a["upper"] < a["peak"]


@pytest.mark.parametrize(("key", "column"), [("jsonl", "ts"), ("parquet", "ts")])
def test_epoch_seconds_and_timestamp_columns_read_alike(
    series: dict[str, Any], key: str, column: str
) -> None:
    r = _run(
        "--series",
        str(series[key]),
        "--time-column",
        column,
        "--value-column",
        "p95",
        "--for",
        "10m",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    anomalies = json.loads(r.stdout)["anomalies"]
    assert [a["start"] for a in anomalies] == [_iso(SPIKE)]


def test_table_and_fail_on_anomaly(series: dict[str, Any]) -> None:
    r = _run(
        "--series",
        str(series["csv"]),
        "--time-column",
        "time",
        "--value-column",
        "p95",
        "--for",
        "10m",
        "--fail-on-anomaly",
    )
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "1 anomalies" in lines[0]
    assert lines[1].split()[:5] == ["START", "END", "PEAK", "LOWER", "UPPER"]
    assert lines[2].startswith(_iso(SPIKE))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--value-column", "nope"], "--value-column 'nope' is not a column"),
        (["--season", "weekly"], "not a duration"),
        (["--season", "1d", "--slot", "2d"], "slot"),
        (["--sensitivity", "0"], "sensitivity"),
        (["--for", "5 minutes"], "--for"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    series: dict[str, Any], args: list[str], message: str
) -> None:
    base = {"--series": str(series["csv"]), "--time-column": "time", "--value-column": "p95"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    r = _run(*[x for kv in base.items() for x in kv])
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_times_and_caps_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,v\n2026-01-01T00:00:00Z,1\nyesterday,2\n")
    r = _run("--series", str(bad), "--time-column", "time", "--value-column", "v")
    assert r.returncode == 2
    assert "not a time: 'yesterday'" in r.stderr
    big = tmp_path / "big.csv"
    big.write_text("time,v\n" + "".join(f"{i},{i}\n" for i in range(2000)))
    r = _run(
        "--series", str(big), "--time-column", "time", "--value-column", "v", "--max-rows", "1000"
    )
    assert r.returncode == 2
    assert "rows" in r.stderr


def test_cli_defaults_are_the_core_defaults() -> None:
    args = build_parser().parse_args(
        ["anomalies", "--series", "s.csv", "--time-column", "t", "--value-column", "v"]
    )
    d = SeasonalOptions()
    assert args.sensitivity == d.sensitivity
    assert args.min_cycles == d.min_cycles
    assert args.relative_floor == d.relative_floor
    assert args.absolute_floor == d.absolute_floor
    assert args.season == "1d"
    assert d.seasons == (DAY,)
