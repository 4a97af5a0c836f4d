"""spec.performance and spec.actions.onPerformanceDrop: parsing, defaults, clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.core.spec import PERFORMANCE_METRICS, SpecError, parse_spec


def _spec(**performance: Any) -> dict[str, Any]:
    return {
        "target": {"name": "m", "endpoint": {"url": "http://m:8080", "protocol": "v2"}},
        "reference": {"url": "http://r/ref.csv"},
        "prediction": {"labelColumn": "y"},
        "data": {"probe": {}},
        "performance": {"probabilities": ["p0", "p1"], **performance},
    }


def _problems(spec: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return str(info.value)


def test_defaults_and_the_label_column_from_prediction() -> None:
    perf = parse_spec(_spec()).performance
    assert perf is not None
    assert perf.target == "y"
    assert perf.probabilities == ("p0", "p1")
    assert perf.metrics == PERFORMANCE_METRICS
    assert perf.thresholds() == ()
    assert (perf.confidence, perf.min_rows, perf.probability_output) == (0.95, 100, None)


def test_thresholds_and_outputs() -> None:
    perf = parse_spec(
        _spec(
            target="label",
            metrics=["f1", "accuracy"],
            minimum={"accuracy": 0.9},
            maxDrop={"f1": 0.05},
            probabilityOutput="predict_proba",
        )
    ).performance
    assert perf is not None
    assert perf.target == "label"
    assert perf.metrics == ("accuracy", "f1")  # the vocabulary's order
    assert perf.minimum == {"accuracy": 0.9}
    assert perf.max_drop == {"f1": 0.05}
    assert perf.thresholds() == ("accuracy", "f1")
    assert perf.probability_output == "predict_proba"
    assert perf.prediction_output == "predict"


@pytest.mark.parametrize(
    ("performance", "field", "words"),
    [
        ({"probabilities": []}, "spec.performance.probabilities", "non-empty"),
        ({"probabilities": ["a", "a"]}, "spec.performance.probabilities", "twice"),
        ({"probabilities": ["y"]}, "spec.performance.probabilities", "label column"),
        ({"metrics": ["mse"]}, "spec.performance.metrics", "unsupported metric"),
        ({"minimum": {"accuracy": 1.5}}, "spec.performance.minimum.accuracy", "<= 1"),
        ({"minimum": {"mae": 0.5}}, "spec.performance.minimum.mae", "unsupported metric"),
        ({"metrics": ["f1"], "maxDrop": {"accuracy": 0.1}}, "maxDrop.accuracy", "not in"),
        ({"task": "regression"}, "spec.performance.task", "unsupported value"),
        ({"minRows": 3}, "spec.performance.minRows", ""),
        ({"confidence": 1.0}, "spec.performance.confidence", ""),
        ({"probabilityOutput": "a b"}, "spec.performance.probabilityOutput", "letters"),
        ({"probabilityOutput": "predict"}, "spec.performance.predictionOutput", "differ"),
    ],
)
def test_bad_performance_is_refused_naming_the_field(
    performance: dict[str, Any], field: str, words: str
) -> None:
    spec = _spec()
    spec["performance"].update(performance)
    text = _problems(spec)
    assert field in text
    assert words in text


def test_the_target_is_required_without_a_label_column() -> None:
    spec = _spec()
    del spec["prediction"]
    assert "spec.performance.target: is required" in _problems(spec)


def test_performance_needs_the_probe_and_a_classifier() -> None:
    spec = _spec()
    del spec["data"]
    assert "needs spec.data.probe or spec.data.payloadLog" in _problems(spec)
    spec = _spec()
    spec["prediction"]["type"] = "numerical"
    assert "categorical spec.prediction" in _problems(spec)


def test_probability_output_is_for_v2_only() -> None:
    spec = _spec(probabilityOutput="predict_proba")
    spec["target"]["endpoint"]["protocol"] = "v1"
    spec["target"]["endpoint"]["model"] = "m"
    assert "applies to protocol v2 only" in _problems(spec)


def test_on_performance_drop_needs_a_threshold() -> None:
    spec = _spec()
    spec["actions"] = {
        "onPerformanceDrop": ["notify"],
        "notify": {"webhookSecretRef": {"name": "hook", "key": "url"}},
    }
    assert "spec.actions.onPerformanceDrop" in _problems(spec)
    spec["performance"]["minimum"] = {"accuracy": 0.8}
    parsed = parse_spec(spec)
    assert parsed.actions.on_performance_drop == ("notify",)
    assert parsed.actions.uses("notify")


def test_on_performance_drop_actions_are_held_to_their_requirements() -> None:
    spec = _spec(minimum={"accuracy": 0.8})
    spec["actions"] = {"onPerformanceDrop": ["scale"]}
    spec["target"]["kind"] = "External"
    text = _problems(spec)
    assert "'scale' needs spec.target.kind Deployment" in text
    assert "spec.actions.scale" in text
