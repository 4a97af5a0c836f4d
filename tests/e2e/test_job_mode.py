"""Job mode: each run is a Kubernetes Job whose pod really runs (the harness acts as a
node) and reports back through a ConfigMap; the verdict equals inline mode's on the
same data."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.conftest_node import modelmonitor_image
from tests.e2e.operator_fixtures import JOB_IMAGE, JOB_SERVICE_ACCOUNT, OperatorProcess
from tests.e2e.test_runs import condition, drifted_rows, monitor, setup, wait_status
from tests.iris import reference_csv
from tests.modelserver import ModelServer


def job_rbac(namespace: str, *, secrets: Sequence[str] = ()) -> list[dict[str, Any]]:
    """What a run's pod needs, and nothing more (the chart grants the same); ``secrets``:
    the Secrets its monitor names (credentials the run reads itself), ``get`` by name."""
    secret_rules = [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": list(secrets),
        }
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": JOB_SERVICE_ACCOUNT}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "modelmonitor-job"},
            "rules": [
                {
                    "apiGroups": ["modelmonitor.io"],
                    "resources": ["modelmonitors"],
                    "verbs": ["get"],
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create"]},
                {"apiGroups": [""], "resources": ["services", "pods"], "verbs": ["get", "list"]},
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list"],
                },
                *(secret_rules if secrets else []),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "modelmonitor-job"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "modelmonitor-job",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": JOB_SERVICE_ACCOUNT, "namespace": namespace}
            ],
        },
    ]


def ready_for_job_runs(
    cluster: KubeCluster, namespace: str, node_agent: NodeAgent, *, secrets: Sequence[str] = ()
) -> None:
    """A namespace where job-mode runs really run: the iris objects, the run's
    ServiceAccount and Role (:func:`job_rbac`), our image on the harness node."""
    node_agent.register_image(JOB_IMAGE, modelmonitor_image())
    setup(cluster, namespace)
    cluster.apply(job_rbac(namespace, secrets=secrets), "-n", namespace)


def drift_of(status: dict[str, Any]) -> list[tuple[str, bool, float]]:
    return sorted(
        (f["name"], f["drifted"], round(f["statistic"], 9)) for f in status["drift"]["features"]
    )


def test_job_mode_gives_the_inline_verdict(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    node_agent: NodeAgent,
) -> None:
    cluster: KubeCluster = operator_process.cluster
    ready_for_job_runs(cluster, namespace, node_agent)
    rows = drifted_rows()
    docs = []
    for name, mode in (("inline", "inline"), ("jobmode", "job")):
        doc = monitor(name, model_server.url, "iris", drift={"driftShare": 0.2})
        doc["spec"]["schedule"] = {
            "interval": "60s",
            "mode": mode,
            "job": {"activeDeadlineSeconds": 120},
        }
        # Every row of the probe set, so both modes see exactly the same data.
        doc["spec"]["data"]["probe"].update({"samples": len(rows), "dataset": {"inline": rows}})
        docs.append(doc)
    cluster.apply(docs, "-n", namespace)

    inline = wait_status(
        cluster, namespace, "inline", lambda s: s.get("phase") == "Drifted", "inline Drifted"
    )
    job = wait_for(
        lambda: (lambda s: s if s.get("lastRun", {}).get("mode") == "job" else None)(
            cluster.get("mm", "jobmode", "-n", namespace).get("status") or {}
        ),
        timeout=120,
        interval=1,
        what="a job-mode run reported back",
    )
    assert job["phase"] == "Drifted", job
    assert condition(job, "DriftDetected")["status"] == "True"
    assert drift_of(job) == drift_of(inline)
    assert job["lastRun"]["samples"] == inline["lastRun"]["samples"] == len(rows)

    # The Job (and with it its pod and report ConfigMap) is cleaned up after reading.
    def jobs_gone() -> bool:
        jobs = cluster.get("jobs", "-n", namespace, "-l", "modelmonitor.io/monitor=jobmode")
        return not jobs["items"]

    wait_for(jobs_gone, timeout=30, what="the run's Job deleted")
    # The pod ran on the harness's node, as the operator's image.
    log = operator_process.logs()
    assert "jobmode" in log


def test_failed_job_is_reported_not_retried(
    operator_process: OperatorProcess,
    namespace: str,
    node_agent: NodeAgent,
) -> None:
    """Without its RBAC the run's pod cannot read the monitor: the Job fails, the monitor
    reports Degraded (JobFailed), and no second Job is started for that run."""
    cluster: KubeCluster = operator_process.cluster
    node_agent.register_image(JOB_IMAGE, modelmonitor_image())
    setup(cluster, namespace)
    cluster.apply(job_rbac(namespace)[:1], "-n", namespace)  # the ServiceAccount only
    doc = monitor("norbac", "http://127.0.0.1:9", "iris")
    doc["spec"]["schedule"] = {
        "interval": "5m",
        "mode": "job",
        "job": {"activeDeadlineSeconds": 60},
    }
    cluster.apply(doc, "-n", namespace)
    st = wait_for(
        lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "JobFailed" else None)(
            cluster.get("mm", "norbac", "-n", namespace).get("status") or {}
        ),
        timeout=120,
        interval=1,
        what="Degraded JobFailed",
    )
    assert "failed" in condition(st, "Degraded")["message"]
    assert st["phase"] == "Degraded"
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.kind=Job")
    created = {e["involvedObject"]["name"] for e in events["items"]}
    assert len(created) <= 1, created


JOB_MODE_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "job-mode.yaml"


def claim_on_host(namespace: str, claim: str, directory: Path) -> list[dict[str, Any]]:
    """A PersistentVolume on a directory of this machine, bound to ``claim`` only."""
    size = {"storage": "10Mi"}
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{claim}"},
            "spec": {
                "capacity": size,
                "accessModes": ["ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "",
                "volumeName": f"{namespace}-{claim}",
                "resources": {"requests": size},
            },
        },
    ]


def test_the_docs_pvc_reference_is_read_in_the_run_pod(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    node_agent: NodeAgent,
    tmp_path: Path,
) -> None:
    """docs/examples/job-mode.yaml's ``reference`` as written: the Job mounts the claim
    read-only and the run reads ``pvc.path`` inside it; a path that climbs out of the
    claim is refused by the API server."""
    cluster: KubeCluster = operator_process.cluster
    ready_for_job_runs(cluster, namespace, node_agent)
    reference = yaml.safe_load(JOB_MODE_EXAMPLE.read_text())["spec"]["reference"]
    claim, inside = reference["pvc"]["claimName"], reference["pvc"]["path"]
    volume = tmp_path / "volume"
    (volume / inside.lstrip("/")).parent.mkdir(parents=True)
    table = pacsv.read_csv(io.BytesIO(reference_csv().encode()))
    pq.write_table(table, volume / inside.lstrip("/"))
    cluster.apply(claim_on_host(namespace, claim, volume))
    try:
        doc = monitor("pvcref", model_server.url, "iris", reference=reference)
        doc["spec"]["schedule"] = {
            "interval": "60s",
            "mode": "job",
            "job": {"activeDeadlineSeconds": 120},
        }
        cluster.apply(doc, "-n", namespace)
        st = wait_for(
            lambda: (lambda s: s if s.get("lastRun", {}).get("mode") == "job" else None)(
                cluster.get("mm", "pvcref", "-n", namespace).get("status") or {}
            ),
            timeout=120,
            interval=1,
            what="a job-mode run with the pvc reference reported back",
        )
        assert condition(st, "Degraded")["status"] == "False", st
        assert st["phase"] == "Healthy", st
        assert condition(st, "DriftDetected")["message"].startswith("0/1 features drifted")
        assert st["lastRun"]["samples"] == 60  # the reference's rows, sent as the probe set

        climbing = monitor(
            "climbing",
            model_server.url,
            "iris",
            reference={"pvc": {"claimName": claim, "path": "../../../etc/passwd"}},
        )
        climbing["spec"]["schedule"] = {"interval": "60s", "mode": "job"}
        proc = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(climbing), check=False
        )
        assert proc.returncode != 0, "the API server accepted a path out of the claim"
        assert "spec.reference.pvc.path" in proc.stderr, proc.stderr
    finally:
        cluster.kubectl("delete", "mm", "--all", "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", f"{namespace}-{claim}", "--wait=false", check=False)
