"""``modelmonitor check``'s performance section: reference, estimated and realized model
performance and concept drift (:mod:`modelmonitor.core.stats.performance`).

Classification needs ``--proba``: the reference (a data file with the label and
probability columns) calibrates the probabilities, and the current window is estimated
whether or not it has the label column; when it has it, realized performance and concept
drift are added. Regression (``--prediction``, no ``--proba``) gets reference and realized
performance; its estimate is ``null`` with a note saying why.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelmonitor.adapters.files import DataError, ReadLimits, read_columns, read_dataset
from modelmonitor.core.dataset import CategoricalColumn, Column, Dataset
from modelmonitor.core.stats.column_profile import as_categorical
from modelmonitor.core.stats.performance import (
    PerformanceReport,
    classification_performance,
    labelled_classification_performance,
    regression_performance,
)
from modelmonitor.core.stats.performance.late_labels import LabelJoin, join_labels
from modelmonitor.edge.labels import LabelSpec


class LateLabelsError(ValueError):
    """Bad --labels input; the message is the one line printed."""


class PerformanceUnavailableError(Exception):
    """Performance cannot be computed for a reason that is not an error (a note)."""


def reference_label_data(
    path: Path, kind: str, labels: LabelSpec, *, limits: ReadLimits | None = None
) -> Dataset | None:
    """The reference's label, prediction and probability columns, when it is a data file
    that has them all."""
    if kind != "data":
        return None
    have = {f.name: f for f in read_columns(path)}
    if any(n not in have for n in labels.columns):
        return None
    wanted = [have[n] for n in dict.fromkeys(labels.columns)]
    return read_dataset(path, features=wanted, limits=limits)


def _numeric(data: Dataset, name: str, what: str) -> np.ndarray:
    col = data[name]
    if isinstance(col, CategoricalColumn):
        raise ValueError(f"{what} column {name!r} must be numerical")
    return np.asarray(col, dtype=np.float64)


def _proba(data: Dataset, labels: LabelSpec) -> np.ndarray:
    cols = [_numeric(data, n, "--proba") for n in labels.proba]
    return cols[0] if len(cols) == 1 else np.column_stack(cols)


def _as_number(column: Column) -> Column:
    """A categorical column whose every category is a number (integer-coded classes, typed
    categorical for drift) as numbers, so the same classes read the same from a file whose
    column was typed and from one whose column was not."""
    if not isinstance(column, CategoricalColumn):
        return column
    try:
        values = np.array([float(c) for c in column.categories] + [np.nan])
    except ValueError:
        return column
    return values[np.where(column.codes < 0, len(column.categories), column.codes)]


def _label_values(columns: list[Column | None]) -> list[Any]:
    """Label columns as arrays of one kind: numbers when all of them are, else text."""
    cols = [None if c is None else _as_number(c) for c in columns]
    if any(isinstance(c, CategoricalColumn) for c in cols):
        return [None if c is None else as_categorical(c).labels() for c in cols]
    return [None if c is None else np.asarray(c) for c in cols]


def performance(
    reference: Dataset | None, current: Dataset, labels: LabelSpec, task: str
) -> PerformanceReport:
    """The performance report of ``current`` against ``reference``'s label columns.

    Raises :class:`PerformanceUnavailableError` with the reason when there is nothing to
    compute, ValueError on bad input.
    """
    if reference is None:
        raise PerformanceUnavailableError(
            "performance not computed: it needs the reference as a data file with the "
            f"columns {', '.join(map(repr, labels.columns))} (a saved profile has no rows "
            "to calibrate on)"
        )
    has_target = labels.target in current
    if task == "regression":
        assert labels.prediction is not None
        return regression_performance(
            _numeric(reference, labels.target, "--target"),
            _numeric(reference, labels.prediction, "--prediction"),
            _numeric(current, labels.prediction, "--prediction"),
            current_y=_numeric(current, labels.target, "--target") if has_target else None,
        )
    pred = labels.prediction
    if not labels.proba:
        assert pred is not None  # --target needs --prediction or --proba
        ry, rpred, cy, cpred = _label_values(
            [reference[labels.target], reference[pred], current[labels.target], current[pred]]
        )
        return labelled_classification_performance(ry, rpred, cpred, cy)
    ry, rpred, cy, cpred = _label_values(
        [
            reference[labels.target],
            reference[pred] if pred else None,
            current[labels.target] if has_target else None,
            current[pred] if pred else None,
        ]
    )
    return classification_performance(
        ry,
        _proba(reference, labels),
        _proba(current, labels),
        reference_pred=rpred,
        current_pred=cpred,
        current_y=cy,
    )


def _text(column: Column) -> np.ndarray:
    """A column as text labels (numbers as ``7``, not ``7.0``), None for missing."""
    return as_categorical(column).labels()


@dataclass(frozen=True)
class LateLabels:
    """The ``--labels`` file: ``(id, label)`` rows to join to the current window."""

    path: Path
    id_column: str
    data: Dataset

    def join(self, current: Dataset, target: str) -> tuple[Dataset, LabelJoin]:
        """``current`` with the ``target`` column joined by id (missing: no label yet)."""
        label_col = self.data[target]
        values = (
            _text(label_col)
            if isinstance(label_col, CategoricalColumn)
            else np.asarray(label_col, dtype=np.float64)
        )
        joined = join_labels(
            _text(current[self.id_column]), _text(self.data[self.id_column]), values
        )
        column: Column = (
            joined.labels
            if joined.labels.dtype.kind == "f"
            else CategoricalColumn.from_values(joined.labels.tolist())
        )
        return Dataset({**current.columns, target: column}), joined

    def summary(self, joined: LabelJoin, rows: int) -> dict[str, Any]:
        """The report's ``labels`` object."""
        return {
            "path": str(self.path),
            "id_column": self.id_column,
            "rows": rows,
            "labelled_rows": joined.matched,
            "unmatched_labels": joined.unmatched_labels,
            "duplicate_ids": joined.duplicate_ids,
            "missing_ids": joined.missing_ids,
        }

    def notes(self, joined: LabelJoin, rows: int) -> list[str]:
        head = (
            f"labels joined from {self.path} by {self.id_column!r}: {joined.matched:,} of "
            f"{rows:,} row(s) labelled"
        )
        return [head, *joined.notes()]


def read_late_labels(
    args: argparse.Namespace, labels: LabelSpec | None, *, limits: ReadLimits | None = None
) -> LateLabels | None:
    """The ``--labels`` file (id and target columns only, within the read limits)."""
    path_arg = getattr(args, "labels", None)
    if not path_arg:
        return None
    if labels is None:
        raise LateLabelsError("--labels needs --target (its label column's name)")
    path = Path(path_arg)
    id_column = str(getattr(args, "id_column", None) or "id")
    if id_column == labels.target:
        raise LateLabelsError("--id-column and --target must name different columns")
    current = {f.name for f in read_columns(Path(args.current))}
    if labels.target in current:
        raise LateLabelsError(
            f"--labels: the current file already has the target column {labels.target!r}; "
            "give the labels in one place"
        )
    have = {f.name: f for f in read_columns(path)}
    absent = [n for n in (id_column, labels.target) if n not in have]
    if absent:
        raise DataError(path, f"has no column(s) {', '.join(map(repr, absent))} (late labels)")
    data = read_dataset(path, features=[have[id_column], have[labels.target]], limits=limits)
    return LateLabels(path, id_column, data)
