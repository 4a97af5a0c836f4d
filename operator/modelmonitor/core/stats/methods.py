"""The registry of drift methods: name -> kind, feature type, default threshold.

A method is a **test** (has a p-value; the feature drifts when its p-value, after the
multiple-testing correction, is below ``alpha``, default 0.05) or a **distance** (no
p-value; the feature drifts when ``statistic >= threshold``).

Default thresholds (unit-free; see docs/statistics.md for what each means):

=============== ============ ========== =================================================
method          feature type kind       default threshold
=============== ============ ========== =================================================
ks              numerical    test       alpha 0.05
anderson        numerical    test       alpha 0.05
cramervonmises  numerical    test       alpha 0.05
ttest           numerical    test       alpha 0.05
wasserstein     numerical    distance   0.1 (reference standard deviations)
energy          numerical    distance   0.1 (normed by reference std)
psi             both         distance   0.2
jensenshannon   both         distance   0.1 (base 2)
hellinger       numerical    distance   0.1
kl              numerical    distance   0.1 (nats)
chi2            categorical  test       alpha 0.05
fisher          categorical  test       alpha 0.05 (at most 2 categories)
ztest           categorical  test       alpha 0.05 (at most 2 categories)
=============== ============ ========== =================================================

Unknown names and names that do not fit the feature's type raise ValueError; there is
no silent fallback.

Largest threshold per method (:func:`threshold_problem`): a p-value level is below 1 (a
level of 1 or more flags identical data: 5 meant as 5% is 0.05); Jensen-Shannon and
Hellinger lie in [0, 1], and ``auto`` may pick Jensen-Shannon, so at most 1; the
unbounded distances (Wasserstein and energy in reference standard deviations, PSI, KL)
at most 10, far above any threshold in use (PSI's "significant" band is 0.25), so a
value written as a percentage (25 for 0.25) is caught. The CRD states the same limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from modelmonitor.core.dataset import FeatureType
from modelmonitor.core.stats import categorical, numerical
from modelmonitor.core.stats.results import MethodResult

MethodKind: TypeAlias = Literal["test", "distance"]

DEFAULT_ALPHA = 0.05
AUTO = "auto"


@dataclass(frozen=True)
class MethodSpec:
    """One drift method for one feature type."""

    name: str
    feature_type: FeatureType
    kind: MethodKind
    default_threshold: float
    """Significance level for tests, distance threshold for distances."""
    needs_exact: bool
    """True when the method needs the exact reference sample (not a sketch)."""
    min_n: int
    """Fewest valid values per sample (2 for every method); fewer gives status
    ``insufficient_data`` in :func:`~modelmonitor.core.stats.drift.analyze`."""
    func: Callable[[Any, Any], MethodResult]


def _spec(
    name: str,
    ftype: FeatureType,
    kind: MethodKind,
    threshold: float,
    func: Callable[[Any, Any], MethodResult],
    *,
    needs_exact: bool = False,
    min_n: int = 2,
) -> MethodSpec:
    return MethodSpec(name, ftype, kind, threshold, needs_exact, min_n, func)


NUMERICAL: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        _spec("ks", "numerical", "test", DEFAULT_ALPHA, numerical.ks, needs_exact=True),
        _spec("anderson", "numerical", "test", DEFAULT_ALPHA, numerical.anderson,
              needs_exact=True),
        _spec("cramervonmises", "numerical", "test", DEFAULT_ALPHA, numerical.cramervonmises,
              needs_exact=True),
        _spec("ttest", "numerical", "test", DEFAULT_ALPHA, numerical.ttest),
        _spec("wasserstein", "numerical", "distance", 0.1, numerical.wasserstein),
        _spec("energy", "numerical", "distance", 0.1, numerical.energy),
        _spec("psi", "numerical", "distance", 0.2, numerical.psi),
        _spec("jensenshannon", "numerical", "distance", 0.1, numerical.jensenshannon),
        _spec("hellinger", "numerical", "distance", 0.1, numerical.hellinger),
        _spec("kl", "numerical", "distance", 0.1, numerical.kl),
    )
}  # fmt: skip

CATEGORICAL: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        _spec("chi2", "categorical", "test", DEFAULT_ALPHA, categorical.chi2),
        _spec("fisher", "categorical", "test", DEFAULT_ALPHA, categorical.fisher),
        _spec("ztest", "categorical", "test", DEFAULT_ALPHA, categorical.ztest),
        _spec("psi", "categorical", "distance", 0.2, categorical.psi),
        _spec("jensenshannon", "categorical", "distance", 0.1, categorical.jensenshannon),
    )
}

REGISTRY: dict[FeatureType, dict[str, MethodSpec]] = {
    "numerical": NUMERICAL,
    "categorical": CATEGORICAL,
}

#: Every accepted method name (what ``spec.drift.method`` may say).
METHOD_NAMES: tuple[str, ...] = (AUTO, *sorted(set(NUMERICAL) | set(CATEGORICAL)))


#: Methods with a p-value: their threshold is a significance level, below 1.
TEST_METHODS: tuple[str, ...] = tuple(
    sorted({n for reg in (NUMERICAL, CATEGORICAL) for n, s in reg.items() if s.kind == "test"})
)
#: Methods whose threshold is at most :data:`BOUNDED_MAX` (the distance lies in [0, 1];
#: ``auto`` may pick Jensen-Shannon).
BOUNDED_METHODS: tuple[str, ...] = (AUTO, "hellinger", "jensenshannon")
BOUNDED_MAX = 1.0
#: The largest threshold of the unbounded distances (wasserstein, energy, psi, kl).
UNBOUNDED_MAX = 10.0


def threshold_problem(method: str, threshold: float) -> str | None:
    """None when ``threshold`` fits ``method``'s scale, else what is wrong (see above)."""
    if method in TEST_METHODS:
        if threshold < 1.0:
            return None
        return (
            f"{threshold:g} is not a significance level for the test {method!r}: it must be "
            "below 1 (0.05 means 5%)"
        )
    if method in BOUNDED_METHODS:
        if threshold <= BOUNDED_MAX:
            return None
        what = "auto's distances (jensenshannon lies in [0, 1])" if method == AUTO else method
        return f"{threshold:g} is above {BOUNDED_MAX:g}, the largest threshold of {what}"
    if threshold <= UNBOUNDED_MAX:
        return None
    return f"{threshold:g} is above {UNBOUNDED_MAX:g}, the largest threshold of {method}"


def validate_method_name(name: str) -> str:
    """Raise ValueError listing the valid names when ``name`` is unknown."""
    if name not in METHOD_NAMES:
        raise ValueError(f"unknown drift method {name!r}; valid: {', '.join(METHOD_NAMES)}")
    return name


def get_method(name: str, feature_type: FeatureType, *, feature: str = "") -> MethodSpec:
    """The spec of ``name`` for ``feature_type``; ValueError when unknown or unfit."""
    validate_method_name(name)
    if name == AUTO:
        raise ValueError(
            "'auto' is resolved per feature by modelmonitor.core.stats.drift.choose_method"
        )
    spec = REGISTRY[feature_type].get(name)
    if spec is None:
        fits = ", ".join(sorted(REGISTRY[feature_type]))
        where = f" (feature {feature!r})" if feature else ""
        raise ValueError(
            f"method {name!r} does not apply to {feature_type} features{where}; "
            f"methods for {feature_type} features: {fits}, or auto"
        )
    return spec
