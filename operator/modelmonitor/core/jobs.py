"""Job mode, the pure part: the Job that runs one monitoring run, and reading its outcome.

A run in job mode is a ``batch/v1`` Job executing ``modelmonitor job`` in the operator's
own image. The pod writes its :class:`~modelmonitor.core.report.Report` as JSON into a
ConfigMap named after the Job and owned by it; the operator reads it, then deletes the
Job, and Kubernetes' garbage collector removes the pod and the ConfigMap with it. The
Job itself is owned by the ModelMonitor, so deleting the monitor removes any Job left.

A Job never retries (``backoffLimit: 0``): a failed or stuck run is reported and the
next scheduled run starts afresh. ``activeDeadlineSeconds`` bounds a stuck one,
``ttlSecondsAfterFinished`` cleans up after an operator that could not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelmonitor import GROUP, KIND, VERSION
from modelmonitor.core.report_seal import TERMINATION_MESSAGE_PATH

RUN_LABEL = "modelmonitor.io/monitor"
RUN_ID_LABEL = "modelmonitor.io/run-id"
COMPONENT_LABEL = "app.kubernetes.io/component"
REPORT_KEY = "report.json"
JOB_TTL_SECONDS = 600
JOB_NAME_LABEL_PATH = "metadata.labels['batch.kubernetes.io/job-name']"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_UID_LABEL_PATH = f"metadata.labels['{JOB_UID_LABEL}']"
# Where a run's pod mounts ``spec.reference.pvc``'s claim, read-only; ``pvc.path`` is
# resolved inside it (core/volume_paths.py), and the pod is told so by an argument.
REFERENCE_VOLUME = "reference"
REFERENCE_MOUNT = "/var/run/modelmonitor/reference"
# Where the pod mounts ``spec.data.partitions``' claim, read-only (the current window).
WINDOW_VOLUME = "window"
WINDOW_MOUNT = "/var/run/modelmonitor/window"


@dataclass(frozen=True)
class JobSettings:
    """Operator-level settings of job-mode runs (from the chart's values)."""

    image: str = "ghcr.io/modelmonitor/modelmonitor:latest"
    service_account: str = "modelmonitor-job"
    image_pull_policy: str = "IfNotPresent"
    extra_env: Mapping[str, str] = field(default_factory=dict)


def job_name(monitor: str, run_id: str) -> str:
    """A valid, unique Job name: ``<monitor>-run-<id>`` shortened to 63 characters."""
    suffix = f"-run-{run_id}"
    base = monitor[: 63 - len(suffix)].rstrip("-.")
    return f"{base}{suffix}"


def report_configmap_name(job: str) -> str:
    return f"{job}-report"[:253]


def run_id_for(monitor_uid: str, started_epoch: float) -> str:
    """A short deterministic id for a run (same monitor and second -> same id)."""
    digest = hashlib.sha256(f"{monitor_uid}:{int(started_epoch)}".encode()).hexdigest()
    return digest[:10]


def build_job(
    *,
    monitor: Mapping[str, Any],
    run_id: str,
    settings: JobSettings,
    resources: Mapping[str, Any] | None,
    active_deadline_seconds: int,
    reference_claim: str | None = None,
    window_claim: str | None = None,
) -> dict[str, Any]:
    """The Job manifest for one run of ``monitor`` (a ModelMonitor object).

    ``reference_claim`` (``spec.reference.pvc.claimName``) is mounted read-only at
    :data:`REFERENCE_MOUNT`, and the run reads ``pvc.path`` inside it;
    ``window_claim`` (``spec.data.partitions.claimName``) likewise at :data:`WINDOW_MOUNT`.
    """
    meta = monitor["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    job = job_name(name, run_id)
    labels = {
        RUN_LABEL: name,
        RUN_ID_LABEL: run_id,
        COMPONENT_LABEL: "monitoring-run",
        "app.kubernetes.io/name": "modelmonitor",
        "app.kubernetes.io/managed-by": "modelmonitor",
    }
    env = [
        {"name": "JOB_NAME", "valueFrom": {"fieldRef": {"fieldPath": JOB_NAME_LABEL_PATH}}},
        {"name": "JOB_UID", "valueFrom": {"fieldRef": {"fieldPath": JOB_UID_LABEL_PATH}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        *({"name": k, "value": v} for k, v in sorted(settings.extra_env.items())),
    ]
    container: dict[str, Any] = {
        "name": "run",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["job", "--namespace", namespace, "--name", name, "--run-id", run_id],
        "env": env,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        # The pod seals its report: the digest goes here, the kubelet copies it into the
        # pod's status, which the namespace's users cannot write (core/report_seal.py).
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if reference_claim:
        container["args"] += ["--reference-root", REFERENCE_MOUNT]
        container["volumeMounts"].append(
            {"name": REFERENCE_VOLUME, "mountPath": REFERENCE_MOUNT, "readOnly": True}
        )
        volumes.append(
            {
                "name": REFERENCE_VOLUME,
                "persistentVolumeClaim": {"claimName": reference_claim, "readOnly": True},
            }
        )
    if window_claim:
        container["args"] += ["--window-root", WINDOW_MOUNT]
        container["volumeMounts"].append(
            {"name": WINDOW_VOLUME, "mountPath": WINDOW_MOUNT, "readOnly": True}
        )
        volumes.append(
            {
                "name": WINDOW_VOLUME,
                "persistentVolumeClaim": {"claimName": window_claim, "readOnly": True},
            }
        )
    if resources:
        container["resources"] = dict(resources)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": active_deadline_seconds,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.service_account,
                    "automountServiceAccountToken": True,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def build_report_configmap(
    *,
    job: str,
    job_uid: str,
    namespace: str,
    monitor: str,
    report_json: str,
    owner_kind: Literal["Job", "Pod"] = "Job",
) -> dict[str, Any]:
    """The ConfigMap a job pod writes its report into, owned by its Job (or, in a
    DaskJob, by the run pod itself: ``owner_kind`` Pod, ``job``/``job_uid`` the pod's)."""
    owner_api = "batch/v1" if owner_kind == "Job" else "v1"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": report_configmap_name(job),
            "namespace": namespace,
            "labels": {RUN_LABEL: monitor, COMPONENT_LABEL: "monitoring-run-report"},
            "ownerReferences": [
                {"apiVersion": owner_api, "kind": owner_kind, "name": job, "uid": job_uid}
            ],
        },
        "data": {REPORT_KEY: report_json},
    }


# status.activeRun: the run object the operator created last, the only one it adopts.
ACTIVE_RUN = "activeRun"


def active_run_record(obj: Mapping[str, Any], kind: str) -> dict[str, str]:
    """What status.activeRun records of a run object just created: kind, name, uid."""
    meta = obj.get("metadata") or {}
    return {"kind": kind, "name": str(meta.get("name", "")), "uid": str(meta.get("uid", ""))}


def is_recorded_run(obj: Mapping[str, Any], kind: str, status: Mapping[str, Any]) -> bool:
    """True when ``obj`` is the run object status.activeRun names, by kind, name and uid.

    Anyone who may create Jobs in the namespace can label one as the monitor's run; only
    the uid the API server gave the operator's own object tells them apart.
    """
    record = status.get(ACTIVE_RUN) or {}
    meta = obj.get("metadata") or {}
    uid = record.get("uid")
    return (
        bool(uid)
        and record.get("kind") == kind
        and record.get("name") == meta.get("name")
        and uid == meta.get("uid")
    )


JobState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class JobOutcome:
    state: JobState
    reason: str = ""
    message: str = ""


def job_outcome(job: Mapping[str, Any]) -> JobOutcome:
    """Read a Job's status: running, succeeded, or failed with the controller's reason."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobOutcome("succeeded")
        if cond.get("type") == "Failed":
            return JobOutcome(
                "failed", str(cond.get("reason") or "Failed"), str(cond.get("message") or "")
            )
    if status.get("succeeded"):
        return JobOutcome("succeeded")
    return JobOutcome("running")
