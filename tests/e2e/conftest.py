"""Fixtures for end-to-end tests against a real Kubernetes API.

``kube_cluster`` (session) is the local control plane from tests/cluster, which
``control_plane`` (session) starts once per test session and stops at the end. With
``MODELMONITOR_KUBECONFIG`` set to a kubeconfig file (kind, minikube, a cluster from
``make cluster-up``), that cluster is used instead and never torn down. ``namespace``
(function) is a fresh namespace, deleted after the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.binaries import cached_bin_dir, ensure_binaries
from tests.cluster.controlplane import ControlPlane, reap_orphans
from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.state import ClusterError
from tests.e2e.admission_fixtures import ns, policy  # noqa: F401  (the admission policy applied)
from tests.e2e.conftest_kafka import kafka  # noqa: F401
from tests.e2e.conftest_kserve import inferenceservice_crd  # noqa: F401
from tests.e2e.conftest_models import iris_images  # noqa: F401
from tests.e2e.conftest_modelserver import model_server  # noqa: F401
from tests.e2e.conftest_node import node_agent  # noqa: F401
from tests.e2e.conftest_prometheus import prometheus  # noqa: F401
from tests.e2e.operator_fixtures import crds, operator_process  # noqa: F401  (fixtures)
from tests.flux import FluxHarnessError, ensure_flux

E2E_DIR = Path(__file__).resolve().parent
SESSION_PREFIX = "e2e-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control plane binaries (once, cached) before any test runs, with the
    build's progress on the terminal: a first build takes many minutes, more than the
    per-test timeout allows a fixture."""
    if os.environ.get("MODELMONITOR_KUBECONFIG") or session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("e2e") for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        try:
            ensure_binaries()
        except ClusterError as exc:
            # kube_cluster tries again and reports the failure on the tests.
            print(f"\n{exc}", file=sys.stderr)
        # Flux's controllers, for the tests that run them (tests/flux.py), the same way.
        if any("flux" in getattr(item, "fixturenames", ()) for item in session.items):
            try:
                ensure_flux()
            except FluxHarnessError as exc:
                print(f"\n{exc}", file=sys.stderr)


def _server_of(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    context = contexts.get(config.get("current-context", ""), {})
    cluster = clusters.get(context.get("cluster", ""), {})
    return str(cluster.get("server", ""))


def _external_cluster(path: str) -> KubeCluster:
    kubeconfig = Path(path).expanduser().resolve()
    if not kubeconfig.is_file():
        raise pytest.UsageError(f"MODELMONITOR_KUBECONFIG={path}: no such file")
    # The pinned kubectl/helm when they were built here before; otherwise from PATH.
    testbin = os.environ.get("MODELMONITOR_TESTBIN")
    cluster = KubeCluster(
        kubeconfig=kubeconfig,
        server=_server_of(kubeconfig),
        bin_dir=Path(testbin) if testbin else cached_bin_dir(),
    )
    cluster.kubectl("get", "--raw=/readyz")
    return cluster


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane | None]:
    """The local control plane the session starts and stops; None when
    ``MODELMONITOR_KUBECONFIG`` names the cluster to use."""
    if os.environ.get("MODELMONITOR_KUBECONFIG"):
        yield None
        return
    # Clusters of earlier sessions that were killed before their teardown.
    reap_orphans(prefix=SESSION_PREFIX)
    plane = ControlPlane(f"{SESSION_PREFIX}{os.getpid()}")
    plane.up(timeout=180.0, owner_pid=os.getpid())
    try:
        yield plane
    finally:
        # After failures, keep the logs (in .state/cluster/<name>/logs) for a look;
        # the next session's reap_orphans removes them.
        plane.down(keep=request.session.testsfailed > 0)


@pytest.fixture(scope="session")
def kube_cluster(control_plane: ControlPlane | None) -> KubeCluster:
    if control_plane is None:
        return _external_cluster(os.environ["MODELMONITOR_KUBECONFIG"])
    state = control_plane.load_state()
    if state is None:
        raise ClusterError(f"cluster {control_plane.name!r} has no state after starting")
    return KubeCluster(
        kubeconfig=Path(state.kubeconfig),
        server=state.server,
        bin_dir=Path(state.bin_dir),
        name=control_plane.name,
        managed=True,
    )


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace whose ``default`` ServiceAccount exists; deleted afterwards."""
    name = _namespace_name(request.node.name)
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl("label", "namespace", name, "modelmonitor.io/e2e=true")
    wait_for(
        lambda: kube_cluster.kubectl("get", "serviceaccount", "default", "-n", name),
        timeout=30,
        what=f"ServiceAccount default in namespace {name}",
    )
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture
def hostile_namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second namespace for a test's hostile tenant, next to ``namespace``."""
    name = _namespace_name("hostile-" + request.node.name)
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl("label", "namespace", name, "modelmonitor.io/e2e=true")
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
