"""File formats: one small reader per format behind a registry keyed by the format's name.

Every reader answers three questions with Arrow objects, so type conversion happens in one
place (:mod:`modelmonitor.adapters.files.convert`):

* ``schema(path)``: the column names and Arrow types, from metadata or the first block;
* ``read(path, plan)``: the whole file as one table;
* ``batches(path, plan, chunk_rows)``: the file as a stream of tables, for inputs that
  must not be held in memory at once.

``plan`` fixes the columns to read and their Arrow types up front, so every chunk of a
stream has the same types as the first (a column whose first block holds only integers
still reads later decimals: numbers are always read as float64).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from tokenize import TokenError
from typing import Protocol

import numpy as np
import pyarrow as pa

from modelmonitor.adapters.files.convert import is_numeric_type
from modelmonitor.adapters.files.errors import DataError
from modelmonitor.adapters.files.limits import (
    ReadLimits,
    check_decoded_bytes,
    check_shape,
    compression_of,
    measure_text,
)
from modelmonitor.core.dataset import FeatureType

CSV_BLOCK_BYTES = 16 << 20
NPY_MAX_HEADER_BYTES = 64 << 10
PEEK_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class ReadPlan:
    """Which columns to read, in order, and the Arrow type each is read as (None: infer)."""

    columns: tuple[str, ...]
    arrow_types: Mapping[str, pa.DataType] = field(default_factory=dict)


class FormatReader(Protocol):
    name: str
    numbers_as_text: bool

    def schema(self, path: Path) -> pa.Schema: ...

    def read(self, path: Path, plan: ReadPlan) -> pa.Table: ...

    def batches(self, path: Path, plan: ReadPlan, chunk_rows: int) -> Iterator[pa.Table]: ...

    def check_size(self, path: Path, plan: ReadPlan, limits: ReadLimits) -> None:
        """Refuse a file that decodes to more than ``limits``, before decoding it."""
        ...


def open_input(path: Path) -> pa.NativeFile:
    """The file as a stream, inflated when its magic bytes say gzip or bz2.

    Compression is told by content, never by name, and the same way as
    :func:`~modelmonitor.adapters.files.limits.measure_text` measures it, so what is
    read is what was measured.
    """
    return pa.input_stream(str(path), compression=compression_of(path))


def _check_text(path: Path, plan: ReadPlan, limits: ReadLimits, *, header: bool) -> None:
    measured = measure_text(path, limits)
    rows = max(measured.lines - (1 if header else 0), 0)
    check_shape(path, rows, len(plan.columns), limits, estimated=True)


def read_types(
    schema: pa.Schema,
    columns: tuple[str, ...],
    declared: Mapping[str, FeatureType],
    *,
    numbers_as_text: bool,
) -> dict[str, pa.DataType]:
    """Arrow types that keep chunks consistent: every column's type is fixed up front.

    Numbers (and all-null columns) read as float64. A numeric column declared categorical
    reads as text where the format can (``numbers_as_text``: CSV keeps ``"007"``), else
    as float64 and is turned into labels afterwards.
    """
    types: dict[str, pa.DataType] = {}
    for name in columns:
        t = schema.field(name).type
        if declared.get(name) == "categorical" and numbers_as_text:
            types[name] = t if pa.types.is_boolean(t) else pa.string()
        elif is_numeric_type(t):
            types[name] = pa.float64()
        else:
            types[name] = t
    return types


class CsvReader:
    name = "csv"
    numbers_as_text = True

    def __init__(self, delimiter: str = ",") -> None:
        self.delimiter = delimiter

    def _parse(self) -> object:
        import pyarrow.csv as pcsv

        return pcsv.ParseOptions(delimiter=self.delimiter)

    def _convert(self, plan: ReadPlan) -> object:
        import pyarrow.csv as pcsv

        return pcsv.ConvertOptions(
            strings_can_be_null=True,
            include_columns=list(plan.columns),
            column_types=dict(plan.arrow_types),
        )

    def schema(self, path: Path) -> pa.Schema:
        import pyarrow.csv as pcsv

        opts = pcsv.ReadOptions(block_size=PEEK_BLOCK_BYTES)
        with (
            open_input(path) as src,
            pcsv.open_csv(
                src,
                read_options=opts,
                parse_options=self._parse(),
                convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
            ) as reader,
        ):
            return reader.schema

    def read(self, path: Path, plan: ReadPlan) -> pa.Table:
        import pyarrow.csv as pcsv

        with open_input(path) as src:
            return pcsv.read_csv(
                src,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=self._parse(),
                convert_options=self._convert(plan),
            )

    def check_size(self, path: Path, plan: ReadPlan, limits: ReadLimits) -> None:
        _check_text(path, plan, limits, header=True)

    def batches(self, path: Path, plan: ReadPlan, chunk_rows: int) -> Iterator[pa.Table]:
        import pyarrow.csv as pcsv

        with (
            open_input(path) as src,
            pcsv.open_csv(
                src,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=self._parse(),
                convert_options=self._convert(plan),
            ) as reader,
        ):
            yield from _rebatch((pa.Table.from_batches([b]) for b in reader), chunk_rows)


class JsonLinesReader:
    name = "jsonl"
    numbers_as_text = False

    def _parse(self, plan: ReadPlan | None, unexpected: str) -> object:
        import pyarrow.json as pj

        schema = None
        if plan is not None and plan.arrow_types:
            schema = pa.schema(list(plan.arrow_types.items()))
        return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected)

    def schema(self, path: Path) -> pa.Schema:
        import pyarrow.json as pj

        opts = pj.ReadOptions(block_size=PEEK_BLOCK_BYTES)
        with open_input(path) as src, pj.open_json(src, read_options=opts) as reader:
            return reader.schema

    def read(self, path: Path, plan: ReadPlan) -> pa.Table:
        import pyarrow.json as pj

        with open_input(path) as src:
            table = pj.read_json(
                src,
                read_options=pj.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=self._parse(plan, "infer"),
            )
        return table.select(list(plan.columns))

    def check_size(self, path: Path, plan: ReadPlan, limits: ReadLimits) -> None:
        _check_text(path, plan, limits, header=False)

    def batches(self, path: Path, plan: ReadPlan, chunk_rows: int) -> Iterator[pa.Table]:
        import pyarrow.json as pj

        with (
            open_input(path) as src,
            pj.open_json(
                src,
                read_options=pj.ReadOptions(block_size=CSV_BLOCK_BYTES),
                parse_options=self._parse(plan, "ignore"),
            ) as reader,
        ):
            tables = (pa.Table.from_batches([b]).select(list(plan.columns)) for b in reader)
            yield from _rebatch(tables, chunk_rows)


def _text_columns(plan: ReadPlan) -> list[str]:
    """Text columns, read dictionary-encoded as Parquet stores them.

    Decoded, a 100 KB value repeated in 20,000 rows of a 5 KB file is 2 GB of text;
    encoded it is one label and 20,000 codes, which is all a category needs.
    """
    return [
        name
        for name in plan.columns
        if (t := plan.arrow_types.get(name)) is not None
        and (pa.types.is_string(t) or pa.types.is_large_string(t))
    ]


class ParquetReader:
    name = "parquet"
    numbers_as_text = False

    def schema(self, path: Path) -> pa.Schema:
        import pyarrow.parquet as pq

        return pq.read_schema(path)

    def read(self, path: Path, plan: ReadPlan) -> pa.Table:
        import pyarrow.parquet as pq

        # without pre-buffering the raw column chunks the peak is ~40% lower, as fast
        return pq.read_table(
            path,
            columns=list(plan.columns),
            pre_buffer=False,
            read_dictionary=_text_columns(plan),
        )

    def batches(self, path: Path, plan: ReadPlan, chunk_rows: int) -> Iterator[pa.Table]:
        import pyarrow.parquet as pq

        # pre_buffer=False: otherwise the reader keeps every row group's raw bytes,
        # and memory grows with the file instead of staying at about one chunk
        with pq.ParquetFile(path, pre_buffer=False, read_dictionary=_text_columns(plan)) as pf:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=list(plan.columns)):
                yield pa.Table.from_batches([batch])

    def check_size(self, path: Path, plan: ReadPlan, limits: ReadLimits) -> None:
        """From the footer alone: rows, and about what the columns read decode to.

        Numbers are counted at the 8 bytes each becomes (a run-length-encoded
        "uncompressed" size of 40M equal values is a few bytes); text at its share of
        the row groups' uncompressed size. Only row-group totals are read: Arrow aborts
        the process (not raises) on some corrupt per-column metadata, which a reader
        of the same file reports as an error.
        """
        import pyarrow.parquet as pq

        meta = pq.read_metadata(path)
        rows, read = meta.num_rows, len(plan.columns)
        check_shape(path, rows, read, limits)
        total = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        share = total * read // max(meta.num_columns, 1)
        check_decoded_bytes(path, max(rows * read * 8, share), limits)


class NpyReader:
    """A 2-D numeric array (columns ``f0``..``fN``), a 1-D array (``f0``) or a structured
    array (its field names). Memory-mapped, so streaming reads one slice at a time."""

    name = "npy"
    numbers_as_text = False

    def _load(self, path: Path) -> np.ndarray:
        with path.open("rb") as f:
            head = f.read(12)
        if head[:6] != b"\x93NUMPY" or len(head) < 10:
            raise DataError(path, "cannot parse as npy: not an npy file")
        # numpy reads the header whole before judging it: a forged length of 600 MB
        # would be allocated, so the length is checked first (real headers are < 1 KiB)
        wide = head[6] >= 2
        (header_len,) = struct.unpack_from("<I" if wide else "<H", head, 8)
        if (wide and len(head) < 12) or header_len > NPY_MAX_HEADER_BYTES:
            raise DataError(path, "cannot parse as npy: header too large")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (SyntaxError, TokenError, EOFError, OSError) as exc:
            raise DataError(path, f"cannot parse as npy: {type(exc).__name__}") from None
        except ValueError as exc:
            text = str(exc)
            if "allow_pickle" in text or "Python objects" in text:
                raise DataError(path, "object arrays are not supported in npy files") from None
            raise DataError(path, f"cannot parse as npy: {text.splitlines()[0]}") from None
        if not isinstance(arr, np.ndarray):
            raise DataError(path, "cannot parse as npy: not a single array (npz?)")
        if arr.dtype.names is None and arr.ndim not in (1, 2):
            raise DataError(path, f"npy array must be 1-D or 2-D, got {arr.ndim}-D")
        if arr.dtype.names is not None and arr.ndim != 1:
            raise DataError(path, f"structured npy array must be 1-D, got {arr.ndim}-D")
        return arr

    @staticmethod
    def _names(arr: np.ndarray) -> list[str]:
        if arr.dtype.names is not None:
            return list(arr.dtype.names)
        width = 1 if arr.ndim == 1 else arr.shape[1]
        return [f"f{i}" for i in range(width)]

    def _table(self, path: Path, arr: np.ndarray, columns: tuple[str, ...]) -> pa.Table:
        names = self._names(arr)
        index = {n: i for i, n in enumerate(names)}
        out: dict[str, pa.Array] = {}
        for name in columns:
            if arr.dtype.names is not None:
                col = arr[name]
            elif arr.ndim == 1:
                col = arr
            else:
                col = arr[:, index[name]]
            out[name] = _numpy_to_arrow(path, name, np.ascontiguousarray(col))
        return pa.table(out)

    def schema(self, path: Path) -> pa.Schema:
        arr = self._load(path)
        head = self._table(path, arr[:1], tuple(self._names(arr)))
        return head.schema

    def read(self, path: Path, plan: ReadPlan) -> pa.Table:
        return self._table(path, self._load(path), plan.columns)

    def check_size(self, path: Path, plan: ReadPlan, limits: ReadLimits) -> None:
        """From the header alone (the array is memory-mapped, not read)."""
        arr = self._load(path)
        check_shape(path, int(arr.shape[0]), len(plan.columns), limits)
        check_decoded_bytes(path, int(arr.nbytes), limits)

    def batches(self, path: Path, plan: ReadPlan, chunk_rows: int) -> Iterator[pa.Table]:
        arr = self._load(path)
        for start in range(0, arr.shape[0], chunk_rows):
            yield self._table(path, arr[start : start + chunk_rows], plan.columns)


def _numpy_to_arrow(path: Path, name: str, col: np.ndarray) -> pa.Array:
    kind = col.dtype.kind
    if kind in "iuf":
        return pa.array(col, from_pandas=True)  # NaN -> null
    if kind == "b":
        return pa.array(col)
    if kind == "U":
        return pa.array(col, type=pa.string())
    if kind == "S":
        return pa.array([v.decode("utf-8", "replace") for v in col.tolist()], type=pa.string())
    raise DataError(path, f"column {name!r} has unsupported npy dtype {col.dtype}")


def _rebatch(tables: Iterator[pa.Table], chunk_rows: int) -> Iterator[pa.Table]:
    """Regroup a stream of tables into tables of ``chunk_rows`` rows (the last may be short)."""
    pending: list[pa.Table] = []
    rows = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        pending.append(table)
        rows += table.num_rows
        if rows < chunk_rows:
            continue
        merged = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
        start = 0
        while rows - start >= chunk_rows:
            yield merged.slice(start, chunk_rows)
            start += chunk_rows
        pending = [merged.slice(start)] if start < rows else []
        rows -= start
    if pending:
        yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]


READERS: dict[str, FormatReader] = {
    "csv": CsvReader(","),
    "tsv": CsvReader("\t"),
    "jsonl": JsonLinesReader(),
    "parquet": ParquetReader(),
    "npy": NpyReader(),
}

EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npy": "npy",
}
