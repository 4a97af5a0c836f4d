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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.chart_fixtures import helm_template

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "manifests" / "policy" / "requester-rights.yaml"
POLICY = "modelmonitor-requester-rights"

Doc = dict[str, Any]
# (apiGroup, resource, verb, resourceNames or None for all of the namespace)
Right = tuple[str, str, str, tuple[str, ...] | None]

MONITOR_RIGHTS: list[Right] = [
    ("modelmonitor.io", "modelmonitors", "create", None),
    ("modelmonitor.io", "modelmonitors", "get", None),
    ("modelmonitor.io", "modelmonitors", "update", None),
    ("modelmonitor.io", "modelmonitors", "patch", None),
]

# Uses every action and every reference a Deployment target can have.
FULL_SPEC: Doc = {
    "target": {"name": "app", "endpoint": {"service": {"name": "app", "port": 8080}}},
    "reference": {"configMapRef": {"name": "ref", "key": "reference.csv"}},
    "data": {"probe": {"dataset": {"configMapRef": {"name": "golden", "key": "golden.csv"}}}},
    "prometheus": {
        "url": "https://prometheus:9090",
        "basicAuth": {
            "username": {"name": "prom-user", "key": "username"},
            "password": {"name": "prom-pass", "key": "password"},
        },
        "headers": [
            {"name": "X-Scope-OrgID", "value": "team-a"},
            {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "prom-key", "key": "k"}}},
        ],
        "tlsConfig": {
            "ca": {"configMapKeyRef": {"name": "prom-ca", "key": "ca.crt"}},
            "clientCertSecretRef": {"name": "prom-client"},
        },
    },
    "actions": {
        "onSLOBreach": ["rollback", "scale", "notify"],
        "onDrift": ["retrain"],
        "scale": {"maxReplicas": 4},
        "notify": {"webhookSecretRef": {"name": "hook", "key": "url"}},
        "retrain": {
            "jobTemplate": {
                "template": {"spec": {"containers": [{"name": "train", "image": "trainer:1"}]}}
            }
        },
    },
}

# Each right FULL_SPEC needs, and the words the refusal must contain without it.
FULL_RIGHTS: list[tuple[Right, str]] = [
    (("apps", "deployments", "get", ("app",)), "may not get deployments.apps/app"),
    (("apps", "deployments", "patch", ("app",)), "may not patch deployments.apps/app"),
    (
        ("autoscaling", "horizontalpodautoscalers", "patch", None),
        "may not patch horizontalpodautoscalers.autoscaling",
    ),
    (("batch", "jobs", "create", None), "may not create jobs.batch"),
    (("", "secrets", "get", ("hook",)), "may not get secrets/hook"),
    (("", "configmaps", "get", ("ref",)), "may not get configmaps/ref"),
    (("", "configmaps", "get", ("golden",)), "may not get configmaps/golden"),
    (("", "services", "get", ("app",)), "may not get services/app"),
    (("", "secrets", "get", ("prom-user",)), "may not get secrets/prom-user"),
    (("", "secrets", "get", ("prom-pass",)), "may not get secrets/prom-pass"),
    (("", "secrets", "get", ("prom-key",)), "may not get secrets/prom-key"),
    (("", "configmaps", "get", ("prom-ca",)), "may not get configmaps/prom-ca"),
    (("", "secrets", "get", ("prom-client",)), "may not get secrets/prom-client"),
]


# -- helpers -------------------------------------------------------------------------------
def monitor(name: str, spec: Doc) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "modelmonitor.io/v1alpha1",
            "kind": "ModelMonitor",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def grant(cluster: KubeCluster, namespace: str, user: str, rights: list[Right]) -> None:
    """A Role with ``rights`` (plus creating and editing ModelMonitors), bound to ``user``."""
    rules = [
        {
            "apiGroups": [group],
            "resources": [resource],
            "verbs": [verb],
            **({"resourceNames": list(names)} if names else {}),
        }
        for group, resource, verb, names in [*MONITOR_RIGHTS, *rights]
    ]
    cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": user, "namespace": namespace},
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": user, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            },
        ]
    )


def create_as(cluster: KubeCluster, namespace: str, user: str, name: str, spec: Doc) -> Any:
    return cluster.kubectl(
        "create", "-n", namespace, f"--as={user}", "-f", "-", input=monitor(name, spec), check=False
    )


def assert_admitted(proc: Any) -> None:
    assert proc.returncode == 0, proc.stderr


def assert_refused(proc: Any, words: str) -> None:
    assert proc.returncode != 0, f"admitted, expected a refusal naming {words!r}"
    assert "is forbidden" in proc.stderr, proc.stderr
    assert POLICY in proc.stderr, proc.stderr
    assert words in proc.stderr, f"the refusal does not say {words!r}: {proc.stderr}"


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy(crds: KubeCluster) -> Iterator[KubeCluster]:
    """manifests/policy/ applied as shipped, enforced, and removed again afterwards."""
    crds.kubectl("apply", "-f", str(POLICY_FILE))
    try:
        # The policy type-checks against the ModelMonitor schema without a warning.
        def checked() -> Doc | None:
            vap = crds.get("validatingadmissionpolicy", POLICY)
            status = vap.get("status") or {}
            done = status.get("observedGeneration") == vap["metadata"]["generation"]
            return status if done else None

        status = wait_for(checked, timeout=30, what="type checking of the policy")
        assert not (status.get("typeChecking") or {}).get("expressionWarnings"), status
        yield crds
    finally:
        crds.kubectl("delete", "-f", str(POLICY_FILE), "--ignore-not-found", check=False)


@pytest.fixture
def ns(policy: KubeCluster, namespace: str) -> str:
    """A namespace in which the policy is seen to refuse (the policy informer has synced)."""
    grant(policy, namespace, "probe-user", [])

    def refused() -> bool:
        proc = policy.kubectl(
            "create",
            "-n",
            namespace,
            "--as=probe-user",
            "--dry-run=server",
            "-f",
            "-",
            input=monitor("probe", FULL_SPEC),
            check=False,
        )
        return proc.returncode != 0 and POLICY in proc.stderr

    wait_for(refused, timeout=30, what="the admission policy to be enforced")
    return namespace


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


def test_prometheus_token_and_ca_secret_need_get_on_them(policy: KubeCluster, ns: str) -> None:
    """The two Prometheus references FULL_SPEC cannot hold next to its others."""
    grant(policy, ns, "pat", [("", "secrets", "get", ("prom-token",))])
    spec = {
        "target": {"name": "app", "kind": "External", "endpoint": {"url": "http://app:8080"}},
        "reference": {"inline": [{"x": 1}]},
        "prometheus": {
            "url": "https://prometheus:9090",
            "authorization": {"credentials": {"name": "prom-token", "key": "token"}},
            "tlsConfig": {"ca": {"secretKeyRef": {"name": "prom-ca-secret", "key": "ca.crt"}}},
        },
    }
    assert_refused(create_as(policy, ns, "pat", "ca", spec), "get secrets/prom-ca-secret")
    grant(policy, ns, "pat", [("", "secrets", "get", ("prom-token", "prom-ca-secret"))])
    assert_admitted(create_as(policy, ns, "pat", "both", spec))
    grant(policy, ns, "pat", [("", "secrets", "get", ("prom-ca-secret",))])
    assert_refused(create_as(policy, ns, "pat", "token", spec), "get secrets/prom-token")


def test_kafka_tls_and_sasl_secrets_need_get_on_them(policy: KubeCluster, ns: str) -> None:
    """The operator reads a Kafka feed's CA, client certificate and SASL user with its own
    rights: the author of the monitor must be able to read each of them."""
    names = ("kafka-ca", "kafka-client", "kafka-user", "kafka-pass")
    spec = {
        "target": {"name": "app", "kind": "External", "endpoint": {"url": "http://app:8080"}},
        "reference": {"inline": [{"x": 1}]},
        "data": {
            "payloadLog": {
                "kafka": {
                    "bootstrapServers": ["kafka.ml.svc:9093"],
                    "topic": "logs",
                    "tlsConfig": {
                        "ca": {"secretKeyRef": {"name": "kafka-ca", "key": "ca.crt"}},
                        "clientCertSecretRef": {"name": "kafka-client"},
                    },
                    "sasl": {
                        "mechanism": "SCRAM-SHA-512",
                        "username": {"name": "kafka-user", "key": "user"},
                        "password": {"name": "kafka-pass", "key": "password"},
                    },
                }
            }
        },
    }
    grant(policy, ns, "kay", [("", "secrets", "get", names)])
    assert_admitted(create_as(policy, ns, "kay", "all", spec))
    for i, missing in enumerate(names):
        rest = tuple(n for n in names if n != missing)
        grant(policy, ns, "kay", [("", "secrets", "get", rest)])
        assert_refused(create_as(policy, ns, "kay", f"no-{i}", spec), f"get secrets/{missing}")
    # The CA from a ConfigMap: get on that ConfigMap instead.
    from_cm = {"configMapKeyRef": {"name": "kafka-ca-cm", "key": "ca.crt"}}
    spec["data"]["payloadLog"]["kafka"]["tlsConfig"]["ca"] = from_cm
    grant(policy, ns, "kay", [("", "secrets", "get", names)])
    assert_refused(create_as(policy, ns, "kay", "cm", spec), "get configmaps/kafka-ca-cm")


def test_object_storage_credentials_need_get_on_their_secret(policy: KubeCluster, ns: str) -> None:
    """A bucket's Secret is read by the operator: its author must be able to read it."""
    grant(policy, ns, "olive", [("", "secrets", "get", ("own-bucket",))])
    stored = {"bucket": "refs", "key": "r.csv", "secretRef": {"name": "team-bucket"}}
    spec = {
        "target": {"name": "app", "kind": "External", "endpoint": {"url": "http://app:8080"}},
        "reference": {"s3": stored},
    }
    proc = create_as(policy, ns, "olive", "bucket", spec)
    assert_refused(proc, "get secrets/team-bucket")
    assert "(spec.reference.s3.secretRef)" in proc.stderr
    azure = {
        "account": "acct",
        "container": "refs",
        "blob": "r.csv",
        "secretRef": {"name": "team-bucket", "sasTokenKey": "sas"},
    }
    spec["reference"] = {"inline": [{"x": 1}]}
    spec["data"] = {"probe": {"dataset": {"azureBlob": azure}}}
    assert_refused(create_as(policy, ns, "olive", "golden", spec), "get secrets/team-bucket")
    stored["secretRef"]["name"] = "own-bucket"
    azure["secretRef"]["name"] = "own-bucket"
    spec["reference"] = {"s3": stored}
    assert_admitted(create_as(policy, ns, "olive", "own", spec))


def test_a_label_feed_s_config_map_needs_get_on_it(policy: KubeCluster, ns: str) -> None:
    """spec.performance.labels.configMapRef is read by the operator every run."""
    grant(policy, ns, "kate", [("", "configmaps", "get", ("own-labels",))])
    feed = {"name": "team-labels", "key": "labels.csv"}
    spec = {
        "target": {"name": "app", "kind": "External", "endpoint": {"url": "http://app:8080"}},
        "reference": {"inline": [{"x": 1, "label": 0, "p0": 0.4, "p1": 0.6}]},
        "data": {"payloadLog": {"window": "1h"}},
        "performance": {
            "target": "label",  # not "y": YAML 1.1 reads a bare y as true
            "probabilities": ["p0", "p1"],
            "labels": {"source": "configMap", "configMapRef": feed},
        },
    }
    proc = create_as(policy, ns, "kate", "labels", spec)
    assert_refused(proc, "get configmaps/team-labels")
    assert "(spec.performance.labels.configMapRef)" in proc.stderr
    feed["name"] = "own-labels"
    assert_admitted(create_as(policy, ns, "kate", "labels", spec))


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


def test_job_mode_reference_claim_needs_get_on_it(policy: KubeCluster, ns: str) -> None:
    spec = {
        "target": {"name": "app"},
        "schedule": {"mode": "job"},
        "reference": {"pvc": {"claimName": "data", "path": "ref.csv"}},
    }
    grant(policy, ns, "grace", [("apps", "deployments", "get", ("app",))])
    assert_refused(
        create_as(policy, ns, "grace", "pvc", spec), "may not get persistentvolumeclaims/data"
    )
    grant(
        policy,
        ns,
        "heidi",
        [
            ("apps", "deployments", "get", ("app",)),
            ("", "persistentvolumeclaims", "get", ("data",)),
        ],
    )
    assert_admitted(create_as(policy, ns, "heidi", "pvc", spec))


def test_a_partitioned_window_s_claim_needs_get_on_it(policy: KubeCluster, ns: str) -> None:
    spec = {
        "target": {"name": "app"},
        "schedule": {"mode": "job"},
        "reference": {"configMapRef": {"name": "ref", "key": "ref.csv"}},
        "data": {"partitions": {"claimName": "exports", "path": "day/*.parquet"}},
    }
    base = [("apps", "deployments", "get", ("app",)), ("", "configmaps", "get", ("ref",))]
    grant(policy, ns, "ivan", base)
    assert_refused(
        create_as(policy, ns, "ivan", "parts", spec),
        "may not get persistentvolumeclaims/exports",
    )
    grant(policy, ns, "judy", [*base, ("", "persistentvolumeclaims", "get", ("exports",))])
    assert_admitted(create_as(policy, ns, "judy", "parts", spec))


def test_an_ephemeral_dask_cluster_needs_create_on_daskjobs(policy: KubeCluster, ns: str) -> None:
    """spec.schedule.dask.cluster has the operator create a DaskJob (pods of the run image
    with the claim mounted): its author must be able to create DaskJobs there."""
    spec = {
        "target": {"name": "app"},
        "schedule": {"mode": "dask", "dask": {"cluster": {"workers": 2}}},
        "reference": {"configMapRef": {"name": "ref", "key": "ref.csv"}},
        "data": {"partitions": {"claimName": "exports", "path": "day"}},
    }
    base = [
        ("apps", "deployments", "get", ("app",)),
        ("", "configmaps", "get", ("ref",)),
        ("", "persistentvolumeclaims", "get", ("exports",)),
    ]
    grant(policy, ns, "kim", base)
    assert_refused(
        create_as(policy, ns, "kim", "dask", spec),
        f"may not create daskjobs.kubernetes.dask.org in namespace {ns}",
    )
    # the right to create Jobs, or DaskClusters, is not the right to create DaskJobs
    grant(
        policy,
        ns,
        "lee",
        [
            *base,
            ("batch", "jobs", "create", None),
            ("kubernetes.dask.org", "daskclusters", "create", None),
        ],
    )
    assert_refused(create_as(policy, ns, "lee", "dask", spec), "create daskjobs")
    # an existing scheduler needs no such right
    existing = {**spec, "schedule": {"mode": "dask", "dask": {"scheduler": "tcp://d:8786"}}}
    assert_admitted(create_as(policy, ns, "kim", "existing", existing))
    grant(policy, ns, "mia", [*base, ("kubernetes.dask.org", "daskjobs", "create", None)])
    assert_admitted(create_as(policy, ns, "mia", "dask", spec))


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
