"""Job mode streams a partitioned current window from a claim (``spec.data.partitions``).

The run's pod really runs (the harness plays the node and mounts the claim: a
PersistentVolume on a directory of this machine); the window is 50 Parquet partitions
of iris rows, a few of them with petal_length moved up, plus what Spark leaves beside its
output. The pod folds them into one profile and reports the verdict like any run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.cluster.kube import KubeCluster
from tests.cluster.node import NodeAgent
from tests.e2e.monitors import partitioned_monitor, wait_job_run
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_job_mode import claim_on_host, ready_for_job_runs
from tests.e2e.test_runs import condition
from tests.iris import FEATURES, IRIS, SPECIES
from tests.modelserver import ModelServer

PARTITIONS = 50


def iris_partition(seed: int, shift: float) -> pa.Table:
    """The iris rows in a seeded order, petal_length moved by ``shift`` cm."""
    lines = IRIS.read_text().splitlines()[1:]
    rng = np.random.default_rng(seed)
    rows = [lines[i].split(",") for i in rng.permutation(len(lines))]
    cols = {f: np.array([float(r[i]) for r in rows]) for i, f in enumerate(FEATURES)}
    cols["petal_length"] = cols["petal_length"] + shift
    table = pa.table({**cols, "prediction": [str(SPECIES[r[4]]) for r in rows]})
    return table


def test_a_partitioned_window_is_streamed_in_the_run_pod(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    node_agent: NodeAgent,
    tmp_path: Path,
) -> None:
    cluster: KubeCluster = operator_process.cluster
    ready_for_job_runs(cluster, namespace, node_agent)
    volume = tmp_path / "volume"
    day = volume / "exports" / "day=2026-12-07"
    day.mkdir(parents=True)
    for i in range(PARTITIONS):
        pq.write_table(iris_partition(i, 2.5 if i % 2 else 0.0), day / f"part-{i:05d}.parquet")
    (day / "_SUCCESS").write_text("")
    cluster.apply(claim_on_host(namespace, "exports", volume))
    try:
        doc = partitioned_monitor(
            "batch",
            url=model_server.url,
            partitions={"claimName": "exports", "path": "/exports"},
        )
        cluster.apply(doc, "-n", namespace)
        st = wait_job_run(
            cluster, namespace, "batch", "a job-mode run over the partitioned window reported back"
        )
        assert condition(st, "Degraded")["status"] == "False", st
        assert st["lastRun"]["samples"] == PARTITIONS * 150, st["lastRun"]
        # status lists the drifted features: only the shifted one, read from the sketch
        assert [f["name"] for f in st["drift"]["features"]] == ["petal_length"], st["drift"]
        assert condition(st, "DriftDetected")["status"] == "True", st
    finally:
        cluster.kubectl("delete", "mm", "--all", "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", f"{namespace}-exports", "--wait=false", check=False)
