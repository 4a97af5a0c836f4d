"""Object storage references in the spec: each problem names its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelmonitor.core.spec import SpecError, parse_spec

BASE: dict[str, Any] = {"target": {"name": "m"}}


def stored(kind: str, **fields: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    obj: dict[str, Any]
    if kind == "azureBlob":
        obj = {"account": "acct", "container": "refs", "blob": "r.csv"}
        obj["secretRef"] = {"name": "creds", "accountKeyKey": "key"}
    else:
        obj = {"bucket": "refs", "key": "teams/a/r.csv", "secretRef": {"name": "creds"}}
    obj.update(fields)
    spec["reference"] = {kind: {k: v for k, v in obj.items() if v is not None}}
    return spec


def problems(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return dict(info.value.problems)


def test_s3_defaults_and_credentials() -> None:
    ref = parse_spec(stored("s3")).reference
    assert ref.source == "s3"
    s3 = ref.object_storage
    assert s3 is not None
    assert (s3.bucket, s3.key, s3.region, s3.path_style, s3.endpoint) == (
        "refs",
        "teams/a/r.csv",
        "us-east-1",
        False,
        None,
    )
    assert {role: (r.name, r.key) for role, r in s3.credentials.items()} == {
        "accessKeyId": ("creds", "AWS_ACCESS_KEY_ID"),
        "secretAccessKey": ("creds", "AWS_SECRET_ACCESS_KEY"),
    }
    assert s3.credentials["accessKeyId"].field == "spec.reference.s3.secretRef.accessKeyIdKey"


def test_s3_compatible_server() -> None:
    spec = stored(
        "s3",
        endpoint="http://seaweedfs.storage:8333/",
        forcePathStyle=True,
        region="garage",
        secretRef={"name": "creds", "accessKeyIdKey": "id", "sessionTokenKey": "token"},
    )
    s3 = parse_spec(spec).reference.object_storage
    assert s3 is not None
    assert (s3.endpoint, s3.path_style, s3.region) == (
        "http://seaweedfs.storage:8333",
        True,
        "garage",
    )
    assert sorted(s3.credentials) == ["accessKeyId", "secretAccessKey", "sessionToken"]


def test_gcs_is_path_style_with_region_auto() -> None:
    gcs = parse_spec(stored("gcs", bucket="my_refs")).reference.object_storage
    assert gcs is not None
    assert (gcs.provider, gcs.region, gcs.path_style) == ("gcs", "auto", True)


def test_azure_needs_exactly_one_credential() -> None:
    az = parse_spec(stored("azureBlob")).reference.object_storage
    assert az is not None
    assert (az.account, az.bucket, az.key) == ("acct", "refs", "r.csv")
    assert list(az.credentials) == ["accountKey"]
    both = stored("azureBlob", secretRef={"name": "c", "accountKeyKey": "k", "sasTokenKey": "s"})
    assert (
        "exactly one of accountKeyKey or sasTokenKey"
        in problems(both)["spec.reference.azureBlob.secretRef"]
    )
    neither = stored("azureBlob", secretRef={"name": "c"})
    assert "spec.reference.azureBlob.secretRef" in problems(neither)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("s3", "bucket", "Refs"),
        ("s3", "bucket", "a..b"),
        ("s3", "bucket", "10.0.0.1"),
        ("s3", "key", "../other-bucket/x.csv"),
        ("s3", "key", "a/../../b"),
        ("s3", "key", "/etc/passwd"),
        ("s3", "region", "US East"),
        ("s3", "endpoint", "http://s3.local/prefix"),
        ("s3", "endpoint", "http://user:pw@s3.local"),
        ("s3", "endpoint", "file:///etc"),
        ("gcs", "bucket", "google-refs"),
        ("azureBlob", "account", "Acct-1"),
        ("azureBlob", "container", "a--b"),
        ("azureBlob", "blob", "x/./y"),
        ("azureBlob", "endpoint", "http://az:10000/../x"),
    ],
)
def test_bad_values_name_their_field(kind: str, field: str, value: str) -> None:
    found = problems(stored(kind, **{field: value}))
    assert list(found) == [f"spec.reference.{kind}.{field}"], found


def test_secret_ref_is_required_and_named() -> None:
    spec = stored("s3")
    del spec["reference"]["s3"]["secretRef"]
    assert "is required" in problems(spec)["spec.reference.s3.secretRef"]
    spec = stored("s3", secretRef={"name": "../kube-system/creds"})
    assert list(problems(spec)) == ["spec.reference.s3.secretRef.name"]


def test_only_one_reference_source() -> None:
    spec = stored("s3")
    spec["reference"]["url"] = "https://example.com/r.csv"
    assert "set exactly one of" in problems(spec)["spec.reference"]


def test_the_probe_set_may_be_in_object_storage() -> None:
    spec = stored("s3")
    spec["target"]["endpoint"] = {"url": "http://m:8080"}
    spec["data"] = {
        "probe": {
            "dataset": {"gcs": {"bucket": "golden", "key": "g.csv", "secretRef": {"name": "c"}}}
        }
    }
    parsed = parse_spec(spec)
    assert parsed.probe is not None
    assert parsed.probe.dataset is not None
    assert parsed.probe.dataset.source == "gcs"
