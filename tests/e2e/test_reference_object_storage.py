"""References in object storage, end to end: the real operator reads them from a real S3
server (versitygw on loopback, built from source by tests/cluster/build.sh) with the
credentials of a Secret in the monitor's namespace.

What must hold: a monitor whose reference and probe set are objects in a bucket reaches
Healthy and Drifted with the right feature; an unchanged object is re-validated by its
ETag (the server answers 304) rather than read again; wrong credentials are a Degraded
reason with the server's error code and no secret; a Secret of another namespace cannot
be named; an endpoint in a blocked range is refused by the fence before any request.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_crd import assert_refused
from tests.e2e.test_runs import FEATURES, condition, drifted_rows, monitor, setup, wait_status
from tests.iris import reference_csv
from tests.modelserver import ModelServer
from tests.objectstore import S3Server, running_s3

BUCKET = "model-refs"
KEY = "teams/iris ü/reference v1.csv"  # a space and non-ASCII: quoted, and signed as sent
DRIFTED_KEY = "teams/iris ü/drifted.csv"


def _csv(rows: list[dict[str, float]]) -> bytes:
    lines = [",".join(FEATURES)] + [",".join(str(r[f]) for f in FEATURES) for r in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3("references") as server:
        server.create_bucket(BUCKET)
        server.put(BUCKET, KEY, reference_csv().encode())
        server.put(BUCKET, DRIFTED_KEY, _csv(drifted_rows()))
        yield server


def _s3_ref(s3: S3Server, key: str = KEY, secret: str = "s3-creds", **extra: Any) -> dict[str, Any]:
    ref = {
        "bucket": BUCKET,
        "key": key,
        "endpoint": s3.url,
        "forcePathStyle": True,
        "secretRef": {"name": secret},
    }
    ref.update(extra)
    return {"s3": ref}


def _gets(s3: S3Server) -> int:
    return sum(" s3_GetObject " in line for line in s3.requests())


def _secret(name: str, access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
    }


def test_a_reference_in_a_bucket_gives_healthy_and_drifted_runs(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer, s3: S3Server
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    cluster.apply(_secret("s3-creds", s3.access_key, s3.secret_key), "-n", namespace)
    healthy = monitor("bucket-healthy", model_server.url, "iris", reference=_s3_ref(s3))
    drifted = monitor(
        "bucket-drifted",
        model_server.url,
        "iris",
        reference=_s3_ref(s3),
        drift={"driftShare": 0.2},
    )
    drifted["spec"]["data"]["probe"]["dataset"] = _s3_ref(s3, DRIFTED_KEY)
    cluster.apply([healthy, drifted], "-n", namespace)

    st = wait_status(
        cluster, namespace, "bucket-healthy", lambda s: s.get("phase") == "Healthy", "Healthy"
    )
    assert condition(st, "DriftDetected")["status"] == "False"
    st = wait_status(
        cluster, namespace, "bucket-drifted", lambda s: s.get("phase") == "Drifted", "Drifted"
    )
    message = condition(st, "DriftDetected")["message"]
    assert "petal_length (ks p=" in message, message
    assert "sepal_width" not in message

    # The next runs ask whether the object changed (If-None-Match) and the server says
    # 304: the reference is neither downloaded nor profiled again.
    def revalidated() -> bool:
        return any(" s3_GetObject " in x and " 304 NotModified " in x for x in s3.requests())

    wait_for(revalidated, timeout=30, interval=1, what="a 304 for the reference's ETag")

    # A changed object (a new ETag) is read again: the probe set, replaced by rows like
    # the reference's, no longer drifts.
    s3.put(BUCKET, DRIFTED_KEY, reference_csv().encode())
    st = wait_status(
        cluster,
        namespace,
        "bucket-drifted",
        lambda s: condition(s, "DriftDetected").get("status") == "False",
        "no drift after the probe set changed",
    )
    assert "petal_length (ks" not in condition(st, "DriftDetected")["message"]


def test_wrong_credentials_are_degraded_with_the_servers_reason(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer, s3: S3Server
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    cluster.apply(_secret("wrong-creds", s3.access_key, "not-the-s3cret"), "-n", namespace)
    doc = monitor(
        "bucket-denied", model_server.url, "iris", reference=_s3_ref(s3, secret="wrong-creds")
    )
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster,
        namespace,
        "bucket-denied",
        lambda s: condition(s, "Degraded").get("reason") == "ReferenceAccessDenied",
        "Degraded ReferenceAccessDenied",
    )
    degraded = condition(st, "Degraded")["message"]
    assert "HTTP 403 SignatureDoesNotMatch" in degraded, degraded
    assert f"s3://{BUCKET}/{KEY}" in degraded
    assert f"Secret {namespace}/wrong-creds" in degraded
    assert not st.get("lastAction")
    shown = json.dumps(st) + operator_process.logs()
    assert "not-the-s3cret" not in shown
    assert operator_process.alive(), "the operator must survive a refused reference"


def test_a_secret_of_another_namespace_cannot_be_named(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer, s3: S3Server
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    # The right credentials exist, but in another namespace (the operator could read it).
    cluster.apply(_secret("elsewhere-creds", s3.access_key, s3.secret_key), "-n", "default")
    try:
        base = monitor("x", model_server.url, "iris")["spec"]
        for name in ("../default/elsewhere-creds", "default/elsewhere-creds"):
            spec = copy.deepcopy(base)
            spec["reference"] = _s3_ref(s3, secret=name)
            assert_refused(cluster, namespace, name, spec, "spec.reference.s3.secretRef.name")
        gets = _gets(s3)
        doc = monitor(
            "bucket-elsewhere",
            model_server.url,
            "iris",
            reference=_s3_ref(s3, secret="elsewhere-creds"),
        )
        cluster.apply(doc, "-n", namespace)
        st = wait_status(
            cluster,
            namespace,
            "bucket-elsewhere",
            lambda s: s.get("phase") == "Invalid",
            "Invalid",
        )
        ready = condition(st, "Ready")
        assert ready["reason"] == "SecretNotFound", ready
        assert f"Secret {namespace}/elsewhere-creds" in ready["message"]
        assert _gets(s3) == gets  # nothing was asked of the bucket
    finally:
        cluster.kubectl(
            "delete", "secret", "elsewhere-creds", "-n", "default", "--ignore-not-found"
        )


def test_an_endpoint_in_a_blocked_range_is_refused_by_the_fence(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer, s3: S3Server
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    cluster.apply(_secret("s3-creds", s3.access_key, s3.secret_key), "-n", namespace)
    ref = _s3_ref(s3, endpoint="http://169.254.169.254")
    doc = monitor("bucket-imds", model_server.url, "iris", reference=ref)
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster,
        namespace,
        "bucket-imds",
        lambda s: condition(s, "Degraded").get("reason") == "OutboundRefused",
        "Degraded OutboundRefused",
    )
    message = condition(st, "Degraded")["message"]
    assert "169.254.169.254 refused: link-local address" in message, message
    assert not st.get("lastAction")


@pytest.mark.parametrize(
    ("case", "ref", "field"),
    [
        ("bucket upper case", {"bucket": "Refs"}, "spec.reference.s3.bucket"),
        ("bucket '..'", {"bucket": "a..b"}, "spec.reference.s3.bucket"),
        ("bucket an IP", {"bucket": "10.0.0.1"}, "spec.reference.s3.bucket"),
        ("key leaves the bucket", {"key": "../other/x.csv"}, "spec.reference.s3.key"),
        ("key absolute", {"key": "/x.csv"}, "spec.reference.s3.key"),
        ("endpoint with a path", {"endpoint": "http://s3.local/x"}, "spec.reference.s3.endpoint"),
        ("endpoint with a user", {"endpoint": "http://u:p@s3.local"}, "spec.reference.s3.endpoint"),
        ("no secretRef", {"secretRef": None}, "secretRef"),
    ],
)
def test_the_api_server_refuses_bad_object_storage_references(
    crds: KubeCluster, namespace: str, case: str, ref: dict[str, Any], field: str
) -> None:
    s3 = {"bucket": "refs", "key": "r.csv", "secretRef": {"name": "creds"}}
    s3.update(ref)
    spec = {
        "target": {"name": "m"},
        "reference": {"s3": {k: v for k, v in s3.items() if v is not None}},
    }
    assert_refused(crds, namespace, case, spec, field)


def test_the_api_server_refuses_two_sources_and_azure_without_one_credential(
    crds: KubeCluster, namespace: str
) -> None:
    stored = {"bucket": "refs", "key": "r.csv", "secretRef": {"name": "creds"}}
    two = {"target": {"name": "m"}, "reference": {"s3": stored, "url": "https://x/r.csv"}}
    assert_refused(crds, namespace, "two sources", two, "set exactly one of")
    azure = {
        "account": "acct",
        "container": "refs",
        "blob": "r.csv",
        "secretRef": {"name": "creds", "accountKeyKey": "k", "sasTokenKey": "s"},
    }
    both = {"target": {"name": "m"}, "reference": {"azureBlob": azure}}
    assert_refused(crds, namespace, "both keys", both, "accountKeyKey or sasTokenKey")
