"""Object names and data keys in a spec: the CRD and the parser hold them to one rule.

The attack: a name like ``../../kube-system/configmaps/private-config`` would become a
path into another namespace. The CRD refuses it at the API server; the parser refuses it
again for a spec that arrives another way (an older CRD, a file in job mode).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.core.names import DNS1035, KEY, SUBDOMAIN, NameRule
from modelmonitor.core.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "modelmonitor.io_modelmonitors.yaml"

FULL: dict[str, Any] = {
    "target": {
        "name": "fraud-model",
        "endpoint": {"service": {"name": "fraud-model", "port": 8080}},
    },
    "reference": {"configMapRef": {"name": "fraud-reference", "key": "reference.csv"}},
    "data": {"probe": {"dataset": {"configMapRef": {"name": "golden-set", "key": "golden.csv"}}}},
    "actions": {
        "onDrift": ["notify"],
        "notify": {"webhookSecretRef": {"name": "slack-webhook", "key": "url"}},
    },
}
PVC: dict[str, Any] = {
    "target": {"name": "fraud-model"},
    "schedule": {"mode": "job"},
    "reference": {"pvc": {"claimName": "reference-data", "path": "/data/ref.csv"}},
}
STORED = {"bucket": "refs", "key": "r.csv", "secretRef": {"name": "creds"}}
S3: dict[str, Any] = {
    "target": {"name": "fraud-model", "endpoint": {"url": "http://m:8080"}},
    "reference": {"s3": STORED, "format": "csv"},
    "data": {"probe": {"dataset": {"s3": copy.deepcopy(STORED)}}},
}
GCS: dict[str, Any] = {"target": {"name": "fraud-model"}, "reference": {"gcs": STORED}}
AZURE: dict[str, Any] = {
    "target": {"name": "fraud-model"},
    "reference": {
        "azureBlob": {
            "account": "acct",
            "container": "refs",
            "blob": "r.csv",
            "secretRef": {"name": "creds", "sasTokenKey": "sas"},
        }
    },
}

# (field, the spec that holds it, the rule the CRD and the parser apply)
NAME_FIELDS: list[tuple[str, dict[str, Any], NameRule]] = [
    ("spec.target.name", FULL, SUBDOMAIN),
    ("spec.target.endpoint.service.name", FULL, DNS1035),
    ("spec.reference.configMapRef.name", FULL, SUBDOMAIN),
    ("spec.reference.configMapRef.key", FULL, KEY),
    ("spec.reference.pvc.claimName", PVC, SUBDOMAIN),
    ("spec.data.probe.dataset.configMapRef.name", FULL, SUBDOMAIN),
    ("spec.data.probe.dataset.configMapRef.key", FULL, KEY),
    ("spec.actions.notify.webhookSecretRef.name", FULL, SUBDOMAIN),
    ("spec.actions.notify.webhookSecretRef.key", FULL, KEY),
    ("spec.reference.s3.secretRef.name", S3, SUBDOMAIN),
    ("spec.reference.s3.secretRef.accessKeyIdKey", S3, KEY),
    ("spec.reference.s3.secretRef.secretAccessKeyKey", S3, KEY),
    ("spec.reference.s3.secretRef.sessionTokenKey", S3, KEY),
    ("spec.data.probe.dataset.s3.secretRef.name", S3, SUBDOMAIN),
    ("spec.reference.gcs.secretRef.name", GCS, SUBDOMAIN),
    ("spec.reference.gcs.secretRef.accessKeyIdKey", GCS, KEY),
    ("spec.reference.azureBlob.secretRef.name", AZURE, SUBDOMAIN),
    ("spec.reference.azureBlob.secretRef.sasTokenKey", AZURE, KEY),
]

TRAVERSALS = [
    "../../kube-system/configmaps/private-config",
    "..",
    "../secrets/x",
    "x/../../kube-system/secrets/y",
    "a%2Fb",
    "%2e%2e",
    "kube-system/x",
]


def with_value(base: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    node = spec
    keys = field.removeprefix("spec.").split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return spec


def test_the_specs_used_here_are_valid() -> None:
    for spec in (FULL, PVC, S3, GCS, AZURE):
        parse_spec(spec)


@pytest.mark.parametrize("value", TRAVERSALS)
@pytest.mark.parametrize(("field", "base", "rule"), NAME_FIELDS, ids=[f[0] for f in NAME_FIELDS])
def test_parser_refuses_traversal_naming_the_field(
    field: str, base: dict[str, Any], rule: NameRule, value: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_value(base, field, value))
    assert [path for path, _ in info.value.problems] == [field]


@pytest.mark.parametrize(("field", "base", "rule"), NAME_FIELDS, ids=[f[0] for f in NAME_FIELDS])
def test_parser_holds_the_length_limit(field: str, base: dict[str, Any], rule: NameRule) -> None:
    limit = rule.max_length
    parse_spec(with_value(base, field, "a" * limit))
    with pytest.raises(SpecError) as info:
        parse_spec(with_value(base, field, "a" * (limit + 1)))
    assert field in str(info.value)
    assert f"at most {limit}" in str(info.value)


@pytest.mark.parametrize("value", ["Fraud", "frãud", ""])
@pytest.mark.parametrize(("field", "base", "rule"), NAME_FIELDS, ids=[f[0] for f in NAME_FIELDS])
def test_parser_refuses_uppercase_unicode_and_empty_names(
    field: str, base: dict[str, Any], rule: NameRule, value: str
) -> None:
    if rule is KEY and value == "Fraud":
        parse_spec(with_value(base, field, value))  # keys may have upper case
        return
    with pytest.raises(SpecError) as info:
        parse_spec(with_value(base, field, value))
    assert [path for path, _ in info.value.problems] == [field]


def _crd_field(field: str) -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in field.split("."):
        node = node["properties"][key]
    return dict(node)


@pytest.mark.parametrize(("field", "base", "rule"), NAME_FIELDS, ids=[f[0] for f in NAME_FIELDS])
def test_crd_has_the_same_rule(field: str, base: dict[str, Any], rule: NameRule) -> None:
    schema = _crd_field(field)
    assert (schema.get("pattern"), schema.get("maxLength"), schema.get("minLength")) == (
        rule.pattern,
        rule.max_length,
        1,
    )
