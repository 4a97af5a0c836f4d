"""Mode dask with ``cluster``, the pure part: the DaskJob that runs one monitoring run.

dask-kubernetes' operator turns a ``kubernetes.dask.org/v1`` DaskJob into a DaskCluster
(a scheduler Deployment and Service, a worker group) and a job-runner Pod, marks the
DaskJob ``Successful`` or ``Failed`` when that pod ends, and deletes the cluster then.
Here the job-runner pod is job mode's run pod (:func:`~modelmonitor.core.jobs.build_job`'s
template) with ``--dask-cluster NAME`` added, so it profiles the partitions on the
cluster the controller injected as ``DASK_SCHEDULER_ADDRESS``; the scheduler and the
workers run the same image with ``dask scheduler`` / ``dask worker``, the same security
context, and the workers mount the window's claim read-only at the run pod's path (rows
never travel: a worker reads the files it is given by path).

The DaskJob is owned by the ModelMonitor; the controller makes it own the cluster and
the pod, and the run pod's report ConfigMap is owned by the pod, so deleting the DaskJob
removes everything a run made. Every label of the DaskJob is copied by the controller to
what it creates, so the run label finds the pods too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.jobs import RUN_LABEL, WINDOW_MOUNT, WINDOW_VOLUME, JobOutcome
from modelmonitor.core.spec.model import DaskClusterSpec

DASK_GROUP = "kubernetes.dask.org"
DASK_VERSION = "v1"
DASKJOB_API = f"/apis/{DASK_GROUP}/{DASK_VERSION}"
DASKJOB_PLURAL = "daskjobs"
SCHEDULER_PORT = 8786
#: dask-kubernetes refuses cluster names longer than 63 - len("-scheduler").
MAX_DASKJOB_NAME = 53
#: The run pod's argument naming its DaskJob (and so its scheduler's Service).
CLUSTER_ARG = "--dask-cluster"
# The scheduler and workers need no API access; the run pod keeps job mode's account.
_NO_TOKEN = {"automountServiceAccountToken": False}
_POD_IP = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def daskjob_name(monitor: str, run_id: str) -> str:
    """``<monitor>-dask-<id>``: a DNS-1035 label short enough for dask-kubernetes."""
    suffix = f"-dask-{run_id}"
    base = re.sub(r"[^a-z0-9-]", "-", monitor)[: MAX_DASKJOB_NAME - len(suffix)].strip("-")
    if not base or not base[0].isalpha():
        base = f"m{base}"[: MAX_DASKJOB_NAME - len(suffix)].rstrip("-")
    return f"{base}{suffix}"


def runner_pod_name(daskjob: str) -> str:
    """The job-runner pod dask-kubernetes creates for ``daskjob`` (its naming)."""
    return f"{daskjob}-runner"


def scheduler_address(daskjob: str, namespace: str) -> str:
    """The address dask-kubernetes gives the job pod and the workers: its cluster's
    scheduler Service, in the DaskJob's namespace."""
    return f"tcp://{daskjob}-scheduler.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"


def build_daskjob(*, job: Mapping[str, Any], name: str, cluster: DaskClusterSpec) -> dict[str, Any]:
    """The DaskJob for the run that ``job`` (a :func:`~modelmonitor.core.jobs.build_job`
    manifest) describes: its labels, owner, run pod and deadline, on a cluster of
    ``cluster.workers`` workers."""
    meta = job["metadata"]
    template = job["spec"]["template"]
    labels = dict(meta["labels"])
    pod = copy.deepcopy(template["spec"])
    pod["activeDeadlineSeconds"] = job["spec"]["activeDeadlineSeconds"]
    run = pod["containers"][0]
    run["args"] = [*run["args"], CLUSTER_ARG, name]
    # A bare pod has no Job labels: the report's owner is the pod itself (JOB_NAME and
    # JOB_UID keep their meaning for ``modelmonitor job``: the object owning the report).
    run["env"] = [
        {"name": "JOB_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "JOB_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        *(e for e in run["env"] if e["name"] not in ("JOB_NAME", "JOB_UID")),
    ]
    return {
        "apiVersion": f"{DASK_GROUP}/{DASK_VERSION}",
        "kind": "DaskJob",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": copy.deepcopy(meta["ownerReferences"]),
        },
        "spec": {
            "job": {"metadata": {"labels": labels}, "spec": pod},
            "cluster": {
                "metadata": {"labels": labels},
                "spec": {
                    "scheduler": {
                        "spec": _scheduler_pod(pod, run),
                        "service": _scheduler_service(name),
                    },
                    "worker": {
                        "replicas": cluster.workers,
                        "spec": _worker_pod(pod, run, cluster),
                    },
                },
            },
        },
    }


def _engine_pod(
    run_pod: Mapping[str, Any],
    run: Mapping[str, Any],
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    """A pod of the engine: the run pod's image, security context and /tmp volume."""
    container.update(
        image=run["image"],
        imagePullPolicy=run["imagePullPolicy"],
        command=["dask"],
        securityContext=copy.deepcopy(run["securityContext"]),
    )
    container["env"] = [_POD_IP, *container.get("env", [])]
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *container["volumeMounts"]]
    return {
        "restartPolicy": "Always",
        "serviceAccountName": run_pod["serviceAccountName"],
        **_NO_TOKEN,
        "securityContext": copy.deepcopy(run_pod["securityContext"]),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
    }


def _scheduler_pod(run_pod: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "scheduler",
        "args": [
            "scheduler",
            "--host",
            "$(POD_IP)",
            "--port",
            str(SCHEDULER_PORT),
            "--no-dashboard",
        ],
        "ports": [{"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"}],
        "volumeMounts": [],
    }
    return _engine_pod(run_pod, run, container, [])


def _worker_pod(
    run_pod: Mapping[str, Any], run: Mapping[str, Any], cluster: DaskClusterSpec
) -> dict[str, Any]:
    window = [v for v in run_pod["volumes"] if v["name"] == WINDOW_VOLUME]
    container: dict[str, Any] = {
        "name": "worker",
        "args": [
            "worker",
            "$(DASK_SCHEDULER_ADDRESS)",
            "--name",
            "$(DASK_WORKER_NAME)",
            "--host",
            "$(POD_IP)",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--local-directory",
            "/tmp",
        ],
        # the same files at the same path as the run pod: a task names a file by path
        "volumeMounts": (
            [{"name": WINDOW_VOLUME, "mountPath": WINDOW_MOUNT, "readOnly": True}] if window else []
        ),
    }
    if cluster.resources:
        container["resources"] = copy.deepcopy(dict(cluster.resources))
    return _engine_pod(run_pod, run, container, copy.deepcopy(window))


def _scheduler_service(name: str) -> dict[str, Any]:
    return {
        "type": "ClusterIP",
        "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
        "ports": [
            {
                "name": "tcp-comm",
                "protocol": "TCP",
                "port": SCHEDULER_PORT,
                "targetPort": "tcp-comm",
            }
        ],
    }


def daskjob_outcome(daskjob: Mapping[str, Any]) -> JobOutcome:
    """Read a DaskJob's ``status.jobStatus``: Successful, Failed, or still going."""
    status = (daskjob.get("status") or {}).get("jobStatus")
    if status == "Successful":
        return JobOutcome("succeeded")
    if status == "Failed":
        return JobOutcome("failed", "DaskJobFailed", "the run pod failed")
    return JobOutcome("running")


def run_labels(monitor: str) -> dict[str, str]:
    """The label selector of a monitor's DaskJobs (the same label as its Jobs)."""
    return {RUN_LABEL: monitor}
