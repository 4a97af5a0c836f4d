"""Late-label batches: the body a label feed POSTs to the collector.

A JSON array of ``{"id": ..., "label": ...}`` objects, or an object ``{"labels": [...]}``
holding one. ``id`` is the inference request's id as the payload log carries it (text,
or an integer written as text); for a request of several rows, row ``i`` (from 0) is
``<id>:<i>``. ``label`` is the true class: text, an integer, a whole float or a
boolean, compared as text the way predictions are (``2.0`` and ``2`` are the same
class). A batch is taken whole or refused whole with one reason, so a feed can resend it
after fixing it. A ConfigMap feed is a CSV with the columns ``id`` and ``label`` (a header
line first, other columns ignored), read by :func:`parse_label_csv` under the same rules.
Pure: bytes in, pairs out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelmonitor.core.codecs.inference import label_text

MAX_ID_CHARS = 256  # a KServe request id is a UUID (36); anything longer is not an id
MAX_LABEL_CHARS = 256
MAX_BATCH = 100_000  # labels in one batch (the body cap bounds it too)


class MalformedLabelsError(ValueError):
    """The batch cannot be read; the message is one line fit for the HTTP answer."""


@dataclass(frozen=True)
class LabelBatch:
    ids: tuple[str, ...]
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def row_id(request_id: str, row: int, rows: int) -> str:
    """The id of row ``row`` of a request of ``rows`` rows: the request's own id for a
    single row, else ``<id>:<row>``."""
    return request_id if rows == 1 else f"{request_id}:{row}"


def parse_labels(body: bytes) -> LabelBatch:
    """The batch in ``body`` (see the module docstring); MalformedLabelsError otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedLabelsError(f"the body is not JSON: {exc}") from None
    if isinstance(data, Mapping):
        if set(data) != {"labels"}:
            raise MalformedLabelsError('an object body must be {"labels": [...]} and only that')
        data = data["labels"]
    if not isinstance(data, list):
        raise MalformedLabelsError('expected a JSON array of {"id", "label"} objects')
    if len(data) > MAX_BATCH:
        raise MalformedLabelsError(f"{len(data)} labels in one batch; at most {MAX_BATCH}")
    ids: list[str] = []
    labels: list[str] = []
    for i, item in enumerate(data):
        ids.append(_id(item, i))
        labels.append(_label(item, i))
    return LabelBatch(tuple(ids), tuple(labels))


def _field(item: Any, key: str, i: int) -> Any:
    if not isinstance(item, Mapping):
        raise MalformedLabelsError(f'labels[{i}] is not an object {{"id", "label"}}')
    if key not in item:
        raise MalformedLabelsError(f"labels[{i}] has no {key!r}")
    return item[key]


def _id(item: Any, i: int) -> str:
    value = _field(item, "id", i)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedLabelsError(f"labels[{i}].id must be text or an integer")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        raise MalformedLabelsError(f"labels[{i}].id must be 1-{MAX_ID_CHARS} characters")
    return text


def _label(item: Any, i: int) -> str:
    value = _field(item, "label", i)
    if not isinstance(value, str | int | float | bool):
        raise MalformedLabelsError(f"labels[{i}].label must be text, a number or a boolean")
    text = label_text(value)
    if text is None or not text or len(text) > MAX_LABEL_CHARS:
        raise MalformedLabelsError(
            f"labels[{i}].label must be a finite value of 1-{MAX_LABEL_CHARS} characters"
        )
    return text


def parse_label_csv(text: str) -> LabelBatch:
    """The ``id,label`` CSV of a ConfigMap feed; MalformedLabelsError otherwise."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return LabelBatch((), ())
    names = [h.strip() for h in header]
    if "id" not in names or "label" not in names:
        raise MalformedLabelsError(f"the CSV's header has no 'id' and 'label' columns: {names}")
    at_id, at_label = names.index("id"), names.index("label")
    ids: list[str] = []
    labels: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(ids) >= MAX_BATCH:
            raise MalformedLabelsError(f"more than {MAX_BATCH} labels")
        if len(row) <= max(at_id, at_label):
            raise MalformedLabelsError(f"line {line} has {len(row)} column(s)")
        item = {"id": row[at_id].strip(), "label": row[at_label].strip()}
        ids.append(_id(item, line))
        labels.append(_label(item, line))
    return LabelBatch(tuple(ids), tuple(labels))
