"""``modelmonitor check``'s performance section (docs/cli.md#performance), as a user runs it.

The expected metric values are scikit-learn 1.9.1's on the same files (relative 1e-12).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from modelmonitor.edge.cli import main

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("performance")
    rng = np.random.default_rng(11)

    def binary(n: int, shift: float, *, concept: bool = False) -> dict[str, np.ndarray]:
        x = rng.normal(shift, 1.0, n)
        truth = np.where(x > 0.8, 0.35, _sigmoid(2 * x)) if concept else _sigmoid(2 * x)
        p1 = _sigmoid(1.5 * x)
        return {
            "x": x,
            "y": (rng.random(n) < truth).astype(np.int64),
            "p0": 1 - p1,
            "p1": p1,
            "pred": (p1 >= 0.5).astype(np.int64),
        }

    ref = binary(4000, 0.0)
    pq.write_table(pa.table(ref), d / "ref.parquet")
    cur = binary(1500, 0.6)
    pq.write_table(pa.table(cur), d / "cur.parquet")
    pq.write_table(pa.table({k: v for k, v in cur.items() if k != "y"}), d / "unlabelled.parquet")
    pq.write_table(pa.table(binary(1500, 0.6, concept=True)), d / "concept.parquet")

    def multi(n: int, shift: float) -> dict[str, Any]:
        x = rng.normal(0.0, 1.0, (n, 3))
        x[:, 0] += shift
        p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        names = np.array(["ant", "bee", "cat"])
        return {"a": x[:, 0], "y": names[y], "p_ant": p[:, 0], "p_bee": p[:, 1], "p_cat": p[:, 2]}

    pq.write_table(pa.table(multi(3000, 0.0)), d / "mref.parquet")
    pq.write_table(pa.table(multi(800, 0.5)), d / "mcur.parquet")
    return {p.stem: p for p in d.iterdir()}


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = _check(capsys, *args, "--format", "json")
    assert code == 0, err
    assert out.count("\n") == 1
    return dict(json.loads(out))


def _args(files: dict[str, Path], ref: str, cur: str, *extra: str) -> list[str]:
    return ["--reference", str(files[ref]), "--current", str(files[cur]), *extra]


def test_window_without_labels_is_estimated(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = _json(capsys, *_args(files, "ref", "unlabelled", "--target", "y", "--proba", "p1"))
    perf = report["performance"]
    assert set(perf["reference"]) == set(METRICS)
    assert set(perf["estimated"]) == set(METRICS)
    for e in perf["estimated"].values():
        assert set(e) == {"value", "lower", "upper"}
        assert 0 <= e["lower"] <= e["value"] <= e["upper"] <= 1
    assert "realized" not in perf
    assert perf["concept_drift"] is False
    assert perf["labelled_rows"] == 0
    assert "model_quality" not in report  # nothing to measure without labels
    # the absent target is expected: neither a drift feature nor a data-quality issue
    assert "y" not in [f["name"] for f in report["features"]]
    assert report["data_quality"]["missing_columns"] == []


def test_labelled_window_is_realized_like_sklearn(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = _json(
        capsys,
        *_args(files, "ref", "cur", "--target", "y", "--proba", "p0,p1", "--prediction", "pred"),
    )
    perf = report["performance"]
    cur = pq.read_table(files["cur"]).to_pydict()
    y, pred, p1 = np.array(cur["y"]), np.array(cur["pred"]), np.array(cur["p1"])
    want = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, p1),
    }
    for m in METRICS:
        r = perf["realized"][m]
        assert r["value"] == pytest.approx(want[m], rel=1e-12), m
        assert r["lower"] <= r["value"] <= r["upper"]
    assert perf["labels"] == [0, 1]
    assert perf["positive_label"] == 1
    assert perf["concept_drift"] is False
    mq = {m["name"]: m["value"] for m in report["model_quality"]["metrics"]}
    assert mq["accuracy"] == perf["realized"]["accuracy"]["value"]
    assert perf["reference"]["accuracy"] == pytest.approx(
        next(m["reference"] for m in report["model_quality"]["metrics"] if m["name"] == "accuracy")
    )


def test_concept_drift_is_reported_and_exit_codes_stay(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(files, "ref", "concept", "--target", "y", "--proba", "p1")
    perf = _json(capsys, *args)["performance"]
    assert perf["concept_drift"] is True
    assert "accuracy" in perf["concept_drift_metrics"]
    code, out, _ = _check(capsys, *args)
    assert code == 0  # concept drift is reported, never an exit code of its own
    assert "Concept drift: YES (" in out
    assert "estimated" in out


def test_multiclass_with_text_labels(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(files, "mref", "mcur", "--target", "y", "--proba", "p_ant,p_bee,p_cat")
    perf = _json(capsys, *args)["performance"]
    assert perf["task"] == "multiclass"
    assert perf["labels"] == ["ant", "bee", "cat"]
    cur = pq.read_table(files["mcur"]).to_pydict()
    proba = np.column_stack([cur["p_ant"], cur["p_bee"], cur["p_cat"]])
    auc = skm.roc_auc_score(cur["y"], proba, multi_class="ovr")
    assert perf["realized"]["roc_auc"]["value"] == pytest.approx(auc, rel=1e-12)
    for m in METRICS:
        e = perf["estimated"][m]
        assert e["lower"] <= e["value"] <= e["upper"]


def test_markdown_and_html_show_the_section(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(files, "ref", "concept", "--target", "y", "--proba", "p1")
    code, md, _ = _check(capsys, *args, "--format", "markdown")
    assert code == 0
    assert "### Performance \\(binary, 1,500 rows, 1,500 labelled; 95% intervals\\)" in md
    assert "| metric | reference | estimated | realized |" in md
    assert "**Concept drift\\: YES" in md
    pytest.importorskip("matplotlib", reason="the 'report' extra (make venv installs it)")
    code, html, _ = _check(capsys, *args, "--format", "html")
    assert code == 0
    assert "<h2>Performance (binary, 1,500 rows, 1,500 labelled; 95% intervals)</h2>" in html
    assert "Concept drift: YES" in html


def test_regression_is_realized_and_says_why_it_is_not_estimated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    for name, n in (("ref", 1000), ("cur", 300)):
        y = rng.normal(10, 2, n)
        pq.write_table(
            pa.table({"x": y, "v": y, "v_hat": y + rng.normal(0, 1, n)}),
            tmp_path / f"{name}.parquet",
        )
    args = [
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.parquet"),
    ]
    perf = _json(capsys, *args, "--target", "v", "--prediction", "v_hat")["performance"]
    assert perf["task"] == "regression"
    assert perf["estimated"] is None
    assert set(perf["realized"]) == {"mae", "rmse", "mape"}
    assert any("not supported for regression" in n for n in perf["notes"])
    assert perf["concept_drift"] is False


def test_a_profile_reference_notes_why_there_is_no_estimate(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "ref.profile.json"
    feats = tmp_path / "features.json"
    feats.write_text(
        json.dumps([{"name": "x", "type": "numerical"}, {"name": "y", "type": "categorical"}])
    )
    base = ["--features-file", str(feats)]
    assert main(["baseline", "--data", str(files["ref"]), "--output", str(profile), *base]) == 0
    capsys.readouterr()
    report = _json(
        capsys,
        *["--reference", str(profile), "--current", str(files["cur"]), *base],
        *["--target", "y", "--proba", "p1"],
    )
    assert "performance" not in report
    assert any("a saved profile has no rows to calibrate on" in n for n in report["notes"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "y", "--proba", "p0,p1,x"], "3 probability column(s) for 2 classes"),
        (["--target", "y", "--proba", "nope"], "'nope'"),
        (["--target", "y", "--prediction", "pred"], "'y'"),  # no --proba: labels needed
    ],
)
def test_bad_performance_input_is_one_line_and_exit_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, _, err = _check(capsys, *_args(files, "ref", "unlabelled", *extra), "--format", "json")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_late_labels_are_joined_by_id(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cur = pq.read_table(files["cur"]).to_pydict()
    n = len(cur["y"])
    ids = [f"req-{i}" for i in range(n)]
    window = {k: v for k, v in cur.items() if k != "y"} | {"id": ids}
    pq.write_table(pa.table(window), tmp_path / "window.parquet")
    order = np.random.default_rng(1).permutation(n)[:900]
    # 900 labels arrived, one of them twice (a correction: the last one counts), plus one
    # for a request outside this window
    late_ids = [ids[i] for i in order] + [ids[order[0]], "req-elsewhere"]
    late_y = [cur["y"][i] for i in order] + [1 - cur["y"][order[0]], 1]
    pq.write_table(pa.table({"id": late_ids, "y": late_y}), tmp_path / "labels.parquet")
    args = ["--reference", str(files["ref"]), "--current", str(tmp_path / "window.parquet")]
    report = _json(
        capsys,
        *args,
        "--target",
        "y",
        "--proba",
        "p1",
        "--labels",
        str(tmp_path / "labels.parquet"),
    )
    assert report["labels"] == {
        "path": str(tmp_path / "labels.parquet"),
        "id_column": "id",
        "rows": n,
        "labelled_rows": 900,
        "unmatched_labels": 1,
        "duplicate_ids": 1,
        "missing_ids": 0,
    }
    perf = report["performance"]
    assert perf["labelled_rows"] == 900
    y = np.array(cur["y"])[order]
    y[0] = 1 - y[0]  # the correction
    pred = (np.array(cur["p1"])[order] >= 0.5).astype(int)
    assert perf["realized"]["accuracy"]["value"] == pytest.approx(
        skm.accuracy_score(y, pred), rel=1e-12
    )
    assert any("900 of 1,500 row(s) labelled" in note for note in perf["notes"])
    assert report["model_quality"]["rows"] == 900
    # the target in both places is refused, as is --labels without --target
    code, _, err = _check(
        capsys, *_args(files, "ref", "cur", "--target", "y", "--proba", "p1"),
        "--labels", str(tmp_path / "labels.parquet"),
    )  # fmt: skip
    assert code == 2
    assert "already has the target column 'y'" in err
    code, _, err = _check(capsys, *args, "--labels", str(tmp_path / "labels.parquet"))
    assert code == 2
    assert "--labels needs --target" in err
