"""The offline commands against hostile input: size caps, tampered profiles, bad text.

Run as a user runs them (a subprocess); the memory tests read the child's own peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile_files import gzip_bomb, parquet_claiming_rows

# The child's own peak resident set: VmHWM of its memory map. Not ru_maxrss, which on
# Linux carries the parent's high-water mark over a (v)fork and exec, so that a big
# pytest process would be counted as the child's peak.
_MEASURED = (
    "import sys\n"
    "from modelmonitor.edge.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print(f'maxrss_kib={hwm}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _peak_mib(proc: subprocess.CompletedProcess[str]) -> float:
    line = [x for x in proc.stderr.splitlines() if x.startswith("maxrss_kib=")][-1]
    return int(line.split("=", 1)[1]) / 1024


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(x for x in proc.stderr.splitlines() if not x.startswith("maxrss_kib="))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(1)
    table = pa.table({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    pq.write_table(table, d / "ref.parquet")
    pq.write_table(table, d / "cur.parquet")
    proc = _run("baseline", "--data", str(d / "ref.parquet"), "--output", str(d / "p.json"))
    assert proc.returncode == 0, proc.stderr
    return {"ref": d / "ref.parquet", "cur": d / "cur.parquet", "profile": d / "p.json", "dir": d}


def test_a_gzip_bomb_is_refused_with_low_peak_memory(tmp_path: Path) -> None:
    # 530 KB inflating to 512 MiB: reading it whole peaked at 12 GiB
    bomb = gzip_bomb(tmp_path / "bomb.csv.gz")
    for args in (
        ("check", "--reference", str(bomb), "--current", str(bomb)),
        ("baseline", "--data", str(bomb), "--output", str(tmp_path / "p.json")),
    ):
        proc = _run(*args)
        assert proc.returncode == 2, proc.stderr
        assert "decodes to more than 10,000,000 rows" in _error(proc)
        assert "Traceback" not in proc.stderr
        assert _peak_mib(proc) < 400, f"{args[0]}: peak {_peak_mib(proc):.0f} MiB"


def test_the_decompression_cap_is_a_flag(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.csv.gz", inflated_mib=16)
    proc = _run(
        "check", "--reference", str(bomb), "--current", str(bomb), "--max-decoded-bytes", "4Mi"
    )
    assert proc.returncode == 2
    assert "decompresses more than 4,194,304 bytes" in _error(proc)


def test_a_parquet_claiming_40m_rows_is_refused_before_decoding(tmp_path: Path) -> None:
    path = parquet_claiming_rows(tmp_path / "rows.parquet")
    proc = _run("check", "--reference", str(path), "--current", str(path))
    assert proc.returncode == 2
    assert "40,000,000 rows, more than 10,000,000 (max rows)" in _error(proc)
    assert _peak_mib(proc) < 400


def test_caps_can_be_raised_and_lowered(small: dict[str, Path]) -> None:
    base = ("check", "--reference", str(small["ref"]), "--current", str(small["cur"]))
    assert _run(*base, "--max-cells", "999").returncode == 2
    assert _run(*base, "--max-rows", "1Gi", "--max-cells", "1000").returncode == 0
    bad = _run(*base, "--max-rows", "0")
    assert bad.returncode == 2
    assert "is not a positive size" in bad.stderr


def test_fail_on_drift_exits_nonzero_when_no_feature_was_evaluated(
    small: dict[str, Path], tmp_path: Path
) -> None:
    # every value of the current window is missing: nothing can be compared
    cur = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.nulls(50, pa.float64()), "c": pa.nulls(50, pa.string())}), cur)
    args = ("check", "--reference", str(small["ref"]), "--current", str(cur))
    assert _run(*args).returncode == 0  # without the flag the report is the answer
    proc = _run(*args, "--fail-on-drift")
    assert proc.returncode == 3
    assert "no feature could be evaluated" in _error(proc)
    same = _run("check", "--reference", str(small["ref"]), "--current", str(small["cur"]))
    assert same.returncode == 0


def _tampered(small: dict[str, Path], tmp_path: Path, edit: Any) -> str:
    doc = json.loads(small["profile"].read_text())
    edit(doc)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(doc))
    proc = _run("check", "--reference", str(path), "--current", str(small["cur"]))
    assert proc.returncode == 2, proc.stdout
    assert "Traceback" not in proc.stderr
    return _error(proc)


def _numerical(doc: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in doc["columns"] if c["type"] == "numerical")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: _numerical(d).update(n=-3), "columns[0] ('x').n: must be an integer >= 0"),
        (
            lambda d: _numerical(d).update(min=10.0, max=-10.0),
            "columns[0] ('x').min: 10.0 is greater than max -10.0",
        ),
        (lambda d: _numerical(d).update(mean="high"), "columns[0] ('x').mean: must be a number"),
        (lambda d: d["columns"][1].update(counts=[1]), "columns[1] ('c').counts: must be a list"),
        (lambda d: d.pop("n_rows"), "n_rows: missing"),
        (lambda d: _numerical(d).pop("sketch", None) or _numerical(d).pop("values"), "exactly one"),
        (lambda d: d.update(columns={"x": 1}), "columns: must be a list"),
        (lambda d: d["columns"][1].update(n_missing=True), "('c').n_missing: must be an integer"),
    ],
)
def test_a_tampered_profile_is_refused_naming_the_field(
    small: dict[str, Path], tmp_path: Path, edit: Any, expected: str
) -> None:
    message = _tampered(small, tmp_path, edit)
    assert "not a readable profile" in message
    assert expected in message


def test_a_zlib_bomb_in_exact_values_is_refused(small: dict[str, Path], tmp_path: Path) -> None:
    import base64
    import zlib

    def bomb(doc: dict[str, Any]) -> None:
        col = _numerical(doc)
        col.pop("sketch", None)
        col["values"] = base64.b64encode(zlib.compress(b"\0" * (256 << 20), 9)).decode()

    proc_msg = _tampered(small, tmp_path, bomb)
    assert "does not hold exactly" in proc_msg


def test_non_utf8_input_is_reported_as_such(small: dict[str, Path], tmp_path: Path) -> None:
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_bytes(b"x,c\n1.0,a\xff\n2.0,b\n")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_bytes(b'{"x": 1.0, "c": "a\xff"}\n')
    bad_profile = tmp_path / "bad.json"
    bad_profile.write_bytes(b"\xff\xfe{}")
    cases = [
        ("--reference", bad_csv, "--current", small["cur"]),
        ("--reference", small["ref"], "--current", bad_csv),
        ("--reference", bad_jsonl, "--current", small["cur"]),
        ("--reference", bad_profile, "--current", small["cur"]),
    ]
    for a, first, b, second in cases:
        proc = _run("check", a, str(first), b, str(second))
        assert proc.returncode == 2, (first, second, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "not UTF-8" in _error(proc), _error(proc)


def test_output_parent_directories_are_not_created(small: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "missing" / "deeper" / "p.json"
    proc = _run("baseline", "--data", str(small["ref"]), "--output", str(target))
    assert proc.returncode == 2
    assert "does not exist" in _error(proc)
    assert not (tmp_path / "missing").exists()
    ok = _run("baseline", "--data", str(small["ref"]), "--output", str(tmp_path / "p.json"))
    assert ok.returncode == 0
