"""Rollback under a real Flux: pause the Kustomization, roll back, hold, resume on a fix.

Real: Flux's source-controller and kustomize-controller (built from source at the
versions of tests/cluster/versions.env, run as local processes against the API server),
Flux's own CRDs, Git over smart HTTP on loopback (``git http-backend``,
tests/gitserver.py; source-controller clones it with go-git), the control plane (the
Deployment controller makes revisions), the harness acting as a node (each pod an
MLServer process, so the rollback changes which model answers), and the operator
process. Nothing here is played by the test: every Kustomization status, every apply of
the Deployment and its labels come from Flux reconciling the Git repository.

The story: Git says ``iris:v1`` and Flux deploys it; a commit moves Git to ``v2-slow``
(a latency SLO breach), Flux rolls it out; the monitor (``gitops: pause``) suspends the
Kustomization and rolls back; the rollback holds over several Kustomization intervals
while Git still says ``v2-slow``; a fixing commit reaches the GitRepository, the operator
resumes the Kustomization, and Flux applies the fix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.model_images import iris_deployment
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_remediation import (
    events,
    healthy_with_revision,
    image_of,
    monitor,
    wait_runs,
    wait_status,
)
from tests.flux import FluxControllers, ensure_flux, install_crds
from tests.gitserver import GitServer
from tests.iris import reference_csv

pytestmark = pytest.mark.timeout(300)

INTERVAL = 5  # seconds: the GitRepository's and the Kustomization's reconcile interval
MANIFEST = "apps/iris.yaml"
ACTIONS = {
    "consecutiveBreaches": 1,
    "cooldownSeconds": 0,
    "onSLOBreach": ["rollback"],
    "gitops": "pause",
}


def manifest(image: str, cause: str) -> str:
    """The Deployment and Service ``iris`` as Git holds them."""
    return yaml.safe_dump_all(iris_deployment("iris", image, change_cause=cause))


@pytest.fixture
def flux(kube_cluster: KubeCluster, namespace: str, tmp_path: Path) -> Iterator[FluxControllers]:
    """Both controllers running; at the end the test's Flux objects are deleted while
    they still run (their finalizers would hold the namespace otherwise)."""
    bin_dir = ensure_flux()  # built once before the session's tests (tests/e2e/conftest.py)
    install_crds(kube_cluster, bin_dir)
    with FluxControllers(kube_cluster, tmp_path / "flux", bin_dir) as controllers:
        try:
            yield controllers
        finally:
            kube_cluster.kubectl(
                "delete", "kustomization,gitrepository", "--all", "-n", namespace,
                "--ignore-not-found", "--timeout=30s", check=False,
            )  # fmt: skip


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "git") as server:
        yield server


def kustomization(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    return dict(cluster.get("kustomization", "apps", "-n", namespace))


def change_cause(cluster: KubeCluster, namespace: str) -> str:
    deployment = cluster.get("deployment", "iris", "-n", namespace)
    return str((deployment["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause"))


def artifact_revision(cluster: KubeCluster, namespace: str) -> str:
    repo = cluster.get("gitrepository", "apps", "-n", namespace)
    return str(((repo.get("status") or {}).get("artifact") or {}).get("revision") or "")


def applied_revision(cluster: KubeCluster, namespace: str) -> str:
    return str((kustomization(cluster, namespace).get("status") or {}).get("lastAppliedRevision"))


def wait_applied(
    cluster: KubeCluster, namespace: str, sha: str, flux: FluxControllers, what: str
) -> float:
    """Wait until kustomize-controller applied commit ``sha``; return when it was seen."""
    try:
        wait_for(
            lambda: applied_revision(cluster, namespace) == f"main@sha1:{sha}",
            timeout=60,
            interval=0.25,
            what=what,
        )
    except TimeoutError as exc:
        raise TimeoutError(
            f"{exc}\nKustomization: {kustomization(cluster, namespace).get('status')}\n"
            f"source-controller:\n{flux.logs('source-controller', 2000)}\n"
            f"kustomize-controller:\n{flux.logs('kustomize-controller', 2000)}"
        ) from None
    return time.monotonic()


def flux_objects(namespace: str, url: str) -> list[dict[str, Any]]:
    interval = f"{INTERVAL}s"
    return [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "apps"},
            "spec": {"interval": interval, "url": url, "ref": {"branch": "main"}},
        },
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps"},
            "spec": {
                "interval": interval,
                "retryInterval": interval,
                "path": "./apps",
                "prune": True,
                "targetNamespace": namespace,
                "timeout": "60s",
                "sourceRef": {"kind": "GitRepository", "name": "apps"},
            },
        },
    ]


def test_flux_kustomization_is_suspended_for_the_rollback_and_resumed_by_a_fixing_commit(
    flux: FluxControllers,
    git: GitServer,
    operator_process: OperatorProcess,
    namespace: str,
    iris_images: dict[str, str],
) -> None:
    started = time.monotonic()
    cluster = operator_process.cluster
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "iris-reference"},
                "data": {"reference.csv": reference_csv()},
            }
        ],
        "-n",
        namespace,
    )
    v1 = git.commit({MANIFEST: manifest(iris_images["v1"], "v1")}, "iris v1")
    cluster.apply(flux_objects(namespace, git.url), "-n", namespace)
    wait_applied(cluster, namespace, v1, flux, "Flux applied v1")
    cluster.kubectl("rollout", "status", "deployment/iris", "-n", namespace, "--timeout=90s")
    labels = cluster.get("deployment", "iris", "-n", namespace)["metadata"]["labels"]
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "apps"

    # Flux really reconciles: a change to a field it applies is set back.
    cluster.kubectl(
        "annotate", "deployment/iris", "kubernetes.io/change-cause=edited", "--overwrite",
        "-n", namespace,
    )  # fmt: skip
    edited = time.monotonic()
    wait_for(
        lambda: change_cause(cluster, namespace) == "v1",
        timeout=4 * INTERVAL,
        interval=0.25,
        what="Flux correcting the edited Deployment",
    )
    drift_corrected = time.monotonic() - edited

    cluster.apply(monitor("iris", ACTIONS), "-n", namespace)
    status = healthy_with_revision(cluster, namespace, "iris", "1")
    assert status["target"]["gitOpsOwner"] == {
        "kind": "Kustomization",
        "name": "apps",
        "namespace": namespace,
    }

    # The bad commit: Flux rolls v2-slow out.
    pushed_bad = time.monotonic()
    bad = git.commit({MANIFEST: manifest(iris_images["v2-slow"], "v2")}, "iris v2")
    applied_bad = wait_applied(cluster, namespace, bad, flux, "Flux applied v2")
    assert image_of(cluster, namespace) == iris_images["v2-slow"]

    wait_for(
        lambda: kustomization(cluster, namespace)["spec"].get("suspend") is True,
        timeout=120,
        interval=0.25,
        what="the Kustomization suspended",
    )
    suspended = time.monotonic()
    last = wait_status(
        cluster, namespace, "iris",
        lambda s: (s.get("lastAction") or {}).get("type") == "rollback", "a rollback result",
    )["lastAction"]  # fmt: skip
    assert (last["result"], last["reason"]) == ("succeeded", "RolledBack"), last
    assert last["gitOps"]["paused"] is True
    # kustomize-controller took the suspension in before the rollback: no reconcile of v2
    # was still running to write it back over the rollback.
    assert last["gitOps"]["settled"] is True
    ks = kustomization(cluster, namespace)
    assert ks["metadata"]["annotations"]["modelmonitor.io/paused-by"] == last["id"]
    wait_for(
        lambda: image_of(cluster, namespace) == iris_images["v1"],
        timeout=30,
        interval=0.25,
        what="the Deployment rolled back to v1",
    )
    rolled_back = time.monotonic()
    cluster.kubectl("rollout", "status", "deployment/iris", "-n", namespace, "--timeout=90s")
    paused = wait_status(
        cluster, namespace, "iris", lambda s: bool((s.get("gitOps") or {}).get("paused")),
        "the paused owner recorded",
    )["gitOps"]["paused"]  # fmt: skip
    assert paused["badRevision"] == f"main@sha1:{bad}"

    # Git still says v2-slow and source-controller keeps fetching it: the rollback holds
    # over the next Kustomization intervals, where an unsuspended Flux would re-apply v2.
    hold_until = time.monotonic() + 3 * INTERVAL
    while time.monotonic() < hold_until:
        assert image_of(cluster, namespace) == iris_images["v1"], "the rollback was undone"
        assert kustomization(cluster, namespace)["spec"]["suspend"] is True
        time.sleep(0.5)
    held = time.monotonic() - rolled_back
    assert artifact_revision(cluster, namespace) == f"main@sha1:{bad}"
    assert applied_revision(cluster, namespace) == f"main@sha1:{bad}"
    wait_runs(cluster, namespace, "iris", 1)  # a run sees Git at the bad revision: no resume
    assert kustomization(cluster, namespace)["spec"]["suspend"] is True

    # The fix: Git back to the v1 image, with a new change-cause to see it applied.
    pushed_fix = time.monotonic()
    fix = git.commit({MANIFEST: manifest(iris_images["v1"], "v3: revert v2")}, "iris v3")
    wait_for(
        lambda: artifact_revision(cluster, namespace) == f"main@sha1:{fix}",
        timeout=4 * INTERVAL,
        interval=0.25,
        what="source-controller fetched the fix",
    )
    fetched_fix = time.monotonic()
    wait_for(
        lambda: kustomization(cluster, namespace)["spec"].get("suspend") is False,
        timeout=60,
        interval=0.25,
        what="the Kustomization resumed",
    )
    resumed = time.monotonic()
    applied_fix = wait_applied(cluster, namespace, fix, flux, "Flux applied the fix")
    assert change_cause(cluster, namespace) == "v3: revert v2"
    assert image_of(cluster, namespace) == iris_images["v1"]
    ks = kustomization(cluster, namespace)
    assert "modelmonitor.io/paused-by" not in (ks["metadata"].get("annotations") or {})
    wait_status(
        cluster, namespace, "iris", lambda s: (s.get("gitOps") or {}).get("paused") is None,
        "the pause forgotten",
    )  # fmt: skip
    resumed_events = [
        e["message"]
        for e in events(cluster, namespace, "iris")
        if e["reason"] == "GitOpsOwnerResumed"
    ]
    assert resumed_events == [
        f"resumed Flux Kustomization {namespace}/apps: its source moved from "
        f"main@sha1:{bad} to main@sha1:{fix}"
    ], resumed_events
    assert flux.alive()
    print(
        f"\nFlux drift correction: {drift_corrected:.1f}s; "
        f"bad commit pushed -> applied by Flux: {applied_bad - pushed_bad:.1f}s; "
        f"bad revision applied -> Kustomization suspended: {suspended - applied_bad:.1f}s; "
        f"suspended -> Deployment back on v1: {rolled_back - suspended:.1f}s; "
        f"rollback held {held:.1f}s = {held / INTERVAL:.1f} Kustomization intervals "
        f"(Git at the bad revision); "
        f"fix commit pushed -> fetched: {fetched_fix - pushed_fix:.1f}s, "
        f"-> Kustomization resumed: {resumed - pushed_fix:.1f}s, "
        f"-> fix applied by Flux: {applied_fix - pushed_fix:.1f}s; "
        f"test total: {time.monotonic() - started:.1f}s"
    )
