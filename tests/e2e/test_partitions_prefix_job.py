"""An object-storage prefix as the current window of a job-mode run, end to end.

``spec.data.partitions.s3`` with ``spec.schedule.mode: job``: the operator starts the
run's Job; its pod really runs (the harness plays the node), reads the monitor's Secret
with the Job's ServiceAccount (``get`` on that Secret by name here; the chart's
``jobMode.readSecrets`` grants ``get`` on Secrets), lists the prefix on a real S3 server
(versitygw on loopback) and streams the 55 Parquet and CSV objects into one profile
through its own outbound fence (the operator's fence settings, handed to the pod as
environment). The verdict must equal the one ``modelmonitor check`` gives for the same
rows in one file, as the inline run's does (tests/e2e/test_partitions_object_storage.py).

The pod refuses as the operator would: more data objects than ``maxObjects`` is
``PartitionsTooLarge`` (never cut), a link-local endpoint is refused by the pod's fence,
and a Secret its ServiceAccount may not read stays unread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster
from tests.cluster.node import NodeAgent
from tests.e2e.monitors import partition_reports, partitioned_monitor, wait_job_run
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_job_mode import ready_for_job_runs
from tests.e2e.test_partitions_object_storage import (
    OBJECTS,
    SECRET,
    assert_same_verdict,
    one_file_verdict,
    prefix_partitions,
    upload_window,
)
from tests.e2e.test_runs import condition
from tests.modelserver import ModelServer
from tests.objectstore import running_s3

pytestmark = pytest.mark.timeout(300)

OTHER_SECRET = "other-creds"


def _degraded(reason: str) -> Any:
    return lambda s: condition(s, "Degraded").get("reason") == reason


def test_a_prefix_is_read_in_the_run_pod_with_the_verdict_of_one_file(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    node_agent: NodeAgent,
    tmp_path: Path,
) -> None:
    cluster: KubeCluster = operator_process.cluster
    ready_for_job_runs(cluster, namespace, node_agent, secrets=[SECRET])
    with running_s3("prefix-job") as s3:
        tables = upload_window(cluster, namespace, s3)
        other = {"name": OTHER_SECRET, "namespace": namespace}
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": other,
                "stringData": {
                    "AWS_ACCESS_KEY_ID": s3.access_key,
                    "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                },
            }
        )
        unreadable = prefix_partitions(s3.url)
        unreadable["s3"]["secretRef"] = {"name": OTHER_SECRET}
        docs = {
            "prefix": prefix_partitions(s3.url),
            "prefix-capped": prefix_partitions(s3.url, maxObjects=50),
            "prefix-fenced": prefix_partitions("http://169.254.169.254:9000"),
            "prefix-unreadable": unreadable,
        }
        try:
            cluster.apply(
                [
                    partitioned_monitor(name, url=model_server.url, partitions=partitions)
                    for name, partitions in docs.items()
                ],
                "-n",
                namespace,
            )
            st = wait_job_run(cluster, namespace, "prefix", "a job-mode run over the prefix")
            capped = wait_job_run(
                cluster,
                namespace,
                "prefix-capped",
                "Degraded PartitionsTooLarge",
                until=_degraded("PartitionsTooLarge"),
            )
            fenced = wait_job_run(
                cluster,
                namespace,
                "prefix-fenced",
                "Degraded OutboundRefused",
                until=_degraded("OutboundRefused"),
            )
            denied = wait_job_run(
                cluster,
                namespace,
                "prefix-unreadable",
                "Degraded PartitionsUnavailable",
                until=_degraded("PartitionsUnavailable"),
            )
            listed = [line for line in s3.requests() if "ListObjectsV2" in line]
        finally:
            cluster.kubectl("delete", "mm", "--all", "-n", namespace, "--wait=false", check=False)

    assert listed, "the run pods listed the prefix on the real server"
    assert condition(st, "Degraded")["status"] == "False", st
    assert st["lastRun"]["samples"] == OBJECTS * 150, st["lastRun"]
    # the pod, not the operator, read the objects: its report names them
    reports = partition_reports(node_agent, namespace, "prefix")
    assert reports, "the run pod printed no report"
    details = reports[-1]["details"]["partitions"]
    assert (details["objects"], details["rows"]) == (OBJECTS, OBJECTS * 150), details
    assert_same_verdict(st, one_file_verdict(tables, tmp_path))

    # refused whole, in the pod, before any object is read
    message = condition(capped, "Degraded")["message"]
    assert "more than 50 data objects" in message, message
    assert "nothing was read" in message, message
    message = condition(fenced, "Degraded")["message"]
    assert "169.254.169.254 refused: link-local address" in message, message
    # the pod reads with its own ServiceAccount: a Secret it was not granted stays unread
    message = condition(denied, "Degraded")["message"]
    assert "could not read its Secret" in message, message
    for status in (st, capped, fenced, denied):
        assert s3.secret_key not in json.dumps(status)
