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
