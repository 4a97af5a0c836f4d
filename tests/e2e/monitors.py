"""ModelMonitor documents the e2e tests share, built from keyword arguments.

Each builder starts from :func:`tests.e2e.test_runs.monitor` (the iris model, its
reference ConfigMap, the probe) and changes only what its kind of test is about, so two
tests of one feature (a partitioned window in job mode and in mode dask, on a claim or
under a prefix; a performance estimate from the probe or from the payload log) apply the
same document but for the arguments that differ. :func:`wait_job_run` waits for the
first run that a Job reported back, :func:`partition_reports` reads what its pod printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.test_runs import monitor

#: The iris rows with the true species and the served model's class probabilities
#: (tests/e2e/test_performance.py writes this ConfigMap).
PERFORMANCE_REFERENCE = {"configMapRef": {"name": "iris-performance", "key": "reference.csv"}}
#: What a job-mode run may take before its Job is stopped.
JOB_DEADLINE_SECONDS = 120


def performance_monitor(
    name: str,
    *,
    url: str,
    model: str = "iris",
    min_rows: int,
    data: dict[str, Any] | None = None,
    probe: dict[str, Any] | None = None,
    **performance: Any,
) -> dict[str, Any]:
    """A monitor estimating accuracy, F1 and ROC AUC of ``model`` against
    :data:`PERFORMANCE_REFERENCE`. ``performance`` adds fields of ``spec.performance``
    under their spec names (``labels``, ``minimum``, ``probabilityOutput``); ``data``
    replaces ``spec.data``; ``probe`` overrides fields of the probe."""
    doc = monitor(
        name,
        url,
        model,
        performance={
            "target": "species",
            "probabilities": ["p0", "p1", "p2"],
            "metrics": ["accuracy", "f1", "roc_auc"],
            "minRows": min_rows,
            **performance,
        },
    )
    doc["spec"]["reference"] = dict(PERFORMANCE_REFERENCE)
    if data is not None:
        doc["spec"]["data"] = data
    if probe:
        doc["spec"]["data"]["probe"].update(probe)
    return doc


def partitioned_monitor(
    name: str,
    *,
    url: str,
    partitions: dict[str, Any],
    mode: str = "job",
    dask_scheduler: str | None = None,
    drift_share: float = 0.2,
) -> dict[str, Any]:
    """A monitor whose current window is ``spec.data.partitions`` (a claim's folder or an
    object-storage prefix), run in ``mode`` (``job``, or ``dask`` on ``dask_scheduler``)
    once a minute, the run's Job stopped after :data:`JOB_DEADLINE_SECONDS`."""
    doc = monitor(name, url, "iris", drift={"driftShare": drift_share})
    schedule: dict[str, Any] = {"interval": "60s", "mode": mode}
    if dask_scheduler is not None:
        schedule["dask"] = {"scheduler": dask_scheduler}
    schedule["job"] = {"activeDeadlineSeconds": JOB_DEADLINE_SECONDS}
    doc["spec"]["schedule"] = schedule
    doc["spec"]["data"]["partitions"] = partitions
    return doc


def wait_job_run(
    cluster: KubeCluster,
    namespace: str,
    name: str,
    what: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The monitor's status once a run in a Job (``lastRun.mode: job``) reported back
    (and ``until`` holds of the status, when given)."""

    def reported() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.get("mm", name, "-n", namespace).get("status") or {}
        if (status.get("lastRun") or {}).get("mode") != "job":
            return None
        return status if until is None or until(status) else None

    return wait_for(reported, timeout=JOB_DEADLINE_SECONDS, interval=1, what=f"{name}: {what}")


def partition_reports(
    node_agent: NodeAgent, namespace: str, monitor: str = ""
) -> list[dict[str, Any]]:
    """The reports over a partitioned window that the run pods (of ``monitor``'s runs,
    or of every run in ``namespace``) printed on the harness node, one JSON line each."""
    pods = f"{namespace}_{monitor}-run-*" if monitor else f"{namespace}_*"
    return [
        json.loads(line)
        for pod in node_agent.pods_dir.glob(pods)
        for log in pod.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("{") and '"partitions"' in line
    ]
