"""What the offline commands accept as input, and where they may write.

The command line reads files anyone may have made (a CI job checking a pipeline's
output, a profile handed over by another team), so its inputs get the operator's rules:
sizes capped before decoding (``--max-decoded-bytes``, ``--max-rows``, ``--max-cells``),
a saved profile checked field by field, text that is not UTF-8 named as such, and
``--output`` written only into a directory that exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modelmonitor.adapters.files import DataError
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.profile_check import MAX_PROFILE_BYTES, ProfileError, parse_profile


def limits_from(args: argparse.Namespace) -> ReadLimits:
    """The caps a command was given (the defaults when it was called without them)."""
    d = ReadLimits()
    return ReadLimits(
        max_decoded_bytes=getattr(args, "max_decoded_bytes", d.max_decoded_bytes),
        max_rows=getattr(args, "max_rows", d.max_rows),
        max_cells=getattr(args, "max_cells", d.max_cells),
    )


def load_profile(path: Path) -> ReferenceProfile:
    """Load a profile saved by ``baseline``, every field checked, with one-line errors."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a directory, not a file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(path, "empty file")
    if size > MAX_PROFILE_BYTES:
        raise DataError(path, f"{size:,} bytes is too large for a saved profile")
    try:
        return parse_profile(path.read_bytes())
    except ProfileError as exc:
        hint = (
            "; data files need a .csv, .tsv, .jsonl, .parquet or .npy extension"
            if "not valid JSON" in str(exc) or "not UTF-8" in str(exc)
            else ""
        )
        raise DataError(path, f"not a readable profile: {exc}{hint}") from None
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from None


def check_output(path: Path) -> None:
    """Refuse an ``--output`` whose directory does not exist (never create directories)."""
    if path.exists() and path.is_dir():
        raise DataError(path, "is a directory, not a file")
    parent = path.parent
    if not parent.is_dir():
        raise DataError(path, f"the directory {str(parent)!r} does not exist (create it first)")
