"""Specs the schema accepted but that meant something else: each is now refused by name.

Thresholds on the wrong scale (5 meant as 5% flags identical data), a feature named like
the prediction column, and request-path pieces that leave the inference path. The CRD
states the same rules (tests/e2e/test_crd.py sends them to a real API server); this
module holds the parser to them and the CRD's method lists to the registry.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.core.spec import SpecError, parse_spec
from modelmonitor.core.stats.methods import (
    BOUNDED_METHODS,
    METHOD_NAMES,
    TEST_METHODS,
    UNBOUNDED_MAX,
    threshold_problem,
)
from modelmonitor.core.url_paths import path_segment_problem, url_path_problem

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "modelmonitor.io_modelmonitors.yaml"

BASE: dict[str, Any] = {
    "target": {"name": "fraud-model", "endpoint": {"url": "http://fraud:8080"}},
    "reference": {"configMapRef": {"name": "fraud-reference", "key": "reference.csv"}},
    "features": [{"name": "amount", "type": "numerical"}],
}


def spec(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out.update(changes)
    return out


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    return dict(err.value.problems)


# --- thresholds on their method's scale -------------------------------------------------
@pytest.mark.parametrize(
    ("method", "ok", "refused"),
    [
        ("ks", [0.0, 0.05, 0.999], [1.0, 5.0]),
        ("chi2", [0.01], [1.0, 5.0]),
        ("auto", [0.1, 1.0], [1.5, 5.0]),
        ("jensenshannon", [1.0], [1.01]),
        ("hellinger", [0.3], [2.0]),
        ("wasserstein", [0.1, 5.0, 10.0], [10.5, 25.0]),
        ("psi", [0.25, 10.0], [25.0]),
        ("kl", [3.0], [11.0]),
        ("energy", [10.0], [50.0]),
    ],
)
def test_drift_threshold_on_its_method_scale(
    method: str, ok: list[float], refused: list[float]
) -> None:
    for value in ok:
        parsed = parse_spec(spec(drift={"method": method, "threshold": value}, features=[]))
        assert parsed.drift.threshold == value
    for value in refused:
        found = problems(spec(drift={"method": method, "threshold": value}, features=[]))
        assert list(found) == ["spec.drift.threshold"]
        assert repr(method) in found["spec.drift.threshold"]


def test_five_meant_as_five_percent_is_refused_with_the_reason() -> None:
    found = problems(spec(drift={"method": "ks", "threshold": 5}))
    assert "below 1 (0.05 means 5%)" in found["spec.drift.threshold"]


def test_feature_threshold_is_judged_by_the_feature_method() -> None:
    # the feature's own method decides; without one, spec.drift.method does
    own = [{"name": "amount", "type": "numerical", "method": "psi", "threshold": 5}]
    assert parse_spec(spec(features=own, drift={"method": "ks"})).features[0].threshold == 5
    inherited = [{"name": "amount", "type": "numerical", "threshold": 5}]
    found = problems(spec(features=inherited, drift={"method": "ks"}))
    assert list(found) == ["spec.features[0].threshold"]
    assert "'ks'" in found["spec.features[0].threshold"]
    assert parse_spec(spec(features=inherited, drift={"method": "psi"})).features[0].threshold == 5


def test_every_method_has_a_threshold_limit() -> None:
    for method in METHOD_NAMES:
        assert threshold_problem(method, 0.0) is None
        assert threshold_problem(method, UNBOUNDED_MAX + 1) is not None


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]


def _method_lists(rule: str) -> list[tuple[str, ...]]:
    return [
        tuple(re.findall(r"'([a-z0-9]+)'", group)) for group in re.findall(r"in \[([^\]]*)\]", rule)
    ]


def test_crd_threshold_rules_list_the_registry_methods() -> None:
    spec_schema = _schema()
    drift = spec_schema["properties"]["drift"]
    item = spec_schema["properties"]["features"]["items"]
    rules = [
        drift["x-kubernetes-validations"][0]["rule"],
        item["x-kubernetes-validations"][0]["rule"],
        next(
            r["rule"] for r in spec_schema["x-kubernetes-validations"] if "f.threshold" in r["rule"]
        ),
    ]
    for rule in rules:
        assert _method_lists(rule) == [TEST_METHODS, BOUNDED_METHODS], rule
        assert "< 1.0" in rule
        assert "<= 1.0" in rule
    assert drift["properties"]["threshold"]["maximum"] == UNBOUNDED_MAX
    assert item["properties"]["threshold"]["maximum"] == UNBOUNDED_MAX


# --- a feature named like the prediction column -----------------------------------------
def test_feature_named_like_the_default_prediction_column_is_refused() -> None:
    found = problems(spec(features=[{"name": "prediction", "type": "numerical"}]))
    assert list(found) == ["spec.features[0].name"]
    assert "'prediction'" in found["spec.features[0].name"]
    assert "spec.prediction.name" in found["spec.features[0].name"]


def test_feature_named_like_the_prediction_column_is_refused() -> None:
    features = [{"name": "amount"}, {"name": "score"}]
    found = problems(spec(features=features, prediction={"name": "score"}))
    assert list(found) == ["spec.features[1].name"]
    assert "'score'" in found["spec.features[1].name"]
    # another prediction name frees "prediction" for a feature
    named = [{"name": "prediction"}]
    assert parse_spec(spec(features=named, prediction={"name": "score"})).features[0].name == (
        "prediction"
    )


# --- request path pieces -----------------------------------------------------------------
@pytest.mark.parametrize("model", ["..", ".", "../admin", "a/b", "a%2Fb", "%2e%2e"])
def test_model_names_leaving_the_inference_path_are_refused(model: str) -> None:
    endpoint = {"url": "http://fraud:8080", "model": model}
    found = problems(spec(target={"name": "fraud-model", "endpoint": endpoint}))
    assert list(found) == ["spec.target.endpoint.model"]


@pytest.mark.parametrize(
    "path", ["/../admin", "/a/./b", "/a/..", "/predict?admin=1", "/p#x", "/%2e%2e/x", "predict"]
)
def test_json_paths_leaving_the_inference_path_are_refused(path: str) -> None:
    endpoint = {"url": "http://fraud:8080/team-a", "protocol": "json", "path": path}
    found = problems(spec(target={"name": "fraud-model", "endpoint": endpoint}))
    assert list(found) == ["spec.target.endpoint.path"]


def test_ordinary_model_names_and_paths_are_accepted() -> None:
    for model in ("sklearn-iris", "fraud.v2", "Model_1", "..hidden", "a..b"):
        assert path_segment_problem(model) is None, model
    for path in ("/predict", "/v1/models/fraud:predict", "/a..b/.well/x", "/"):
        assert url_path_problem(path) is None, path
    endpoint = {"url": "http://fraud:8080", "protocol": "json", "path": "/v1/score"}
    parsed = parse_spec(spec(target={"name": "fraud-model", "endpoint": endpoint}))
    assert parsed.target.endpoint is not None
    assert parsed.target.endpoint.path == "/v1/score"
