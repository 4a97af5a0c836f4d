"""Arrow tables to :class:`~modelmonitor.core.dataset.Dataset`, at Arrow speed.

* numeric (integer, floating, decimal) and all-null columns become float64 with NaN for
  nulls; numerical is the inferred type;
* string and boolean columns are dictionary-encoded into a
  :class:`~modelmonitor.core.dataset.CategoricalColumn` (int32 codes, -1 = missing; booleans
  read as the labels ``"true"``/``"false"``); categorical is the inferred type;
* a declared type overrides inference: a numeric column declared categorical uses its
  values' text (``1.0`` -> ``"1"``), a text column declared numerical is parsed as
  numbers. When that parse fails, ``lenient=True`` keeps the column as categorical
  (so data quality can report the type mismatch) and ``lenient=False`` raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelmonitor.adapters.files.errors import DataError
from modelmonitor.core.dataset import (
    CategoricalColumn,
    Column,
    Dataset,
    FeatureType,
    FloatArray,
)

# pyarrow ships no type information: a pa.Array or pa.ChunkedArray.
ArrowColumn: TypeAlias = Any


def is_numeric_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )


def is_categorical_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_boolean(t)
        or pa.types.is_dictionary(t)
    )


def inferred_type(t: pa.DataType) -> FeatureType | None:
    """The feature type a column of Arrow type ``t`` has without a declaration."""
    if is_numeric_type(t):
        return "numerical"
    if is_categorical_type(t):
        return "categorical"
    return None


def table_to_dataset(
    table: pa.Table,
    *,
    declared: Mapping[str, FeatureType] | None = None,
    lenient: bool = False,
    source: object = "data",
) -> Dataset:
    """Convert every column of ``table`` (declared types win over inferred ones)."""
    arrow = {name: table.column(name) for name in table.column_names}
    return columns_to_dataset(arrow, declared=declared, lenient=lenient, source=source)


def columns_to_dataset(
    arrow: dict[str, ArrowColumn],
    *,
    declared: Mapping[str, FeatureType] | None = None,
    lenient: bool = False,
    source: object = "data",
) -> Dataset:
    """Convert and *consume* ``arrow`` (name -> column), one column at a time.

    Each Arrow column is dropped from the mapping once converted, so when the caller
    holds no other reference its buffers are freed as the conversion goes: the peak is
    about one copy of the data plus one column, not two copies.
    """
    declared = declared or {}
    columns: dict[str, Column] = {}
    for name in list(arrow):
        col = arrow.pop(name)
        columns[name] = convert_column(
            name, col, declared.get(name), lenient=lenient, source=source
        )
        del col
    return Dataset(columns)


def convert_column(
    name: str,
    arr: ArrowColumn,
    declared: FeatureType | None,
    *,
    lenient: bool = False,
    source: object = "data",
) -> Column:
    """One Arrow column to a float64 array or a :class:`CategoricalColumn`."""
    t = arr.type
    if pa.types.is_dictionary(t):
        if declared != "numerical" and _is_text(t.value_type):
            return dictionary_to_categorical(arr)
        if declared == "numerical" and _is_text(t.value_type):
            return _dictionary_to_numbers(name, arr, lenient=lenient, source=source)
        arr = arr.cast(t.value_type)
        t = arr.type
    kind = declared or inferred_type(t)
    if kind is None:
        raise DataError(
            source,
            f"column {name!r} has unsupported type {t}; list the columns to use in a features file",
        )
    if kind == "numerical":
        if is_numeric_type(t) or pa.types.is_boolean(t):
            return to_float64(arr)
        try:
            return to_float64(pc.cast(arr, pa.float64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if lenient and is_categorical_type(t):
                return to_categorical(arr)
            raise DataError(
                source, f"column {name!r} is declared numerical but holds text ({_first_line(exc)})"
            ) from None
    return to_categorical(arr)


def to_float64(arr: ArrowColumn) -> FloatArray:
    """float64 values with NaN where Arrow has nulls.

    Zero-copy where Arrow allows it (one chunk, no nulls): the array is then read-only,
    which the statistics never need to change.
    """
    if arr.type != pa.float64():
        arr = pc.cast(arr, pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def to_categorical(arr: ArrowColumn) -> CategoricalColumn:
    """Dictionary-encode text (or anything castable to text) into int32 codes."""
    if pa.types.is_null(arr.type):
        return CategoricalColumn(np.full(len(arr), -1, dtype=np.int32), ())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks == 1:
            arr = arr.chunk(0)
        elif arr.num_chunks == 0:
            return CategoricalColumn(np.empty(0, dtype=np.int32), ())
    encoded = pc.dictionary_encode(arr)
    if isinstance(encoded, pa.ChunkedArray):
        # Arrow encodes chunked input with one memo table: every chunk's dictionary is a
        # prefix of the last one, so the indices are valid against the last dictionary.
        dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary
        indices = pa.chunked_array([c.indices for c in encoded.chunks], type=pa.int32())
        codes = indices.fill_null(-1).to_numpy()
    else:
        dictionary = encoded.dictionary
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    labels = tuple(str(v) for v in dictionary.to_pylist())
    return CategoricalColumn(np.ascontiguousarray(codes, dtype=np.int32), labels)


def _dictionary_to_numbers(name: str, arr: ArrowColumn, *, lenient: bool, source: object) -> Column:
    """Dictionary-encoded text declared numerical: parse each label once, then index.

    Never expands the labels row by row (a long label repeated in every row would
    take its length times the rows).
    """
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    parts: list[FloatArray] = []
    for chunk in chunks:
        try:
            values = pc.cast(chunk.dictionary, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if lenient:
                return dictionary_to_categorical(arr)
            raise DataError(
                source, f"column {name!r} is declared numerical but holds text ({_first_line(exc)})"
            ) from None
        parts.append(to_float64(pc.take(values, chunk.indices)))
    if not parts:
        return np.empty(0, dtype=np.float64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def dictionary_to_categorical(arr: ArrowColumn) -> CategoricalColumn:
    """Reuse Arrow's own dictionary encoding (e.g. from Parquet) without decoding text.

    Chunks are first given one shared dictionary; labels the data never uses stay in
    ``categories`` with a count of zero.
    """
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks == 0:
            return CategoricalColumn(np.empty(0, dtype=np.int32), ())
        arr = arr.unify_dictionaries()
        dictionary = arr.chunk(0).dictionary
        indices = pa.chunked_array([c.indices for c in arr.chunks])
    else:
        dictionary, indices = arr.dictionary, arr.indices
    if dictionary.null_count:
        raise DataError("data", "a dictionary-encoded column has a null category label")
    codes = pc.cast(indices.fill_null(-1), pa.int32()).to_numpy(zero_copy_only=False)
    labels = tuple(str(v) for v in dictionary.to_pylist())
    return CategoricalColumn(np.ascontiguousarray(codes, dtype=np.int32), labels)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
