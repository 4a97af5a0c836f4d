"""The requester-rights admission policy for what a monitor reads with the operator's rights.

A monitor's data sources name Secrets, ConfigMaps and claims the operator (or its run
pods) read, and an ephemeral Dask cluster has the operator create a DaskJob: the policy
admits such a monitor only when its author may read, or create, each of them. Same
harness as test_admission_policy.py: impersonated users, the policy as shipped, no
operator running.
"""

from __future__ import annotations

from tests.cluster.kube import KubeCluster
from tests.e2e.admission_fixtures import (
    assert_admitted,
    assert_refused,
    create_as,
    grant,
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
