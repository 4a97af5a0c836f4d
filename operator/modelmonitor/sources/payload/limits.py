"""The bounds, counters and state of a payload-log window (see :mod:`.window`).

Kept apart from the window itself so the store, the server and the Kafka feed can size
and report windows without the ring-buffer code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelmonitor.core.spec import PayloadLogSpec

# Defaults of the bounds that the spec does not set (see WindowLimits).
DEFAULT_PENDING_SECONDS = 300.0
DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_COLUMNS = 256
DEFAULT_MAX_CATEGORIES = 10000
DEFAULT_MAX_LABEL_CHARS = 256
MAX_PROBABILITY_COLUMNS = 100  # the classes kept per row (spec.performance.probabilities)


@dataclass(frozen=True)
class WindowLimits:
    """The bounds of one monitor's window: time, rows, unpaired halves, columns, labels."""

    window_seconds: float = 3600.0
    max_samples: int = 50000
    min_samples: int = 500
    pending_seconds: float = DEFAULT_PENDING_SECONDS  # an unpaired half is kept this long
    max_pending: int = DEFAULT_MAX_PENDING  # and at most this many of them (rows: max_samples)
    max_columns: int = DEFAULT_MAX_COLUMNS  # input columns stored per window
    max_categories: int = DEFAULT_MAX_CATEGORIES  # distinct labels stored per column
    max_label_chars: int = DEFAULT_MAX_LABEL_CHARS  # longer labels are cut to this

    def __post_init__(self) -> None:
        if not (self.window_seconds > 0 and self.pending_seconds > 0):
            raise ValueError("window_seconds and pending_seconds must be > 0")
        if min(self.max_samples, self.max_pending, self.max_columns, self.max_categories) < 1:
            raise ValueError("max_samples, max_pending, max_columns, max_categories must be >= 1")
        if self.min_samples < 0 or self.max_label_chars < 1:
            raise ValueError("min_samples must be >= 0 and max_label_chars >= 1")

    @classmethod
    def from_spec(cls, spec: PayloadLogSpec, **overrides: Any) -> WindowLimits:
        return cls(
            window_seconds=float(spec.window_seconds),
            max_samples=spec.max_samples,
            min_samples=spec.min_samples,
            **overrides,
        )


@dataclass
class PayloadCounters:
    """What happened to the events of one monitor since it was registered."""

    received: int = 0  # events offered to the window (requests and responses)
    paired: int = 0  # request/response pairs completed
    rows: int = 0  # rows added to the window by those pairs
    dropped: int = 0  # unpaired halves given up (older than pendingSeconds, or evicted)
    duplicates: int = 0  # a second event with an id and kind already seen (ignored)
    malformed: int = 0  # unreadable events, and pairs whose halves disagree
    expired_rows: int = 0  # rows that aged out of windowSeconds
    evicted_rows: int = 0  # rows pushed out by maxSamples
    truncated: int = 0  # values not stored because a column or category cap was reached
    over_budget: int = 0  # rows and unpaired halves given up to stay within the byte share

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class PayloadStatus:
    """The state of a window at one moment."""

    rows: int  # rows in the window now
    pending: int  # unpaired halves waiting for their other half
    min_samples: int
    window_seconds: float
    max_samples: int
    oldest_age_seconds: float | None  # age of the oldest row; None when empty
    counters: PayloadCounters
    source_problem: str | None = None  # why the Kafka feed cannot read (None: it can)

    @property
    def ready(self) -> bool:
        return self.rows >= max(self.min_samples, 1)

    @property
    def message(self) -> str:
        text = (
            f"{self.rows} payload-log sample(s) in the last {self.window_seconds:g} s"
            f" (minSamples {self.min_samples})"
        )
        if self.counters.received == 0:
            text += "; no event received yet (is the InferenceService's logger pointed here?)"
        elif self.counters.paired == 0:
            text += f"; {self.counters.received} event(s), none paired (logger mode must be all)"
        if self.source_problem:
            text += f"; {self.source_problem}"
        return text
