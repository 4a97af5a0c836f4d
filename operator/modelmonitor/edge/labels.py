"""Label and prediction columns for ``modelmonitor check``, and the types they get.

A class label stored as integer codes (0/1, 0..9) reads as a number, and a drift test
of numbers on it (KS, Wasserstein) asks the wrong question: whether class 1 moved
towards class 2. The operator types its prediction and label columns together, from
``spec.prediction.type`` (default categorical); the command line has no spec, so it
follows the same rule from the task:

* ``--task classification``: the ``--target`` and ``--prediction`` columns are
  categorical; ``--task regression``: numerical;
* ``--task auto``: classification when the labels are text, with ``--proba``, or when
  target and prediction hold only integers with at most :data:`MAX_AUTO_CLASSES`
  distinct values (read from the current file); else regression;
* ``--categorical COLS`` types any other columns (integer-coded features) categorical,
  as a features file would, without writing one.

A features file's explicit types win over the task's; ``--proba`` columns stay numerical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelmonitor.adapters.files import DataError, read_columns, read_dataset
from modelmonitor.core.dataset import CategoricalColumn, Column, Feature, FeatureType
from modelmonitor.core.limits import ReadLimits

#: ``--task auto`` reads integer labels with at most this many distinct values as classes.
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class LabelSpec:
    """Which columns hold the true labels, the predictions and class probabilities."""

    target: str
    prediction: str | None = None
    proba: tuple[str, ...] = ()
    task: str = "auto"  # auto | classification | regression

    @property
    def columns(self) -> list[str]:
        return [
            self.target,
            *([self.prediction] if self.prediction else []),
            *self.proba,
        ]

    @property
    def label_columns(self) -> list[str]:
        """The columns that hold classes or values (not probabilities)."""
        return [self.target, *([self.prediction] if self.prediction else [])]


def infer_task(y: Column, pred: Column | None, labels: LabelSpec) -> str:
    """classification for text labels, with --proba, or for few integer labels."""
    if labels.proba or isinstance(y, CategoricalColumn) or isinstance(pred, CategoricalColumn):
        return "classification"
    values = [np.asarray(y)] + ([] if pred is None else [np.asarray(pred)])
    finite = [v[np.isfinite(v)] for v in values]
    if all(np.array_equal(v, np.round(v)) for v in finite):
        distinct = np.unique(np.concatenate(finite))
        if distinct.size <= MAX_AUTO_CLASSES:
            return "classification"
    return "regression"


def resolve_task(current: Path, labels: LabelSpec, *, limits: ReadLimits | None = None) -> str:
    """The task: as given, or inferred from the current file's label columns.

    Returns ``auto`` when the file lacks a label column (reading the current data
    reports that with its own error).
    """
    if labels.task != "auto":
        return labels.task
    inferred = {f.name: f for f in read_columns(current)}
    if any(n not in inferred for n in labels.label_columns):
        return "auto"
    wanted = [inferred[n] for n in dict.fromkeys(labels.label_columns)]
    ds = read_dataset(current, features=wanted, limits=limits)
    pred = ds[labels.prediction] if labels.prediction else None
    return infer_task(ds[labels.target], pred, labels)


def label_types(labels: LabelSpec, task: str) -> dict[str, FeatureType]:
    """The type of the target and prediction columns for ``task``."""
    if task == "auto":
        return {}
    kind: FeatureType = "categorical" if task == "classification" else "numerical"
    return dict.fromkeys(labels.label_columns, kind)


def parse_columns(text: str | None) -> list[str]:
    """A comma-separated list of column names (empty entries dropped)."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def apply_types(features: Sequence[Feature], types: Mapping[str, FeatureType]) -> list[Feature]:
    """``features`` with the types in ``types`` for the columns it names."""
    return [Feature(f.name, types.get(f.name, f.type)) for f in features]


def column_types(
    labels: LabelSpec | None, features: Sequence[Feature] | None, categorical: str | None
) -> dict[str, FeatureType]:
    """Types set on the command line: the label columns' from the (resolved) task unless
    a features file types them, then ``--categorical``'s comma-separated columns."""
    declared = {f.name for f in features or ()}
    types: dict[str, FeatureType] = {}
    if labels is not None:
        task_types = label_types(labels, labels.task)
        types.update({n: t for n, t in task_types.items() if n not in declared})
    types.update(dict.fromkeys(parse_columns(categorical), "categorical"))
    return types


def typed_columns(
    path: Path,
    types: Mapping[str, FeatureType],
    have: Sequence[str],
    *,
    required: Sequence[str] = (),
) -> dict[str, FeatureType]:
    """``types`` for the columns the reference has (a label column it lacks is only read
    from the current data); DataError when a ``required`` one is not there."""
    present = set(have)
    absent = [n for n in dict.fromkeys(required) if n not in present]
    if absent:
        raise DataError(path, f"has no column(s) {', '.join(map(repr, absent))} to type")
    return {n: t for n, t in types.items() if n in present}
