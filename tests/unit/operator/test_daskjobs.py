"""Mode dask with ``cluster``: the DaskJob builder (pure) and the DaskJob runner.

The runner's cluster is a small fake of our own KubeClient's run calls; the e2e test
(tests/e2e/test_dask_kubernetes.py) runs dask-kubernetes' real controller.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pytest

from modelmonitor.core.daskjobs import (
    CLUSTER_ARG,
    DASKJOB_API,
    MAX_DASKJOB_NAME,
    build_daskjob,
    daskjob_name,
    daskjob_outcome,
    runner_pod_name,
    scheduler_address,
)
from modelmonitor.core.jobs import (
    REPORT_KEY,
    RUN_LABEL,
    WINDOW_MOUNT,
    JobSettings,
    build_job,
    build_report_configmap,
    report_configmap_name,
)
from modelmonitor.core.pod_policy import job_template_violations
from modelmonitor.core.report import DriftSummary, Report
from modelmonitor.core.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.core.spec.model import DaskClusterSpec
from modelmonitor.edge.job_command import cluster_scheduler
from modelmonitor.engine.daskjob_runner import ENGINE_UNAVAILABLE, daskjob_runner
from modelmonitor.engine.runloop import ModeRunner
from tests.unit.operator.run_pods import RunPodsAndStatus, sealed_pod

MONITOR = {"metadata": {"name": "batch", "namespace": "ml", "uid": "uid-1"}}
REFERENCE = [{"x": 1.0}, {"x": 2.0}]


def job(**kw: Any) -> dict[str, Any]:
    return build_job(
        monitor=MONITOR,
        run_id="abc123",
        settings=JobSettings("registry/modelmonitor:1", "modelmonitor-job"),
        resources=None,
        active_deadline_seconds=120,
        window_claim="exports",
        **kw,
    )


def daskjob(cluster: DaskClusterSpec | None = None) -> dict[str, Any]:
    return build_daskjob(
        job=job(), name=daskjob_name("batch", "abc123"), cluster=cluster or DaskClusterSpec()
    )


# --- spec ----------------------------------------------------------------------------------


def spec(dask: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "model"},
            "schedule": {"mode": "dask", "dask": dask},
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}],
            "data": {"partitions": {"claimName": "exports", "path": "window"}},
        }
    )


def test_cluster_defaults_to_two_workers() -> None:
    dask = spec({"cluster": {}}).schedule.dask
    assert dask is not None
    assert dask.scheduler is None
    assert dask.cluster == DaskClusterSpec(workers=2)
    resources = {"limits": {"memory": "1Gi"}}
    parsed = spec({"cluster": {"workers": 5, "resources": resources}}).schedule.dask
    assert parsed is not None
    assert parsed.cluster == DaskClusterSpec(5, resources)


@pytest.mark.parametrize(
    ("dask", "message"),
    [
        ({"scheduler": "tcp://d:8786", "cluster": {}}, r"spec.schedule.dask: sets both"),
        ({"cluster": {"workers": 0}}, r"cluster.workers: must be >= 1"),
        ({"cluster": {"workers": 33}}, r"cluster.workers: must be <= 32"),
        ({"cluster": {"workers": "2"}}, r"cluster.workers: must be an integer"),
        ({"cluster": {"resources": {"cpu": 1}}}, r"resources.cpu: is not requests or limits"),
        ({"cluster": {"resources": {"limits": "1Gi"}}}, r"resources.limits: must be an object"),
        ({"cluster": []}, r"spec.schedule.dask.cluster: must be an object"),
    ],
)
def test_cluster_is_validated(dask: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec(dask)


# --- the DaskJob -----------------------------------------------------------------------------


def test_names_fit_dask_kubernetes_limits() -> None:
    long = daskjob_name("a" * 63, "0123456789")
    assert len(long) <= MAX_DASKJOB_NAME
    assert long.endswith("-dask-0123456789")
    assert daskjob_name("web.v2", "abc") == "web-v2-dask-abc"  # no dots in a Service name
    assert daskjob_name("0web", "abc")[0].isalpha()
    assert (
        scheduler_address("b-dask-1", "ml") == "tcp://b-dask-1-scheduler.ml.svc.cluster.local:8786"
    )


def test_the_daskjob_is_owned_by_the_monitor_and_labelled_as_its_run() -> None:
    body = daskjob()
    assert body["apiVersion"] == "kubernetes.dask.org/v1"
    assert body["kind"] == "DaskJob"
    meta = body["metadata"]
    assert meta["name"] == "batch-dask-abc123"
    assert meta["namespace"] == "ml"
    assert meta["labels"][RUN_LABEL] == "batch"
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert body["spec"]["job"]["metadata"]["labels"][RUN_LABEL] == "batch"


def test_the_job_pod_is_the_run_pod_told_its_cluster() -> None:
    body, run_pod = daskjob(), job()["spec"]["template"]["spec"]
    pod = body["spec"]["job"]["spec"]
    run = pod["containers"][0]
    assert run["args"][: len(run_pod["containers"][0]["args"])] == run_pod["containers"][0]["args"]
    assert run["args"][-2:] == [CLUSTER_ARG, "batch-dask-abc123"]
    assert pod["activeDeadlineSeconds"] == 120  # a bare pod is bounded like the Job
    assert pod["restartPolicy"] == "Never"
    env = {e["name"]: e for e in run["env"]}
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["JOB_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert "DASK_SCHEDULER_ADDRESS" not in env  # dask-kubernetes injects it
    assert pod["securityContext"] == run_pod["securityContext"]


def test_scheduler_and_workers_run_the_run_image_under_the_same_rules() -> None:
    cluster = daskjob(DaskClusterSpec(3, {"limits": {"memory": "2Gi"}}))["spec"]["cluster"]["spec"]
    run = job()["spec"]["template"]["spec"]
    scheduler, worker = cluster["scheduler"]["spec"], cluster["worker"]["spec"]
    assert cluster["worker"]["replicas"] == 3
    for pod in (scheduler, worker):
        (container,) = pod["containers"]
        assert container["image"] == "registry/modelmonitor:1"
        assert container["command"] == ["dask"]
        assert container["securityContext"] == run["containers"][0]["securityContext"]
        assert pod["securityContext"] == run["securityContext"]
        assert pod["automountServiceAccountToken"] is False
        # what a tenant's pod template may not ask for, these do not either
        assert not job_template_violations(
            {"template": {"spec": pod}}, {"modelmonitor-job"}, path="pod"
        )
    assert scheduler["containers"][0]["args"][0] == "scheduler"
    assert "resources" not in scheduler["containers"][0]
    (wc,) = worker["containers"]
    assert wc["args"][:2] == ["worker", "$(DASK_SCHEDULER_ADDRESS)"]
    assert wc["resources"] == {"limits": {"memory": "2Gi"}}
    window = [m for m in wc["volumeMounts"] if m["mountPath"] == WINDOW_MOUNT]
    assert window == [{"name": "window", "mountPath": WINDOW_MOUNT, "readOnly": True}]
    claims = [v["persistentVolumeClaim"] for v in worker["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"claimName": "exports", "readOnly": True}]
    service = cluster["scheduler"]["service"]
    assert service["ports"][0]["port"] == 8786
    assert service["selector"]["dask.org/component"] == "scheduler"


def test_outcome_follows_job_status() -> None:
    assert daskjob_outcome({}).state == "running"
    assert daskjob_outcome({"status": {"jobStatus": "Running"}}).state == "running"
    assert daskjob_outcome({"status": {"jobStatus": "Successful"}}).state == "succeeded"
    failed = daskjob_outcome({"status": {"jobStatus": "Failed"}})
    assert failed.state == "failed"
    assert failed.reason == "DaskJobFailed"


def test_the_report_of_a_daskjob_is_owned_by_its_run_pod() -> None:
    cm = build_report_configmap(
        job="x-runner", job_uid="u", namespace="ml", monitor="m", report_json="{}", owner_kind="Pod"
    )
    assert cm["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "x-runner", "uid": "u"}
    ]


# --- the run pod's scheduler address --------------------------------------------------------


def test_the_run_pod_accepts_only_its_own_clusters_scheduler() -> None:
    own = "tcp://b-dask-1-scheduler.ml.svc.cluster.local:8786"
    assert cluster_scheduler("b-dask-1", "ml", own) == own
    assert cluster_scheduler("", "ml", "tcp://evil:1") is None
    for other in (
        "tcp://evil.example:8786",
        "tcp://b-dask-1-scheduler.other.svc.cluster.local:8786",
        "tcp://b-dask-1-scheduler.ml.svc.cluster.local:9999",
        "",
    ):
        with pytest.raises(ValueError, match="not the run's own scheduler"):
            cluster_scheduler("b-dask-1", "ml", other)


# --- the runner ------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class DaskJobs(RunPodsAndStatus):
    """DaskJobs that run until ``finish()``; ``fail_with`` answers every call with an
    HTTP status (404: no CRD, 403: no rights)."""

    def __init__(self, fail_with: int | None = None) -> None:
        super().__init__()
        self.objs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.fail_with = fail_with
        self.apis: set[str] = set()

    def _check(self, api: str) -> None:
        self.apis.add(api)
        if self.fail_with:
            raise ApiError(self.fail_with)

    def list_runs(
        self, api: str, plural: str, namespace: str, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        self._check(api)
        return [o for o in self.objs.values() if o["metadata"]["labels"].items() >= labels.items()]

    def get_run(self, api: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._check(api)
        return self.objs.get(name)

    def create_run(
        self, api: str, plural: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self._check(api)
        meta = {**body["metadata"], "creationTimestamp": None, "uid": f"dj-{len(self.objs)}"}
        obj = {**body, "metadata": meta}
        self.objs[obj["metadata"]["name"]] = obj
        return obj

    def delete_run(self, api: str, plural: str, namespace: str, name: str) -> None:
        self._check(api)
        self.deleted.append(name)
        self.objs.pop(name, None)

    def get_monitor(self, namespace: str, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "uid": "uid-1"}}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.configmaps.get(name)

    def finish(self, status: str = "Successful") -> None:
        for name, obj in self.objs.items():
            obj["status"] = {"jobStatus": status}
            report = Report(dt.datetime.now(dt.UTC), 0.1, "job", 42, DriftSummary("disabled"))
            payload = json.dumps(report.to_dict())
            self.configmaps[report_configmap_name(runner_pod_name(name))] = {
                "data": {REPORT_KEY: payload}
            }
            # the DaskJob's runner pod, controlled by the DaskJob, sealed what it stored
            self.pods.append(sealed_pod(obj["metadata"]["uid"], payload))


def cluster_spec() -> MonitorSpec:
    return spec({"cluster": {"workers": 2}})


def run(objs: DaskJobs, monitor: MonitorSpec, status: Mapping[str, Any] | None = None) -> Report:
    async def scenario() -> Report:
        runner = daskjob_runner(objs, JobSettings("img", "sa"), poll_seconds=0.02)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run("ml", "batch", monitor, status or {}))
        await asyncio.sleep(0.1)
        objs.finish()
        return await task

    return asyncio.run(scenario())


def test_a_run_creates_waits_reads_and_deletes_its_daskjob() -> None:
    objs = DaskJobs()
    report = run(objs, cluster_spec())
    assert not report.problems
    assert report.samples == 42
    assert objs.apis == {DASKJOB_API}
    assert objs.deleted == ["batch-dask-" + objs.deleted[0].rsplit("-", 1)[1]]
    assert not objs.objs


def test_a_running_daskjob_is_adopted_after_a_restart() -> None:
    objs = DaskJobs()
    body = daskjob()
    body["metadata"]["uid"] = "recorded-uid"
    objs.objs[body["metadata"]["name"]] = {**body, "status": {"jobStatus": "Running"}}
    status = {"activeRun": {"kind": "DaskJob", "name": "batch-dask-abc123", "uid": "recorded-uid"}}
    report = run(objs, cluster_spec(), status)
    assert report.samples == 42
    assert objs.deleted == ["batch-dask-abc123"]  # the adopted one, no second DaskJob


def test_a_daskjob_with_the_run_label_but_not_the_recorded_uid_is_not_adopted() -> None:
    """A look-alike (same name and labels, another uid) is neither read nor deleted: the
    operator starts its own run and records it."""
    objs = DaskJobs()
    body = daskjob()
    body["metadata"]["uid"] = "forged-uid"
    objs.objs[body["metadata"]["name"]] = {**body, "status": {"jobStatus": "Successful"}}
    status = {"activeRun": {"kind": "DaskJob", "name": "batch-dask-abc123", "uid": "recorded-uid"}}
    report = run(objs, cluster_spec(), status)
    assert report.samples == 42  # its own run's report, sealed by its own pod
    assert "batch-dask-abc123" in objs.objs  # the look-alike is left alone
    assert objs.status["activeRun"]["kind"] == "DaskJob"
    assert objs.status["activeRun"]["uid"] not in ("", "forged-uid")
    assert objs.deleted == [objs.status["activeRun"]["name"]]


def test_a_failed_daskjob_is_reported() -> None:
    objs = DaskJobs()

    async def scenario() -> Report:
        runner = daskjob_runner(objs, JobSettings("img", "sa"), poll_seconds=0.02)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run("ml", "batch", cluster_spec(), {}))
        await asyncio.sleep(0.1)
        objs.finish("Failed")
        return await task

    report = asyncio.run(scenario())
    assert report.problems[0].reason == "JobFailed"
    assert "DaskJob batch-dask-" in report.problems[0].message
    assert "DaskJobFailed" in report.problems[0].message
    assert not objs.objs


@pytest.mark.parametrize(("status", "says"), [(404, "is not served"), (403, "may not list")])
def test_no_crd_or_no_rights_is_engine_unavailable_not_a_crash(status: int, says: str) -> None:
    report = run(DaskJobs(fail_with=status), cluster_spec())
    assert [p.reason for p in report.problems] == [ENGINE_UNAVAILABLE]
    assert says in report.problems[0].message


def test_mode_runner_sends_only_cluster_runs_to_daskjobs() -> None:
    calls: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        async def run(self, *args: Any) -> Report:
            calls.append(self.name)
            return Report(dt.datetime.now(dt.UTC), 0.0, "job", 0, DriftSummary("disabled"))

    mode = ModeRunner(Named("inline"), Named("job"), Named("daskjob"))
    asyncio.run(mode.run("ml", "b", cluster_spec(), {}))
    asyncio.run(mode.run("ml", "b", spec({"scheduler": "tcp://d:8786"}), {}))
    assert calls == ["daskjob", "job"]
