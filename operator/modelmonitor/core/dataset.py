"""The in-memory tabular data model shared by readers, the statistics engine and runs.

Columns are numpy arrays so that every statistic is vectorised over a column:

* a numerical column is a float64 array; NaN marks a missing value, +/-inf are kept
  (the statistics report them as data-quality issues instead of silently using them);
* a categorical column is a :class:`CategoricalColumn`: int32 codes into a tuple of
  category labels, with -1 marking a missing value. Dictionary codes keep category
  counting at numpy speed (``np.bincount``) instead of hashing Python strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

FeatureType: TypeAlias = Literal["numerical", "categorical"]
FEATURE_TYPES: tuple[FeatureType, ...] = ("numerical", "categorical")

FloatArray: TypeAlias = npt.NDArray[np.float64]
CodeArray: TypeAlias = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Feature:
    """A feature's name and statistical type."""

    name: str
    type: FeatureType

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ValueError(
                f"feature {self.name!r}: type must be one of {', '.join(FEATURE_TYPES)}, "
                f"got {self.type!r}"
            )


@dataclass(frozen=True, eq=False)
class CategoricalColumn:
    """Dictionary-encoded categorical values: ``categories[codes[i]]``, -1 = missing."""

    codes: CodeArray
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @classmethod
    def from_values(cls, values: Iterable[object]) -> CategoricalColumn:
        """Encode arbitrary values; None and NaN become missing, others are str()-ed."""
        labels: dict[str, int] = {}
        codes: list[int] = []
        for value in values:
            if value is None or (isinstance(value, float) and value != value):
                codes.append(-1)
                continue
            key = str(value)
            code = labels.get(key)
            if code is None:
                code = labels[key] = len(labels)
            codes.append(code)
        return cls(np.asarray(codes, dtype=np.int32), tuple(labels))

    def labels(self) -> npt.NDArray[np.object_]:
        """The values as an object array (None for missing); for display and tests only."""
        table = np.asarray([*self.categories, None], dtype=object)
        return table[np.where(self.codes < 0, len(self.categories), self.codes)]


Column: TypeAlias = FloatArray | CategoricalColumn


@dataclass(frozen=True, eq=False)
class Dataset:
    """Named columns of equal length."""

    columns: Mapping[str, Column]

    def __post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns have different lengths: {lengths}")

    @property
    def n_rows(self) -> int:
        for col in self.columns.values():
            return len(col)
        return 0

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> Column:
        return self.columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def take(self, indices: npt.ArrayLike) -> Dataset:
        """The rows at ``indices`` (in that order), every column alike."""
        idx = np.asarray(indices, dtype=np.intp)
        columns: dict[str, Column] = {}
        for name, col in self.columns.items():
            if isinstance(col, CategoricalColumn):
                columns[name] = CategoricalColumn(col.codes[idx], col.categories)
            else:
                columns[name] = col[idx]
        return Dataset(columns)

    def select(self, names: Iterable[str]) -> Dataset:
        """Only the named columns, in that order."""
        return Dataset({name: self.columns[name] for name in names})

    def inferred_features(self) -> list[Feature]:
        """Feature types as stored: float arrays are numerical, encoded ones categorical."""
        return [
            Feature(name, "categorical" if isinstance(col, CategoricalColumn) else "numerical")
            for name, col in self.columns.items()
        ]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Iterable[object]]) -> Dataset:
        """Build from plain Python/numpy columns; numeric-looking columns become float64."""
        columns: dict[str, Column] = {}
        for name, values in data.items():
            if isinstance(values, CategoricalColumn):
                columns[name] = values
                continue
            arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
            if arr.dtype.kind in "biuf":
                columns[name] = arr.astype(np.float64, copy=False)
            else:
                columns[name] = CategoricalColumn.from_values(arr.tolist())
        return cls(columns)
