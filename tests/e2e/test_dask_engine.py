"""The partition step on a real Dask cluster (``--engine``, ``spec.schedule.mode: dask``).

Two clusters, both real ``distributed`` processes of the test's virtualenv:

* ``modelmonitor check --engine dask-local --workers 2``: the command starts a
  LocalCluster of two worker processes itself;
* ``mode: dask``: a scheduler and two workers started here as processes (``dask
  scheduler``, ``dask worker``), named by the monitor; the operator runs the run's Job,
  whose pod (on the harness node) connects to the scheduler through the outbound fence,
  and the workers read the 50 partitions from the claim's directory (the same path the
  pod sees, as a worker pod mounting the claim would).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.monitors import partition_reports, partitioned_monitor, wait_job_run
from tests.e2e.operator_fixtures import OperatorProcess, free_port
from tests.e2e.test_job_mode import claim_on_host, ready_for_job_runs
from tests.e2e.test_partitions_job import PARTITIONS, iris_partition
from tests.e2e.test_runs import condition
from tests.iris import FEATURES
from tests.modelserver import ModelServer

pytest.importorskip("distributed")

BIN = Path(sys.executable).parent


def write_window(day: Path) -> None:
    day.mkdir(parents=True)
    for i in range(PARTITIONS):
        pq.write_table(iris_partition(i, 2.5 if i % 2 else 0.0), day / f"part-{i:05d}.parquet")
    (day / "_SUCCESS").write_text("")


def check(tmp_path: Path, *engine: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            str(BIN / "modelmonitor"),
            "check",
            "--reference",
            str(tmp_path / "reference.parquet"),
            "--current",
            str(tmp_path / "window"),
            "--format",
            "json",
            "--drift-share",
            "0.2",
            *engine,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_check_on_a_local_cluster_of_two_worker_processes(tmp_path: Path) -> None:
    pq.write_table(iris_partition(999, 0.0).drop(["prediction"]), tmp_path / "reference.parquet")
    write_window(tmp_path / "window")
    on_dask = check(tmp_path, "--engine", "dask-local", "--workers", "2")
    streamed = check(tmp_path)
    assert on_dask["current"]["engine"] == "dask-local"
    assert on_dask["current"]["workers"] == 2
    assert on_dask["current"]["partitions"] == PARTITIONS
    assert on_dask["current"]["rows"] == streamed["current"]["rows"] == PARTITIONS * 150
    assert on_dask["dataset"]["drifted"] == streamed["dataset"]["drifted"]
    drifted = {f["name"] for f in on_dask["features"] if f["drifted"]}
    assert drifted == {f["name"] for f in streamed["features"] if f["drifted"]}
    assert drifted == {"petal_length"}
    eps = on_dask["current"]["rank_error"]
    for a, b in zip(on_dask["features"], streamed["features"], strict=True):
        assert a["name"] == b["name"]
        assert abs(a["statistic"] - b["statistic"]) <= 2 * eps, (a, b)


class DaskCluster:
    """``dask scheduler`` and ``dask worker`` processes on loopback, stopped at the end."""

    def __init__(self, log_dir: Path, workers: int) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._start(
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
        )
        for i in range(workers):
            self._start(
                f"worker-{i}",
                [
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--name",
                    f"worker-{i}",
                ],
            )

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [str(BIN / "dask"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def wait_ready(self, workers: int) -> None:
        wait_for(
            lambda: self.log("scheduler").count("Register worker") >= workers or None,
            timeout=60,
            interval=0.5,
            what=f"{workers} Dask workers registered",
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    logs = tmp_path / "dask"
    logs.mkdir()
    cluster = DaskCluster(logs, workers=2)
    try:
        cluster.wait_ready(2)
        yield cluster
    finally:
        cluster.stop()


def test_mode_dask_profiles_the_partitions_on_the_named_scheduler(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    node_agent: NodeAgent,
    dask_cluster: DaskCluster,
    tmp_path: Path,
) -> None:
    cluster: KubeCluster = operator_process.cluster
    ready_for_job_runs(cluster, namespace, node_agent)
    volume = tmp_path / "volume"
    write_window(volume / "exports" / "day=2026-12-07")
    cluster.apply(claim_on_host(namespace, "exports", volume))
    try:
        doc = partitioned_monitor(
            "batch",
            url=model_server.url,
            partitions={"claimName": "exports", "path": "/exports"},
            mode="dask",
            dask_scheduler=dask_cluster.address,
        )
        cluster.apply(doc, "-n", namespace)
        st = wait_job_run(
            cluster, namespace, "batch", "a mode-dask run over the partitioned window reported back"
        )
        assert condition(st, "Degraded")["status"] == "False", st
        assert st["lastRun"]["samples"] == PARTITIONS * 150, st["lastRun"]
        assert [f["name"] for f in st["drift"]["features"]] == ["petal_length"], st["drift"]
        assert condition(st, "DriftDetected")["status"] == "True", st
        # the run pod was a client of the named scheduler, and both workers took part
        assert "Receive client connection" in dask_cluster.log("scheduler")
        reports = partition_reports(node_agent, namespace)
        assert reports, "the run pod printed no report"
        details = reports[-1]["details"]["partitions"]
        assert details == {
            "files": PARTITIONS,
            "rows": PARTITIONS * 150,
            "engine": "dask",
            "workers": 2,
        }
        assert set(FEATURES) <= {f["name"] for f in reports[-1]["drift"]["features"]}
    finally:
        cluster.kubectl("delete", "mm", "--all", "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", f"{namespace}-exports", "--wait=false", check=False)
