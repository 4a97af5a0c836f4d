"""Data quality's "out of range" is calibrated: chance alone does not raise it.

A split of one data set (scikit-learn's breast-cancer data, 569 rows x 30 features) into
a 70% reference and a 30% window is the same distribution on both sides: a fixed 1%
share flagged ~6 features per split; the exact rank probability flags none. A real
shift still is flagged.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from modelmonitor.core.dataset import Dataset
from modelmonitor.core.stats.exceedance import expected_out_of_range, out_of_range_pvalue
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality import data_quality


def _split(seed: int) -> tuple[Dataset, Dataset]:
    x = load_breast_cancer().data
    idx = np.random.default_rng(seed).permutation(x.shape[0])
    cut = int(0.7 * x.shape[0])
    names = [f"f{i:02d}" for i in range(x.shape[1])]
    ref = Dataset({n: x[idx[:cut], i] for i, n in enumerate(names)})
    cur = Dataset({n: x[idx[cut:], i] for i, n in enumerate(names)})
    return ref, cur


@pytest.mark.parametrize("seed", range(10))
def test_same_distribution_split_reports_no_out_of_range(seed: int) -> None:
    ref, cur = _split(seed)
    report = data_quality(cur, ref)
    assert [i for i in report.issues if i.kind == "out_of_range"] == []
    # the raw counts are still reported: values out of range do happen by chance
    assert sum(f.out_of_range for f in report.features) > 0


def test_same_split_against_a_saved_profile_reports_none() -> None:
    ref, cur = _split(0)
    profile = ReferenceProfile.from_dataset(ref, ref.inferred_features())
    assert not [i for i in data_quality(cur, profile).issues if i.kind == "out_of_range"]


def test_real_shift_is_still_flagged() -> None:
    ref, cur = _split(0)
    cols = dict(cur.columns)
    cols["f00"] = np.asarray(cols["f00"]) * 1.5  # mean radius 50% larger
    cols["f07"] = np.asarray(cols["f07"]) + 0.1  # concave points up by ~2.5 std
    report = data_quality(Dataset(cols), ref)
    flagged = {i.feature for i in report.issues if i.kind == "out_of_range"}
    assert flagged == {"f00", "f07"}
    f00 = report.feature("f00")
    assert f00.out_of_range_pvalue is not None
    assert f00.out_of_range_pvalue < 1e-10
    assert "by chance" in next(i.message for i in report.issues if i.feature == "f00")


def test_few_values_far_out_in_a_small_window_are_not_enough() -> None:
    rng = np.random.default_rng(1)
    ref = Dataset({"x": rng.normal(size=400)})
    cur_values = rng.normal(size=170)
    cur_values[:2] = [10.0, -10.0]  # 2 of 170 (1.2%) out: one window in five by chance
    report = data_quality(Dataset({"x": cur_values}), ref)
    assert not report.issues
    cur_values[:12] = 10.0  # 12 of 170: never by chance
    assert [i.kind for i in data_quality(Dataset({"x": cur_values}), ref).issues] == [
        "out_of_range"
    ]


def test_out_of_range_probability_matches_simulation() -> None:
    rng = np.random.default_rng(7)
    n, m, runs = 40, 25, 20_000
    r = rng.random((runs, n))
    c = rng.random((runs, m))
    k = ((c < r.min(axis=1, keepdims=True)) | (c > r.max(axis=1, keepdims=True))).sum(axis=1)
    assert k.mean() == pytest.approx(expected_out_of_range(n, m), rel=0.03)
    for j in (1, 2, 3, 5):
        # binomial standard error of a share near 0.1-0.7 over 20,000 runs: < 0.004
        assert (k >= j).mean() == pytest.approx(out_of_range_pvalue(j, n, m), abs=0.015)


def test_out_of_range_probability_edges() -> None:
    assert out_of_range_pvalue(0, 100, 10) == 1.0
    assert out_of_range_pvalue(11, 100, 10) == 0.0
    assert out_of_range_pvalue(3, 0, 10) == 1.0
    assert out_of_range_pvalue(5, 1, 5) == pytest.approx(1.0)  # one value: no range at all
