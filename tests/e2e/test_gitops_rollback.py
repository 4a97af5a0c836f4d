"""Rollback of a Deployment that Argo CD or Flux owns: refuse, pause and resume, the guard.

Real: the control plane (the Deployment controller makes revisions), the harness acting
as a node (each pod an MLServer process, so the rollback changes which model answers),
the operator process, the webhook receiver standing in for Slack. Not real: Flux's
kustomize-controller and Argo CD do not run here (no Git server, no registries); their
APIs are installed as minimal CRDs (tests/e2e/data/gitops-owner-crds.yaml) and the test
plays the owner: it writes the revision the owner applied into the owner's status, and
it writes the bad image back to the Deployment as a reconcile would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_remediation import (
    actions_of,
    events,
    healthy_with_revision,
    image_of,
    monitor,
    roll_out,
    setup,
    wait_runs,
    wait_status,
)
from tests.webhook import WebhookRecorder

pytestmark = pytest.mark.timeout(420)

CRDS = Path(__file__).resolve().parent / "data" / "gitops-owner-crds.yaml"
CRD_NAMES = (
    "kustomizations.kustomize.toolkit.fluxcd.io",
    "gitrepositories.source.toolkit.fluxcd.io",
    "applications.argoproj.io",
)
BAD, FIX = "main@sha1:0bad0bad", "main@sha1:f1f1f1f1"


@pytest.fixture
def gitops(
    operator_process: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> OperatorProcess:
    """The owner CRDs, v1 serving behind Deployment ``iris``, the operator watching."""
    cluster = operator_process.cluster
    found = cluster.kubectl("get", "crd", *CRD_NAMES, "--ignore-not-found", "-o", "json").stdout
    theirs = [
        c
        for c in json.loads(found or '{"items": []}').get("items", [])
        if (c["metadata"].get("labels") or {}).get("modelmonitor.io/e2e") != "true"
    ]
    if not theirs:  # a real Flux or Argo CD installation's CRDs are left alone
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for name in CRD_NAMES:
        cluster.wait_established(name)
    setup(cluster, namespace, iris_images["v1"])
    return operator_process


def flux_owned(cluster: KubeCluster, namespace: str) -> None:
    """GitRepository and Kustomization ``apps`` at the bad revision, and the labels
    kustomize-controller would put on iris."""
    source = {"kind": "GitRepository", "name": "apps"}
    cluster.apply(
        [
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "apps"},
                "spec": {"interval": "1m", "url": "https://git.example/apps.git"},
            },
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "apps"},
                "spec": {"interval": "1m", "path": "./apps", "prune": True, "sourceRef": source},
            },
        ],
        "-n",
        namespace,
    )
    fetched(cluster, namespace, BAD)
    applied(cluster, namespace, BAD)
    cluster.kubectl(
        "label",
        "deployment/iris",
        "-n",
        namespace,
        "kustomize.toolkit.fluxcd.io/name=apps",
        f"kustomize.toolkit.fluxcd.io/namespace={namespace}",
    )


def applied(cluster: KubeCluster, namespace: str, revision: str) -> None:
    """What kustomize-controller writes once it has applied ``revision``."""
    status = {"status": {"lastAppliedRevision": revision}}
    cluster.kubectl(
        "patch", "kustomization", "apps", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip


def fetched(cluster: KubeCluster, namespace: str, revision: str) -> None:
    """What source-controller writes once it has fetched ``revision`` from Git."""
    status = {"status": {"artifact": {"revision": revision, "path": "x", "url": "x"}}}
    cluster.kubectl(
        "patch", "gitrepository", "apps", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip


def kustomization(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    return dict(cluster.get("kustomization", "apps", "-n", namespace))


def reasons(cluster: KubeCluster, namespace: str, name: str) -> list[str]:
    return [str(e["reason"]) for e in events(cluster, namespace, name)]


def rollback_result(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    status = wait_status(
        cluster,
        namespace,
        name,
        lambda s: (s.get("lastAction") or {}).get("type") == "rollback",
        "a rollback result",
    )
    return dict(status["lastAction"])


OWNER = {"kind": "Kustomization", "name": "apps"}
ACTIONS = {"consecutiveBreaches": 1, "cooldownSeconds": 0, "onSLOBreach": ["rollback"]}


def test_refuse_leaves_a_flux_managed_deployment_alone_and_says_why(
    gitops: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = gitops.cluster
    flux_owned(cluster, namespace)
    cluster.apply(monitor("iris", ACTIONS), "-n", namespace)  # gitops: refuse, the default
    status = healthy_with_revision(cluster, namespace, "iris", "1")
    assert status["target"]["gitOpsOwner"] == {**OWNER, "namespace": namespace}
    roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
    last = rollback_result(cluster, namespace, "iris")
    assert (last["result"], last["reason"]) == ("skipped", "GitOpsManaged"), last
    assert f"Flux Kustomization {namespace}/apps" in last["message"]
    assert image_of(cluster, namespace) == iris_images["v2-slow"]
    assert "suspend" not in kustomization(cluster, namespace)["spec"]
    wait_for(
        lambda: "GitOpsManaged" in reasons(cluster, namespace, "iris"),
        timeout=30,
        what="a GitOpsManaged Event",
    )


def test_pause_suspends_the_kustomization_rolls_back_and_resumes_on_a_new_revision(
    gitops: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = gitops.cluster
    flux_owned(cluster, namespace)
    cluster.apply(monitor("iris", {**ACTIONS, "gitops": "pause"}), "-n", namespace)
    healthy_with_revision(cluster, namespace, "iris", "1")
    roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
    rolled_out = time.monotonic()
    wait_for(
        lambda: kustomization(cluster, namespace)["spec"].get("suspend") is True,
        timeout=120,
        interval=0.25,
        what="the Kustomization suspended",
    )
    suspended = time.monotonic()
    last = rollback_result(cluster, namespace, "iris")
    rolled_back = time.monotonic()
    assert (last["result"], last["reason"]) == ("succeeded", "RolledBack"), last
    assert last["gitOps"]["paused"] is True
    ks = kustomization(cluster, namespace)
    assert ks["spec"]["suspend"] is True
    assert ks["metadata"]["annotations"]["modelmonitor.io/paused-by"] == last["id"]
    cluster.kubectl("rollout", "status", "deployment/iris", "-n", namespace, "--timeout=90s")
    assert image_of(cluster, namespace) == iris_images["v1"]
    status = wait_status(
        cluster, namespace, "iris", lambda s: bool((s.get("gitOps") or {}).get("paused")),
        "the paused owner recorded",
    )  # fmt: skip
    paused = status["gitOps"]["paused"]
    assert {k: paused[k] for k in ("kind", "name", "badRevision")} == {**OWNER, "badRevision": BAD}
    # Git still at the bad revision: the owner stays suspended, run after run.
    wait_runs(cluster, namespace, "iris", 2)
    assert kustomization(cluster, namespace)["spec"]["suspend"] is True

    fetched(cluster, namespace, FIX)  # a fixing commit reached the Git source
    fixed = time.monotonic()
    status = wait_status(
        cluster, namespace, "iris", lambda s: (s.get("gitOps") or {}).get("paused") is None,
        "the owner resumed",
    )  # fmt: skip
    resumed = time.monotonic()
    ks = kustomization(cluster, namespace)
    assert ks["spec"]["suspend"] is False
    assert "modelmonitor.io/paused-by" not in (ks["metadata"].get("annotations") or {})
    assert "GitOpsOwnerResumed" in reasons(cluster, namespace, "iris")
    print(
        f"\nbad rollout -> Kustomization suspended: {suspended - rolled_out:.1f}s; "
        f"suspended -> rollback recorded: {rolled_back - suspended:.1f}s; "
        f"fixing revision fetched -> resumed: {resumed - fixed:.1f}s "
        f"(rollback seen -> fix written: {fixed - rolled_back:.1f}s)"
    )


def test_an_argo_write_back_is_reported_and_paged_never_fought(
    gitops: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = gitops.cluster
    tracking = f"{namespace}_iris:apps/Deployment:{namespace}/iris"
    cluster.kubectl(
        "annotate", "deployment/iris", "-n", namespace,
        f"argocd.argoproj.io/tracking-id={tracking}",
    )  # fmt: skip
    with WebhookRecorder() as hook:
        cluster.kubectl(
            "create", "secret", "generic", "hook", f"--from-literal=url={hook.url_for('/h')}",
            "-n", namespace,
        )  # fmt: skip
        actions = {
            **ACTIONS,
            "gitops": "ignore",
            "onSLOBreach": ["rollback", "notify"],
            "notify": {"webhookSecretRef": {"name": "hook", "key": "url"}},
        }
        cluster.apply(monitor("iris", actions), "-n", namespace)
        status = healthy_with_revision(cluster, namespace, "iris", "1")
        assert status["target"]["gitOpsOwner"] == {
            "kind": "Application",
            "name": "iris",
            "namespace": namespace,
        }
        roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
        status = wait_status(
            cluster, namespace, "iris",
            lambda s: any(a["result"] == "succeeded" for a in actions_of(s, "rollback")),
            "the rollback",
        )  # fmt: skip
        hook.wait_for(1, timeout=60)  # the incident's page
        cluster.kubectl("rollout", "status", "deployment/iris", "-n", namespace, "--timeout=90s")

        # The owner's self-heal writes the bad image back.
        roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
        written = time.monotonic()
        status = wait_status(
            cluster, namespace, "iris",
            lambda s: any(
                c["type"] == "RollbackReverted" and c["status"] == "True"
                for c in s.get("conditions") or []
            ),
            "the RollbackReverted condition",
        )  # fmt: skip
        print(f"\nwrite-back -> RollbackReverted: {time.monotonic() - written:.1f}s")
        assert status["gitOps"]["writtenBack"]["images"] == [iris_images["v2-slow"]]
        wait_for(
            lambda: any(b"written back by Argo CD Application" in r.body for r in hook.requests),
            timeout=60,
            what="the write-back page",
        )
        after = wait_runs(cluster, namespace, "iris", 3)
    assert len([a for a in actions_of(after, "rollback") if a["result"] == "succeeded"]) == 1
    assert image_of(cluster, namespace) == iris_images["v2-slow"]  # not fought
    found = reasons(cluster, namespace, "iris")
    assert found.count("RollbackReverted") == 1, found
    assert found.count("RolledBack") == 1, found
