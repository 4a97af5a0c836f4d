"""The ``node_agent`` fixture: the test session acts as a node, so pods really run.

Imported by tests/e2e/conftest.py. The agent starts with no images; a test registers
the ones its pods use (``node_agent.register_image("web:v1", LocalImage([...]))``;
``node_agent.register_image("modelmonitor:dev", modelmonitor_image())`` for ours).
Container logs live under the cluster's state directory (``<state>/node/pods/``) when
the cluster is a local control plane, else under pytest's temporary directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import KubeCluster
from tests.cluster.node import NODE_LABEL, Backoff, LocalImage, NodeAgent

NODE_NAME = "local-node"


def modelmonitor_image() -> LocalImage:
    """The operator's image as a local command: the ``modelmonitor`` entry point of the
    test's virtualenv (``args: [job, ...]`` or ``[run, ...]`` as in the real image), with
    the virtualenv's commands first on PATH as the image's are (``command: [dask]``)."""
    bin_dir = Path(sys.executable).parent
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    return LocalImage(entrypoint=[str(bin_dir / "modelmonitor")], env={"PATH": path})


def _work_dir(cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    state_dir = cluster.kubeconfig.parent
    if (state_dir / "cluster.json").is_file():
        return state_dir / "node"
    return tmp_path_factory.mktemp("node")


@pytest.fixture(scope="session")
def node_agent(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeAgent]:
    """A Node named ``local-node`` whose pods run as local processes, for the session."""
    nodes = kube_cluster.get("nodes")["items"]
    real = [
        n["metadata"]["name"]
        for n in nodes
        if (n["metadata"].get("labels") or {}).get(NODE_LABEL) != "true"
    ]
    if real:
        pytest.skip(f"the cluster has real nodes ({', '.join(real)}); pods would not run locally")
    agent = NodeAgent(
        kube_cluster.kubeconfig,
        node_name=NODE_NAME,
        work_dir=_work_dir(kube_cluster, tmp_path_factory),
        # Restarts after 0.5 s, 1 s, 2 s, ... (a kubelet waits 10 s, 20 s, ...).
        backoff=Backoff(base=0.5, cap=8.0),
        stop_grace=3.0,
    )
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
