"""Two operator deployments share one namespace by label (``SHARD_LABEL_SELECTOR``).

Each real operator process runs only the monitors its selector matches, keeps kopf's
bookkeeping under its own annotation prefix, and takes a monitor over when it is
relabelled into its shard; a monitor no shard matches is run by nobody. The monitors
probe a closed port (no model server is needed to see who ran them): their runs end
Degraded, which is all the test reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import OperatorProcess, start_and_wait, watching

LABEL = "modelmonitor.io/shard"


def _monitor(name: str, shard: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": name, "labels": {LABEL: shard} if shard else {}},
        "spec": {
            "target": {
                "kind": "External",
                "name": "app",
                "endpoint": {"url": "http://127.0.0.1:9/predict", "protocol": "json"},
            },
            "schedule": {"interval": "10s"},
            "reference": {"inline": [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}]},
            "data": {"probe": {"samples": 3, "timeoutSeconds": 1}},
        },
    }


@pytest.fixture
def shards(
    crds: KubeCluster, namespace: str, tmp_path: Path
) -> Iterator[dict[str, OperatorProcess]]:
    ops = {
        name: watching(
            crds,
            tmp_path / f"operator-{name}.log",
            namespace,
            env={"SHARD_LABEL_SELECTOR": f"{LABEL}={name}", "LEASE_NAME": f"mm-{name}"},
        )
        for name in ("a", "b")
    }
    try:
        for op in ops.values():
            start_and_wait(op)
        yield ops
    finally:
        for op in ops.values():
            op.stop()


def _annotations(cluster: KubeCluster, namespace: str, name: str) -> dict[str, str]:
    return dict(cluster.get("mm", name, "-n", namespace)["metadata"].get("annotations") or {})


def _ran(cluster: KubeCluster, namespace: str, name: str, after: str = "") -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = cluster.get("mm", name, "-n", namespace).get("status") or {}
        when = (status.get("lastRun") or {}).get("time", "")
        return status if when and when > after else None

    return wait_for(done, timeout=60, interval=0.5, what=f"{name}: a run after {after!r}")


def test_each_shard_runs_only_its_monitors(
    shards: dict[str, OperatorProcess], namespace: str
) -> None:
    try:
        _shards_run_their_monitors(shards, namespace)
    except (TimeoutError, AssertionError) as exc:
        cluster = shards["a"].cluster
        found = cluster.kubectl("get", "mm", "-n", namespace, "-o", "yaml", check=False).stdout
        logs = {name: op.logs()[-4000:] for name, op in shards.items()}
        raise AssertionError(f"{exc}\nmonitors:\n{found[-4000:]}\nlogs: {logs}") from exc


def _shards_run_their_monitors(shards: dict[str, OperatorProcess], namespace: str) -> None:
    cluster = shards["a"].cluster
    cluster.apply(
        [_monitor("in-a", "a"), _monitor("in-b", "b"), _monitor("in-none", None)],
        "-n",
        namespace,
    )
    _ran(cluster, namespace, "in-a")
    _ran(cluster, namespace, "in-b")
    a, b = (_annotations(cluster, namespace, m) for m in ("in-a", "in-b"))
    assert "mm-a.modelmonitor.io/last-handled-configuration" in a, a
    assert not any(k.startswith("mm-b.") for k in a), a
    assert "mm-b.modelmonitor.io/last-handled-configuration" in b, b
    assert not any(k.startswith("mm-a.") for k in b), b
    time.sleep(3)  # a monitor no shard matches is run by nobody
    assert not cluster.get("mm", "in-none", "-n", namespace).get("status")
    assert "in-b" not in shards["a"].logs()
    assert "in-a" not in shards["b"].logs()

    # relabelled into shard b: b takes it over, a's run loop stops
    before = _ran(cluster, namespace, "in-a")["lastRun"]["time"]
    cluster.kubectl("label", "mm", "in-a", f"{LABEL}=b", "--overwrite", "-n", namespace)
    wait_for(
        lambda: (
            "mm-b.modelmonitor.io/last-handled-configuration"
            in _annotations(cluster, namespace, "in-a")
        ),
        timeout=30,
        interval=0.5,
        what="shard b handles the relabelled monitor",
    )
    _ran(cluster, namespace, "in-a", after=before)
    assert all(op.alive() for op in shards.values())
