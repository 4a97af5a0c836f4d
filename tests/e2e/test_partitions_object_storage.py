"""An object-storage prefix as the current window (``spec.data.partitions.s3``), end to end.

The real operator lists a prefix on a real S3 server (versitygw on loopback, built from
source by tests/cluster/build.sh) with the credentials of a Secret in the monitor's
namespace, and streams 55 Parquet and CSV objects into one profile in an inline run. The
verdict must equal the one ``modelmonitor check`` gives for the same rows in one file;
a prefix holding more data objects than ``maxObjects`` is refused with a reason. The API
server refuses bad prefixes, and the admission policy a Secret the author may not read.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.cluster.kube import KubeCluster
from tests.e2e.admission_fixtures import Right, assert_admitted, create_as, grant
from tests.e2e.admission_fixtures import assert_refused as assert_policy_refused
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_crd import assert_refused
from tests.e2e.test_partitions_job import iris_partition
from tests.e2e.test_runs import FEATURES, condition, setup, wait_status
from tests.iris import reference_csv
from tests.objectstore import S3Server, running_s3

BUCKET = "scoring-exports"
PREFIX = "daily/day=2026-12-07/"
OBJECTS = 55
SECRET = "exports-creds"


def _monitor(name: str, endpoint: str, **partitions: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": name},
        "spec": {
            "target": {"kind": "Deployment", "name": "iris-model"},
            "schedule": {"interval": "30s"},
            "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
            "features": [{"name": f, "type": "numerical"} for f in FEATURES],
            "prediction": {"name": "prediction", "type": "categorical"},
            "drift": {"driftShare": 0.2},
            "data": {"partitions": prefix_partitions(endpoint, **partitions)},
        },
    }


def prefix_partitions(endpoint: str, **partitions: Any) -> dict[str, Any]:
    """``spec.data.partitions``: :data:`PREFIX` of :data:`BUCKET` on ``endpoint``."""
    return {
        "s3": {
            "bucket": BUCKET,
            "prefix": PREFIX,
            "endpoint": endpoint,
            "forcePathStyle": True,
            "secretRef": {"name": SECRET},
        },
        **partitions,
    }


def object_bytes(table: pa.Table, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, out)
    else:
        pacsv.write_csv(table, out)
    return out.getvalue()


def window_tables() -> list[pa.Table]:
    """The window's partitions: iris rows, petal_length moved up in every third."""
    return [iris_partition(i, 2.5 if i % 3 == 0 else 0.0) for i in range(OBJECTS)]


def upload_window(cluster: KubeCluster, namespace: str, s3: S3Server) -> list[pa.Table]:
    """The partitions under :data:`PREFIX` (every fifth a CSV, the rest Parquet) beside
    a ``_SUCCESS`` marker and another day's object, and the Secret with the key."""
    tables = window_tables()
    s3.create_bucket(BUCKET)
    for i, table in enumerate(tables):
        fmt = "csv" if i % 5 == 0 else "parquet"
        s3.put(BUCKET, f"{PREFIX}part-{i:05d}.{fmt}", object_bytes(table, fmt))
    s3.put(BUCKET, f"{PREFIX}_SUCCESS", b"")
    s3.put(BUCKET, "daily/day=2026-12-06/part-00000.parquet", object_bytes(tables[0], "parquet"))
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": {
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            },
        },
        "-n",
        namespace,
    )
    return tables


def one_file_verdict(tables: list[pa.Table], tmp_path: Path) -> dict[str, Any]:
    """``modelmonitor check``'s JSON report on the same rows in one Parquet file."""
    one = tmp_path / "window.parquet"
    pq.write_table(pa.concat_tables(tables), one)
    reference = tmp_path / "reference.csv"
    reference.write_text(reference_csv())
    command = [sys.executable, "-m", "modelmonitor", "check", "--reference", str(reference)]
    command += ["--current", str(one), "--categorical", "prediction", "--drift-share", "0.2"]
    out = subprocess.run(
        [*command, "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def assert_same_verdict(status: dict[str, Any], report: dict[str, Any]) -> None:
    """The monitor's status says what the one-file check says: only petal_length."""
    expected = sorted(f["name"] for f in report["features"] if f["drifted"])
    assert expected == ["petal_length"], report["features"]
    assert sorted(f["name"] for f in status["drift"]["features"]) == expected, status["drift"]
    drifted = condition(status, "DriftDetected")["status"] == "True"
    assert drifted == report["dataset"]["drifted"], (status, report["dataset"])


def test_a_prefix_of_55_objects_gives_the_verdict_of_one_file(
    operator_process: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    with running_s3("partitions") as s3:
        tables = upload_window(cluster, namespace, s3)
        cluster.apply(
            [_monitor("prefix", s3.url), _monitor("prefix-capped", s3.url, maxObjects=50)],
            "-n",
            namespace,
        )
        st = wait_status(
            cluster, namespace, "prefix", lambda s: bool(s.get("lastRun")), "a first run"
        )
        capped = wait_status(
            cluster,
            namespace,
            "prefix-capped",
            lambda s: condition(s, "Degraded").get("reason") == "PartitionsTooLarge",
            "Degraded PartitionsTooLarge",
        )
        listed = [line for line in s3.requests() if "ListObjectsV2" in line]
    assert "more than 50 data objects" in condition(capped, "Degraded")["message"]
    assert listed, "the operator listed the prefix on the real server"
    assert condition(st, "Degraded")["status"] == "False", st
    assert st["lastRun"]["samples"] == OBJECTS * 150, st["lastRun"]
    # the same rows in one file, through the command line
    assert_same_verdict(st, one_file_verdict(tables, tmp_path))


def _prefix_spec(**partitions: Any) -> dict[str, Any]:
    return {
        "target": {"name": "app"},
        "reference": {"configMapRef": {"name": "ref", "key": "ref.csv"}},
        "data": {"partitions": partitions},
    }


S3 = {"bucket": "exports", "prefix": "day=1/", "secretRef": {"name": "exports-creds"}}


@pytest.mark.parametrize(
    ("case", "partitions", "field"),
    [
        (
            "prefix climbs out",
            {"s3": {**S3, "prefix": "a/../b/"}},
            "spec.data.partitions.s3.prefix",
        ),
        ("prefix absolute", {"s3": {**S3, "prefix": "/day=1/"}}, "spec.data.partitions.s3.prefix"),
        ("bucket an IP", {"s3": {**S3, "bucket": "10.0.0.1"}}, "spec.data.partitions.s3.bucket"),
        ("claim and s3", {"s3": S3, "claimName": "c", "path": "/x"}, "exactly one of"),
        ("path without claim", {"path": "/x"}, "claimName and path go together"),
        ("too many objects", {"s3": S3, "maxObjects": 10_001}, "maxObjects"),
        ("a claim inline", {"claimName": "c", "path": "/x"}, "needs spec.schedule.mode 'job'"),
        ("no secretRef", {"s3": {k: v for k, v in S3.items() if k != "secretRef"}}, "secretRef"),
    ],
)
def test_the_api_server_refuses_bad_prefixes(
    crds: KubeCluster, namespace: str, case: str, partitions: dict[str, Any], field: str
) -> None:
    assert_refused(crds, namespace, case, _prefix_spec(**partitions), field)


def test_a_prefix_is_accepted_inline_with_its_defaults(crds: KubeCluster, namespace: str) -> None:
    doc = _monitor("prefix-defaults", "http://objects.storage:9000")
    crds.apply(doc, "-n", namespace)
    stored = crds.get("mm", "prefix-defaults", "-n", namespace)["spec"]["data"]["partitions"]
    assert stored["maxObjects"] == 1000
    assert stored["s3"]["region"] == "us-east-1"
    assert stored["s3"]["secretRef"]["accessKeyIdKey"] == "AWS_ACCESS_KEY_ID"


def test_the_prefix_secret_needs_get_on_it(policy: KubeCluster, ns: str) -> None:
    """The admission policy: naming a Secret the author may not read is refused."""
    spec = _prefix_spec(s3=S3)
    base: list[Right] = [
        ("apps", "deployments", "get", ("app",)),
        ("", "configmaps", "get", ("ref",)),
    ]
    grant(policy, ns, "kim", base)
    proc = create_as(policy, ns, "kim", "prefix", spec)
    assert_policy_refused(proc, "get secrets/exports-creds")
    assert "(spec.data.partitions.s3.secretRef)" in proc.stderr
    grant(policy, ns, "lou", [*base, ("", "secrets", "get", ("exports-creds",))])
    assert_admitted(create_as(policy, ns, "lou", "prefix", spec))
    # a claim's window is still checked against the claim, not the (absent) prefix
    claim = _prefix_spec(claimName="exports", path="day/*.parquet")
    claim["schedule"] = {"mode": "job"}
    grant(policy, ns, "max", [*base, ("", "persistentvolumeclaims", "get", ("exports",))])
    assert_admitted(create_as(policy, ns, "max", "claim", claim))
