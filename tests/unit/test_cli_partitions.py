"""``modelmonitor check --current DIR|GLOB``: a partitioned window, streamed.

Run as a user runs it (a subprocess); the memory test reads the child's own peak RSS
(VmHWM) and holds it flat from 10 to 100 partitions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmonitor.adapters.files import DataError
from modelmonitor.adapters.files.partitions import is_partitioned, resolve_partitions

_MEASURED = (
    "import sys\n"
    "from modelmonitor.edge.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print(f'maxrss_kib={hwm}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _peak_mib(proc: subprocess.CompletedProcess[str]) -> float:
    line = [x for x in proc.stderr.splitlines() if x.startswith("maxrss_kib=")][-1]
    return int(line.split("=", 1)[1]) / 1024


def _table(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "a": rng.normal(shift, 1.0, n),
            "b": rng.exponential(size=n),
            "c": rng.normal(size=n),
            "d": rng.uniform(size=n),
            "k": rng.choice(["x", "y", "z"], n),
        }
    )


def _write_parts(folder: Path, parts: int, rows: int, shift: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(parts):
        pq.write_table(_table(rows, 100 + i, shift), folder / f"part-{i:04d}.parquet")
    return folder


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("parts")
    pq.write_table(_table(800, 1), d / "ref.parquet")
    _write_parts(d / "same", 6, 2000)
    _write_parts(d / "shifted", 6, 2000, shift=1.0)
    # what Spark leaves beside its output: skipped
    (d / "same" / "_SUCCESS").write_text("")
    (d / "same" / ".part-0000.parquet.crc").write_text("x")
    return d


def _check_json(*args: str) -> dict[str, Any]:
    proc = _run("check", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_a_directory_and_a_glob_give_the_same_window(window: Path) -> None:
    ref = str(window / "ref.parquet")
    by_dir = _check_json("--reference", ref, "--current", str(window / "same"))
    by_glob = _check_json("--reference", ref, "--current", str(window / "same" / "*.parquet"))
    assert by_dir["current"]["partitions"] == by_glob["current"]["partitions"] == 6
    assert by_dir["current"]["rows"] == 12_000
    assert not by_dir["dataset"]["drifted"]
    assert by_glob["dataset"] == by_dir["dataset"]


def test_a_shifted_partitioned_window_drifts_as_the_same_rows_in_one_file(
    window: Path, tmp_path: Path
) -> None:
    ref = str(window / "ref.parquet")
    parts = _check_json("--reference", ref, "--current", str(window / "shifted"))
    whole = pa.concat_tables(
        [pq.read_table(p) for p in sorted((window / "shifted").glob("*.parquet"))]
    )
    pq.write_table(whole, tmp_path / "whole.parquet")
    rows = _check_json("--reference", ref, "--current", str(tmp_path / "whole.parquet"))
    assert parts["dataset"] == rows["dataset"]
    by_name = {f["name"]: f for f in rows["features"]}
    for f in parts["features"]:
        exact = by_name[f["name"]]
        assert (f["method"], f["drifted"]) == (exact["method"], exact["drifted"])
        if not f["approximate"]:
            assert f["statistic"] == pytest.approx(exact["statistic"], rel=1e-9)
    assert parts["features"][0]["drifted"]  # a: shifted by one standard deviation


def test_caps_apply_per_partition_not_to_the_whole_window(window: Path) -> None:
    ref = str(window / "ref.parquet")
    # 12,000 rows in all, 2,000 per file: a 5,000-row cap refuses no file
    ok = _run("check", "--reference", ref, "--current", str(window / "same"), "--max-rows", "5000")
    assert ok.returncode == 0, ok.stderr
    # the table marks statistics read from a sketch, and a note says what that means
    assert "~0." in ok.stdout
    assert "Note: statistics marked approximate (~ in the table)" in ok.stdout
    refused = _run(
        "check", "--reference", ref, "--current", str(window / "same"), "--max-rows", "1000"
    )
    assert refused.returncode == 2
    assert "part-0000.parquet" in refused.stderr
    assert "max rows" in refused.stderr


def test_partitioned_windows_refuse_what_needs_the_rows(window: Path) -> None:
    ref, cur = str(window / "ref.parquet"), str(window / "same")
    for extra, message in (
        (("--target", "k", "--prediction", "k"), "partitioned window is summarised"),
        (("--format", "html"), "use --format table or json"),
        (("--method", "anderson"), "needs every value of the current window"),
    ):
        proc = _run("check", "--reference", ref, "--current", cur, *extra)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_partition_without_a_feature_is_named(window: Path, tmp_path: Path) -> None:
    folder = _write_parts(tmp_path / "w", 2, 100)
    pq.write_table(_table(100, 9).drop(["b"]), folder / "part-9999.parquet")
    proc = _run("check", "--reference", str(window / "ref.parquet"), "--current", str(folder))
    assert proc.returncode == 2
    assert "part-9999.parquet" in proc.stderr
    assert "'b'" in proc.stderr


def test_resolving_partitions(tmp_path: Path) -> None:
    (tmp_path / "date=2026-12-01").mkdir()
    (tmp_path / "date=2026-12-02").mkdir()
    (tmp_path / "_tmp").mkdir()
    for p in ("date=2026-12-02/b.parquet", "date=2026-12-01/a.csv", "_tmp/c.parquet", "x.txt"):
        (tmp_path / p).write_text("a\n1\n")
    found = resolve_partitions(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "date=2026-12-01/a.csv",
        "date=2026-12-02/b.parquet",
    ]
    assert resolve_partitions(str(tmp_path / "**" / "*.parquet")) == [
        tmp_path / "date=2026-12-02" / "b.parquet"
    ]
    assert is_partitioned(tmp_path)
    assert is_partitioned("x/*.csv")
    assert not is_partitioned(tmp_path / "x.txt")
    with pytest.raises(DataError, match="names no data file"):
        resolve_partitions(str(tmp_path / "*.npy"))
    with pytest.raises(DataError, match="more than 1 data files"):
        resolve_partitions(tmp_path, max_partitions=1)


def test_peak_memory_stays_flat_from_10_to_100_partitions(tmp_path: Path) -> None:
    ref = tmp_path / "ref.parquet"
    pq.write_table(_table(1000, 1), ref)
    rows = 30_000
    peaks = {}
    for parts in (10, 100):
        folder = _write_parts(tmp_path / f"p{parts}", parts, rows)
        proc = _run("check", "--reference", str(ref), "--current", str(folder), "--format", "json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["current"]["rows"] == parts * rows
        peaks[parts] = _peak_mib(proc)
    # 100 partitions decode to 3,000,000 x 5 values (~120 MB as float64/int32), ten times
    # the 10-partition window; the peak may not follow it
    grown = peaks[100] - peaks[10]
    assert grown < 20, f"peak {peaks[10]:.0f} MiB at 10 partitions, {peaks[100]:.0f} at 100"
