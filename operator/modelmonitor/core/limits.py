"""The caps on what an input may decode to: the operator's settings and the CLI's flags.

Pure data: the readers (:mod:`modelmonitor.adapters.files.limits`) enforce them, the
settings (``edge/config.py``) and the command line set them.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """The most a data file may decode to (defaults: the command line's)."""

    max_decoded_bytes: int = 1024 * MiB
    max_rows: int = 10_000_000
    max_cells: int = 50_000_000  # rows x columns read

    def __post_init__(self) -> None:
        for name in ("max_decoded_bytes", "max_rows", "max_cells"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def unbounded(cls) -> ReadLimits:
        """No cap (benchmarks and trusted inputs only)."""
        big = 1 << 62
        return cls(big, big, big)


#: What a reference may decode to in the operator (settings REFERENCE_MAX_*): well inside
#: the chart's 1 GiB memory limit. A larger reference is saved as a profile (``baseline``).
REFERENCE_LIMITS = ReadLimits(max_decoded_bytes=256 * MiB, max_rows=5_000_000, max_cells=10_000_000)
