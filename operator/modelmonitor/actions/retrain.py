"""The ``retrain`` action: start the user's retraining Job (``spec.actions.retrain``).

The Job is the user's ``jobTemplate`` (a batch/v1 JobSpec) with our metadata around it:
labels to find it again, the action id to recognise it, an owner reference to the
ModelMonitor so that deleting the monitor deletes its Jobs, and environment variables
telling the training code which monitor, incident and trigger started it. Apart from
that the JobSpec is left as written: its ``backoffLimit``, deadlines and TTL are the
user's choice (Kubernetes' defaults apply where they are absent). One exception: a
template without ``restartPolicy`` gets ``Never``, since the API server refuses a Job
whose pods would restart ``Always``.

The template must pass :mod:`modelmonitor.core.pod_policy` (no host namespaces,
privileged containers, hostPath volumes, ... and a ServiceAccount of the operator's
allowlist): validation refuses such a monitor, and :func:`execute_retrain` checks again
right before creating the Job, so that nothing reaches the API server with the operator's
rights that a tenant could not have created.

Idempotency: the Job name is derived from the action id and the Job carries the id in
:data:`ACTION_ANNOTATION`, so executing one request twice finds (or collides with, 409)
the first Job instead of creating a second. At most one retraining Job per monitor runs
at a time: a request arriving while another request's Job is still running is skipped.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Collection, Mapping
from typing import Any

from modelmonitor import GROUP, KIND, VERSION
from modelmonitor.core.cluster import (
    ACTION_ANNOTATION,
    INCIDENT_LABEL,
    MONITOR_LABEL,
    ApiError,
    ClusterApi,
    resource_path,
)
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.jobs import COMPONENT_LABEL, job_outcome
from modelmonitor.core.pod_policy import DEFAULT_SERVICE_ACCOUNT, describe, job_template_violations
from modelmonitor.core.spec import MonitorSpec

COMPONENT = "retrain"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
TRIGGER_ANNOTATION = "modelmonitor.io/trigger"
REASON_ANNOTATION = "modelmonitor.io/reason"
REASON_MAX = 1024
NAME_MAX = 63  # a Job's name becomes its pods' job-name label value: 63 at most
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def label_value(text: str) -> str:
    """``text`` if it is a valid label value, else a valid, still unique one.

    Monitor names may be up to 253 characters and label values only 63; a shortened
    value ends with a hash of the whole text so that two long names cannot collide.
    """
    if len(text) <= 63 and _LABEL_VALUE_RE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:54].strip("-_.")
    return f"{head}-{digest}" if head else digest


def job_name(monitor: str, action_id: str) -> str:
    """``<monitor>-retrain-<8 hex of sha256(action id)>``, a DNS label of <= 63 chars."""
    suffix = f"-{COMPONENT}-{hashlib.sha256(action_id.encode()).hexdigest()[:8]}"
    base = re.sub(r"[^a-z0-9-]", "-", monitor.lower())[: NAME_MAX - len(suffix)].strip("-")
    return f"{base}{suffix}" if base else suffix.lstrip("-")


def owner_reference(request: ActionRequest) -> dict[str, Any]:
    """A non-controller reference to the monitor: for garbage collection only.

    ``blockOwnerDeletion: true`` would need permission to update the monitor's
    finalizers (OwnerReferencesPermissionEnforcement); without it the garbage collector
    still deletes the Job, in the background, once the monitor is gone.
    """
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": request.monitor,
        "uid": request.monitor_uid,
        "blockOwnerDeletion": False,
        "controller": False,
    }


def selector(monitor: str) -> str:
    """The label selector of a monitor's retraining Jobs."""
    return f"{COMPONENT_LABEL}={COMPONENT},{MONITOR_LABEL}={label_value(monitor)}"


def _labels(request: ActionRequest) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: "modelmonitor",
        COMPONENT_LABEL: COMPONENT,
        MONITOR_LABEL: label_value(request.monitor),
        INCIDENT_LABEL: label_value(request.incident),
    }


def _env(request: ActionRequest) -> list[dict[str, str]]:
    return [
        {"name": "MODELMONITOR_NAMESPACE", "value": request.namespace},
        {"name": "MODELMONITOR_MONITOR", "value": request.monitor},
        {"name": "MODELMONITOR_INCIDENT", "value": request.incident},
        {"name": "MODELMONITOR_TRIGGER", "value": request.trigger},
        {"name": "MODELMONITOR_ACTION_ID", "value": request.id},
    ]


def build_job(
    spec: MonitorSpec, request: ActionRequest, *, owner: Mapping[str, Any]
) -> dict[str, Any]:
    """The Job manifest for ``request``; pure. ValueError when there is no usable template.

    ``owner`` is the ownerReference to the ModelMonitor (see :func:`owner_reference`).
    """
    template = spec.actions.retrain_job_template
    if template is None:
        raise ValueError("spec.actions.retrain.jobTemplate is not set")
    job_spec = copy.deepcopy(dict(template))
    pod = job_spec.get("template")
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        raise ValueError("spec.actions.retrain.jobTemplate.template.spec is required")
    pod_spec = pod["spec"]
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError("spec.actions.retrain.jobTemplate.template.spec.containers is required")

    labels = _labels(request)
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec.setdefault("restartPolicy", "Never")
    for container in [*containers, *(pod_spec.get("initContainers") or [])]:
        env = container.get("env") or []
        container["env"] = env
        taken = {e.get("name") for e in env}
        env.extend(e for e in _env(request) if e["name"] not in taken)

    reason = request.reason
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 1] + "…"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(request.monitor, request.id),
            "namespace": request.namespace,
            "labels": labels,
            "annotations": {
                ACTION_ANNOTATION: request.id,
                TRIGGER_ANNOTATION: request.trigger,
                REASON_ANNOTATION: reason,
            },
            "ownerReferences": [dict(owner)],
        },
        "spec": job_spec,
    }


def _annotation(job: Mapping[str, Any]) -> str | None:
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ACTION_ANNOTATION)
    return str(value) if value is not None else None


REFUSED = "RetrainTemplateRefused"


def execute_retrain(
    api: ClusterApi,
    spec: MonitorSpec,
    request: ActionRequest,
    *,
    allowed_service_accounts: Collection[str] = (DEFAULT_SERVICE_ACCOUNT,),
) -> ActionResult:
    """Create the retraining Job for ``request`` unless it exists or another one runs.

    A template the pod policy refuses (with ``allowed_service_accounts``) creates nothing.
    """
    collection = resource_path("/apis/batch/v1", request.namespace, "jobs")
    name = job_name(request.monitor, request.id)
    try:
        manifest = build_job(spec, request, owner=owner_reference(request))
    except ValueError as exc:
        configured = spec.actions.retrain_job_template is not None
        reason = "InvalidJobTemplate" if configured else "NotConfigured"
        return ActionResult(Outcome.SKIPPED, reason, str(exc))
    violations = job_template_violations(manifest["spec"], allowed_service_accounts)
    if violations:
        return ActionResult(Outcome.SKIPPED, REFUSED, describe(violations))
    try:
        jobs = api.list(collection, selector(request.monitor))
    except ApiError as exc:
        return ActionResult(
            Outcome.FAILED, "RetrainFailed", f"listing retraining Jobs failed: {exc}"
        )

    for job in jobs:
        existing = str((job.get("metadata") or {}).get("name") or "")
        if _annotation(job) == request.id or existing == name:
            return _already_created(existing)
    running = sorted(
        str((job.get("metadata") or {}).get("name") or "")
        for job in jobs
        if job_outcome(job).state == "running"
    )
    if running:
        return ActionResult(
            Outcome.SKIPPED,
            "RetrainRunning",
            f"retraining Job {running[0]} is still running (one at a time per monitor)",
            {"job": running[0]},
        )
    if request.dry_run:
        return ActionResult(Outcome.DRY_RUN, "DryRun", f"would create Job {name}", {"job": name})
    try:
        api.create(collection, manifest)
    except ApiError as exc:
        if exc.status == 409:
            return _already_created(name)
        return ActionResult(
            Outcome.FAILED, "RetrainFailed", f"creating Job {name} failed: {exc}", {"job": name}
        )
    return ActionResult(
        Outcome.SUCCEEDED, "RetrainStarted", f"created retraining Job {name}", {"job": name}
    )


def _already_created(name: str) -> ActionResult:
    return ActionResult(
        Outcome.SUCCEEDED,
        "RetrainStarted",
        f"retraining Job {name} already created for this action",
        {"job": name},
    )
