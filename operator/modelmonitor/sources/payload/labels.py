"""Served predictions waiting for their late labels, joined by inference request id.

With ``spec.performance.labels`` each paired payload-log row with class probabilities
is also kept here under its row id (:func:`modelmonitor.core.codecs.labels.row_id`):
its arrival time, its probabilities and, once one arrives, its label. A prediction waits
``labelDelay`` (then leaves, labelled or not), at most ``maxPredictions`` of them wait
(the oldest leave first), and they count against the payload window's byte share (the
window gives up its oldest predictions here before its rows when it must shrink).

Labels join in O(1) per label (a dict by id). What cannot join is counted and dropped,
never raised: an id no prediction carries (``unknownIds``), an id labelled again (the
last label kept: a feed resending a correction; ``duplicates``), a label for a
prediction that already left (``late``: told from unknown by the ids that left in the
last ``labelDelay``, as many as ``maxPredictions``). Not thread-safe: the window calls it
under its own lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from modelmonitor.core.dataset import FloatArray

_ROW_BYTES = 300  # a waiting prediction besides its id and probabilities (measured: ~290)
_GONE_BYTES = 150  # an id remembered after it left, besides its text (measured: ~140)


@dataclass
class LabelCounters:
    """What happened to the labels of one monitor since its window was created."""

    received: int = 0  # labels in accepted batches
    matched: int = 0  # joined to a waiting prediction
    unknown_ids: int = 0  # no prediction carries the id
    duplicates: int = 0  # the id was labelled already (the last label kept)
    late: int = 0  # the prediction had left (older than labelDelay, or shed)
    expired: int = 0  # predictions that left without a label

    def as_status(self) -> dict[str, int]:
        names = {"unknown_ids": "unknownIds"}
        return {names.get(k, k): v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LabelOutcome:
    """One batch's labels, by what the join made of them."""

    matched: int = 0
    unknown_ids: int = 0
    duplicates: int = 0
    late: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "unknownIds": self.unknown_ids,
            "duplicates": self.duplicates,
            "late": self.late,
        }


class _Served:
    __slots__ = ("label", "proba", "time")

    def __init__(self, time: float, proba: FloatArray) -> None:
        self.time = time
        self.proba = proba
        self.label: str | None = None


class LabelBuffer:
    """One monitor's served predictions, waiting ``delay_seconds`` for labels."""

    def __init__(self, delay_seconds: float, max_predictions: int) -> None:
        if delay_seconds <= 0 or max_predictions < 1:
            raise ValueError("delay_seconds must be > 0 and max_predictions >= 1")
        self.delay_seconds = delay_seconds
        self.max_predictions = max_predictions
        self.counters = LabelCounters()
        self.width = 0  # probability columns (the first scored response's)
        self._served: OrderedDict[str, _Served] = OrderedDict()
        self._gone: OrderedDict[str, float] = OrderedDict()  # ids that left, when due
        self._bytes = 0
        self._gone_bytes = 0

    def reconfigure(self, delay_seconds: float, max_predictions: int) -> None:
        self.delay_seconds = delay_seconds
        self.max_predictions = max_predictions
        self._trim()

    def serve(self, ids: Sequence[str], proba: FloatArray, now: float) -> None:
        """Keep the predictions of rows ``ids`` (``proba``: one row each) for labels.
        Rows of another width than the first scored response's are not kept; an id
        already waiting keeps its first prediction."""
        if proba.ndim != 2 or proba.shape[0] != len(ids) or proba.shape[1] == 0:
            return
        if not self.width:
            self.width = int(proba.shape[1])
        if proba.shape[1] != self.width:
            return
        rows = np.array(proba, dtype=np.float64, copy=True)
        for i, row_id in enumerate(ids):
            if row_id in self._served:
                continue
            self._served[row_id] = _Served(now, rows[i])
            self._bytes += self._row_bytes(row_id)
        self._trim()

    def label(self, ids: Sequence[str], labels: Sequence[str], now: float) -> LabelOutcome:
        """Join one batch; what cannot join is counted (see the module docstring)."""
        self.expire(now)
        matched = unknown = duplicates = late = 0
        for row_id, label in zip(ids, labels, strict=True):
            served = self._served.get(row_id)
            if served is None:
                if row_id in self._gone:
                    late += 1
                else:
                    unknown += 1
                continue
            if served.label is None:
                matched += 1
            else:
                duplicates += 1
            served.label = label
        c = self.counters
        c.received += len(ids)
        c.matched += matched
        c.unknown_ids += unknown
        c.duplicates += duplicates
        c.late += late
        return LabelOutcome(matched, unknown, duplicates, late)

    def expire(self, now: float) -> None:
        """Predictions older than ``delay_seconds`` leave; so do remembered ids."""
        horizon = now - self.delay_seconds
        while self._served and next(iter(self._served.values())).time < horizon:
            self._leave()
        while self._gone and next(iter(self._gone.values())) < horizon:
            self._forget_gone()

    def shed(self, n: int) -> None:
        """Give up the oldest ``n`` predictions (the window's byte share)."""
        for _ in range(min(n, len(self._served))):
            self._leave()

    def forget_gone(self) -> None:
        """Forget the ids that left (the cheapest memory to give up)."""
        while self._gone:
            self._forget_gone()

    def snapshot(self) -> tuple[FloatArray, list[str | None]]:
        """The waiting predictions' probabilities (rows, width), oldest first, and
        their labels (None where none arrived yet)."""
        served = list(self._served.values())
        if not served:
            return np.zeros((0, self.width)), []
        return np.vstack([s.proba for s in served]), [s.label for s in served]

    def awaiting(self) -> int:
        return sum(1 for s in self._served.values() if s.label is None)

    def nbytes(self) -> int:
        return self._bytes + self._gone_bytes

    def gone_nbytes(self) -> int:
        return self._gone_bytes

    def __len__(self) -> int:
        return len(self._served)

    def _row_bytes(self, row_id: str) -> int:
        return _ROW_BYTES + len(row_id) + 8 * self.width

    def _trim(self) -> None:
        while len(self._served) > self.max_predictions:
            self._leave()
        while len(self._gone) > self.max_predictions:
            self._forget_gone()

    def _leave(self) -> None:
        row_id, served = self._served.popitem(last=False)
        self._bytes -= self._row_bytes(row_id)
        if served.label is None:
            self.counters.expired += 1
        if row_id in self._gone:  # an id served again after it left once
            del self._gone[row_id]
            self._gone_bytes -= _GONE_BYTES + len(row_id)
        # remembered for one more labelDelay after it was due (or, shed early, longer)
        self._gone[row_id] = served.time + self.delay_seconds
        self._gone_bytes += _GONE_BYTES + len(row_id)
        if len(self._gone) > self.max_predictions:
            self._forget_gone()

    def _forget_gone(self) -> None:
        row_id, _ = self._gone.popitem(last=False)
        self._gone_bytes -= _GONE_BYTES + len(row_id)
