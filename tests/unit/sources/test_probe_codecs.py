"""Probe requests and responses for KServe v1, Open Inference Protocol v2 and plain JSON.

No network: the codecs are pure. Response bodies follow what MLServer 1.7.1 sends
(checked by hand against a running server). The probe loop is tested in
test_probe_loop.py.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from modelmonitor.core.codecs.inference import (
    BadResponseError,
    BatchOutput,
    RowBatch,
    V2Options,
    decode_json,
    label_text,
    make_batches,
    prediction_values,
)
from modelmonitor.core.dataset import CategoricalColumn, Dataset
from modelmonitor.core.spec import EndpointSpec, PredictionSpec, ProbeSpec
from modelmonitor.sources.probe import (
    ProbeConfig,
    build_request,
    config_from_spec,
    parse_response,
    sample_rows,
)

URL = "http://model.test:8080"


def v1(**kw: Any) -> ProbeConfig:
    return ProbeConfig(**{"url": URL, "protocol": "v1", "model": "iris", **kw})


def v2(**kw: Any) -> ProbeConfig:
    return ProbeConfig(**{"url": URL, "protocol": "v2", "model": "iris", **kw})


def js(**kw: Any) -> ProbeConfig:
    return ProbeConfig(url=URL, protocol="json", **kw)


def numeric_batch() -> RowBatch:
    return RowBatch(
        features=("a", "b"),
        types=("numerical", "numerical"),
        columns=((1.0, 2.5), (3.0, None)),
    )


def mixed_batch() -> RowBatch:
    return RowBatch(
        features=("amount", "country"),
        types=("numerical", "categorical"),
        columns=((10.0, 20.0), ("de", None)),
    )


# --- rows -----------------------------------------------------------------------------


def test_make_batches_sends_numbers_and_strings_and_null_for_missing() -> None:
    rows = Dataset(
        {
            "x": np.array([1.0, math.nan, math.inf, 4.0]),
            "c": CategoricalColumn(np.array([0, 1, -1, 0], dtype=np.int32), ("a", "b")),
            "label": np.array([0.0, 1.0, 0.0, 1.0]),
        }
    )
    batches = make_batches(rows, ["x", "c"], batch_size=3)
    assert [idx.tolist() for idx, _ in batches] == [[0, 1, 2], [3]]
    first = batches[0][1]
    assert first.types == ("numerical", "categorical")
    assert first.rows() == [[1.0, "a"], [None, "b"], [None, None]]
    assert first.records()[0] == {"x": 1.0, "c": "a"}
    assert batches[1][1].rows() == [[4.0, "a"]]


def test_make_batches_names_a_missing_feature() -> None:
    with pytest.raises(ValueError, match="lack the feature column"):
        make_batches(Dataset({"x": np.zeros(2)}), ["x", "y"], batch_size=1)


def test_sample_rows_without_replacement_in_order() -> None:
    rows = Dataset({"x": np.arange(100, dtype=np.float64)})
    sample = sample_rows(rows, 10, seed=1)
    values = sample["x"]
    assert isinstance(values, np.ndarray)
    assert len(set(values.tolist())) == 10
    assert np.all(np.diff(values) > 0)
    assert sample_rows(rows, 500) is rows


# --- request building --------------------------------------------------------------------


def test_request_paths() -> None:
    assert v1().request_url == f"{URL}/v1/models/iris:predict"
    assert v2().request_url == f"{URL}/v2/models/iris/infer"
    assert v2(model="a b/c").request_path == "/v2/models/a%20b%2Fc/infer"
    assert js().request_path == "/predict"
    assert js(path="score").request_path == "/score"
    assert ProbeConfig(url=URL + "/prefix/", protocol="json", path="/p").request_url == (
        f"{URL}/prefix/p"
    )


def test_v1_request_is_instances_rows() -> None:
    assert build_request(v1(), mixed_batch()) == {"instances": [[10.0, "de"], [20.0, None]]}


def test_v2_numerical_rows_become_one_tensor() -> None:
    body = build_request(v2(), numeric_batch())
    assert body == {
        "inputs": [
            {"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 3.0, 2.5, None]}
        ]
    }


def test_v2_tensor_options_name_datatype_and_outputs() -> None:
    options = V2Options(
        input_name="x", numeric_datatype="FP32", outputs=("predict", "predict_proba")
    )
    body = build_request(v2(v2=options), numeric_batch())
    assert body["inputs"][0]["name"] == "x"
    assert body["inputs"][0]["datatype"] == "FP32"
    assert body["outputs"] == [{"name": "predict"}, {"name": "predict_proba"}]


def test_v2_int64_needs_whole_numbers() -> None:
    batch = RowBatch(("a",), ("numerical",), ((1.0, 2.0, None),))
    body = build_request(v2(v2=V2Options(numeric_datatype="INT64")), batch)
    assert body["inputs"][0]["data"] == [1, 2, None]
    assert all(type(v) is int for v in body["inputs"][0]["data"][:2])
    with pytest.raises(ValueError, match="not an integer"):
        build_request(
            v2(v2=V2Options(numeric_datatype="INT64")),
            RowBatch(("a",), ("numerical",), ((1.5,),)),
        )


def test_v2_mixed_types_go_column_per_feature_as_a_table() -> None:
    body = build_request(v2(), mixed_batch())
    assert body["inputs"] == [
        {"name": "amount", "shape": [2], "datatype": "FP64", "data": [10.0, 20.0]},
        {"name": "country", "shape": [2], "datatype": "BYTES", "data": ["de", None]},
    ]
    assert body["parameters"] == {"content_type": "pd"}


def test_v2_tensor_layout_refuses_mixed_types() -> None:
    with pytest.raises(ValueError, match="layout 'columns'"):
        build_request(v2(v2=V2Options(layout="tensor")), mixed_batch())


def test_v2_all_categorical_tensor_is_bytes() -> None:
    batch = RowBatch(("a", "b"), ("categorical", "categorical"), (("x",), ("y",)))
    body = build_request(v2(v2=V2Options(layout="tensor")), batch)
    assert body["inputs"][0]["datatype"] == "BYTES"
    assert body["inputs"][0]["data"] == ["x", "y"]


def test_json_request_is_records_under_the_input_field() -> None:
    assert build_request(js(), mixed_batch()) == {
        "instances": [{"amount": 10.0, "country": "de"}, {"amount": 20.0, "country": None}]
    }
    nested = build_request(js(input_field="data.rows"), mixed_batch())
    assert nested["data"]["rows"][1] == {"amount": 20.0, "country": None}


def test_requests_are_json_serialisable_without_nan() -> None:
    for config in (v1(), v2(), js()):
        json.dumps(build_request(config, numeric_batch()), allow_nan=False)


# --- config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "v3", "model": "m"}, "protocol 'v3'"),
        ({"protocol": "v2"}, "needs a model name"),
        ({"protocol": "json", "url": "model:8080"}, "must start with http"),
        ({"protocol": "json", "timeout_seconds": 0}, "timeout_seconds"),
        ({"protocol": "json", "batch_size": 0}, "batch_size"),
        ({"protocol": "json", "v2": V2Options(layout="rows")}, "layout"),  # type: ignore[arg-type]
    ],
)
def test_config_refuses_unusable_settings(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("url", URL)
    with pytest.raises(ValueError, match=message):
        ProbeConfig(**kwargs)


def test_config_from_spec_defaults_the_model_to_the_target() -> None:
    config = config_from_spec(
        EndpointSpec(protocol="v2", service_name="m", service_port=8080),
        ProbeSpec(timeout_seconds=1.5, concurrency=2, retries=1, batch_size=8),
        base_url="http://m.ns.svc:8080",
        default_model="fraud",
        prediction=PredictionSpec(type="numerical"),
    )
    assert config.model == "fraud"
    assert config.request_url == "http://m.ns.svc:8080/v2/models/fraud/infer"
    assert (config.timeout_seconds, config.concurrency, config.retries, config.batch_size) == (
        1.5,
        2,
        1,
        8,
    )
    assert config.prediction_type == "numerical"


# --- response parsing --------------------------------------------------------------------


def test_v1_predictions_scalars_single_lists_and_probabilities() -> None:
    assert parse_response(v1(), {"predictions": [0, 2]}, 2).values == (0, 2)
    assert parse_response(v1(), {"predictions": [[0.5], [1.5]]}, 2).values == (0.5, 1.5)
    out = parse_response(v1(), {"predictions": [[0.9, 0.1], [0.2, 0.8]]}, 2)
    assert out.values is None
    assert out.probabilities is not None
    assert out.probabilities.shape == (2, 2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"result": [1]}, "no field 'predictions'"),
        ({"predictions": 3}, "expected a list"),
        ({"predictions": [1]}, r"1 item.* for 2 row"),
        ({"predictions": [[1, 2], [3]]}, "lists of sizes"),
        ({"predictions": [{"label": 1}, {"label": 2}]}, "is dict"),
        ({"predictions": [1, [2]]}, "is list"),
        (["not", "an", "object"], "no field"),
    ],
)
def test_v1_malformed_responses(payload: Any, message: str) -> None:
    with pytest.raises(BadResponseError, match=message):
        parse_response(v1(), payload, 2)


MLSERVER_PREDICT = {
    "model_name": "iris",
    "model_version": "v1",
    "id": "4ce78293",
    "parameters": {},
    "outputs": [
        {
            "name": "predict",
            "shape": [2, 1],
            "datatype": "INT64",
            "parameters": {"content_type": "np"},
            "data": [0, 2],
        }
    ],
}
MLSERVER_PROBA = {
    "name": "predict_proba",
    "shape": [2, 3],
    "datatype": "FP64",
    "data": [0.98, 0.02, 0.0, 0.0, 0.08, 0.92],
}


def test_v2_mlserver_predict_output() -> None:
    out = parse_response(v2(), MLSERVER_PREDICT, 2)
    assert out.values == (0, 2)
    assert out.probabilities is None


def test_v2_named_prediction_and_probability_outputs() -> None:
    payload = {"outputs": [MLSERVER_PROBA, MLSERVER_PREDICT["outputs"][0]]}  # type: ignore[index]
    options = V2Options(output_name="predict", probability_output="predict_proba")
    out = parse_response(v2(v2=options), payload, 2)
    assert out.values == (0, 2)
    assert out.probabilities is not None
    np.testing.assert_allclose(out.probabilities, [[0.98, 0.02, 0.0], [0.0, 0.08, 0.92]])


def test_v2_probability_matrix_alone_gives_classes_by_argmax() -> None:
    out = parse_response(v2(), {"outputs": [MLSERVER_PROBA]}, 2)
    assert out.values is None
    assert prediction_values(out, "categorical") == ["0", "2"]
    assert prediction_values(out, "categorical", ("setosa", "versicolor", "virginica")) == [
        "setosa",
        "virginica",
    ]
    with pytest.raises(BadResponseError, match="class name"):
        prediction_values(out, "categorical", ("a", "b"))
    with pytest.raises(BadResponseError, match="expected numbers"):
        prediction_values(out, "numerical")


def test_v2_bytes_output_and_nested_data() -> None:
    payload = {
        "outputs": [{"name": "label", "shape": [2], "datatype": "BYTES", "data": ["no", "yes"]}]
    }
    assert parse_response(v2(), payload, 2).values == ("no", "yes")
    nested = {"outputs": [{"name": "y", "shape": [2, 1], "datatype": "FP32", "data": [[1.5], [2]]}]}
    assert parse_response(v2(), nested, 2).values == (1.5, 2)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ([], "empty"),
        ("predict", "not a list"),
        ([{"name": "p", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}], "3 row"),
        ([{"name": "p", "shape": [2, 1], "datatype": "INT64", "data": [1]}], "does not fit"),
        ([{"name": "p", "shape": "2", "datatype": "INT64", "data": [1, 2]}], "no valid shape"),
        ([{"name": "p", "shape": [2], "data": [1, 2]}], "no datatype"),
        ([{"name": "p", "shape": [2], "datatype": "INT64", "data": "12"}], "expected a list"),
        ([{"name": "p", "shape": [2, 1, 1], "datatype": "FP64", "data": [1, 2]}], "shape"),
        ([{"name": "p", "shape": [2], "datatype": "BYTES", "data": [1, 2]}], "non-strings"),
        ([{"name": "p", "shape": [2], "datatype": "FP64", "data": ["a", "b"]}], "non-numbers"),
        ([{"name": "p", "shape": [2, 2], "datatype": "BYTES", "data": list("abcd")}], "proba"),
        (["p"], "not an object"),
    ],
)
def test_v2_malformed_outputs(outputs: Any, message: str) -> None:
    with pytest.raises(BadResponseError, match=message):
        parse_response(v2(), {"outputs": outputs}, 2)


def test_v2_missing_named_output_lists_the_outputs() -> None:
    with pytest.raises(BadResponseError, match=r"no output 'label'.*predict"):
        parse_response(v2(v2=V2Options(output_name="label")), MLSERVER_PREDICT, 2)


def test_v2_error_body_without_outputs() -> None:
    with pytest.raises(BadResponseError, match=r"no field 'outputs'.*error"):
        parse_response(v2(), {"error": "boom"}, 2)


def test_json_output_field_is_a_dotted_path() -> None:
    config = js(output_field="result.scores")
    assert parse_response(config, {"result": {"scores": [0.1, 0.7]}}, 2).values == (0.1, 0.7)
    with pytest.raises(BadResponseError, match=r"no field 'result\.scores'"):
        parse_response(config, {"result": {}}, 2)


def test_decode_json_rejects_non_json() -> None:
    assert decode_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(BadResponseError, match=r"not JSON.*Internal Server Error"):
        decode_json(b"Internal Server Error")
    with pytest.raises(BadResponseError, match="not JSON"):
        decode_json(b"\xff\xfe")


def test_label_text_shares_one_spelling_for_numbers() -> None:
    assert [label_text(v) for v in (2, 2.0, np.int64(2), np.float64(2.0))] == ["2"] * 4
    assert label_text(0.5) == "0.5"
    assert label_text(True) == "true"
    assert label_text(None) is None
    assert label_text(math.nan) is None
    assert label_text("setosa") == "setosa"


def test_numerical_predictions() -> None:
    out = BatchOutput(values=(1, 2.5, None))
    assert prediction_values(out, "numerical")[:2] == [1.0, 2.5]
    assert math.isnan(prediction_values(out, "numerical")[2])
    with pytest.raises(BadResponseError, match="not a number"):
        prediction_values(BatchOutput(values=("high",)), "numerical")


def test_single_probability_column_is_the_positive_class() -> None:
    out = BatchOutput(values=None, probabilities=np.array([[0.2], [0.7]]))
    assert prediction_values(out, "categorical") == ["0", "1"]
    assert prediction_values(out, "categorical", ("no", "yes")) == ["no", "yes"]
