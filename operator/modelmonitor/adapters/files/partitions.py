"""A partitioned data set: a folder or a glob of data files, read partition by partition.

``resolve_partitions`` turns what a user names into the list of files:

* a directory: every data file under it, recursively (Hive-style ``date=.../part-0.parquet``
  layouts included), skipping names that start with ``.`` or ``_`` (``_SUCCESS``,
  ``.part-0.crc``: what Spark and Hadoop leave beside the data);
* a glob (``*``, ``?``, ``[``; ``**`` crosses directories): the data files it matches,
  with the same names skipped where a wildcard matched them.

Files are returned in path order, so a run reads them the same way each time (the merged
profile does not depend on the order beyond the sketches' stated error).

``iter_partitions`` streams them: each file through :func:`~.readers.iter_datasets`, so
the size caps (:class:`~modelmonitor.core.limits.ReadLimits`) apply to **each file**
before it is decoded, while the number of files, and so the total rows, is bounded only
by :data:`MAX_PARTITIONS`; memory holds one chunk of one file at a time.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from modelmonitor.adapters.files.errors import DataError
from modelmonitor.adapters.files.readers import (
    DEFAULT_CHUNK_ROWS,
    is_data_file,
    iter_datasets,
    read_columns,
)
from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.limits import ReadLimits

#: The most files one partitioned window may have (the list of paths is held in memory).
MAX_PARTITIONS = 100_000
_GLOB_CHARS = frozenset("*?[")


def is_partitioned(spec: str | Path) -> bool:
    """True when ``spec`` names a directory or is a glob pattern (not a single file)."""
    text = str(spec)
    return any(c in _GLOB_CHARS for c in text) or Path(text).is_dir()


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _fixed_depth(pattern: str) -> int:
    """How many leading path parts of ``pattern`` hold no wildcard."""
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if any(c in _GLOB_CHARS for c in part):
            return i
    return len(parts)


def resolve_partitions(spec: str | Path, *, max_partitions: int = MAX_PARTITIONS) -> list[Path]:
    """The data files ``spec`` names (see the module docstring), in path order."""
    text = str(spec)
    found: list[Path] = []
    if Path(text).is_dir():
        for root, dirs, files in os.walk(text):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            found.extend(Path(root, f) for f in files if not _hidden(f) and is_data_file(f))
            if len(found) > max_partitions:
                break
    elif any(c in _GLOB_CHARS for c in text):
        fixed = _fixed_depth(text)
        for match in glob.iglob(text, recursive=True):
            p = Path(match)
            matched = p.parts[fixed:]  # what the wildcards matched: no hidden part there
            if p.is_file() and not any(map(_hidden, matched)) and is_data_file(p):
                found.append(p)
                if len(found) > max_partitions:
                    break
    else:
        raise DataError(text, "not a directory or a glob pattern")
    if len(found) > max_partitions:
        raise DataError(text, f"names more than {max_partitions:,} data files")
    if not found:
        raise DataError(
            text,
            "names no data file (.csv, .tsv, .jsonl, .parquet or .npy; names starting "
            "with '.' or '_' are skipped)",
        )
    return sorted(found)


def present_features(paths: Sequence[Path], features: Sequence[Feature]) -> list[Feature]:
    """The features the first partition has: every later partition must have them too."""
    have = {f.name for f in read_columns(paths[0])}
    return [f for f in features if f.name in have]


def iter_partitions(
    paths: Sequence[Path],
    features: Sequence[Feature],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    limits: ReadLimits | None = None,
) -> Iterator[Dataset]:
    """Every partition's rows, chunk by chunk, typed by ``features`` (declared, not
    inferred: a text value in a numerical column is a :class:`DataError` naming the file).

    Each file is size-checked against ``limits`` before it is decoded; a file without one
    of ``features`` is a DataError (partitions of one window share a schema).
    """
    for path in paths:
        yield from iter_datasets(path, features=features, chunk_rows=chunk_rows, limits=limits)
