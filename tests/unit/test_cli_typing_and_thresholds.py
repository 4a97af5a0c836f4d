"""``modelmonitor check``: label columns typed as classes, the decision rule printed is
the one used, and a ``--threshold`` that did not apply is said so (as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelmonitor", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _json(*args: str) -> dict[str, Any]:
    proc = _run(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 70/30 split of the breast-cancer data with its 0/1 target and a prediction."""
    d = tmp_path_factory.mktemp("cancer")
    data = load_breast_cancer()
    x, y = data.data, data.target
    idx = np.random.default_rng(0).permutation(x.shape[0])
    cut = int(0.7 * x.shape[0])
    names = [n.replace(" ", "_") for n in data.feature_names]
    pred = (x[:, 27] <= 0.1).astype(np.int64)  # worst concave points: a crude classifier
    for part, rows in (("ref", idx[:cut]), ("cur", idx[cut:])):
        cols: dict[str, Any] = {n: x[rows, i] for i, n in enumerate(names)}
        cols["target"] = y[rows]
        cols["prediction"] = pred[rows]
        pcsv.write_csv(pa.table(cols), d / f"{part}.csv")
    return {"ref": d / "ref.csv", "cur": d / "cur.csv"}


def _feature(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in report["features"] if f["name"] == name)


def test_integer_class_labels_are_categorical_with_target(cancer: dict[str, Path]) -> None:
    report = _json(
        "--reference", str(cancer["ref"]), "--current", str(cancer["cur"]),
        "--target", "target", "--prediction", "prediction",
    )  # fmt: skip
    for name in ("target", "prediction"):
        f = _feature(report, name)
        assert f["type"] == "categorical"
        assert f["method"] in {"ztest", "fisher", "chi2", "jensenshannon"}
    assert report["model_quality"]["task"] == "binary"
    # the 30 measurements stay numerical
    assert _feature(report, "mean_radius")["type"] == "numerical"


def test_without_labels_integer_columns_stay_numbers(cancer: dict[str, Path]) -> None:
    report = _json("--reference", str(cancer["ref"]), "--current", str(cancer["cur"]))
    assert _feature(report, "target")["type"] == "numerical"


def test_categorical_flag_types_any_column(cancer: dict[str, Path]) -> None:
    report = _json(
        "--reference", str(cancer["ref"]), "--current", str(cancer["cur"]),
        "--categorical", "target, prediction",
    )  # fmt: skip
    assert _feature(report, "target")["type"] == "categorical"
    assert _feature(report, "prediction")["type"] == "categorical"


def test_task_regression_keeps_labels_numerical(cancer: dict[str, Path]) -> None:
    report = _json(
        "--reference", str(cancer["ref"]), "--current", str(cancer["cur"]),
        "--target", "target", "--prediction", "prediction", "--task", "regression",
    )  # fmt: skip
    assert _feature(report, "target")["type"] == "numerical"
    assert report["model_quality"]["task"] == "regression"


def test_many_distinct_integer_values_are_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)

    def table(n: int) -> pa.Table:
        y = rng.integers(0, 500, n)
        return pa.table({"x": rng.normal(size=n), "y": y, "yhat": y + rng.integers(-3, 4, n)})

    pq.write_table(table(600), tmp_path / "ref.parquet")
    pq.write_table(table(300), tmp_path / "cur.parquet")
    report = _json(
        "--reference", str(tmp_path / "ref.parquet"), "--current", str(tmp_path / "cur.parquet"),
        "--target", "y", "--prediction", "yhat",
    )  # fmt: skip
    assert _feature(report, "y")["type"] == "numerical"
    assert report["model_quality"]["task"] == "regression"


def test_features_file_type_wins_over_the_task(cancer: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "features.yaml"
    spec.write_text("- {name: mean_radius, type: numerical}\n- {name: target, type: numerical}\n")
    report = _json(
        "--reference", str(cancer["ref"]), "--current", str(cancer["cur"]),
        "--features-file", str(spec), "--target", "target", "--prediction", "prediction",
    )  # fmt: skip
    assert _feature(report, "target")["type"] == "numerical"


def test_typing_a_column_the_reference_lacks_is_a_clear_error(cancer: dict[str, Path]) -> None:
    proc = _run(
        "--reference", str(cancer["ref"]), "--current", str(cancer["cur"]),
        "--categorical", "no_such_column",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no_such_column" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_profile_with_numeric_labels_refuses_categorical_typing(
    cancer: dict[str, Path], tmp_path: Path
) -> None:
    profile = tmp_path / "p.json"
    subprocess.run(
        [sys.executable, "-m", "modelmonitor", "baseline", "--data", str(cancer["ref"]),
         "--output", str(profile)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    proc = _run(
        "--reference", str(profile), "--current", str(cancer["cur"]),
        "--target", "target", "--prediction", "prediction",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "numerical in the profile but categorical" in proc.stderr


def test_header_names_the_rule_each_method_used(cancer: dict[str, Path]) -> None:
    proc = _run("--reference", str(cancer["ref"]), "--current", str(cancer["cur"]))
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[2]
    assert header.startswith("Drift when: ks: p-value (bonferroni-adjusted) < 0.05")
    assert "alpha" not in header  # no level that some method did not use


def test_threshold_under_auto_applies_to_distances(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pq.write_table(pa.table({"x": rng.normal(size=5000)}), tmp_path / "ref.parquet")
    pq.write_table(pa.table({"x": rng.normal(0.15, 1, 5000)}), tmp_path / "cur.parquet")
    args = (
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.parquet"),
    )
    default = _json(*args)
    assert _feature(default, "x")["method"] == "wasserstein"
    assert _feature(default, "x")["drifted"] is True  # 0.15 std >= 0.1
    raised = _json(*args, "--threshold", "0.3")
    assert _feature(raised, "x")["threshold"] == 0.3
    assert _feature(raised, "x")["drifted"] is False
    assert raised["thresholds"] == [
        {
            "rule": "wasserstein: statistic >= 0.3 (1 feature)",
            "method": "wasserstein",
            "kind": "distance",
            "features": 1,
            "threshold_min": 0.3,
            "threshold_max": 0.3,
        }
    ]
    assert raised["notes"] == []


def test_threshold_that_reached_no_feature_is_never_silent(cancer: dict[str, Path]) -> None:
    args = ("--reference", str(cancer["ref"]), "--current", str(cancer["cur"]))
    report = _json(*args, "--threshold", "0.2")
    assert {f["threshold"] for f in report["features"]} == {0.05}  # tests: --alpha
    (note,) = report["notes"]
    assert note.startswith("--threshold 0.2 applied to no feature")
    assert "--alpha 0.05" in note
    table = _run(*args, "--threshold", "0.2").stdout
    assert "Note: --threshold 0.2 applied to no feature" in table
    # a named test takes --threshold as its level: no note
    named = _json(*args, "--method", "ks", "--threshold", "0.01")
    assert _feature(named, "mean_radius")["threshold"] == 0.01
    assert named["notes"] == []


def test_threshold_of_a_named_method_notes_the_features_it_does_not_fit(
    cancer: dict[str, Path],
) -> None:
    report = _json(
        "--reference", str(cancer["ref"]), "--current", str(cancer["cur"]),
        "--target", "target", "--prediction", "prediction",
        "--method", "ks", "--threshold", "0.01",
    )  # fmt: skip
    assert _feature(report, "target")["threshold"] == 0.05  # ztest: auto's default level
    (note,) = report["notes"]
    assert note.startswith("--threshold 0.01 applies to ks only: the 2 feature(s)")


def test_markdown_and_html_state_the_rule_and_the_note(cancer: dict[str, Path]) -> None:
    args = ("--reference", str(cancer["ref"]), "--current", str(cancer["cur"]))
    md = _run(*args, "--threshold", "0.2", "--format", "markdown").stdout
    assert "drift when: ks\\: p-value" in md
    assert ", alpha 0.05" not in md  # the old header
    assert "> **Note:** --threshold 0.2 applied to no feature" in md
    page = _run(*args, "--threshold", "0.2", "--format", "html")
    if page.returncode == 2 and "matplotlib" in page.stderr:
        pytest.skip("the report extra (matplotlib) is not installed")
    assert "drift when: ks: p-value (bonferroni-adjusted) &lt; 0.05" in page.stdout
    assert '<p class="note">--threshold 0.2 applied to no feature' in page.stdout
