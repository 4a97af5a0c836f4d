"""Mode dask with ``cluster``, the I/O part: a run is a dask-kubernetes DaskJob.

The job runner (engine/job_runner.py) does what it does for a Job - find or adopt by the
run label, wait within the run's deadline, read the report ConfigMap, delete - with
:class:`DaskJobs` as its workload. dask-kubernetes' own operator makes the cluster and
the run pod and deletes the cluster when the pod ends; deleting the DaskJob afterwards
removes the pod and its report.

dask-kubernetes is the cluster admin's install, not ours: when its CRD is absent (404)
or the operator was not given rights on daskjobs (403, the chart's ``rbac.daskJobs``
off), the run is reported with reason ``EngineUnavailable`` and a message naming what
is missing, and the next scheduled run tries again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelmonitor.adapters.kube import KubeClient
from modelmonitor.core.daskjobs import (
    DASKJOB_API,
    DASKJOB_PLURAL,
    build_daskjob,
    daskjob_name,
    daskjob_outcome,
    run_labels,
    runner_pod_name,
)
from modelmonitor.core.jobs import (
    RUN_ID_LABEL,
    RUN_LABEL,
    JobOutcome,
    JobSettings,
    report_configmap_name,
)
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.engine.job_runner import JobRunner, RunUnavailableError
from modelmonitor.engine.slots import RunSlots

ENGINE_UNAVAILABLE = "EngineUnavailable"


@dataclass
class DaskJobs:
    """A run is a ``kubernetes.dask.org/v1`` DaskJob (its cluster and run pod)."""

    kube: KubeClient
    kind: str = "DaskJob"

    def list(self, namespace: str, monitor: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call(
            "list", self.kube.list_runs, namespace, run_labels(monitor)
        )
        return found

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("get", self.kube.get_run, namespace, name)
        return found

    def create(self, namespace: str, job: dict[str, Any], spec: MonitorSpec) -> dict[str, Any]:
        dask = spec.schedule.dask
        if dask is None or dask.cluster is None:
            raise ValueError("a DaskJob run needs spec.schedule.dask.cluster")
        meta = job["metadata"]
        name = daskjob_name(meta["labels"][RUN_LABEL], meta["labels"][RUN_ID_LABEL])
        manifest = build_daskjob(job=job, name=name, cluster=dask.cluster)
        created: dict[str, Any] = self._call("create", self.kube.create_run, namespace, manifest)
        return created

    def delete(self, namespace: str, name: str) -> None:
        self._call("delete", self.kube.delete_run, namespace, name)

    def outcome(self, obj: Mapping[str, Any]) -> JobOutcome:
        return daskjob_outcome(obj)

    def report_configmap(self, name: str) -> str:
        return report_configmap_name(runner_pod_name(name))

    def _call(self, verb: str, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(DASKJOB_API, DASKJOB_PLURAL, *args)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == 404 and verb in ("list", "create"):
                raise RunUnavailableError(
                    ENGINE_UNAVAILABLE,
                    "the DaskJob API (kubernetes.dask.org/v1) is not served: install the "
                    "dask-kubernetes operator and its CRDs (docs/scale.md)",
                ) from exc
            if status == 403:
                raise RunUnavailableError(
                    ENGINE_UNAVAILABLE,
                    f"the operator may not {verb} daskjobs.kubernetes.dask.org: set the "
                    "chart's rbac.daskJobs (docs/scale.md)",
                ) from exc
            raise


def daskjob_runner(
    kube: KubeClient,
    settings: JobSettings,
    *,
    slots: RunSlots | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    poll_seconds: float = 1.0,
) -> JobRunner:
    """The job runner whose runs are DaskJobs."""
    runner = JobRunner(
        kube, settings, slots=slots, poll_seconds=poll_seconds, workload=DaskJobs(kube)
    )
    if clock is not None:
        runner.clock = clock
    return runner
