"""Class probabilities in logged responses: decoded (KServe v1 per-class lists, Open
Inference Protocol v2 ``[rows, classes]`` outputs), kept per row in the window, counted
against its byte share, evicted with their rows."""

from __future__ import annotations

import numpy as np
import pytest

from modelmonitor.core.codecs.cloudevents import decode_response
from modelmonitor.core.codecs.inference import V2Options
from tests.unit.sources.payload_events import NUM, T0, event, feed, v1_pair, window


def test_v1_per_class_lists_are_probabilities_and_the_top_class_the_prediction() -> None:
    protocol, values, proba = decode_response({"predictions": [[0.2, 0.8], [0.9, 0.1]]})
    assert protocol == "v1"
    assert [str(v) for v in values.tolist()] == ["1", "0"]
    assert proba is not None
    np.testing.assert_allclose(proba, [[0.2, 0.8], [0.9, 0.1]])


def test_v2_probability_tensor() -> None:
    body = {
        "outputs": [
            {"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {
                "name": "predict_proba",
                "shape": [2, 2],
                "datatype": "FP64",
                "data": [0.3, 0.7, 0.6, 0.4],
            },
        ]
    }
    _, values, proba = decode_response(
        body, V2Options(output_name="predict", probability_output="predict_proba")
    )
    assert values.tolist() == [1, 0]
    assert proba is not None
    np.testing.assert_allclose(proba, [[0.3, 0.7], [0.6, 0.4]])
    _, _, none = decode_response(body)  # not asked for: the predictions only
    assert none is None


def test_the_window_keeps_probabilities_per_row_and_nan_where_a_response_had_none() -> None:
    w = window()
    feed(w, v1_pair("1", [[1, 2], [3, 4]], [[0.2, 0.8], [0.6, 0.4]]))
    feed(w, v1_pair("2", [[5, 6]], [1]))  # a response without probabilities
    proba: list[np.ndarray] = []
    data = w.snapshot(T0, NUM, probabilities=proba)
    assert data is not None
    assert data.n_rows == 3
    assert len(proba) == 2
    np.testing.assert_allclose(np.column_stack(proba)[:2], [[0.2, 0.8], [0.6, 0.4]])
    assert np.isnan(np.column_stack(proba)[2]).all()


def test_probabilities_count_against_the_byte_share_and_leave_with_their_rows() -> None:
    plain, scored = window(), window()
    for i in range(50):
        feed(plain, v1_pair(f"p{i}", [[i, i]], [1]))
        feed(scored, v1_pair(f"s{i}", [[i, i]], [[0.5, 0.5]]))
    assert scored.nbytes() > plain.nbytes()
    short = window(window_seconds=10.0)
    feed(short, v1_pair("old", [[1, 1]], [[0.1, 0.9]]), now=T0)
    feed(short, v1_pair("new", [[2, 2]], [[0.7, 0.3]]), now=T0 + 20)
    proba: list[np.ndarray] = []
    data = short.snapshot(T0 + 20, NUM, probabilities=proba)
    assert data is not None
    assert data.n_rows == 1
    np.testing.assert_allclose(np.column_stack(proba), [[0.7, 0.3]])


@pytest.mark.parametrize("width", [1, 101])
def test_odd_widths_are_not_kept(width: int) -> None:
    """One column is a value, not probabilities; more than 100 classes are not kept."""
    w = window()
    feed(
        w,
        [
            event("1", "request", {"instances": [[1, 2]]}),
            event("1", "response", {"predictions": [[0.5] * width]}),
        ],
    )
    proba: list[np.ndarray] = []
    assert w.snapshot(T0, NUM, probabilities=proba) is not None
    assert proba == []
