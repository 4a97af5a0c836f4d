"""One column of a payload-log window's ring: a number or a label code per slot.

Split from :mod:`.window` (which owns the ring and decides which slots are live): the
column only stores, clears, resizes and reads back, and keeps its label vocabulary
bounded (``maxCategories``, compaction of labels no live row uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from modelmonitor.core.codecs.cloudevents import Values
from modelmonitor.core.codecs.inference import label_text
from modelmonitor.core.dataset import CategoricalColumn, CodeArray, Column, FloatArray

LABEL_OVERHEAD = 100  # a label's str object and its index entry, besides the text


class LabelLimits(Protocol):
    @property
    def max_categories(self) -> int: ...

    @property
    def max_label_chars(self) -> int: ...


class Ring(Protocol):
    """What a column asks of the window that owns it."""

    @property
    def limits(self) -> LabelLimits: ...

    @property
    def removed_rows(self) -> int: ...

    def compaction_due(self, store: ColumnStore) -> bool: ...

    def live_slots(self) -> npt.NDArray[np.intp]: ...


class ColumnStore:
    """One column's storage in the ring: a number or a label code per slot."""

    def __init__(self, capacity: int) -> None:
        self.values: FloatArray = np.full(capacity, np.nan)
        self.codes: CodeArray = np.full(capacity, -1, dtype=np.int32)
        self.vocab: list[str] = []
        self.vocab_bytes = 0  # kept as labels come and go: nbytes() runs after every event
        self.index: dict[str, int] = {}
        self.compacted_at = 0  # the window's removed-rows count at the last compaction
        self.remap: CodeArray | None = None  # old code -> new code, set by compact()
        self._floats: FloatArray | None = None  # the labels as numbers, cached

    def resize(self, order: npt.NDArray[np.intp], capacity: int) -> None:
        values = np.full(capacity, np.nan)
        codes = np.full(capacity, -1, dtype=np.int32)
        values[: order.size] = self.values[order]
        codes[: order.size] = self.codes[order]
        self.values, self.codes = values, codes

    def clear(self, slots: npt.NDArray[np.intp]) -> None:
        self.values[slots] = np.nan
        self.codes[slots] = -1

    def put(self, slots: npt.NDArray[np.intp], data: Values, window: Ring) -> int:
        """Store ``data`` at ``slots``; return how many labels a cap turned into missing."""
        if data.dtype != object:
            self.values[slots] = data
            self.codes[slots] = -1
            return 0
        lost = 0
        values = np.full(slots.size, np.nan)
        codes = np.full(slots.size, -1, dtype=np.int32)
        limit = window.limits.max_label_chars
        for i, v in enumerate(data.tolist()):
            if isinstance(v, str):
                self.remap = None
                code = self.code(v[:limit], window)
                if self.remap is not None:  # compacted: renumber the codes of this batch
                    codes[:i] = self.remap[codes[:i]]
                if code < 0:
                    lost += 1
                codes[i] = code
            elif v is not None:
                values[i] = v
        self.values[slots] = values
        self.codes[slots] = codes
        return lost

    def code(self, label: str, window: Ring) -> int:
        code = self.index.get(label)
        if code is not None:
            return code
        if len(self.vocab) >= window.limits.max_categories:
            if not window.compaction_due(self):
                return -1
            self.compact(window.live_slots())
            self.compacted_at = window.removed_rows
            if len(self.vocab) >= window.limits.max_categories:
                return -1
        code = self.index[label] = len(self.vocab)
        self.vocab.append(label)
        self.vocab_bytes += len(label) + LABEL_OVERHEAD
        self._floats = None
        return code

    def compact(self, live: npt.NDArray[np.intp]) -> None:
        """Forget the labels no row in the window uses any more."""
        codes = self.codes[live]
        used = np.unique(codes[codes >= 0])
        remap = np.full(len(self.vocab) + 1, -1, dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        self.codes[live] = remap[codes]  # -1 -> remap[-1] == -1
        self.vocab = [self.vocab[i] for i in used.tolist()]
        self.vocab_bytes = sum(len(label) + LABEL_OVERHEAD for label in self.vocab)
        self.index = {label: i for i, label in enumerate(self.vocab)}
        self.remap = remap
        self._floats = None

    def numbers(self, slots: npt.NDArray[np.intp]) -> FloatArray:
        values = self.values[slots]
        codes = self.codes[slots]
        has = codes >= 0
        if has.any():
            if self._floats is None:
                self._floats = np.asarray([_label_float(s) for s in self.vocab], dtype=np.float64)
            values[has] = self._floats[codes[has]]
        return values

    def labels(self, slots: npt.NDArray[np.intp], table: dict[str, int]) -> CodeArray:
        """Codes into ``table`` (extended with new labels): numbers spelled as label text."""
        values = self.values[slots]
        codes = self.codes[slots]
        out = np.full(slots.size, -1, dtype=np.int32)
        has = codes >= 0
        if has.any():
            used, inverse = np.unique(codes[has], return_inverse=True)
            mapped = [_intern(table, self.vocab[u]) for u in used.tolist()]
            out[has] = np.asarray(mapped, dtype=np.int32)[inverse]
        num = ~has & np.isfinite(values)
        if num.any():
            uniq, inverse = np.unique(values[num], return_inverse=True)
            mapped = [_intern(table, label_text(float(x)) or "") for x in uniq.tolist()]
            out[num] = np.asarray(mapped, dtype=np.int32)[inverse]
        return out

    def nbytes(self) -> int:
        return int(self.values.nbytes + self.codes.nbytes) + self.vocab_bytes


def _intern(table: dict[str, int], label: str) -> int:
    code = table.get(label)
    if code is None:
        code = table[label] = len(table)
    return code


def _label_float(label: str) -> float:
    if label == "true":
        return 1.0
    if label == "false":
        return 0.0
    try:
        return float(label)
    except ValueError:
        return math.nan


def materialize(stores: Sequence[ColumnStore], slots: npt.NDArray[np.intp], ftype: str) -> Column:
    """One feature's column from its named and positional storage (the first wins)."""
    if ftype == "categorical":
        table: dict[str, int] = {}
        codes = np.full(slots.size, -1, dtype=np.int32)
        for store in stores:
            more = store.labels(slots, table)
            codes = np.where(codes >= 0, codes, more).astype(np.int32)
        used, inverse = np.unique(codes[codes >= 0], return_inverse=True)
        labels = list(table)
        dense = np.full(slots.size, -1, dtype=np.int32)
        dense[codes >= 0] = inverse.astype(np.int32)
        return CategoricalColumn(dense, tuple(labels[i] for i in used.tolist()))
    values = np.full(slots.size, np.nan)
    for store in stores:
        numbers = store.numbers(slots)
        values = np.where(np.isnan(values), numbers, values)
    return values
