"""Class labels as model quality and performance read them: one array whatever the column
type, missing values found, labels encoded as class indices, and back to JSON values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from modelmonitor.core.dataset import CategoricalColumn


def labels_array(y: object) -> np.ndarray:
    """A label column as one array (a categorical column's labels, None for missing)."""
    if isinstance(y, CategoricalColumn):
        return y.labels()
    return np.asarray(y)


def missing_mask(arr: np.ndarray) -> npt.NDArray[np.bool_]:
    """Where a label is missing: NaN or infinite numbers, None or NaN objects."""
    if arr.dtype.kind in "fc":
        return np.asarray(~np.isfinite(arr), dtype=bool)
    if arr.dtype.kind == "O":
        return np.fromiter(
            (v is None or (isinstance(v, float) and not math.isfinite(v)) for v in arr),
            dtype=bool,
            count=arr.size,
        )
    return np.zeros(arr.shape, dtype=bool)


def json_label(v: Any) -> str | float:
    """A class label as a JSON-friendly Python value (2.0 -> 2)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        return v
    f = float(v)
    return int(f) if f.is_integer() else f


def encode_labels(values: np.ndarray, classes: np.ndarray, what: str) -> npt.NDArray[np.intp]:
    """Each value's index in ``classes`` (numbers compared as numbers, else as text);
    ValueError naming ``what`` and up to three unknown labels."""
    if classes.dtype.kind in "biuf" and values.dtype.kind in "biuf":
        v, c = values.astype(np.float64), classes.astype(np.float64)
    else:
        v, c = values.astype(str), classes.astype(str)
    order = np.argsort(c, kind="stable")
    sc = c[order]
    at = np.searchsorted(sc, v)
    at = np.clip(at, 0, sc.size - 1)
    found = sc[at] == v
    if not found.all():
        unknown = np.unique(v[~found])[:3].tolist()
        raise ValueError(f"{what} has label(s) outside the classes: {unknown}")
    return np.asarray(order[at], dtype=np.intp)
