"""spec.data.partitions naming an object-storage prefix: parsed, defaulted, refused."""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.core.spec import SpecError, parse_spec

REFERENCE = {"configMapRef": {"name": "ref", "key": "ref.csv"}}


def spec(partitions: dict[str, Any], mode: str = "inline") -> dict[str, Any]:
    return {
        "target": {"name": "m"},
        "schedule": {"mode": mode},
        "reference": REFERENCE,
        "data": {"partitions": partitions},
    }


def s3(**fields: Any) -> dict[str, Any]:
    obj = {"bucket": "lake", "prefix": "exports/day=1/", "secretRef": {"name": "creds"}}
    obj.update(fields)
    return {"s3": {k: v for k, v in obj.items() if v is not None}}


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return dict(info.value.problems)


def test_a_prefix_in_s3_parses_with_defaults_in_inline_and_job_mode() -> None:
    for mode in ("inline", "job"):
        part = parse_spec(spec(s3(endpoint="http://objects:8333"), mode)).partitions
        assert part is not None
        stored = part.object_storage
        assert stored is not None
        assert (stored.provider, stored.bucket, stored.key, stored.endpoint) == (
            "s3",
            "lake",
            "exports/day=1/",
            "http://objects:8333",
        )
        assert stored.secret_name == "creds"
        assert sorted(stored.credentials) == ["accessKeyId", "secretAccessKey"]
        assert part.max_objects == 1000
        assert part.shown == "s3://lake/exports/day=1/"
        assert part.claim_name == ""


def test_gcs_prefix_and_max_objects() -> None:
    doc = spec({"gcs": {"bucket": "lake", "prefix": "x", "secretRef": {"name": "h"}}})
    doc["data"]["partitions"]["maxObjects"] = 5000
    part = parse_spec(doc).partitions
    assert part is not None
    assert part.object_storage is not None
    assert (part.object_storage.provider, part.max_objects) == ("gcs", 5000)


@pytest.mark.parametrize(
    ("partitions", "field", "said"),
    [
        (s3(prefix="../other/"), "spec.data.partitions.s3.prefix", "'..'"),
        (s3(prefix="/abs/"), "spec.data.partitions.s3.prefix", "start with '/'"),
        (s3(prefix="a//b/"), "spec.data.partitions.s3.prefix", "empty path segments"),
        (s3(prefix=""), "spec.data.partitions.s3.prefix", "non-empty"),
        (s3(bucket="Lake"), "spec.data.partitions.s3.bucket", "invalid bucket"),
        (s3(endpoint="http://s3/x"), "spec.data.partitions.s3.endpoint", "no path"),
        (s3(secretRef=None), "spec.data.partitions.s3.secretRef", "is required"),
        (s3(secretRef={"name": "../x"}), "spec.data.partitions.s3.secretRef.name", ""),
        ({**s3(), "claimName": "c", "path": "/x"}, "spec.data.partitions", "exactly one"),
        ({**s3(), "maxObjects": 10_001}, "spec.data.partitions.maxObjects", "<= 10000"),
        ({**s3(), "maxObjects": 0}, "spec.data.partitions.maxObjects", ">= 1"),
        ({"azureBlob": {"account": "a"}}, "spec.data.partitions", "exactly one"),
    ],
)
def test_bad_prefixes_are_refused_by_field(
    partitions: dict[str, Any], field: str, said: str
) -> None:
    found = problems(spec(partitions))
    assert field in found, found
    assert said in found[field]


def test_a_claim_still_needs_job_mode_and_a_prefix_does_not() -> None:
    found = problems(spec({"claimName": "c", "path": "/x"}))
    assert "needs spec.schedule.mode 'job'" in found["spec.data.partitions"]
    parse_spec(spec(s3()))  # inline: fine


def test_the_dask_engine_reads_only_a_claim() -> None:
    doc = spec(s3(), mode="dask")
    doc["schedule"]["dask"] = {"scheduler": "tcp://dask-scheduler.data:8786"}
    found = problems(doc)
    assert "with claimName" in found["spec.schedule.mode"], found
