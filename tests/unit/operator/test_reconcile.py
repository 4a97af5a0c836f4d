"""evaluate(): the configuration verdict, with a dictionary standing in for the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelmonitor.core.cluster import ReferenceLookupError
from modelmonitor.engine.validation import evaluate, needs_recheck

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class DictLookup:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]], fail: bool = False) -> None:
        self.objects = objects
        self.fail = fail

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if self.fail:
            raise ReferenceLookupError("connection refused")
        return self.objects.get((kind, name))


def monitor(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "target": {"name": "fraud", "endpoint": {"service": {"name": "fraud", "port": 8080}}},
        "reference": {"configMapRef": {"name": "ref", "key": "reference.csv"}},
    }
    base.update(spec)
    return {"metadata": {"name": "m", "namespace": "ml", "generation": 3}, "spec": base}


ALL = {
    ("Deployment", "fraud"): {},
    ("Service", "fraud"): {"spec": {"ports": [{"port": 8080}]}},
    ("ConfigMap", "ref"): {"data": {"reference.csv": "a\n1\n"}},
}


def test_valid_monitor_is_pending_and_ready() -> None:
    result = evaluate(monitor(), DictLookup(ALL), now=NOW)
    assert result.valid
    assert result.status_patch["phase"] == "Pending"
    assert result.status_patch["observedGeneration"] == 3
    ready = result.status_patch["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Configured")


def test_run_phase_survives_spec_change() -> None:
    body = monitor()
    body["status"] = {"phase": "Drifted"}
    assert evaluate(body, DictLookup(ALL), now=NOW).status_patch["phase"] == "Drifted"


def test_missing_target() -> None:
    objects = {k: v for k, v in ALL.items() if k[0] != "Deployment"}
    result = evaluate(monitor(), DictLookup(objects), now=NOW)
    assert result.status_patch["phase"] == "Invalid"
    ready = result.status_patch["conditions"][0]
    assert ready["reason"] == "TargetNotFound"
    assert "Deployment ml/fraud" in ready["message"]
    assert needs_recheck(result.status_patch)


def test_missing_configmap_key_lists_keys() -> None:
    objects = dict(ALL)
    objects[("ConfigMap", "ref")] = {"data": {"other.csv": ""}}
    ready = evaluate(monitor(), DictLookup(objects), now=NOW).status_patch["conditions"][0]
    assert ready["reason"] == "ReferenceNotFound"
    assert "other.csv" in ready["message"]


def test_a_missing_secret_and_a_missing_key_read_the_same() -> None:
    """The Ready message must not tell someone who cannot read Secrets whether one exists."""
    notify = {
        "onDrift": ["notify"],
        "notify": {"webhookSecretRef": {"name": "hook", "key": "url"}},
    }
    body = monitor(actions=notify)
    without_secret = evaluate(body, DictLookup(ALL), now=NOW)
    with_other_key = evaluate(
        body, DictLookup({**ALL, ("Secret", "hook"): {"data": {"token": "eA=="}}}), now=NOW
    )
    with_the_key = evaluate(
        body, DictLookup({**ALL, ("Secret", "hook"): {"data": {"url": "eA=="}}}), now=NOW
    )
    missing = [r.status_patch["conditions"][0] for r in (without_secret, with_other_key)]
    assert missing[0] == missing[1]
    assert missing[0]["reason"] == "SecretNotFound"
    assert "token" not in missing[0]["message"]
    assert "does not exist or has no key 'url'" in missing[0]["message"]
    assert with_the_key.valid


def test_prometheus_credentials_must_exist_and_absence_reads_the_same() -> None:
    """Ready waits for each Secret/ConfigMap key spec.prometheus names; a missing object
    and a missing key give one message, naming the field and never a value."""
    prometheus = {
        "url": "https://prometheus:9090",
        "basicAuth": {
            "username": {"name": "prom", "key": "user"},
            "password": {"name": "prom", "key": "password"},
        },
        "tlsConfig": {"ca": {"configMapKeyRef": {"name": "corp-ca", "key": "ca.crt"}}},
    }
    body = monitor(prometheus=prometheus)
    ca = {("ConfigMap", "corp-ca"): {"data": {"ca.crt": "PEM"}}}
    secret = {"data": {"user": "YWxpY2U=", "password": "c2VjcmV0"}}  # alice, secret
    ready = evaluate(body, DictLookup({**ALL, **ca, ("Secret", "prom"): secret}), now=NOW)
    assert ready.valid
    without_secret = evaluate(body, DictLookup({**ALL, **ca}), now=NOW)
    partial = {"data": {"other": "c2VjcmV0"}}
    without_key = evaluate(body, DictLookup({**ALL, **ca, ("Secret", "prom"): partial}), now=NOW)
    missing = [r.status_patch["conditions"][0] for r in (without_secret, without_key)]
    assert missing[0] == missing[1]
    assert missing[0]["reason"] == "SecretNotFound"
    assert "spec.prometheus.basicAuth.password" in missing[0]["message"]
    assert "other" not in missing[0]["message"]
    assert "c2VjcmV0" not in missing[0]["message"]
    no_ca = evaluate(body, DictLookup({**ALL, ("Secret", "prom"): secret}), now=NOW)
    ready_condition = no_ca.status_patch["conditions"][0]
    assert ready_condition["reason"] == "ConfigMapNotFound"
    assert "spec.prometheus.tlsConfig.ca.configMapKeyRef" in ready_condition["message"]


def test_kafka_credentials_must_exist_before_ready() -> None:
    """Ready waits for the Secrets spec.data.payloadLog.kafka names, as for Prometheus."""
    kafka = {
        "bootstrapServers": ["kafka.ml.svc:9093"],
        "topic": "logs",
        "tlsConfig": {"ca": {"secretKeyRef": {"name": "kafka-ca", "key": "ca.crt"}}},
        "sasl": {
            "mechanism": "SCRAM-SHA-256",
            "username": {"name": "kafka-user", "key": "user"},
            "password": {"name": "kafka-user", "key": "password"},
        },
    }
    body = monitor(data={"payloadLog": {"kafka": kafka}})
    ca = {("Secret", "kafka-ca"): {"data": {"ca.crt": "UEVN"}}}
    user = {("Secret", "kafka-user"): {"data": {"user": "YWxpY2U=", "password": "c2VjcmV0"}}}
    assert evaluate(body, DictLookup({**ALL, **ca, **user}), now=NOW).valid
    no_user = evaluate(body, DictLookup({**ALL, **ca}), now=NOW).status_patch["conditions"][0]
    assert no_user["reason"] == "SecretNotFound"
    assert "spec.data.payloadLog.kafka.sasl.username" in no_user["message"]
    no_ca = evaluate(body, DictLookup({**ALL, **user}), now=NOW).status_patch["conditions"][0]
    assert "spec.data.payloadLog.kafka.tlsConfig.ca.secretKeyRef" in no_ca["message"]


def test_service_port_mismatch() -> None:
    objects = dict(ALL)
    objects[("Service", "fraud")] = {"spec": {"ports": [{"port": 9000}]}}
    ready = evaluate(monitor(), DictLookup(objects), now=NOW).status_patch["conditions"][0]
    assert ready["reason"] == "ServiceNotFound"
    assert "9000" in ready["message"]


def test_invalid_spec_is_not_rechecked() -> None:
    result = evaluate(monitor(schedule={"interval": "1s"}), DictLookup(ALL), now=NOW)
    ready = result.status_patch["conditions"][0]
    assert (result.status_patch["phase"], ready["reason"]) == ("Invalid", "InvalidSpec")
    assert "spec.schedule.interval" in ready["message"]
    assert not needs_recheck(result.status_patch)


def test_lookup_failure_is_reported_not_raised() -> None:
    ready = evaluate(monitor(), DictLookup(ALL, fail=True), now=NOW).status_patch["conditions"][0]
    assert ready["reason"] == "LookupFailed"
    assert "connection refused" in ready["message"]


def retrain_actions(**pod_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "train", "image": "train:1"}], **pod_spec}
    return {"onDrift": ["retrain"], "retrain": {"jobTemplate": {"template": {"spec": spec}}}}


def test_a_retrain_template_beyond_the_policy_makes_the_monitor_invalid() -> None:
    actions = retrain_actions(
        hostNetwork=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}]
    )
    result = evaluate(monitor(actions=actions), DictLookup(ALL), now=NOW)
    ready = result.status_patch["conditions"][0]
    assert (result.status_patch["phase"], ready["status"]) == ("Invalid", "False")
    assert ready["reason"] == "RetrainTemplateRefused"
    pod = "spec.actions.retrain.jobTemplate.template.spec"
    assert f"{pod}.hostNetwork" in ready["message"]
    assert f"{pod}.volumes[0].hostPath" in ready["message"]
    assert not result.valid
    assert not needs_recheck(result.status_patch)  # only a spec change cures it


def test_the_retrain_service_account_allowlist_comes_from_the_operator() -> None:
    body = monitor(actions=retrain_actions(serviceAccountName="trainer"))
    refused = evaluate(body, DictLookup(ALL), now=NOW)
    assert refused.ready.reason == "RetrainTemplateRefused"
    assert "'trainer' is not allowed" in refused.ready.message
    allowed = evaluate(body, DictLookup(ALL), now=NOW, retrain_service_accounts=("trainer",))
    assert allowed.valid
    assert allowed.ready.reason == "Configured"


def test_an_allowed_retrain_template_is_ready() -> None:
    result = evaluate(monitor(actions=retrain_actions()), DictLookup(ALL), now=NOW)
    assert result.valid
    assert result.ready.status == "True"
