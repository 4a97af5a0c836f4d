"""analyze(): method choice, NaN/inf, insufficient data, correction, report shape."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.stats import METHOD_NAMES, ReferenceProfile, analyze, choose_method
from modelmonitor.core.stats.column_profile import CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.drift import AUTO_TEST_MAX_N, noise_floor


def data(n: int, *, shift: float = 0.0, seed: int = 0, p_yes: float = 0.3) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        {
            "amount": rng.normal(100.0 + 20.0 * shift, 20.0, n),
            "age": rng.normal(40.0, 10.0, n),
            "country": CategoricalColumn(
                rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1]).astype(np.int32),
                ("de", "fr", "it", "es"),
            ),
            "fraud": CategoricalColumn((rng.random(n) < p_yes).astype(np.int32), ("no", "yes")),
        }
    )


# --- report shape (docs/cli.md) -----------------------------------------------------------
def test_to_dict_has_exactly_the_design_keys_and_is_json() -> None:
    report = analyze(data(500), data(400, shift=1.0, seed=1))
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert {"drifted", "share", "drifted_features", "total_features"} <= set(d["dataset"])
    assert isinstance(d["dataset"]["drifted"], bool)
    assert isinstance(d["dataset"]["drifted_features"], int)
    for f in d["features"]:
        assert {"name", "type", "method", "statistic", "p_value", "threshold", "drifted"} <= set(f)
        assert isinstance(f["drifted"], bool)
        if f["method"] in ("wasserstein", "jensenshannon", "psi"):
            assert f["p_value"] is None
    assert [f["name"] for f in d["features"]] == ["amount", "age", "country", "fraud"]


def test_mean_shift_is_detected_and_unshifted_feature_is_not() -> None:
    report = analyze(data(800), data(800, shift=0.5, seed=1))
    assert report.feature("amount").drifted
    assert not report.feature("age").drifted
    assert report.dataset.drifted_features == 1
    assert report.dataset.total_features == 4
    assert report.dataset.share == 0.25
    assert not report.dataset.drifted  # 0.25 < drift_share 0.5
    assert analyze(data(800), data(800, shift=0.5, seed=1), drift_share=0.25).dataset.drifted


# --- auto ---------------------------------------------------------------------------------
def test_auto_small_reference_uses_tests() -> None:
    report = analyze(data(AUTO_TEST_MAX_N), data(300, seed=1))
    methods = {f.name: f.method for f in report.features}
    assert methods == {"amount": "ks", "age": "ks", "country": "chi2", "fraud": "ztest"}
    assert all(f.p_value is not None for f in report.features)


def test_auto_large_samples_use_distances() -> None:
    report = analyze(data(5000), data(5000, seed=1))  # n_eff = 2,500
    methods = {f.name: f.method for f in report.features}
    assert methods == {
        "amount": "wasserstein",
        "age": "wasserstein",
        "country": "jensenshannon",
        "fraud": "jensenshannon",
    }
    assert all(f.p_value is None and f.kind == "distance" for f in report.features)
    assert all(f.threshold == 0.1 for f in report.features)  # noise floor below default


def test_auto_small_window_against_large_raw_reference_uses_tests() -> None:
    # the raw reference is exact; n_eff = 20000 * 300 / 20300 < 1,000
    report = analyze(data(20_000), data(300, seed=1))
    methods = {f.name: f.method for f in report.features}
    assert methods == {"amount": "ks", "age": "ks", "country": "chi2", "fraud": "ztest"}


def test_auto_raises_distance_threshold_to_the_noise_floor_of_small_windows() -> None:
    prof = ReferenceProfile.from_dataset(data(20_000))  # sketched: auto must use distances
    report = analyze(prof, data(200, seed=1))
    n_eff = 20_000 * 200 / 20_200
    age = report.feature("age")
    assert age.method == "wasserstein"
    assert age.threshold == pytest.approx(3.5 / math.sqrt(n_eff))
    country = report.feature("country")  # 4 categories: chi-squared with 3 dof
    assert country.method == "chi2"  # counts are exact, n_eff < 1,000
    # an explicit threshold is the user's: no floor
    assert analyze(prof, data(200, seed=1), threshold=0.1).feature("age").threshold == 0.1
    # same distribution, 200 rows: the floor keeps the noise from flagging
    assert not age.drifted


def test_noise_floor_matches_the_chi_squared_approximation() -> None:
    # JS distance over 20 bins, n_eff = 500: sqrt(chi2_19(0.99) / (8 ln 2 * 500)) = 0.114,
    # the 99th percentile measured on 300 no-shift windows (docs/statistics.md: 0.113-0.115)
    q = sps.chi2.ppf(0.99, 19)
    assert noise_floor("jensenshannon", 500, 20) == pytest.approx(
        math.sqrt(q / (8 * math.log(2) * 500)), rel=1e-12
    )
    assert noise_floor("jensenshannon", 500, 20) == pytest.approx(0.114, abs=0.001)
    assert noise_floor("wasserstein", 10_000, 0) == pytest.approx(0.035)
    assert noise_floor("psi", 10, 10) == 0.0


def test_auto_on_a_sketched_profile_picks_distances() -> None:
    prof = ReferenceProfile.from_dataset(data(5000))
    assert not prof["amount"].exact  # type: ignore[union-attr]
    report = analyze(prof, data(100, seed=1))
    assert report.feature("amount").method == "wasserstein"


def test_auto_binary_small_counts_use_fisher() -> None:
    ref = CategoricalProfile("fraud", {"no": 20, "yes": 2}, 0)
    small = CategoricalColumn(np.array([0] * 10 + [1], dtype=np.int32), ("no", "yes"))
    assert choose_method(ref, small) == "fisher"
    bigger = CategoricalColumn(np.array([0] * 60 + [1] * 40, dtype=np.int32), ("no", "yes"))
    big = CategoricalProfile("fraud", {"no": 400, "yes": 300}, 0)
    assert choose_method(big, bigger) == "ztest"


def test_explicit_test_method_on_raw_large_reference_keeps_exact_sample() -> None:
    report = analyze(
        data(5000), data(300, seed=1), method="ks", features=[Feature("age", "numerical")]
    )
    assert report.feature("age").p_value is not None


def test_explicit_test_method_on_sketched_profile_is_a_clear_error() -> None:
    prof = ReferenceProfile.from_dataset(data(5000))
    with pytest.raises(ValueError, match="needs the exact reference sample"):
        analyze(prof, data(300), method="ks", features=[Feature("age", "numerical")])


# --- errors -------------------------------------------------------------------------------
def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown drift method 'kstest'; valid: auto, anderson"):
        analyze(data(10), data(10), method="kstest")
    assert "wasserstein" in METHOD_NAMES
    assert "chi2" in METHOD_NAMES


def test_method_that_does_not_fit_the_type() -> None:
    with pytest.raises(ValueError, match=r"'ks' does not apply to categorical features .*country"):
        analyze(data(50), data(50), method="ks")
    with pytest.raises(ValueError, match="'chi2' does not apply to numerical"):
        analyze(data(50), data(50), methods={"age": "chi2"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"correction": "holm"}, "unknown correction"),
        ({"alpha": 0.0}, "alpha"),
        ({"drift_share": 0.0}, "drift_share"),
        ({"threshold": -1.0}, "threshold"),
        ({"features": [Feature("nope", "numerical")]}, "no feature"),
        ({"features": [Feature("country", "numerical")]}, "declared numerical"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        analyze(data(20), data(20), **kwargs)  # type: ignore[arg-type]


# --- missing values, infinities, insufficient data ----------------------------------------
def test_nan_and_inf_are_dropped_and_counted() -> None:
    ref, cur = data(500), data(400, seed=1)
    amount = np.array(cur["amount"], copy=True)
    amount[:7] = np.nan
    amount[7:10] = np.inf
    amount[10] = -np.inf
    codes = cur["country"].codes.copy()  # type: ignore[union-attr]
    codes[:5] = -1
    cur2 = Dataset(
        {
            **cur.columns,
            "amount": amount,
            "country": CategoricalColumn(codes, ("de", "fr", "it", "es")),
        }
    )
    report = analyze(ref, cur2)
    f = report.feature("amount")
    assert (f.n_current, f.current_missing, f.current_inf) == (389, 7, 4)
    clean = analyze(
        ref, Dataset({"amount": np.asarray(amount)[11:]}), features=[Feature("amount", "numerical")]
    )
    assert f.statistic == clean.feature("amount").statistic
    c = report.feature("country")
    assert (c.n_current, c.current_missing) == (395, 5)


def test_empty_current_window_gives_insufficient_data() -> None:
    ref = data(500)
    cur = Dataset(
        {
            "amount": np.full(5, np.nan),
            "age": np.array([1.0, np.inf, np.nan, -np.inf, np.nan]),
            "country": CategoricalColumn(np.full(5, -1, dtype=np.int32), ("de",)),
        }
    )
    report = analyze(ref, cur)
    for name in ("amount", "age", "country"):
        f = report.feature(name)
        assert f.status == "insufficient_data"
        assert not f.drifted
        assert f.statistic is None
        assert f.reason
    age = report.feature("age")
    assert (age.n_current, age.current_missing, age.current_inf) == (1, 2, 2)
    assert report.feature("fraud").status == "missing_column"
    assert report.dataset.total_features == 0
    assert not report.dataset.drifted
    assert set(report.skipped) == {"amount", "age", "country", "fraud"}
    json.dumps(report.to_dict(), allow_nan=False)


def test_reference_counts_are_reported() -> None:
    ref = data(300)
    amount = np.array(ref["amount"], copy=True)
    amount[:3] = np.nan
    amount[3] = np.inf
    report = analyze(Dataset({"amount": amount}), data(100, seed=2))
    f = report.feature("amount")
    assert (f.n_reference, f.reference_missing, f.reference_inf) == (296, 3, 1)


# --- correction ---------------------------------------------------------------------------
def test_correction_applies_to_tests_only() -> None:
    ref, cur = data(500), data(500, shift=0.2, seed=3)
    raw = analyze(ref, cur, correction="none")
    bonf = analyze(ref, cur, correction="bonferroni")
    k = len(bonf.features)
    for a, b in zip(raw.features, bonf.features, strict=True):
        assert a.p_value == b.p_value
        assert b.p_value_adjusted == pytest.approx(min(1.0, k * a.p_value))  # type: ignore[operator]
        assert b.drifted == (b.p_value_adjusted < 0.05)  # type: ignore[operator]
    mixed = analyze(ref, cur, methods={"amount": "wasserstein"})
    assert mixed.feature("amount").p_value_adjusted is None
    age = mixed.feature("age")
    assert age.p_value_adjusted == pytest.approx(min(1.0, 3 * age.p_value))  # type: ignore[operator]


def test_threshold_overrides() -> None:
    ref, cur = data(5000), data(5000, shift=0.15, seed=3)
    assert analyze(ref, cur, threshold=0.01).feature("amount").threshold == 0.01
    assert analyze(ref, cur, method="psi").feature("amount").threshold == 0.2
    num = [Feature("amount", "numerical")]
    low = analyze(ref, cur, method="ttest", threshold=0.01, features=num).feature("amount")
    assert low.threshold == 0.01
    assert low.kind == "test"


def test_per_feature_threshold_flips_that_feature_only() -> None:
    # wasserstein (normed) of amount with a 0.15 sd shift is about 0.15: the default 0.1
    # flags it; a looser 0.5 for amount alone clears it, a stricter 0.01 for age flags age
    ref, cur = data(5000), data(5000, shift=0.15, seed=3)
    nums = [Feature("amount", "numerical"), Feature("age", "numerical")]
    base = analyze(ref, cur, method="wasserstein", features=nums)
    assert base.feature("amount").drifted
    assert not base.feature("age").drifted
    own = analyze(
        ref, cur, method="wasserstein", features=nums, thresholds={"amount": 0.5, "age": 0.01}
    )
    assert (own.feature("amount").threshold, own.feature("amount").drifted) == (0.5, False)
    assert (own.feature("age").threshold, own.feature("age").drifted) == (0.01, True)
    # a test's threshold is its level: 1e-300 clears a feature whose p-value is ~1e-30
    num = [Feature("amount", "numerical")]
    strict = analyze(ref, cur, method="ks", features=num, thresholds={"amount": 1e-300})
    assert not strict.feature("amount").drifted
    assert analyze(ref, cur, method="ks", features=num).feature("amount").drifted


def test_global_threshold_belongs_to_the_global_method() -> None:
    # drift.threshold 0.01 is ks's level; a feature given psi takes psi's default (0.2),
    # not 0.01 (which would flag any noise), unless it has a threshold of its own
    ref, cur = data(5000), data(5000, seed=3)
    nums = [Feature("amount", "numerical"), Feature("age", "numerical")]
    kw: dict[str, Any] = {"method": "ks", "threshold": 0.01, "features": nums}
    report = analyze(ref, cur, methods={"amount": "psi"}, **kw)
    assert report.feature("age").threshold == 0.01
    assert report.feature("amount").threshold == 0.2
    own = analyze(ref, cur, methods={"amount": "psi"}, thresholds={"amount": 0.3}, **kw)
    assert own.feature("amount").threshold == 0.3
    with pytest.raises(ValueError, match="threshold"):
        analyze(ref, cur, thresholds={"amount": -1.0})


def test_exact_profile_and_raw_reference_agree() -> None:
    ref, cur = data(800), data(700, shift=0.3, seed=4)
    prof = ReferenceProfile.from_json(ReferenceProfile.from_dataset(ref).to_json())
    assert analyze(prof, cur).to_dict() == analyze(ref, cur).to_dict()


def test_sketched_profile_agrees_with_raw_reference_within_sketch_error() -> None:
    ref, cur = data(20_000), data(5000, shift=0.3, seed=4)
    prof = ReferenceProfile.from_json(ReferenceProfile.from_dataset(ref).to_json())
    a, b = analyze(prof, cur), analyze(ref, cur)
    for fa, fb in zip(a.features, b.features, strict=True):
        assert (fa.method, fa.drifted) == (fb.method, fb.drifted)
        assert fa.statistic == pytest.approx(fb.statistic, abs=0.02)


def test_raw_reference_results_are_deterministic() -> None:
    ref, cur = data(5000), data(700, shift=0.3, seed=4)
    assert analyze(ref, cur).to_dict() == analyze(ref, cur).to_dict()


def test_prediction_drift_uses_the_same_machinery() -> None:
    rng = np.random.default_rng(9)
    ref = Dataset(
        {
            "proba": rng.beta(2, 5, 800),
            "label": CategoricalColumn((rng.random(800) < 0.3).astype(np.int32), ("0", "1")),
        }
    )
    cur = Dataset(
        {
            "proba": rng.beta(3, 4, 600),
            "label": CategoricalColumn((rng.random(600) < 0.45).astype(np.int32), ("0", "1")),
        }
    )
    report = analyze(ref, cur)
    assert report.feature("proba").drifted
    assert report.feature("label").drifted


def test_numerical_profile_type_is_reported() -> None:
    prof = ReferenceProfile.from_dataset(data(50))
    assert isinstance(prof["age"], NumericalProfile)
    assert [f.type for f in analyze(prof, data(50)).features] == [
        "numerical", "numerical", "categorical", "categorical",
    ]  # fmt: skip


def test_nan_result_never_votes(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from modelmonitor.core.stats.methods import NUMERICAL
    from modelmonitor.core.stats.results import TestResult

    nan_ks = replace(NUMERICAL["ks"], func=lambda r, c: TestResult(float("nan"), float("nan")))
    monkeypatch.setitem(NUMERICAL, "ks", nan_ks)
    f = analyze(data(100), data(100, seed=1), method="ks", features=[Feature("age", "numerical")])
    assert f.feature("age").status == "insufficient_data"
    assert not f.feature("age").drifted
    assert "degenerate" in (f.feature("age").reason or "")


def test_current_type_mismatch_is_reported_not_raised() -> None:
    cur = Dataset(
        {"age": CategoricalColumn(np.zeros(10, dtype=np.int32), ("forty",)), "amount": np.ones(10)}
    )
    report = analyze(data(100), cur, features=[Feature("age", "numerical")])
    f = report.feature("age")
    assert f.status == "type_mismatch"
    assert not f.drifted
    assert report.dataset.total_features == 0
