"""Reference profiles: round-trip, size, merge of shards, accuracy of the summaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.stats import numerical as num
from modelmonitor.core.stats.column_profile import CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.profile import PROFILE_VERSION, ReferenceProfile

RNG = np.random.default_rng(7)
MiB = 1024 * 1024
#: KLL (k=200) normalised rank error bound for all quantiles at once, 99% confidence
#: (datasketches: kll_doubles_sketch(200).normalized_rank_error(True) = 0.0165).
KLL_ALL_RANKS_ERROR = 0.0165


def mixed(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, n)
    x[rng.random(n) < 0.01] = np.nan
    x[rng.random(n) < 0.001] = np.inf
    codes = rng.integers(-1, 4, n).astype(np.int32)
    return Dataset(
        {
            "x": x,
            "y": rng.lognormal(0.0, 1.0, n),
            "c": CategoricalColumn(codes, ("red", "green", "blue", "black")),
        }
    )


def assert_same_profile(a: ReferenceProfile, b: ReferenceProfile) -> None:
    assert a.to_dict() == b.to_dict()


# --- basic content -----------------------------------------------------------------------
def test_numerical_profile_counts_and_moments() -> None:
    x = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0, 6.0])
    p = NumericalProfile.from_values("x", x)
    assert (p.n, p.n_missing, p.n_pos_inf, p.n_neg_inf, p.n_total) == (4, 1, 1, 1, 7)
    assert (p.min, p.max, p.mean) == (1.0, 6.0, 3.0)
    assert p.std == pytest.approx(np.std([1.0, 2.0, 3.0, 6.0]))
    assert p.variance == pytest.approx(np.var([1.0, 2.0, 3.0, 6.0], ddof=1))
    assert p.missing_share == pytest.approx(1 / 7)
    np.testing.assert_array_equal(p.values, [1.0, 2.0, 3.0, 6.0])


def test_large_column_is_sketched_and_small_one_exact() -> None:
    assert NumericalProfile.from_values("x", RNG.normal(size=1000)).exact
    assert not NumericalProfile.from_values("x", RNG.normal(size=1001)).exact
    assert NumericalProfile.from_values("x", RNG.normal(size=5000), exact_limit=None).exact


def test_categorical_profile_counts() -> None:
    col = CategoricalColumn(np.array([0, 1, 1, -1, 2], dtype=np.int32), ("a", "b", "c"))
    p = CategoricalProfile.from_column("c", col)
    assert dict(p.counts) == {"a": 1, "b": 2, "c": 1}
    assert (p.n, p.n_missing) == (4, 1)


# --- round trip and size -----------------------------------------------------------------
@pytest.mark.parametrize("n", [500, 20_000])
def test_json_round_trip_is_lossless(n: int) -> None:
    prof = ReferenceProfile.from_dataset(mixed(n))
    back = ReferenceProfile.from_json(prof.to_json())
    assert_same_profile(prof, back)
    x, y = prof["x"], back["x"]
    assert isinstance(x, NumericalProfile)
    assert isinstance(y, NumericalProfile)
    np.testing.assert_array_equal(x.quantiles([0.1, 0.5, 0.9]), y.quantiles([0.1, 0.5, 0.9]))
    if x.values is not None:
        assert y.values is not None
        np.testing.assert_array_equal(x.values, y.values)  # bit-exact


def test_save_and_load(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "profile.json"
    prof = ReferenceProfile.from_dataset(mixed(3000))
    prof.save(path)
    assert_same_profile(prof, ReferenceProfile.load(path))


def test_saved_profile_is_versioned_json() -> None:
    d = json.loads(ReferenceProfile.from_dataset(mixed(100)).to_json())
    assert d["format"] == "modelmonitor.profile"
    assert d["version"] == PROFILE_VERSION
    d["version"] = PROFILE_VERSION + 1
    with pytest.raises(ValueError, match="unsupported profile version"):
        ReferenceProfile.from_dict(d)
    with pytest.raises(ValueError, match="not valid JSON"):
        ReferenceProfile.from_json("{not json")
    with pytest.raises(ValueError, match="not a modelmonitor profile"):
        ReferenceProfile.from_json('{"format": "other"}')


@pytest.mark.parametrize("n", [1000, 20_000])
def test_profile_of_100_features_fits_a_configmap(n: int) -> None:
    # n = 1000: every column keeps its exact sample (the worst case);
    # n = 20,000: every column is a sketch (its size no longer grows with n).
    rng = np.random.default_rng(1)
    cols: dict[str, object] = {}
    for i in range(90):
        cols[f"n{i}"] = rng.normal(size=n if i < 5 else 1000)
    for i in range(10):
        cols[f"c{i}"] = CategoricalColumn(
            rng.integers(0, 50, 1000).astype(np.int32), tuple(f"cat-{j}" for j in range(50))
        )
    ds = Dataset({k: v for k, v in cols.items() if k.startswith("c")})  # categoricals
    prof_c = ReferenceProfile.from_dataset(ds)
    numeric = {
        f"n{i}": NumericalProfile.from_values(f"n{i}", rng.normal(size=n)) for i in range(90)
    }
    prof = ReferenceProfile({**numeric, **prof_c.columns}, n)
    size = len(prof.to_json().encode())
    assert size < MiB, size


# --- merge -------------------------------------------------------------------------------
def test_merge_of_exact_shards_equals_whole() -> None:
    a, b = mixed(300, seed=1), mixed(400, seed=2)
    whole = Dataset(
        {
            "x": np.concatenate([a["x"], b["x"]]),  # type: ignore[list-item]
            "y": np.concatenate([a["y"], b["y"]]),  # type: ignore[list-item]
            "c": CategoricalColumn(
                np.concatenate([a["c"].codes, b["c"].codes]),  # type: ignore[union-attr]
                ("red", "green", "blue", "black"),
            ),
        }
    )
    merged = ReferenceProfile.from_dataset(a).merge(ReferenceProfile.from_dataset(b))
    direct = ReferenceProfile.from_dataset(whole)
    for name in ("x", "y"):
        m, d = merged[name], direct[name]
        assert isinstance(m, NumericalProfile)
        assert isinstance(d, NumericalProfile)
        np.testing.assert_array_equal(m.values, d.values)
        assert (m.n, m.n_missing, m.n_pos_inf, m.min, m.max) == (
            d.n, d.n_missing, d.n_pos_inf, d.min, d.max,
        )  # fmt: skip
        assert m.mean == pytest.approx(d.mean, rel=1e-12)
        assert m.m2 == pytest.approx(d.m2, rel=1e-10)
    assert dict(merged["c"].counts) == dict(direct["c"].counts)  # type: ignore[union-attr]
    assert merged.n_rows == 700


def test_merge_of_sketched_shards_approximates_whole_within_rank_error() -> None:
    rng = np.random.default_rng(3)
    shards = [rng.lognormal(0.0, 1.0, 30_000) for _ in range(4)]
    whole = np.concatenate(shards)
    profs = [ReferenceProfile.from_dataset(Dataset({"x": s})) for s in shards]
    merged = profs[0].merge(profs[1]).merge(profs[2].merge(profs[3]))["x"]
    assert isinstance(merged, NumericalProfile)
    assert not merged.exact
    assert merged.n == whole.size
    assert merged.mean == pytest.approx(whole.mean(), rel=1e-12)
    assert merged.std == pytest.approx(whole.std(), rel=1e-10)
    assert (merged.min, merged.max) == (whole.min(), whole.max())
    ranks = np.linspace(0.01, 0.99, 99)
    true_rank = np.searchsorted(np.sort(whole), merged.quantiles(ranks), side="right")
    assert np.max(np.abs(true_rank / whole.size - ranks)) <= 1.5 * KLL_ALL_RANKS_ERROR


def test_exact_shards_crossing_the_limit_become_a_sketch() -> None:
    a = ReferenceProfile.from_dataset(Dataset({"x": RNG.normal(size=600)}))
    b = ReferenceProfile.from_dataset(Dataset({"x": RNG.normal(size=600)}))
    merged = a.merge(b)["x"]
    assert isinstance(merged, NumericalProfile)
    assert not merged.exact
    assert merged.n == 1200


def test_from_chunks_equals_from_dataset_for_exact_data() -> None:
    data = mixed(900)
    chunks = [
        Dataset({k: _slice(v, i, i + 250) for k, v in data.columns.items()})
        for i in range(0, 900, 250)
    ]
    streamed = ReferenceProfile.from_chunks(chunks).to_dict()
    direct = ReferenceProfile.from_dataset(data).to_dict()
    for s_col, d_col in zip(streamed.pop("columns"), direct.pop("columns"), strict=True):
        for key in ("mean", "m2"):  # merged moments agree up to float rounding
            assert s_col.pop(key, 0.0) == pytest.approx(d_col.pop(key, 0.0), rel=1e-12)
        assert s_col == d_col
    assert streamed == direct


def test_merge_refuses_different_settings_or_features() -> None:
    a = ReferenceProfile.from_dataset(mixed(10), exact_limit=10)
    with pytest.raises(ValueError, match="different settings"):
        a.merge(ReferenceProfile.from_dataset(mixed(10)))
    with pytest.raises(ValueError, match="different features"):
        ReferenceProfile.from_dataset(mixed(10)).merge(
            ReferenceProfile.from_dataset(Dataset({"x": np.zeros(3)}))
        )


def test_declared_numerical_categorical_column_is_a_type_error() -> None:
    with pytest.raises(ValueError, match="declared numerical"):
        ReferenceProfile.from_dataset(mixed(10), [Feature("c", "numerical")])


# --- accuracy of the summaries against the exact computation ------------------------------
# Each documented in docs/statistics.md ("Accuracy of summaries"). Bounds are asserted at
# 1.5x the measured worst case or the sketch's 99% bound, so the tests are not flaky.
@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_sketch_cdf_and_bins_within_rank_error(dist: str) -> None:
    rng = np.random.default_rng(11)
    x = getattr(rng, dist)(size=100_000)
    exact = NumericalProfile.from_values("x", x, exact_limit=None)
    sketch = NumericalProfile.from_values("x", x)
    grid = exact.quantiles(np.linspace(0.005, 0.995, 199))
    assert np.max(np.abs(sketch.cdf(grid) - exact.cdf(grid))) <= 1.5 * KLL_ALL_RANKS_ERROR
    _, props = sketch.bin_proportions(10)
    # each bin holds 1/10 of the reference, within two rank errors (two edges)
    assert np.max(np.abs(props - 0.1)) <= 2 * 1.5 * KLL_ALL_RANKS_ERROR


# Measured worst case over 60 runs (wasserstein with 8 shards: 200 runs; normal, lognormal,
# exponential; 200,000 reference values; docs/statistics.md): one sketch / 8 merged.
@pytest.mark.parametrize("shards", [1, 8])
@pytest.mark.parametrize(
    ("method", "bound"),
    [
        ("wasserstein", 0.05),  # measured 0.0040 / 0.0454
        ("energy", 0.015),  # 0.0019 / 0.0056
        ("psi", 0.012),  # 0.0019 / 0.0055
        ("jensenshannon", 0.025),  # 0.0069 / 0.0102
        ("hellinger", 0.02),  # 0.0057 / 0.0085
        ("kl", 0.008),  # 0.0018 / 0.0035
    ],
)
def test_distances_on_a_sketch_agree_with_exact(method: str, bound: float, shards: int) -> None:
    # The KLL sketch compacts at random (DataSketches takes no seed), so one draw's error
    # has a tail: the bound holds for the median of three independent sketches.
    rng = np.random.default_rng(5)
    func = getattr(num, method)
    data = []
    for dist in ("normal", "lognormal", "exponential"):
        # 200,000 values, as measured in docs/statistics.md
        x = getattr(rng, dist)(size=200_000)
        cur = getattr(rng, dist)(size=2000) * 1.05
        data.append((x, cur, NumericalProfile.from_values("x", x, exact_limit=None)))
    worsts = []
    for _ in range(3):
        worst = 0.0
        for x, cur, exact in data:
            parts = [NumericalProfile.from_values("x", p) for p in np.array_split(x, shards)]
            sketch = parts[0]
            for part in parts[1:]:
                sketch = sketch.merge(part, exact_limit=1000, sketch_k=200)
            assert not sketch.exact
            worst = max(worst, abs(func(exact, cur).statistic - func(sketch, cur).statistic))
        worsts.append(worst)
    assert float(np.median(worsts)) <= bound, worsts


def test_empty_column_profile() -> None:
    p = NumericalProfile.from_values("x", np.array([np.nan, np.nan]))
    assert p.n == 0
    assert p.n_missing == 2
    assert math.isnan(p.std)
    back = ReferenceProfile.from_json(ReferenceProfile({"x": p}, 2).to_json())
    assert back["x"].n == 0


def _slice(col: object, lo: int, hi: int) -> object:
    if isinstance(col, CategoricalColumn):
        return CategoricalColumn(col.codes[lo:hi], col.categories)
    return col[lo:hi]  # type: ignore[index]
