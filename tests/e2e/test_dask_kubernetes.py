"""Mode dask with ``cluster``: an ephemeral Dask cluster per run, made by dask-kubernetes.

The real dask-kubernetes controller (PyPI, pinned in tests/dask_operator.py, its own
CRDs and the RBAC its chart grants) runs as a local process against the local control
plane. The operator creates a DaskJob per run; the controller turns it into a scheduler
Deployment and Service, a worker group of two and the job-runner pod, and the harness
node runs all of those pods as local processes of the run image (``dask scheduler``,
``dask worker``, ``modelmonitor job``). The run pod reaches the scheduler by its Service
name, ``<daskjob>-scheduler.<ns>.svc.cluster.local:8786``, through the harness node's
cluster DNS and Service routing, and the workers read the 50 partitions from the claim
they mount at the run pod's path.

Beside it a job-mode monitor (one pod, streaming) reads the same window: the two verdicts
must agree. The run's timeline (DaskJob created, cluster up, workers registered, run pod
done, DaskJob Successful, everything gone) is printed for the record.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import dask_operator
from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.conftest_node import NODE_NAME, modelmonitor_image
from tests.e2e.operator_fixtures import JOB_IMAGE, OperatorProcess
from tests.e2e.test_dask_engine import write_window
from tests.e2e.test_job_mode import claim_on_host, job_rbac
from tests.e2e.test_partitions_job import PARTITIONS
from tests.e2e.test_runs import condition, monitor, setup
from tests.modelserver import ModelServer

pytest.importorskip("distributed")
pytestmark = pytest.mark.skipif(
    not dask_operator.ready(), reason="dask-kubernetes' environment is built by make deps"
)

RUN_LABEL = "modelmonitor.io/monitor"
# 99% rank error of one CDF value read from a window sketch (core/stats/partitions.py)
SKETCH_TOLERANCE = 0.02
DASK_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


@pytest.fixture(scope="module")
def dask_controller(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dask_operator.DaskOperator]:
    with dask_operator.DaskOperator(kube_cluster, tmp_path_factory.mktemp("dask-op")) as op:
        yield op


class Timeline:
    """When each thing was first seen, polled from the API every 0.3 s in a thread."""

    def __init__(self, cluster: KubeCluster, namespace: str, monitor: str) -> None:
        self.cluster, self.namespace, self.monitor = cluster, namespace, monitor
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.seen: dict[str, float] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def mark(self, what: str) -> None:
        self.seen.setdefault(what, round(time.monotonic() - self.t0, 2))

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._poll()
            self._stop.wait(0.3)

    def _poll(self) -> None:
        selector = f"{RUN_LABEL}={self.monitor}"
        objs = self.cluster.get(
            "daskjobs.kubernetes.dask.org,pods", "-n", self.namespace, "-l", selector
        )["items"]
        for obj in objs:
            name = obj["metadata"]["name"]
            if obj["kind"] == "DaskJob":
                self.mark(f"{name} created")
                status = (obj.get("status") or {}).get("jobStatus")
                if status:
                    self.mark(f"{name} {status}")
                continue
            self.pods[name] = obj
            component = obj["metadata"]["labels"].get("dask.org/component", "?")
            phase = (obj.get("status") or {}).get("phase", "")
            self.mark(f"{component} {name} {phase}")

    def scheduler_events(self, log: str, run: str) -> None:
        """Marks from the scheduler's own log (millisecond timestamps, local time)."""
        events = {
            "Scheduler at": "scheduler listening",
            "Register worker": "worker registered",
            "Receive client connection": "run pod connected",
            "Remove client ": "run pod done (profiling over)",
        }
        counts: dict[str, int] = {}
        for line in log.splitlines():
            match = DASK_LOG_TIME.match(line)
            if match is None:
                continue
            for needle, what in events.items():
                if needle in line:
                    counts[what] = counts.get(what, 0) + 1
                    when = time.mktime(time.strptime(match[1], "%Y-%m-%d %H:%M:%S"))
                    offset = when + int(match[2]) / 1000 - self.wall0
                    self.seen.setdefault(f"{run} {what} #{counts[what]}", round(offset, 2))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=5)
        return dict(sorted(self.seen.items(), key=lambda kv: kv[1]))


def run_report(node_agent: NodeAgent, namespace: str, pod: str) -> dict[str, Any]:
    """The report a run pod printed (its last JSON line with drift in it)."""
    for line in reversed(node_agent.pod_log(namespace, pod).splitlines()):
        if line.startswith("{") and '"drift"' in line:
            report: dict[str, Any] = json.loads(line)
            return report
    raise AssertionError(f"{pod} printed no report:\n{node_agent.pod_log(namespace, pod)[-3000:]}")


def last_run(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any] | None:
    status = cluster.get("mm", name, "-n", namespace).get("status") or {}
    return status if status.get("lastRun", {}).get("mode") == "job" else None


def test_an_ephemeral_dask_cluster_profiles_the_partitions(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    node_agent: NodeAgent,
    dask_controller: dask_operator.DaskOperator,
    tmp_path: Path,
) -> None:
    cluster: KubeCluster = operator_process.cluster
    node_agent.register_image(JOB_IMAGE, modelmonitor_image())
    setup(cluster, namespace)
    cluster.apply(job_rbac(namespace), "-n", namespace)
    volume = tmp_path / "volume"
    write_window(volume / "exports" / "day=2026-12-07")
    cluster.apply(claim_on_host(namespace, "exports", volume))
    timeline = Timeline(cluster, namespace, "batch")
    try:
        docs = []
        for name, schedule in (
            ("batch", {"mode": "dask", "dask": {"cluster": {"workers": 2}}}),
            ("single", {"mode": "job"}),  # one pod streaming the same window
        ):
            doc = monitor(name, model_server.url, "iris", drift={"driftShare": 0.2})
            doc["spec"]["schedule"] = {
                "interval": "10s",
                "job": {"activeDeadlineSeconds": 90},
                **schedule,
            }
            doc["spec"]["data"]["partitions"] = {"claimName": "exports", "path": "/exports"}
            docs.append(doc)
        cluster.apply(docs, "-n", namespace)
        st = wait_for(
            lambda: last_run(cluster, namespace, "batch"),
            timeout=90,
            interval=0.5,
            what="a run on an ephemeral Dask cluster reported back",
        )
        first = st["lastRun"]["time"]
        assert condition(st, "Degraded")["status"] == "False", st
        assert st["lastRun"]["samples"] == PARTITIONS * 150, st["lastRun"]
        assert [f["name"] for f in st["drift"]["features"]] == ["petal_length"], st["drift"]
        assert condition(st, "DriftDetected")["status"] == "True", st

        # the scheduler, both workers and the run pod ran as pods on the harness node
        pods = dict(timeline.pods)
        by_role: dict[str, list[str]] = {}
        for name, pod in pods.items():
            role = pod["metadata"]["labels"].get("dask.org/component", "?")
            by_role.setdefault(role, []).append(name)
            assert pod["spec"].get("nodeName") == NODE_NAME, pod["spec"]
        assert len(by_role.get("scheduler", [])) == 1, by_role
        assert len(by_role.get("worker", [])) == 2, by_role
        assert len(by_role.get("job-runner", [])) == 1, by_role
        scheduler_log = node_agent.pod_log(namespace, by_role["scheduler"][0])
        assert scheduler_log.count("Register worker") >= 2, scheduler_log[-3000:]
        assert "Receive client connection" in scheduler_log, scheduler_log[-3000:]
        timeline.scheduler_events(scheduler_log, "first run:")
        for worker in by_role["worker"]:
            assert "Registered to" in node_agent.pod_log(namespace, worker)

        # the verdict is the one-pod verdict on the same window
        on_dask = run_report(node_agent, namespace, by_role["job-runner"][0])
        assert on_dask["details"]["partitions"] == {
            "files": PARTITIONS,
            "rows": PARTITIONS * 150,
            "engine": "dask",
            "workers": 2,
        }
        single = wait_for(
            lambda: last_run(cluster, namespace, "single"),
            timeout=60,
            interval=0.5,
            what="the one-pod run of the same window",
        )
        assert single["lastRun"]["samples"] == st["lastRun"]["samples"]
        assert [f["name"] for f in single["drift"]["features"]] == ["petal_length"]
        streamed = next(
            run_report(node_agent, namespace, p.name.split("_")[1])
            for p in node_agent.pods_dir.glob(f"{namespace}_single-run-*")
        )
        assert on_dask["drift"]["drifted"] == streamed["drift"]["drifted"]
        assert on_dask["drift"]["driftedFeatures"] == streamed["drift"]["driftedFeatures"]
        a = {f["name"]: f for f in on_dask["drift"]["features"]}
        b = {f["name"]: f for f in streamed["drift"]["features"]}
        assert a.keys() == b.keys()
        for name, fa in a.items():
            assert fa["drifted"] == b[name]["drifted"], (fa, b[name])
            assert abs(fa["statistic"] - b[name]["statistic"]) <= SKETCH_TOLERANCE, (fa, b[name])

        # the DaskJob, its cluster and its pods are gone after the run (the next run's
        # DaskJob may exist already: only the first run's objects count)
        first_job = pods[by_role["job-runner"][0]]["metadata"]["labels"]["dask.org/cluster-name"]

        def gone() -> bool:
            left = cluster.get(
                "daskjobs.kubernetes.dask.org,daskclusters.kubernetes.dask.org,pods,services",
                "-n",
                namespace,
                "-l",
                f"{RUN_LABEL}=batch",
            )["items"]
            return not [o for o in left if o["metadata"]["name"].startswith(first_job)]

        wait_for(gone, timeout=30, interval=0.5, what="the first run's DaskJob and pods gone")
        timeline.mark("first run's objects gone")

        # a second run works the same way
        second = wait_for(
            lambda: (lambda s: s if s and s["lastRun"]["time"] != first else None)(
                last_run(cluster, namespace, "batch")
            ),
            timeout=60,
            interval=0.5,
            what="a second run on a new ephemeral cluster",
        )
        assert condition(second, "Degraded")["status"] == "False", second
        assert second["lastRun"]["samples"] == PARTITIONS * 150
        for name, pod in dict(timeline.pods).items():
            if name not in pods and pod["metadata"]["labels"].get("dask.org/component") == (
                "scheduler"
            ):
                timeline.scheduler_events(node_agent.pod_log(namespace, name), "second run:")
    finally:
        seen = timeline.stop()
        print("timeline (s since the monitors were applied):", json.dumps(seen, indent=1))
        cluster.kubectl("delete", "mm", "--all", "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", f"{namespace}-exports", "--wait=false", check=False)
