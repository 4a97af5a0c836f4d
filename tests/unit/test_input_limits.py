"""Size caps on what a data file decodes to, checked before decoding (adapters/files/limits).

Each test attacks a cap with a small file that decodes to a huge table and checks that
it is refused early, with a clear message, without the memory decoding it would take.
"""

from __future__ import annotations

import bz2
import gzip
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from modelmonitor.adapters.files import DataError, ReadLimits, TooLargeError, read_dataset
from modelmonitor.adapters.files.readers import iter_datasets
from tests.hostile_files import MiB, gzip_bomb, parquet_claiming_rows


def _peak(action: Callable[[], Any]) -> tuple[int, Any]:
    """Python's peak allocation (tracemalloc) and Arrow's pool high-water mark, in bytes."""
    pool = pa.default_memory_pool()
    arrow_before = pool.bytes_allocated()
    tracemalloc.start()
    try:
        result: Any = None
        try:
            action()
        except Exception as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(peak, pool.bytes_allocated() - arrow_before), result


def test_a_gzip_bomb_is_refused_while_inflating_with_little_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.csv.gz")
    assert bomb.stat().st_size < 600_000  # ~530 KB inflating to 512 MiB
    peak, error = _peak(lambda: read_dataset(bomb))
    assert isinstance(error, TooLargeError)
    assert error.cap == "max_rows"
    assert "more than 10,000,000 rows" in str(error)
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_the_decoded_bytes_cap_stops_inflating_early(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.csv.gz", inflated_mib=64)
    limits = ReadLimits(max_decoded_bytes=8 * MiB)
    peak, error = _peak(lambda: read_dataset(bomb, limits=limits))
    assert isinstance(error, TooLargeError)
    assert error.cap == "max_decoded_bytes"
    assert "decompresses more than 8,388,608 bytes" in str(error)
    assert peak < 8 * MiB


def test_gzip_is_told_by_content_not_name(tmp_path: Path) -> None:
    # a gzip named .csv is inflated (and capped) like one named .csv.gz
    plain = b"a,b\n1,x\n2,y\n3,x\n"
    disguised = tmp_path / "data.csv"
    disguised.write_bytes(gzip.compress(plain))
    ds = read_dataset(disguised)
    assert ds.n_rows == 3
    with pytest.raises(TooLargeError, match="more than 2 rows"):
        read_dataset(disguised, limits=ReadLimits(max_rows=2))


def test_bz2_and_concatenated_gzip_members_are_measured_whole(tmp_path: Path) -> None:
    rows = b"1,x\n" * 1000
    (tmp_path / "a.csv.bz2").write_bytes(bz2.compress(b"a,b\n" + rows))
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"a,b\n") + gzip.compress(rows) * 3)
    assert read_dataset(tmp_path / "a.csv.bz2").n_rows == 1000
    assert read_dataset(tmp_path / "b.csv.gz").n_rows == 3000
    for name in ("a.csv.bz2", "b.csv.gz"):
        with pytest.raises(TooLargeError, match="rows"):
            read_dataset(tmp_path / name, limits=ReadLimits(max_rows=999))


def test_a_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"a\n" + b"1\n" * 10_000)[:-40])
    with pytest.raises(DataError) as info:
        read_dataset(path)
    assert "cut.csv.gz" in str(info.value)


def test_a_parquet_claiming_40m_rows_is_refused_from_its_footer(tmp_path: Path) -> None:
    path = parquet_claiming_rows(tmp_path / "rows.parquet")
    assert path.stat().st_size < 200 * 1024
    peak, error = _peak(lambda: read_dataset(path))
    assert isinstance(error, TooLargeError)
    assert "decodes to 40,000,000 rows, more than 10,000,000 (max rows)" in str(error)
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"
    # streaming (baseline) is refused the same way, before the first chunk
    with pytest.raises(TooLargeError):
        next(iter(iter_datasets(path)))


def test_rows_times_columns_counts_only_the_columns_read(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    pcsv.write_csv(pa.table({f"c{i}": np.arange(100.0) for i in range(10)}), path)
    limits = ReadLimits(max_cells=500)
    with pytest.raises(TooLargeError, match=r"100 rows x 10 columns = 1,000 values"):
        read_dataset(path, limits=limits)
    from modelmonitor.core.dataset import Feature

    few = [Feature("c0", "numerical"), Feature("c1", "numerical")]
    assert read_dataset(path, features=few, limits=limits).n_rows == 100


def test_parquet_uncompressed_size_is_capped(tmp_path: Path) -> None:
    path = parquet_claiming_rows(tmp_path / "p.parquet", rows=2_000_000)
    with pytest.raises(TooLargeError, match="max decoded bytes"):
        read_dataset(path, limits=ReadLimits(max_decoded_bytes=1 * MiB))


def test_npy_is_judged_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(3_000_000, 4))
    del arr  # a sparse 96 MB file: nothing is read to refuse it
    peak, error = _peak(lambda: read_dataset(path, limits=ReadLimits(max_cells=1_000_000)))
    assert isinstance(error, TooLargeError)
    assert "3,000,000 rows x 4 columns" in str(error)
    assert peak < 4 * MiB


def test_text_that_is_not_utf8_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"a,b\n1,x\xff\n2,y\n")
    (tmp_path / "b.jsonl").write_bytes(b'{"a": 1, "b": "x\xff"}\n')
    for name in ("a.csv", "b.jsonl"):
        with pytest.raises(DataError, match="not UTF-8"):
            read_dataset(tmp_path / name)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows must be >= 1"):
        ReadLimits(max_rows=0)


def test_a_forged_npy_header_length_is_refused_before_numpy_reads_it(tmp_path: Path) -> None:
    # version 2 headers have a 4-byte length: numpy would allocate it (600+ MiB) first
    path = tmp_path / "forged.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00v\x00{'descr': '<f8', 'shape': (3,), }\n" + bytes(24))
    peak, error = _peak(lambda: read_dataset(path))
    assert isinstance(error, DataError)
    assert "header too large" in str(error)
    assert peak < 1 * MiB
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'shape': \x003, 2), }" + bytes(90))
    with pytest.raises(DataError, match="cannot parse as npy"):
        read_dataset(broken)


#: A Parquet file with one byte changed in its footer's level histograms (zlib, base64).
#: Arrow's per-column metadata accessor aborts the process on it; its reader raises.
CORRUPT_FOOTER = (
    "eNqVUkFLAkEUfrPqZOJBpVlmYA8edDHYzAIlIqi3tUlkpV6io4lYQWlaadCxX9FP6xDRoXM/oTezmkVd"
    "+th97+O9t9/3hp06NldEVJSEVxNcQAZAAsRY9GMzNlcA2AKD+JYAsSCkRzMperkj49POlH1s2lD4o5pO"
    "U0rkLIqcWZEckB1J1Shpu0SOUWeswz2ZZIQ9M6lAgd1LNjYS89lQgkUsEVUbZZB82D7rXLZEFEQi35es"
    "BSKZtyQ7zUPNoVmbK0d5LjgiocrAU4pGhGVz+4XR49bd+P+OoTy9s7CAQorSxiJXLnBqa4/k1OPUeDzY"
    "j8x9stx39v0YvyRox6mI/UzfuXH7zQLlyCQ2m0fH6+ER5Stb1qigRgND7COO0O/iLmIXt7um5vuIB5ps"
    "I+6ZwixjSENm4uEFia4RCXYDUzQiAX5BU/98Mh9MrBvoN7R+FbGNO7NmiMaBGar+WHVCq4G2oCVOJlao"
    "VzcAme23Bte3nZuldr+/1BoMeqPsXWcwPO9dZVcrxVJxRXn0V/WPBboJdbq4n1yOdhI="
)


def test_a_corrupt_parquet_footer_is_an_error_not_an_abort(tmp_path: Path) -> None:
    import base64
    import subprocess
    import sys
    import zlib

    path = tmp_path / "corrupt.parquet"
    path.write_bytes(zlib.decompress(base64.b64decode(CORRUPT_FOOTER)))
    # in a child process: an abort there fails this test instead of ending the suite
    code = (
        "import sys\n"
        "from modelmonitor.adapters.files import DataError, read_dataset\n"
        "try:\n"
        "    read_dataset(sys.argv[1])\n"
        "except DataError as exc:\n"
        "    print('refused:', exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "refused:" in proc.stdout


def _repeated_text_parquet(path: Path, value: str, rows: int) -> Path:
    """A Parquet file of ``value`` in every row, written without Arrow's schema (read
    back as plain strings): kilobytes on disk, ``len(value) * rows`` bytes decoded."""
    import pyarrow.parquet as pq

    codes = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([value]))
    pq.write_table(pa.table({"s": codes, "v": np.ones(rows)}), path, store_schema=False)
    return path


def test_repeated_long_text_in_parquet_is_never_expanded(tmp_path: Path) -> None:
    # 20,000 rows of one 100 KB value: 2 GB as text (4.4 GB peak), one label encoded
    path = _repeated_text_parquet(tmp_path / "t.parquet", "x" * 100_000, 20_000)
    assert path.stat().st_size < 20_000
    peak, result = _peak(lambda: read_dataset(path))
    assert not isinstance(result, Exception), result
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"
    ds = read_dataset(path)
    assert ds["s"].categories == ("x" * 100_000,)
    assert ds.n_rows == 20_000


def test_dictionary_text_declared_numerical_is_parsed_per_label(tmp_path: Path) -> None:
    from modelmonitor.core.dataset import Feature

    path = _repeated_text_parquet(tmp_path / "n.parquet", "2.5", 1000)
    ds = read_dataset(path, features=[Feature("s", "numerical")])
    assert np.asarray(ds["s"]).tolist() == [2.5] * 1000
    text = _repeated_text_parquet(tmp_path / "t.parquet", "high", 10)
    with pytest.raises(DataError, match="declared numerical but holds text"):
        read_dataset(text, features=[Feature("s", "numerical")])
    lenient = read_dataset(text, features=[Feature("s", "numerical")], lenient=True)
    assert lenient["s"].categories == ("high",)
