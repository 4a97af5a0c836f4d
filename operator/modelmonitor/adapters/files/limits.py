"""Size caps on what a data file decodes to, checked before the file is decoded.

A small file can decode to a huge table: a 510 KB gzip inflates to 512 MiB of CSV, a
178 KiB Parquet file with one repeated value claims 40M rows. Reading either whole
costs gigabytes, so every reader checks a :class:`ReadLimits` first, as cheaply as the
format allows:

* compressed text (gzip, bz2, told by its magic bytes, not its name) is inflated once
  as a stream, one chunk at a time, counting bytes and lines, and refused as soon as
  either is over its cap: a bomb costs the cap's CPU, never its memory;
* plain text (CSV, TSV, JSON lines) is measured the same way (lines counted in chunks);
* Parquet is judged from its footer (rows, columns, uncompressed sizes), npy from its
  header (shape and dtype), before a single value is read.

Rows x columns counts only the columns that will be read. A refusal is a
:class:`TooLargeError` (a :class:`DataError`) that names the cap and how to raise it.
"""

from __future__ import annotations

import bz2
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmonitor.adapters.files.errors import DataError
from modelmonitor.core.limits import ReadLimits

__all__ = ["ReadLimits", "TooLargeError", "check_decoded_bytes", "check_shape", "measure_text"]

_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
BZ2_MAGIC = b"BZh"


class TooLargeError(DataError):
    """The input decodes to more than a cap allows; ``cap`` names the cap."""

    def __init__(self, path: object, reason: str, cap: str) -> None:
        super().__init__(path, reason)
        self.cap = cap


@dataclass(frozen=True)
class Measured:
    """What measuring a text file found: its compression and decoded size."""

    compression: str | None  # "gzip" | "bz2" | None
    decoded_bytes: int
    lines: int


def compression_of(path: Path) -> str | None:
    """``gzip`` or ``bz2`` by the file's first bytes (not its name), else None."""
    with path.open("rb") as f:
        head = f.read(3)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZ2_MAGIC):
        return "bz2"
    return None


def _decompressor(compression: str | None) -> Any:
    if compression == "gzip":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if compression == "bz2":
        return bz2.BZ2Decompressor()
    return None


def measure_text(path: Path, limits: ReadLimits) -> Measured:
    """Stream ``path`` (inflating gzip/bz2) counting bytes and lines; refuse over a cap.

    Memory stays at about one chunk whatever the file inflates to: each compressed
    chunk is inflated at most ``_CHUNK`` bytes at a time. Concatenated gzip members
    (what ``cat a.gz b.gz`` makes, and what Python and Arrow read) are followed.
    """
    compression = compression_of(path)
    size = lines = 0
    last = b"\n"

    def add(block: bytes) -> None:
        nonlocal size, lines, last
        if not block:
            return
        size += len(block)
        lines += block.count(b"\n")
        last = block[-1:]
        if size > limits.max_decoded_bytes:
            what = "decompresses" if compression else "is"
            raise TooLargeError(
                path,
                f"{what} more than {limits.max_decoded_bytes:,} bytes "
                f"(max decoded bytes; stopped reading at {size:,})",
                "max_decoded_bytes",
            )
        if lines > limits.max_rows:
            raise TooLargeError(
                path,
                f"decodes to more than {limits.max_rows:,} rows (max rows; "
                f"stopped reading after {size:,} bytes)",
                "max_rows",
            )

    try:
        with path.open("rb") as f:
            if compression is None:
                while block := f.read(_CHUNK):
                    add(block)
            else:
                _inflate(f, compression, add)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(path, f"cannot decompress ({compression}): {exc}") from None
    if size and last != b"\n":
        lines += 1
    return Measured(compression, size, lines)


def _inflate(f: Any, compression: str, add: Any) -> None:
    """Feed ``add`` the inflated content in blocks of at most ``_CHUNK`` bytes."""
    dec = _decompressor(compression)
    pending = b""
    while True:
        if not pending:
            pending = f.read(_CHUNK)
            if not pending:
                break
        if compression == "gzip":
            add(dec.decompress(pending, _CHUNK))
            pending = dec.unconsumed_tail
            if dec.eof:
                rest = dec.unused_data + pending
                dec, pending = _decompressor(compression), rest.lstrip(b"\x00")
        else:
            add(dec.decompress(pending, max_length=_CHUNK))
            pending = b""
            while not dec.eof and not dec.needs_input:
                add(dec.decompress(b"", max_length=_CHUNK))
            if dec.eof:
                pending, dec = dec.unused_data, _decompressor(compression)
    while compression == "gzip" and not dec.eof:
        block = dec.decompress(b"", _CHUNK)
        if not block:
            break
        add(block)


def check_shape(
    path: Path, rows: int, columns: int, limits: ReadLimits, *, estimated: bool = False
) -> None:
    """Refuse ``rows`` x ``columns`` over the rows or cells cap (before decoding)."""
    about = "up to " if estimated else ""
    if rows > limits.max_rows:
        raise TooLargeError(
            path,
            f"decodes to {about}{rows:,} rows, more than {limits.max_rows:,} (max rows)",
            "max_rows",
        )
    if rows * columns > limits.max_cells:
        raise TooLargeError(
            path,
            f"decodes to {about}{rows:,} rows x {columns} columns = {rows * columns:,} "
            f"values, more than {limits.max_cells:,} (max rows x columns)",
            "max_cells",
        )


def check_decoded_bytes(path: Path, decoded: int, limits: ReadLimits) -> None:
    """Refuse a file whose own metadata says it decodes to more than the bytes cap."""
    if decoded > limits.max_decoded_bytes:
        raise TooLargeError(
            path,
            f"decodes to {decoded:,} bytes, more than {limits.max_decoded_bytes:,} "
            "(max decoded bytes)",
            "max_decoded_bytes",
        )
