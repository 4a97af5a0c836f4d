"""``modelmonitor check`` and ``modelmonitor baseline`` end to end, as a user runs them."""

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

FEATURE_KEYS = {"name", "type", "method", "statistic", "p_value", "threshold", "drifted"}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelmonitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("offline")
    rng = np.random.default_rng(42)
    n_ref, n_cur = 3000, 800
    ref = {
        "amount": rng.lognormal(3, 1, n_ref),
        "age": rng.normal(40, 10, n_ref),
        "country": rng.choice(["de", "fr", "it"], n_ref, p=[0.5, 0.3, 0.2]),
        "code": rng.integers(0, 4, n_ref),
    }
    cur = {
        "amount": rng.lognormal(3.8, 1, n_cur),  # shifted
        "age": rng.normal(40, 10, n_cur),  # unchanged
        "country": rng.choice(["de", "fr", "es"], n_cur, p=[0.2, 0.3, 0.5]),  # new + shifted
        "code": rng.integers(0, 4, n_cur),
        "extra": np.ones(n_cur),
    }
    cur["age"][:100] = np.nan
    pq.write_table(pa.table(ref), d / "ref.parquet")
    pq.write_table(pa.table(cur), d / "cur.parquet")
    # the same data as csv and jsonl (current) and npy (numerical only)
    pcsv.write_csv(pa.table(ref), d / "ref.csv")
    with (d / "cur.jsonl").open("w") as f:
        for i in range(n_cur):
            row = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cur.items()}
            row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            f.write(json.dumps(row) + "\n")
    np.save(d / "ref.npy", np.column_stack([ref["amount"], ref["age"]]))
    np.save(d / "cur.npy", np.column_stack([cur["amount"], cur["age"]]))
    (d / "features.yaml").write_text(
        "- {name: amount, type: numerical}\n"
        "- {name: country, type: categorical}\n"
        "- {name: code, type: categorical}\n"
    )
    return {p.name: p for p in d.iterdir()}


def _check_json(*args: str) -> dict[str, Any]:
    proc = _run("check", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1, "exactly one JSON object on one line"
    return dict(json.loads(proc.stdout))


def _assert_shape(report: dict[str, Any]) -> None:
    ds = report["dataset"]
    assert isinstance(ds["drifted"], bool)
    assert isinstance(ds["share"], float)
    assert isinstance(ds["drifted_features"], int)
    assert isinstance(ds["total_features"], int)
    for f in report["features"]:
        assert set(f) >= FEATURE_KEYS
        assert isinstance(f["drifted"], bool)
        assert f["p_value"] is None or 0.0 <= f["p_value"] <= 1.0
    assert isinstance(report["data_quality"], dict)


def test_check_json_shape_and_verdicts(files: dict[str, Path]) -> None:
    report = _check_json(
        "--reference", str(files["ref.parquet"]), "--current", str(files["cur.parquet"])
    )
    _assert_shape(report)
    by_name = {f["name"]: f for f in report["features"]}
    assert list(by_name) == ["amount", "age", "country", "code"]
    assert by_name["amount"]["drifted"] is True
    assert by_name["age"]["drifted"] is False
    assert by_name["country"]["drifted"] is True
    dq = report["data_quality"]
    assert dq["extra_columns"] == ["extra"]
    kinds = {(i["feature"], i["kind"]) for i in dq["issues"]}
    assert ("country", "new_category") in kinds
    assert ("age", "missing_share") in kinds
    assert report["dataset"]["total_features"] == 4


def test_check_table_is_the_default(files: dict[str, Path]) -> None:
    proc = _run("check", "--reference", str(files["ref.csv"]), "--current", str(files["cur.jsonl"]))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "feature" in out
    assert "statistic" in out
    assert "amount" in out
    assert "Data quality" in out
    assert not out.lstrip().startswith("{")


def test_check_with_features_file_and_method(files: dict[str, Path]) -> None:
    report = _check_json(
        "--reference",
        str(files["ref.csv"]),
        "--current",
        str(files["cur.parquet"]),
        "--features-file",
        str(files["features.yaml"]),
        "--method",
        "psi",
    )
    _assert_shape(report)
    assert [(f["name"], f["type"], f["method"]) for f in report["features"]] == [
        ("amount", "numerical", "psi"),
        ("country", "categorical", "psi"),
        ("code", "categorical", "psi"),
    ]


def test_check_method_for_one_type_leaves_others_on_auto(files: dict[str, Path]) -> None:
    report = _check_json(
        "--reference",
        str(files["ref.parquet"]),
        "--current",
        str(files["cur.parquet"]),
        "--method",
        "ks",
    )
    methods = {f["name"]: f["method"] for f in report["features"]}
    assert methods["amount"] == methods["age"] == "ks"
    assert methods["country"] in {"chi2", "jensenshannon"}
    amount = next(f for f in report["features"] if f["name"] == "amount")
    assert amount["p_value"] is not None


def test_check_npy(files: dict[str, Path]) -> None:
    report = _check_json("--reference", str(files["ref.npy"]), "--current", str(files["cur.npy"]))
    assert [f["name"] for f in report["features"]] == ["f0", "f1"]
    assert report["features"][0]["drifted"] is True


def test_baseline_then_check_against_profile(files: dict[str, Path], tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    proc = _run("baseline", "--data", str(files["ref.parquet"]), "--output", str(profile))
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(profile.read_text())
    assert saved["format"] == "modelmonitor.profile"
    assert saved["n_rows"] == 3000
    report = _check_json("--reference", str(profile), "--current", str(files["cur.parquet"]))
    _assert_shape(report)
    assert report["reference"]["kind"] == "profile"
    assert {f["name"]: f["drifted"] for f in report["features"]}["amount"] is True


def test_check_type_mismatch_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "ref.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(200)))
    (tmp_path / "cur.csv").write_text(
        "x,y\n" + "".join(f"{'n/a' if i % 2 else 'abc'},{i % 3}\n" for i in range(100))
    )
    report = _check_json(
        "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")
    )
    x = next(f for f in report["features"] if f["name"] == "x")
    assert x["status"] == "type_mismatch"
    assert x["drifted"] is False
    assert report["data_quality"]["type_mismatches"] == [
        {"name": "x", "reference_type": "numerical", "type": "categorical"}
    ]


def test_fail_on_drift_exit_code(files: dict[str, Path]) -> None:
    args = ["--reference", str(files["ref.parquet"]), "--current", str(files["cur.parquet"])]
    proc = _run("check", *args, "--drift-share", "0.1", "--fail-on-drift")
    assert proc.returncode == 1, proc.stderr


def _bad_cases(files: dict[str, Path], tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty.csv").write_text("")
    (tmp / "bad.txt").write_text("x")
    (tmp / "garbage.json").write_text("{not json")
    (tmp / "other.csv").write_text("p,q\n1,2\n")
    (tmp / "feat.yaml").write_text("- {name: nope, type: numerical}\n")
    ref, cur = str(files["ref.parquet"]), str(files["cur.parquet"])
    return {
        "missing reference": (["--reference", str(tmp / "no.csv"), "--current", cur], "not found"),
        "missing current": (["--reference", ref, "--current", str(tmp / "no.csv")], "not found"),
        "empty": (["--reference", str(tmp / "empty.csv"), "--current", cur], "empty file"),
        "extension": (["--reference", ref, "--current", str(tmp / "bad.txt")], "extension"),
        "not a profile": (["--reference", str(tmp / "garbage.json"), "--current", cur], "profile"),
        "no shared column": (["--reference", ref, "--current", str(tmp / "other.csv")], "none of"),
        "features file": (
            ["--reference", ref, "--current", cur, "--features-file", str(tmp / "feat.yaml")],
            "'nope'",
        ),
        "unknown method": (["--reference", ref, "--current", cur, "--method", "magic"], "magic"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing reference",
        "missing current",
        "empty",
        "extension",
        "not a profile",
        "no shared column",
        "features file",
        "unknown method",
    ],
)
def test_bad_input_exits_2_with_one_line(files: dict[str, Path], tmp_path: Path, case: str) -> None:
    args, message = _bad_cases(files, tmp_path)[case]
    proc = _run("check", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in lines[0]


def test_baseline_bad_input(tmp_path: Path) -> None:
    proc = _run("baseline", "--data", str(tmp_path / "none.parquet"), "--output", "x.json")
    assert proc.returncode == 2
    assert "not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_offline_commands_never_import_kopf_or_kubernetes(files: dict[str, Path]) -> None:
    code = (
        "import sys\n"
        "from modelmonitor.edge.cli import main\n"
        f"rc = main(['check', '--reference', {str(files['ref.parquet'])!r}, "
        f"'--current', {str(files['cur.parquet'])!r}, '--format', 'json'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'kopf', 'kubernetes'})\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("clean")


def test_importtime_of_check_lists_no_kopf(files: dict[str, Path], tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    assert (
        _run("baseline", "--data", str(files["ref.parquet"]), "--output", str(profile)).returncode
        == 0
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelmonitor", "check",
         "--reference", str(profile), "--current", str(files["cur.parquet"]), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "modelmonitor" in imported
    assert not imported & {"kopf", "kubernetes", "aiohttp", "prometheus_client"}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(5)

    def table(n: int, shift: float) -> pa.Table:
        x = rng.normal(shift, 1.0, n)
        y = (x + rng.normal(0, 1, n) > 0).astype(np.int64)
        p = 1.0 / (1.0 + np.exp(-1.5 * x))
        value = 2.0 * x + rng.normal(0, 1, n) + 10.0
        return pa.table(
            {
                "x": x,
                "label": y,
                "pred": (p > 0.5).astype(np.int64),
                "p1": p,
                "value": value,
                "value_hat": 2.0 * x + 10.0,
                "animal": np.where(y == 1, "cat", "dog"),
                "animal_hat": np.where(p > 0.5, "cat", "dog"),
            }
        )

    pq.write_table(table(2000, 0.0), d / "ref.parquet")
    pq.write_table(table(600, 0.4), d / "cur.parquet")
    return {"ref": d / "ref.parquet", "cur": d / "cur.parquet"}


def test_check_model_quality_binary_with_reference_change(labelled: dict[str, Path]) -> None:
    base = ["--reference", str(labelled["ref"]), "--current", str(labelled["cur"])]
    report = _check_json(*base, "--target", "label", "--prediction", "pred", "--proba", "p1")
    mq = report["model_quality"]
    assert mq["task"] == "binary"
    metrics = {m["name"]: m for m in mq["metrics"]}
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    for m in metrics.values():
        assert m["reference"] is not None
        assert m["change"] == pytest.approx(m["value"] - m["reference"])
    text = _check_json(*base, "--target", "animal", "--prediction", "animal_hat")["model_quality"]
    assert text["task"] == "binary"
    assert text["labels"] == ["cat", "dog"]


def test_check_model_quality_regression_and_table(labelled: dict[str, Path]) -> None:
    base = ["--reference", str(labelled["ref"]), "--current", str(labelled["cur"])]
    report = _check_json(*base, "--target", "value", "--prediction", "value_hat")
    mq = report["model_quality"]
    assert mq["task"] == "regression"
    assert [m["name"] for m in mq["metrics"]] == ["mae", "rmse", "mape", "r2"]
    proc = _run("check", *base, "--target", "value", "--prediction", "value_hat")
    assert proc.returncode == 0
    assert "Model quality (regression" in proc.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "nope", "--prediction", "pred"], "'nope'"),
        (["--prediction", "pred"], "need --target"),
        (["--target", "label"], "needs --prediction or --proba"),
    ],
)
def test_check_model_quality_bad_arguments(
    labelled: dict[str, Path], extra: list[str], message: str
) -> None:
    proc = _run(
        "check", "--reference", str(labelled["ref"]), "--current", str(labelled["cur"]), *extra
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_check_on_a_data_reference_is_reproducible(files: dict[str, Path]) -> None:
    args = ["--reference", str(files["ref.parquet"]), "--current", str(files["cur.parquet"])]
    first, second = _check_json(*args), _check_json(*args)
    assert [f["statistic"] for f in first["features"]] == [
        f["statistic"] for f in second["features"]
    ]
