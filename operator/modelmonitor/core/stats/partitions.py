"""A current window too large for one process's memory: profiled partition by partition.

Two pure functions, shaped for map/reduce (docs/decisions.md):

* :func:`profile_partition` ``(table, schema) -> ReferenceProfile``: one partition (a
  file, a row group, a record batch: any :class:`~modelmonitor.core.dataset.Dataset`)
  summarised into a mergeable profile;
* :func:`merge` ``(profiles) -> ReferenceProfile``: the profile of the partitions'
  concatenation, in any order.

A single pod folds a stream of partitions with :func:`profile_stream` (memory: one
partition plus one profile, whatever the number of partitions); a distributed engine maps
:func:`profile_partition` over its workers and reduces with :func:`merge`.

What a window profile holds per feature (:class:`ProfileSchema` sets the sizes):

============================ ============================================================
part                         merged
============================ ============================================================
row, missing, +/-inf counts  exactly (integer sums)
min, max                     exactly
count, mean, M2              Chan et al.'s parallel update: equal to one pass up to float
                             rounding (relative ~1e-12 on the data sets in the tests)
finite values                the exact sorted sample while the total is at most
                             ``exact_limit`` (1,000), then a KLL sketch with ``k`` =
                             :data:`WINDOW_SKETCH_K` (1,000): every rank (CDF value) it
                             answers is within epsilon = :data:`WINDOW_RANK_EPSILON`
                             (0.28%, 99% confidence) of the true one, merged or not
category counts              exact up to ``category_cap`` (10,000) labels, then a
                             frequent-items sketch: each count within 0.085% of the
                             column's non-missing values
============================ ============================================================

The window's k is five times the saved reference profiles' 200 because the window is
where the tests look: a KS statistic read from a window sketch is within its epsilon of
the exact one, and 0.28% is a fifteenth of the KS critical value at n_eff = 1,000 (docs/
statistics.md measures the effect on each method).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from datasketches import kll_doubles_sketch

from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.stats.column_profile import DEFAULT_EXACT_LIMIT
from modelmonitor.core.stats.profile import ReferenceProfile

#: KLL size of a current window's numerical columns.
WINDOW_SKETCH_K = 1000
#: Normalised rank error of one CDF value read from a window sketch (99% confidence).
WINDOW_RANK_EPSILON: float = float(
    kll_doubles_sketch.get_normalized_rank_error(WINDOW_SKETCH_K, False)
)
#: Labels a categorical column counts exactly before it turns into a frequent-items sketch.
DEFAULT_CATEGORY_CAP = 10_000


@dataclass(frozen=True)
class ProfileSchema:
    """What each partition is profiled as: the features (names and types) and the sizes.

    Every partition of one window must be profiled with the same schema, or the profiles
    do not merge (ValueError).
    """

    features: tuple[Feature, ...]
    exact_limit: int | None = DEFAULT_EXACT_LIMIT
    sketch_k: int = WINDOW_SKETCH_K
    category_cap: int | None = DEFAULT_CATEGORY_CAP
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if not names:
            raise ValueError("a profile schema needs at least one feature")
        if len(set(names)) != len(names):
            raise ValueError(f"features listed twice in the schema: {names}")
        if not 8 <= self.sketch_k <= 65535:
            raise ValueError(f"sketch_k must lie in [8, 65535], got {self.sketch_k}")
        if self.category_cap is not None and self.category_cap < 1:
            raise ValueError(f"category_cap must be >= 1, got {self.category_cap}")
        object.__setattr__(self, "_names", frozenset(names))

    @property
    def rank_epsilon(self) -> float:
        """The stated rank error of this schema's KLL sketches (99% confidence)."""
        return float(kll_doubles_sketch.get_normalized_rank_error(self.sketch_k, False))

    def empty(self) -> ReferenceProfile:
        """The profile of no rows (the identity of :func:`merge`)."""
        return ReferenceProfile.from_chunks(
            (),
            self.features,
            exact_limit=self.exact_limit,
            sketch_k=self.sketch_k,
            category_cap=self.category_cap,
        )


def profile_partition(table: Dataset, schema: ProfileSchema) -> ReferenceProfile:
    """One partition's mergeable profile. Pure: no I/O, no state, the same for any worker.

    ``table`` must hold every feature of ``schema`` (a missing column is a ValueError);
    its other columns are ignored.
    """
    return ReferenceProfile.from_dataset(
        table,
        schema.features,
        exact_limit=schema.exact_limit,
        sketch_k=schema.sketch_k,
        category_cap=schema.category_cap,
    )


def merge(profiles: Iterable[ReferenceProfile], schema: ProfileSchema) -> ReferenceProfile:
    """The profile of the partitions' concatenation; the order does not matter beyond
    the sketches' stated error (exact parts are equal in any order)."""
    result = schema.empty()
    for part in profiles:
        result = result.merge(part)
    return result


def profile_stream(tables: Iterable[Dataset], schema: ProfileSchema) -> ReferenceProfile:
    """Fold a stream of partitions: at most one partition and one profile held at once."""
    return merge((profile_partition(t, schema) for t in tables), schema)
