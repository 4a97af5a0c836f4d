"""Data readers: files (csv, tsv, jsonl, parquet, npy) into :class:`Dataset` objects.

Fast (Arrow's readers, dictionary-encoded categories), typed by inference or by a
features file, whole or streamed in chunks; every failure is a :class:`DataError` with a
one-line message.
"""

from modelmonitor.adapters.files.errors import DataError
from modelmonitor.adapters.files.features import load_features_file, parse_features
from modelmonitor.adapters.files.limits import ReadLimits, TooLargeError
from modelmonitor.adapters.files.readers import (
    DEFAULT_CHUNK_ROWS,
    FORMAT_NAMES,
    column_names,
    detect_format,
    is_data_file,
    iter_datasets,
    read_columns,
    read_dataset,
)

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "FORMAT_NAMES",
    "DataError",
    "ReadLimits",
    "TooLargeError",
    "column_names",
    "detect_format",
    "is_data_file",
    "iter_datasets",
    "load_features_file",
    "parse_features",
    "read_columns",
    "read_dataset",
]
