"""Reference-vs-current distributions for reports: shared histogram bins, category shares.

A chart that compares two distributions must bin both the same way, so the bins are
fixed here once per feature: equal-width bins over the reference's range, widened to the
bulk (the central 99%) of the current window so that a shifted window is seen rather
than piled into one end bin. Current values beyond that (far outliers) are counted in the
end bins and reported as ``clipped``. The reference's shares come from its profile's CDF
(the exact sorted sample, or the quantile sketch of a saved profile), so a chart needs
no raw reference data. Equal-width bins rather than the profile's decile (PSI) bins: on
decile bins the reference is flat by construction and the eye reads bar heights, not
areas.

Categorical features show the categories with the largest share in either data set (at
most ``max_categories``); the rest are summed into one "(N others)" bar, which the report
says. Pure: numpy only, no plotting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Column, Feature, FloatArray
from modelmonitor.core.stats.column_profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericalProfile,
)
from modelmonitor.core.stats.profile import ReferenceProfile

#: Bins of a numerical histogram.
DEFAULT_BINS = 20
#: Bars of a categorical chart before the rest is summed into "other".
DEFAULT_MAX_CATEGORIES = 20
#: Share of the current window's values at each end allowed to widen the range.
CURRENT_TAIL = 0.005


@dataclass(frozen=True)
class NumericalHistogram:
    """Shares of the finite values per bin, reference and current, on the same edges."""

    name: str
    edges: FloatArray
    """``n_bins + 1`` increasing edges; bin i is ``(edges[i], edges[i+1]]`` (the first
    bin also holds ``edges[0]``)."""
    reference: FloatArray
    current: FloatArray
    n_reference: int
    n_current: int
    clipped: int
    """Current values beyond the edges, counted in the end bins."""
    type: str = "numerical"


@dataclass(frozen=True)
class CategoricalBars:
    """Shares of the non-missing values per category, reference and current."""

    name: str
    labels: tuple[str, ...]
    reference: FloatArray
    current: FloatArray
    n_reference: int
    n_current: int
    other_categories: int
    """Categories summed into the last bar (labelled "(N others)"); 0 when none."""
    type: str = "categorical"


Distribution = NumericalHistogram | CategoricalBars


def distributions(
    reference: ReferenceProfile,
    current: dict[str, Column] | None,
    features: Sequence[Feature],
    *,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> dict[str, Distribution]:
    """One distribution per feature that both sides have with the reference's type.

    A feature missing from ``current``, or of another type there, has none (the report
    explains it from the drift and data-quality results).
    """
    if bins < 1 or max_categories < 1:
        raise ValueError("bins and max_categories must be >= 1")
    current = current or {}
    out: dict[str, Distribution] = {}
    for f in features:
        if f.name not in reference or f.name not in current:
            continue
        prof, col = reference[f.name], current[f.name]
        dist = _distribution(prof, col, bins=bins, max_categories=max_categories)
        if dist is not None:
            out[f.name] = dist
    return out


def _distribution(
    prof: ColumnProfile, col: Column, *, bins: int, max_categories: int
) -> Distribution | None:
    if isinstance(prof, NumericalProfile):
        if isinstance(col, CategoricalColumn):
            return None
        return numerical_histogram(prof, np.asarray(col, dtype=np.float64), bins=bins)
    if not isinstance(col, CategoricalColumn):
        return None
    return categorical_bars(prof, col, max_categories=max_categories)


def numerical_histogram(
    prof: NumericalProfile, values: FloatArray, *, bins: int = DEFAULT_BINS
) -> NumericalHistogram | None:
    """Shared equal-width bins (see the module docstring); None without finite values."""
    cur = np.sort(values[np.isfinite(values)])
    if prof.n == 0 and cur.size == 0:
        return None
    lo, hi = _range(prof, cur)
    if hi <= lo:  # a single value on both sides: one bin around it
        pad = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - pad, hi + pad
        bins = 1
    edges = np.linspace(lo, hi, bins + 1)
    inner = edges[1:-1]
    if prof.n:
        cum = np.concatenate([[0.0], prof.cdf(inner), [1.0]])
        ref = np.clip(np.diff(cum), 0.0, None)
        ref = ref / ref.sum() if ref.sum() > 0 else ref
    else:
        ref = np.zeros(bins)
    if cur.size:
        below = np.searchsorted(cur, inner, side="right")
        counts = np.diff(np.concatenate([[0], below, [cur.size]]))
        cur_shares = counts / cur.size
    else:
        cur_shares = np.zeros(bins)
    clipped = int(np.count_nonzero(cur < lo) + np.count_nonzero(cur > hi))
    return NumericalHistogram(
        prof.name,
        edges,
        np.asarray(ref, dtype=np.float64),
        np.asarray(cur_shares, dtype=np.float64),
        prof.n,
        int(cur.size),
        clipped,
    )


def _range(prof: NumericalProfile, cur: FloatArray) -> tuple[float, float]:
    """The reference's [min, max], widened to the current window's central 99%."""
    ends: list[float] = []
    if prof.n:
        ends += [prof.min, prof.max]
    if cur.size:
        q = np.quantile(cur, [CURRENT_TAIL, 1 - CURRENT_TAIL], method="inverted_cdf")
        ends += [float(q[0]), float(q[1])]
    lo, hi = min(ends), max(ends)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # pragma: no cover - finite inputs
        raise ValueError("histogram range is not finite")
    return lo, hi


def categorical_bars(
    prof: CategoricalProfile,
    col: CategoricalColumn,
    *,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> CategoricalBars:
    """Category shares on both sides; the largest first, the rest as one "other" bar."""
    valid = col.codes[col.codes >= 0]
    cur_counts = np.bincount(valid, minlength=len(col.categories))
    current = {c: int(n) for c, n in zip(col.categories, cur_counts, strict=True) if n}
    n_ref, n_cur = prof.n, int(valid.size)
    labels = list(dict.fromkeys([*prof.counts, *current]))
    ref_share = np.array([prof.counts.get(c, 0) / max(n_ref, 1) for c in labels])
    cur_share = np.array([current.get(c, 0) / max(n_cur, 1) for c in labels])
    order = sorted(range(len(labels)), key=lambda i: (-max(ref_share[i], cur_share[i]), labels[i]))
    order = [i for i in order if ref_share[i] > 0 or cur_share[i] > 0]
    shown, rest = order[:max_categories], order[max_categories:]
    if rest:
        shown = order[: max_categories - 1] if max_categories > 1 else []
        rest = order[len(shown) :]
    ref_out = [ref_share[i] for i in shown]
    cur_out = [cur_share[i] for i in shown]
    out_labels = [labels[i] for i in shown]
    if rest:
        out_labels.append(f"({len(rest)} others)")
        ref_out.append(float(sum(ref_share[i] for i in rest)))
        cur_out.append(float(sum(cur_share[i] for i in rest)))
    return CategoricalBars(
        prof.name,
        tuple(out_labels),
        np.asarray(ref_out, dtype=np.float64),
        np.asarray(cur_out, dtype=np.float64),
        n_ref,
        n_cur,
        len(rest),
    )
