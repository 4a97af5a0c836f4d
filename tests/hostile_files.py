"""Small files that decode to huge tables: what the size caps are tested against."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MiB = 1 << 20


def gzip_bomb(path: Path, *, inflated_mib: int = 512) -> Path:
    """A CSV gzip of about 510 KB that inflates to ``inflated_mib`` MiB of ``0,0`` rows.

    Built from concatenated gzip members (what ``cat a.gz b.gz`` makes; every gzip
    reader follows them), so it is made in milliseconds.
    """
    member = gzip.compress(b"0,0\n" * (MiB // 4), compresslevel=9)
    with path.open("wb") as f:
        f.write(gzip.compress(b"a,b\n"))
        for _ in range(inflated_mib):
            f.write(member)
    return path


def parquet_claiming_rows(path: Path, *, rows: int = 40_000_000) -> Path:
    """A Parquet file of ``rows`` zeros in one column: about 180 KiB on disk."""
    chunk = 1_000_000
    schema = pa.schema([("x", pa.float64())])
    zeros = pa.table({"x": np.zeros(chunk)})
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for _ in range(rows // chunk):
            writer.write_table(zeros, row_group_size=chunk)
    return path
