"""Data readers: each format into Dataset, types, features files, streaming, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmonitor.adapters.files import (
    DataError,
    detect_format,
    iter_datasets,
    load_features_file,
    read_columns,
    read_dataset,
)
from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature

ROWS = [
    {"x": 1.0, "n": 3, "c": "a", "b": True},
    {"x": 2.5, "n": 4, "c": "b", "b": False},
    {"x": None, "n": 5, "c": None, "b": None},
    {"x": -1.0, "n": 3, "c": "a", "b": True},
]


def _write_csv(path: Path) -> Path:
    lines = ["x,n,c,b", "1,3,a,true", "2.5,4,b,false", ",5,,", "-1,3,a,true"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _write_parquet(path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}


def _labels(col: object) -> list[object]:
    assert isinstance(col, CategoricalColumn)
    return list(col.labels())


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_tabular_formats_read_the_same_dataset(tmp_path: Path, fmt: str) -> None:
    path = WRITERS[fmt](tmp_path / f"data.{fmt}")
    ds = read_dataset(path)
    assert ds.names == ["x", "n", "c", "b"]
    assert [f.type for f in ds.inferred_features()] == [
        "numerical",
        "numerical",
        "categorical",
        "categorical",
    ]
    np.testing.assert_array_equal(ds["x"], [1.0, 2.5, np.nan, -1.0])
    assert isinstance(ds["n"], np.ndarray)
    assert ds["n"].dtype == np.float64
    assert _labels(ds["c"]) == ["a", "b", None, "a"]
    assert _labels(ds["b"]) == ["true", "false", None, "true"]
    codes = ds["c"]
    assert isinstance(codes, CategoricalColumn)
    assert codes.codes.dtype == np.int32


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_features_override_types_and_restrict_columns(tmp_path: Path, fmt: str) -> None:
    path = WRITERS[fmt](tmp_path / f"data.{fmt}")
    ds = read_dataset(path, features=[Feature("n", "categorical"), Feature("x", "numerical")])
    assert ds.names == ["n", "x"]
    assert _labels(ds["n"]) == ["3", "4", "5", "3"]


def test_npy_plain_array_gets_generated_names(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.int64).reshape(4, 3)
    np.save(tmp_path / "a.npy", arr)
    ds = read_dataset(tmp_path / "a.npy")
    assert ds.names == ["f0", "f1", "f2"]
    np.testing.assert_array_equal(ds["f2"], [2.0, 5.0, 8.0, 11.0])
    assert ds["f2"].dtype == np.float64


def test_npy_nan_is_missing_and_categorical_override(tmp_path: Path) -> None:
    arr = np.array([[1.0, np.nan], [2.0, 0.0], [1.0, 1.0]])
    np.save(tmp_path / "a.npy", arr)
    ds = read_dataset(tmp_path / "a.npy", features=[Feature("f0", "categorical")])
    assert ds.names == ["f0"]
    assert _labels(ds["f0"]) == ["1", "2", "1"]
    full = read_dataset(tmp_path / "a.npy")
    assert np.isnan(full["f1"][0])


def test_npy_structured_array_uses_field_names(tmp_path: Path) -> None:
    arr = np.zeros(3, dtype=[("amount", "f8"), ("country", "U2"), ("flag", "?")])
    arr["amount"] = [1.5, 2.0, 3.0]
    arr["country"] = ["de", "fr", "de"]
    arr["flag"] = [True, False, True]
    np.save(tmp_path / "s.npy", arr)
    ds = read_dataset(tmp_path / "s.npy")
    assert ds.inferred_features() == [
        Feature("amount", "numerical"),
        Feature("country", "categorical"),
        Feature("flag", "categorical"),
    ]
    assert _labels(ds["country"]) == ["de", "fr", "de"]


def test_npy_object_array_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="object arrays"):
        read_dataset(tmp_path / "o.npy")


def test_csv_infinities_kept_and_null_markers_missing(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\ninf\n-inf\nNA\n\n3\n")
    ds = read_dataset(path)
    np.testing.assert_array_equal(ds["x"], [np.inf, -np.inf, np.nan, 3.0])


def test_integer_then_decimal_values_stream_consistently(tmp_path: Path) -> None:
    # The first block holds only integers; later decimals must still read as numbers.
    n = 200_000
    path = tmp_path / "big.csv"
    values = np.arange(n, dtype=np.float64)
    values[-1] = 0.5
    text = "v,c\n" + "".join(
        f"{int(v) if v.is_integer() else v},k{i % 3}\n" for i, v in enumerate(values)
    )
    path.write_text(text)
    chunks = list(iter_datasets(path, chunk_rows=50_000))
    assert sum(c.n_rows for c in chunks) == n
    assert all(isinstance(c["v"], np.ndarray) for c in chunks)
    assert chunks[-1]["v"][-1] == 0.5
    whole = read_dataset(path)
    np.testing.assert_array_equal(np.concatenate([c["v"] for c in chunks]), whole["v"])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "npy"])
def test_streamed_chunks_add_up_to_the_whole(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=10_000)
    cats = np.array(["a", "b", "c"])[rng.integers(0, 3, size=10_000)]
    path = tmp_path / f"d.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({"x": x, "c": cats}), path)
    elif fmt == "jsonl":
        rows = [{"x": float(a), "c": str(b)} for a, b in zip(x, cats, strict=True)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        arr = np.zeros(x.size, dtype=[("x", "f8"), ("c", "U1")])
        arr["x"], arr["c"] = x, cats
        np.save(path, arr)
    chunks = list(iter_datasets(path, chunk_rows=3000))
    assert len(chunks) >= 3
    assert sum(c.n_rows for c in chunks) == x.size
    np.testing.assert_allclose(np.concatenate([c["x"] for c in chunks]), x)
    labels = np.concatenate([np.asarray(_labels(c["c"])) for c in chunks])
    np.testing.assert_array_equal(labels, cats)


def test_read_columns_lists_inferred_types(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "a.csv")
    assert read_columns(path) == [
        Feature("x", "numerical"),
        Feature("n", "numerical"),
        Feature("c", "categorical"),
        Feature("b", "categorical"),
    ]


def test_lenient_keeps_text_declared_numerical_as_categorical(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a\nx\n1\n")
    with pytest.raises(DataError, match="declared numerical"):
        read_dataset(path, features=[Feature("a", "numerical")])
    ds = read_dataset(path, features=[Feature("a", "numerical")], lenient=True)
    assert ds.inferred_features() == [Feature("a", "categorical")]


def test_features_file_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "f.yaml"
    y.write_text("- {name: a, type: numerical}\n- {name: b, type: categorical}\n")
    j = tmp_path / "f.json"
    j.write_text(json.dumps({"features": [{"name": "a", "type": "numerical"}]}))
    assert load_features_file(y) == [Feature("a", "numerical"), Feature("b", "categorical")]
    assert load_features_file(j) == [Feature("a", "numerical")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("[]", "non-empty list"),
        ("- {name: a, type: ordinal}\n", "type must be one of"),
        ("- {type: numerical}\n", "no name"),
        ("- {name: a, type: numerical}\n- {name: a, type: numerical}\n", "listed twice"),
        ("- [unclosed\n", "not valid YAML"),
    ],
)
def test_features_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_features_file(path)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    (tmp_path / "data.txt").write_text("a\n1\n")
    (tmp_path / "junk.parquet").write_text("not parquet")
    (tmp_path / "junk.npy").write_text("not npy")
    (tmp_path / "mixed.jsonl").write_text('{"a": 1}\n{"a": "x"}\n')
    return {
        "missing": (tmp_path / "nope.csv", "file not found"),
        "empty": (tmp_path / "empty.csv", "empty file"),
        "header only": (tmp_path / "header.csv", "no data rows"),
        "ragged": (tmp_path / "ragged.csv", "cannot parse as CSV"),
        "extension": (tmp_path / "data.txt", "unknown file extension .txt"),
        "parquet": (tmp_path / "junk.parquet", "cannot parse as Parquet"),
        "npy": (tmp_path / "junk.npy", "cannot parse as npy"),
        "jsonl": (tmp_path / "mixed.jsonl", "cannot parse as JSON lines"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "empty", "header only", "ragged", "extension", "parquet", "npy", "jsonl"]
)
def test_bad_input_gives_one_line_error(tmp_path: Path, case: str) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    with pytest.raises(DataError, match=message) as info:
        read_dataset(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_features_file_column_not_in_data(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "a.csv")
    with pytest.raises(DataError, match="'zz'"):
        read_dataset(path, features=[Feature("zz", "numerical")])
    with pytest.raises(DataError, match="'zz'"):
        list(iter_datasets(path, features=[Feature("zz", "numerical")]))


def test_detect_format() -> None:
    assert detect_format("a.csv.gz") == "csv"
    assert detect_format("a.ndjson") == "jsonl"
    assert detect_format("A.PARQUET") == "parquet"
    with pytest.raises(DataError, match="unknown file extension"):
        detect_format("a.xlsx")


def test_gzipped_csv(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "a.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("x,c\n1,a\n2,b\n")
    ds = read_dataset(path)
    assert isinstance(ds, Dataset)
    np.testing.assert_array_equal(ds["x"], [1.0, 2.0])


def test_parquet_dictionary_columns_keep_their_encoding(tmp_path: Path) -> None:
    codes = pa.array([0, 1, None, 2, 0], type=pa.int32())
    col = pa.DictionaryArray.from_arrays(codes, pa.array(["de", "fr", "it"]))
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"country": col}), path, row_group_size=2)
    ds = read_dataset(path)
    assert _labels(ds["country"]) == ["de", "fr", None, "it", "de"]
    streamed = [v for c in iter_datasets(path, chunk_rows=2) for v in _labels(c["country"])]
    assert streamed == ["de", "fr", None, "it", "de"]
    numbers = read_dataset(path, features=[Feature("country", "numerical")], lenient=True)
    assert numbers.inferred_features() == [Feature("country", "categorical")]


def test_text_after_the_first_block_is_a_one_line_error(tmp_path: Path) -> None:
    # Types are fixed from the first block; a later non-number is a clear parse error.
    path = tmp_path / "late.csv"
    path.write_text("v\n" + "1.5\n" * 400_000 + "oops\n")
    with pytest.raises(DataError, match="cannot parse as CSV") as info:
        list(iter_datasets(path, chunk_rows=100_000))
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="cannot parse as CSV"):
        read_dataset(path)
