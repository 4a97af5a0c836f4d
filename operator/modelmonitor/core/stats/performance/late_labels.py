"""Late labels: join labels that arrive after the predictions to the window's rows by id.

Labels come back days later as ``(id, label)`` pairs keyed by the inference request's id
(the id KServe's payload logger and the probe carry). A window row whose id has no label
yet stays unlabelled: it is estimated, not realized (:mod:`.report`). A label whose id is
in no window row is counted and dropped; an id labelled twice keeps its last label (a
feed that resends a correction), and the count says how many. Vectorised: one sort of the
label ids and one binary search per window row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class LabelJoin:
    """The window's labels (missing where none arrived) and what the join found."""

    labels: np.ndarray
    """One entry per window row: the label, or NaN (numbers) / None (text) when none."""
    matched: int
    """Window rows that got a label."""
    unmatched_labels: int
    """Distinct labelled ids that are in no window row (dropped)."""
    duplicate_ids: int
    """Label rows whose id was labelled again later (the last label kept)."""
    missing_ids: int
    """Label rows without an id (dropped)."""

    def notes(self) -> list[str]:
        out = []
        if self.unmatched_labels:
            out.append(f"{self.unmatched_labels} labelled id(s) match no row of the window")
        if self.duplicate_ids:
            out.append(f"{self.duplicate_ids} label row(s) relabel an id: the last label kept")
        if self.missing_ids:
            out.append(f"{self.missing_ids} label row(s) without an id ignored")
        return out


def _ids(values: np.ndarray) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.bool_]]:
    """Ids as text, and where they are present (None and NaN are not)."""
    if values.dtype.kind in "fc":
        present = np.isfinite(values)
    elif values.dtype.kind == "O":
        none = np.asarray(values == None, dtype=bool)  # noqa: E711 (elementwise)
        present = ~none & np.asarray(values == values, dtype=bool)  # NaN != NaN
    else:
        present = np.ones(values.shape, dtype=bool)
    return values.astype(str), np.asarray(present, dtype=bool)


def join_labels(
    window_ids: np.ndarray, label_ids: np.ndarray, label_values: np.ndarray
) -> LabelJoin:
    """Each window row's label by id (see the module docstring).

    Ids compare as text (``7`` in both files matches; give both files the same id type).
    ``label_values`` keeps its kind: numbers give a float array with NaN for rows without
    a label, anything else an object array with None.
    """
    if label_ids.shape[0] != label_values.shape[0]:
        raise ValueError(f"{label_ids.shape[0]} label ids for {label_values.shape[0]} labels")
    numeric = label_values.dtype.kind in "biuf"
    wid, w_present = _ids(window_ids)
    lid, l_present = _ids(label_ids)
    missing_ids = int(np.count_nonzero(~l_present))
    lid, lval = lid[l_present], label_values[l_present]
    # the last label of each id: unique over the reversed rows finds last occurrences
    uniq, first_in_reversed = np.unique(lid[::-1], return_index=True)
    values = lval[::-1][first_in_reversed]
    out: np.ndarray = (
        np.full(wid.size, np.nan) if numeric else np.full(wid.size, None, dtype=object)
    )
    matched = np.zeros(wid.size, dtype=bool)
    if uniq.size:
        at = np.clip(np.searchsorted(uniq, wid), 0, uniq.size - 1)
        matched = (uniq[at] == wid) & w_present
        out[matched] = values[at[matched]]
    in_window = np.isin(uniq, wid[w_present])
    return LabelJoin(
        labels=out,
        matched=int(np.count_nonzero(matched)),
        unmatched_labels=int(uniq.size - np.count_nonzero(in_window)),
        duplicate_ids=int(lid.size - uniq.size),
        missing_ids=missing_ids,
    )
