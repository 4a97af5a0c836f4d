"""Read csv, tsv, jsonl, parquet and npy files into :class:`~modelmonitor.core.dataset.Dataset`.

``read_dataset`` loads a whole file; ``iter_datasets`` streams it in chunks of about
``chunk_rows`` rows with the same columns and types in every chunk, so a large reference
can feed a mergeable profile builder without being held in memory. Both raise
:class:`~modelmonitor.adapters.files.errors.DataError` with a one-line message for a missing file,
an unknown extension, an unparsable or empty file, and a features-file column that the
data does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from modelmonitor.adapters.files.convert import columns_to_dataset, inferred_type, table_to_dataset
from modelmonitor.adapters.files.errors import DataError
from modelmonitor.adapters.files.features import check_present
from modelmonitor.adapters.files.formats import (
    EXTENSIONS,
    READERS,
    FormatReader,
    ReadPlan,
    read_types,
)
from modelmonitor.adapters.files.limits import ReadLimits
from modelmonitor.core.dataset import Dataset, Feature, FeatureType

T = TypeVar("T")

DEFAULT_CHUNK_ROWS = 1 << 17
FORMAT_NAMES = ("csv", "tsv", "jsonl", "parquet", "npy")
_TEXT_FORMATS = ("csv", "tsv", "jsonl")
_LABELS = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON lines", "parquet": "Parquet", "npy": "npy"}


def detect_format(path: str | Path) -> str:
    """The format name for ``path`` from its extension (``.csv.gz`` counts as csv)."""
    name = Path(path).name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return EXTENSIONS[ext]
    suffix = Path(path).suffix or "(none)"
    raise DataError(
        path,
        f"unknown file extension {suffix} (expected .csv, .tsv, .jsonl, .parquet or .npy)",
    )


def is_data_file(path: str | Path) -> bool:
    """True when ``path`` has one of the data file extensions."""
    name = Path(path).name.lower()
    return any(name.endswith(ext) for ext in EXTENSIONS)


def read_dataset(
    path: str | Path,
    *,
    features: Sequence[Feature] | None = None,
    lenient: bool = False,
    format: str | None = None,
    limits: ReadLimits | None = None,
) -> Dataset:
    """Read a whole file.

    ``features`` selects the columns (in its order) and fixes their types; without it
    every supported column is read with inferred types. ``lenient=True`` keeps a column
    declared numerical that holds text as categorical instead of failing (data quality
    then reports the type mismatch). ``limits`` (default :class:`ReadLimits`) is checked
    before anything is decoded.
    """
    p, reader = _open(path, format)
    plan, declared = _plan(p, reader, features)
    _guard(p, reader, lambda: reader.check_size(p, plan, limits or ReadLimits()))
    table = _guard(p, reader, lambda: reader.read(p, plan))
    if table.num_rows == 0:
        raise DataError(p, "no data rows")
    arrow = {name: table.column(name) for name in table.column_names}
    del table  # the columns alone keep the data: each is freed once converted
    dataset = _guard(
        p,
        reader,
        lambda: columns_to_dataset(arrow, declared=declared, lenient=lenient, source=p),
    )
    pa.default_memory_pool().release_unused()  # hand decode buffers back to the system
    return dataset


def iter_datasets(
    path: str | Path,
    *,
    features: Sequence[Feature] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    format: str | None = None,
    limits: ReadLimits | None = None,
) -> Iterator[Dataset]:
    """Stream a file as datasets of about ``chunk_rows`` rows (types fixed by the plan).

    Categorical chunks are encoded independently: match categories across chunks by
    label, not by code. ``limits`` is checked before the first chunk is decoded.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    p, reader = _open(path, format)
    plan, declared = _plan(p, reader, features)
    _guard(p, reader, lambda: reader.check_size(p, plan, limits or ReadLimits()))
    stream = _guard(p, reader, lambda: reader.batches(p, plan, chunk_rows))
    rows = 0
    while True:
        table = _guard(p, reader, lambda: next(stream, None))
        if table is None:
            break
        rows += table.num_rows
        yield _guard(p, reader, partial(table_to_dataset, table, declared=declared, source=p))
    if rows == 0:
        raise DataError(p, "no data rows")


def read_columns(path: str | Path, *, format: str | None = None) -> list[Feature]:
    """The columns a file has and their inferred types, without reading it all."""
    p, reader = _open(path, format)
    schema = _guard(p, reader, lambda: reader.schema(p))
    _refuse_binary(p, reader, schema, list(schema.names))
    out: list[Feature] = []
    for f in schema:
        kind = inferred_type(f.type)
        if kind is not None:
            out.append(Feature(f.name, kind))
    return out


def column_names(path: str | Path, *, format: str | None = None) -> list[str]:
    """Every column name of a file, whatever its type (a timestamp too)."""
    p, reader = _open(path, format)
    return list(_guard(p, reader, lambda: reader.schema(p)).names)


def _open(path: str | Path, format: str | None) -> tuple[Path, FormatReader]:
    p = Path(path)
    fmt = format or detect_format(p)
    reader = READERS.get(fmt)
    if reader is None:
        raise DataError(p, f"unknown format {fmt!r} (expected {', '.join(FORMAT_NAMES)})")
    if not p.exists():
        raise DataError(p, "file not found")
    if p.is_dir():
        raise DataError(p, "is a directory, not a file")
    if p.stat().st_size == 0:
        raise DataError(p, "empty file")
    return p, reader


def _plan(
    p: Path, reader: FormatReader, features: Sequence[Feature] | None
) -> tuple[ReadPlan, dict[str, FeatureType]]:
    schema = _guard(p, reader, lambda: reader.schema(p))
    names = list(schema.names)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(p, f"duplicate column name(s): {', '.join(dupes)}")
    wanted = names if features is None else [f.name for f in features if f.name in names]
    _refuse_binary(p, reader, schema, wanted)
    if features is not None:
        check_present(features, names, source=p)
        columns = tuple(f.name for f in features)
        declared: dict[str, FeatureType] = {f.name: f.type for f in features}
    else:
        columns = tuple(names)
        declared = {}
        unsupported = [f"{f.name} ({f.type})" for f in schema if inferred_type(f.type) is None]
        if unsupported:
            raise DataError(
                p,
                f"unsupported column type(s): {', '.join(unsupported[:5])}; "
                "list the columns to use in a features file",
            )
    if not columns:
        raise DataError(p, "no columns")
    types = read_types(schema, columns, declared, numbers_as_text=reader.numbers_as_text)
    return ReadPlan(columns, types), declared


def _refuse_binary(p: Path, reader: FormatReader, schema: pa.Schema, names: list[str]) -> None:
    """Arrow reads text that is not UTF-8 as bytes: say so, not "unsupported type"."""
    if reader.name in _TEXT_FORMATS:
        binary = [n for n in names if pa.types.is_binary(schema.field(n).type)]
        if binary:
            raise DataError(p, f"column {binary[0]!r} is not UTF-8 text")


def _guard(p: Path, reader: FormatReader, action: Callable[[], T]) -> T:
    try:
        return action()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(p, f"is not UTF-8 text (byte {exc.start} of a value)") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        text = _first_line(exc)
        if text.startswith("Empty "):
            raise DataError(p, "empty file") from None
        raise DataError(p, f"cannot parse as {_LABELS[reader.name]}: {text}") from None
    except (OSError, ValueError) as exc:
        raise DataError(p, f"cannot read as {_LABELS[reader.name]}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
