"""The requester-rights admission policy against a real API server, with impersonated users.

A ModelMonitor makes the operator act with its own rights. manifests/policy/ (a copy of
policy/) admits one only when its requester may themselves do what it asks for. Here
each user is impersonated (``kubectl --as``) with a Role that lets them create
ModelMonitors plus a chosen set of rights: with every right the monitor is created; with
one right missing it is refused with 403 and a message naming that right. Edits of the
spec are checked the same way; metadata and status writes (the operator's finalizer,
annotation and status patches) are not. No operator runs: this is admission alone.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from tests.cluster.kube import KubeCluster
from tests.e2e.admission_fixtures import (
    FULL_RIGHTS,
    FULL_SPEC,
    POLICY_FILE,
    Doc,
    Right,
    assert_admitted,
    assert_refused,
    create_as,
    grant,
    monitor,
)
from tests.e2e.chart_fixtures import helm_template


# -- a requester with the rights, and without --------------------------------------------------
def test_requester_with_every_right_is_admitted(policy: KubeCluster, ns: str) -> None:
    grant(policy, ns, "alice", [right for right, _ in FULL_RIGHTS])
    assert_admitted(create_as(policy, ns, "alice", "full", FULL_SPEC))
    assert policy.get("mm", "full", "-n", ns)["spec"]["actions"]["onDrift"] == ["retrain"]


@pytest.mark.parametrize(
    ("missing", "words"),
    FULL_RIGHTS,
    ids=[f"{r[2]}-{r[1]}-{(r[3] or ('*',))[0]}" for r, _ in FULL_RIGHTS],
)
def test_each_missing_right_is_refused_naming_it(
    policy: KubeCluster, ns: str, missing: Right, words: str
) -> None:
    grant(policy, ns, "mallory", [right for right, _ in FULL_RIGHTS if right != missing])
    proc = create_as(policy, ns, "mallory", "deputy", FULL_SPEC)
    assert_refused(proc, f"user mallory {words} in namespace {ns}")
    assert policy.kubectl("get", "mm", "deputy", "-n", ns, check=False).returncode != 0


def test_a_monitor_without_reference_is_admitted(policy: KubeCluster, ns: str) -> None:
    """spec.reference is optional (SLOs only): the policy's reference checks must not
    fail on its absence (a CEL error would refuse every such monitor)."""
    grant(policy, ns, "sam", [("apps", "deployments", "get", ("app",))])
    spec: Doc = {
        "target": {"name": "app"},
        "prometheus": {"url": "http://prometheus:9090"},
        "slos": [
            {
                "name": "avail",
                "source": "prometheus",
                "errorRatio": {"errors": "sum(rate(e[$window]))", "total": "sum(rate(t[$window]))"},
            }
        ],
    }
    assert_admitted(create_as(policy, ns, "sam", "slo-only", spec))


def test_rights_are_checked_per_object_name(policy: KubeCluster, ns: str) -> None:
    """A Role for Deployment ``app`` is no right over Deployment ``payments``."""
    grant(
        policy,
        ns,
        "carol",
        [
            ("apps", "deployments", "get", ("app", "payments")),
            ("apps", "deployments", "patch", ("app",)),
        ],
    )
    spec = {
        "target": {"name": "payments"},
        "reference": {"inline": [{"x": 1}]},
        "actions": {"onSLOBreach": ["rollback"]},
    }
    assert_refused(create_as(policy, ns, "carol", "other", spec), "patch deployments.apps/payments")
    spec["target"]["name"] = "app"
    assert_admitted(create_as(policy, ns, "carol", "own", spec))
    # Without actions, reading the target is enough.
    assert_admitted(
        create_as(
            policy,
            ns,
            "carol",
            "watch-only",
            {**spec, "target": {"name": "payments"}, "actions": {}},
        )
    )


def test_inferenceservice_rollback_needs_patch_on_it(policy: KubeCluster, ns: str) -> None:
    """KServe rollback (canary traffic back to 0) needs patch on the InferenceService."""
    spec = {
        "target": {"kind": "InferenceService", "name": "fraud"},
        "reference": {"inline": [{"x": 1}]},
        "actions": {"onDrift": ["rollback"]},
    }
    isvc = ("serving.kserve.io", "inferenceservices")
    grant(policy, ns, "dave", [(*isvc, "get", ("fraud",))])
    assert_refused(
        create_as(policy, ns, "dave", "canary", spec),
        f"may not patch inferenceservices.serving.kserve.io/fraud in namespace {ns}",
    )
    grant(policy, ns, "erin", [(*isvc, "patch", ("fraud",))])
    assert_refused(
        create_as(policy, ns, "erin", "canary", spec),
        "may not get inferenceservices.serving.kserve.io/fraud",
    )
    grant(policy, ns, "frank", [(*isvc, "get", ("fraud",)), (*isvc, "patch", ("fraud",))])
    assert_admitted(create_as(policy, ns, "frank", "canary", spec))


def test_gitops_pause_needs_patch_on_every_owner_kind(policy: KubeCluster, ns: str) -> None:
    """spec.actions.gitops: pause suspends whichever owner the target's labels name: the
    requester must be able to patch Applications, Kustomizations and HelmReleases there."""
    spec = {
        "target": {"name": "app"},
        "reference": {"inline": [{"x": 1}]},
        "actions": {"onSLOBreach": ["rollback"], "gitops": "pause"},
    }
    target = [("apps", "deployments", v, ("app",)) for v in ("get", "patch")]
    owners = [
        ("argoproj.io", "applications", "patch", None),
        ("kustomize.toolkit.fluxcd.io", "kustomizations", "patch", None),
        ("helm.toolkit.fluxcd.io", "helmreleases", "patch", None),
    ]
    grant(policy, ns, "gina", [*target, *owners[1:]])  # Flux only
    assert_refused(
        create_as(policy, ns, "gina", "paused", spec),
        f"may not patch applications.argoproj.io in namespace {ns}, which spec.actions.gitops "
        "(pause) would have the operator do",
    )
    # refuse and ignore change no owner: no right needed
    refuse = {**spec, "actions": {"onSLOBreach": ["rollback"], "gitops": "refuse"}}
    assert_admitted(create_as(policy, ns, "gina", "refusing", refuse))
    grant(policy, ns, "hank", [*target, *owners])
    assert_admitted(create_as(policy, ns, "hank", "paused", spec))


# -- updates --------------------------------------------------------------------------------
def test_spec_edits_are_checked_but_metadata_and_status_writes_are_not(
    policy: KubeCluster, ns: str
) -> None:
    """Whoever changes the spec directs the operator from then on, so their rights count.

    The operator's own writes (finalizer and annotations on the object, everything else on
    the status subresource) leave the spec alone and must never be refused, whatever its
    rights: ``bob`` below holds no right over the workload at all.
    """
    policy.kubectl("create", "-n", ns, "-f", "-", input=monitor("shared", FULL_SPEC))
    grant(policy, ns, "bob", [])
    policy.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "bob-status", "namespace": ns},
            "rules": [
                {
                    "apiGroups": ["modelmonitor.io"],
                    "resources": ["modelmonitors/status"],
                    "verbs": ["get", "patch"],
                }
            ],
        }
    )
    policy.kubectl(
        "create", "rolebinding", "bob-status", "-n", ns, "--role=bob-status", "--user=bob"
    )

    def patch(*args: str, body: Doc) -> Any:
        return policy.kubectl(
            "patch",
            "mm",
            "shared",
            "-n",
            ns,
            "--as=bob",
            "--type=merge",
            "-p",
            json.dumps(body),
            *args,
            check=False,
        )

    edited = patch(body={"spec": {"schedule": {"interval": "30s"}}})
    assert_refused(edited, "user bob may not get deployments.apps/app")
    retargeted = copy.deepcopy(FULL_SPEC)
    retargeted["target"]["name"] = "payments"
    assert_refused(
        policy.kubectl(
            "replace",
            "-n",
            ns,
            "--as=bob",
            "-f",
            "-",
            input=monitor("shared", retargeted),
            check=False,
        ),
        "user bob may not",
    )
    assert_admitted(
        patch(
            body={
                "metadata": {
                    "labels": {"team": "fraud"},
                    "annotations": {"modelmonitor.io/last-handled-configuration": "{}"},
                    "finalizers": ["modelmonitor.io/run-loop"],
                }
            }
        )
    )
    assert_admitted(patch("--subresource=status", body={"status": {"phase": "Healthy"}}))
    stored = policy.get("mm", "shared", "-n", ns)
    assert stored["spec"]["schedule"]["interval"] == "60s"
    assert stored["spec"]["target"]["name"] == "app"
    assert stored["metadata"]["labels"] == {"team": "fraud"}
    assert stored["status"]["phase"] == "Healthy"
    # Let the namespace go: nothing runs that would remove the finalizer.
    policy.kubectl(
        "patch", "mm", "shared", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )


# -- the chart ------------------------------------------------------------------------------
def test_chart_renders_the_same_policy_and_can_turn_it_off(policy: KubeCluster, ns: str) -> None:
    source = [doc for doc in yaml.safe_load_all(POLICY_FILE.read_text()) if doc]
    rendered = [
        doc
        for doc in helm_template(policy, ns, release="mm")
        if doc["kind"].startswith("ValidatingAdmissionPolicy")
    ]
    assert [d["kind"] for d in rendered] == [d["kind"] for d in source]
    vap, binding = rendered
    assert (
        vap["metadata"]["name"]
        == binding["spec"]["policyName"]
        == "mm-modelmonitor-requester-rights"
    )
    assert vap["spec"] == source[0]["spec"]
    assert binding["spec"] == {**source[1]["spec"], "policyName": vap["metadata"]["name"]}
    audit = helm_template(policy, ns, "admissionPolicy.validationActions={Warn,Audit}")
    assert [
        d["spec"]["validationActions"]
        for d in audit
        if d["kind"] == "ValidatingAdmissionPolicyBinding"
    ] == [["Warn", "Audit"]]
    off = helm_template(policy, ns, "admissionPolicy.enabled=false")
    assert not [d for d in off if d["kind"].startswith("ValidatingAdmissionPolicy")]
    # The rendered objects are valid for the API server.
    policy.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(rendered))
