from __future__ import annotations

from pathlib import Path

import pytest

from modelmonitor.edge.config import load_config


def test_defaults_watch_cluster() -> None:
    cfg = load_config(env={})
    assert cfg.clusterwide
    assert cfg.metrics_port == 8080
    assert cfg.liveness_endpoint == "http://0.0.0.0:8081/healthz"
    assert not cfg.standalone


def test_env_namespaces_and_star() -> None:
    assert load_config(env={"WATCH_NAMESPACES": "a, b"}).namespaces == ("a", "b")
    assert load_config(env={"WATCH_NAMESPACES": "*"}).clusterwide


def test_flags_win_over_env() -> None:
    cfg = load_config(
        namespaces=["x"], log_format="json", env={"WATCH_NAMESPACES": "a", "LOG_FORMAT": "text"}
    )
    assert cfg.namespaces == ("x",)
    assert cfg.log_format == "json"


def test_standalone_turns_leader_election_off() -> None:
    assert not load_config(env={}).standalone
    assert load_config(env={"STANDALONE": "true"}).standalone
    assert load_config(standalone=True, env={}).standalone


def test_bad_log_format() -> None:
    with pytest.raises(ValueError, match="log format"):
        load_config(log_format="xml", env={})


def test_namespace_scope_defaults_to_own_namespace_and_disables_scanning() -> None:
    cfg = load_config(env={"SCOPE": "namespace", "POD_NAMESPACE": "ops"})
    assert cfg.namespaces == ("ops",)
    assert cfg.scanning_disabled
    assert not load_config(env={}).scanning_disabled
    assert load_config(env={"WATCH_NAMESPACES": "a,b"}).scanning_disabled
    assert not load_config(env={"WATCH_NAMESPACES": "team-*"}).scanning_disabled
    with pytest.raises(ValueError, match="POD_NAMESPACE"):
        load_config(env={"SCOPE": "namespace"})


def test_in_cluster_needs_the_service_host_and_the_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    host = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    assert not load_config(env=host, token_path=str(token)).in_cluster
    token.write_text("t")
    assert load_config(env=host, token_path=str(token)).in_cluster
    assert not load_config(env={}, token_path=str(token)).in_cluster
    assert load_config(env=host, token_path=str(token)).resolution() == "dns"
    assert load_config(env={}, token_path=str(token)).resolution() == "pods"
    pinned = {**host, "ENDPOINT_RESOLUTION": "endpointSlices"}
    assert load_config(env=pinned, token_path=str(token)).resolution() == "endpointSlices"


def test_job_identity_comes_from_the_downward_api() -> None:
    cfg = load_config(env={"JOB_NAME": "mm-fraud-1", "JOB_UID": "u-1"})
    assert (cfg.job_name, cfg.job_uid) == ("mm-fraud-1", "u-1")
    assert (load_config(env={}).job_name, load_config(env={}).job_uid) == ("", "")


def test_recheck_interval_is_a_setting() -> None:
    assert load_config(env={}).recheck_seconds == 5.0
    assert load_config(env={"RECHECK_SECONDS": "2"}).recheck_seconds == 2.0


def test_payload_port_from_flag_or_environment() -> None:
    assert load_config(env={}).payload_port == 8082
    assert load_config(env={"PAYLOAD_PORT": " "}).payload_port == 8082
    assert load_config(env={"PAYLOAD_PORT": "9000"}).payload_port == 9000
    assert load_config(payload_port=9100, env={"PAYLOAD_PORT": "9000"}).payload_port == 9100
    for bad in ("http", "0", "65536", "-1"):
        with pytest.raises(ValueError, match=f"PAYLOAD_PORT='{bad}' is not a TCP port"):
            load_config(env={"PAYLOAD_PORT": bad})


def test_retrain_service_accounts_default_to_the_namespace_default_only() -> None:
    assert load_config(env={}).retrain_service_accounts == ("default",)
    assert load_config(env={"RETRAIN_SERVICE_ACCOUNTS": " "}).retrain_service_accounts == (
        "default",
    )
    env = {"RETRAIN_SERVICE_ACCOUNTS": "trainer, default ,"}
    assert load_config(env=env).retrain_service_accounts == ("trainer", "default")


def test_run_slots_and_the_per_namespace_cap() -> None:
    cfg = load_config(env={})
    assert (cfg.max_concurrent_runs, cfg.max_runs_per_namespace) == (16, 0)  # 0: fair share
    cfg = load_config(env={"MAX_CONCURRENT_RUNS": "32", "MAX_RUNS_PER_NAMESPACE": "4"})
    assert (cfg.max_concurrent_runs, cfg.max_runs_per_namespace) == (32, 4)
    for name, bad in (("MAX_RUNS_PER_NAMESPACE", "-1"), ("MAX_CONCURRENT_RUNS", "0")):
        with pytest.raises(ValueError, match=f"{name}='{bad}' is not a whole number"):
            load_config(env={name: bad})


def test_payload_url_and_byte_budget() -> None:
    cfg = load_config(env={})
    assert cfg.payload_url == "http://modelmonitor-payload.modelmonitor-system.svc:8082"
    assert cfg.payload_max_bytes == 256 * 1024 * 1024
    cfg = load_config(
        env={"PAYLOAD_URL": "https://collector.ml.svc:9000/", "PAYLOAD_MAX_BYTES": "1048576"}
    )
    assert cfg.payload_url == "https://collector.ml.svc:9000"
    assert cfg.payload_max_bytes == 1048576


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "collector:8082",
        "http://user:pw@x",
        "http://x/?token=1",
        "http://x/#f",
        "http://",
    ],
)
def test_bad_payload_url(url: str) -> None:
    with pytest.raises(ValueError, match="PAYLOAD_URL"):
        load_config(env={"PAYLOAD_URL": url})


@pytest.mark.parametrize("value", ["0", "1000", "-5", "1e9", "lots"])
def test_bad_payload_byte_budget(value: str) -> None:
    with pytest.raises(ValueError, match="PAYLOAD_MAX_BYTES"):
        load_config(env={"PAYLOAD_MAX_BYTES": value})


def test_reference_limits_are_settings_passed_on_to_job_pods() -> None:
    from modelmonitor.core.limits import REFERENCE_LIMITS

    assert load_config(env={}).reference_limits == REFERENCE_LIMITS
    cfg = load_config(
        env={
            "REFERENCE_MAX_DECODED_BYTES": "1048576",
            "REFERENCE_MAX_ROWS": "1000",
            "REFERENCE_MAX_CELLS": "5000",
        }
    )
    assert (cfg.reference_limits.max_decoded_bytes, cfg.reference_limits.max_rows) == (
        1048576,
        1000,
    )
    assert cfg.reference_limits.max_cells == 5000
    assert load_config(env=cfg.reference_limits_env()).reference_limits == cfg.reference_limits
    for bad in ("0", "-5", "lots"):
        with pytest.raises(ValueError, match="REFERENCE_MAX_ROWS"):
            load_config(env={"REFERENCE_MAX_ROWS": bad})


def test_gitops_settings_default_to_argocd_and_annotation_tracking() -> None:
    from modelmonitor.core.gitops import GitOpsSettings

    assert load_config(env={}).gitops == GitOpsSettings("argocd", False)
    env = {"ARGOCD_NAMESPACE": "gitops", "ARGOCD_LABEL_TRACKING": "true"}
    assert load_config(env=env).gitops == GitOpsSettings("gitops", True)
    with pytest.raises(ValueError, match="ARGOCD_NAMESPACE"):
        load_config(env={"ARGOCD_NAMESPACE": "../kube-system"})
    with pytest.raises(ValueError, match="ARGOCD_LABEL_TRACKING"):
        load_config(env={"ARGOCD_LABEL_TRACKING": "sometimes"})


def test_lease_defaults_and_settings() -> None:
    cfg = load_config(env={"POD_NAMESPACE": "ops", "POD_ID": "mm-abc"})
    assert (cfg.lease_namespace, cfg.lease_name) == ("ops", "modelmonitor")
    assert (cfg.lease.duration, cfg.lease.renew, cfg.lease.retry, cfg.lease.margin) == (
        10,
        2.0,
        1.0,
        2.0,
    )
    assert cfg.identity.startswith("mm-abc_")
    assert load_config(env={"POD_ID": "x"}).identity != load_config(env={"POD_ID": "x"}).identity
    cfg = load_config(
        env={
            "LEASE_NAME": "mm-ha",
            "LEASE_NAMESPACE": "elect",
            "LEASE_DURATION_SECONDS": "15",
            "LEASE_RENEW_SECONDS": "3",
            "LEASE_RETRY_SECONDS": "1.5",
            "LEASE_MARGIN_SECONDS": "0",
        }
    )
    assert (cfg.lease_namespace, cfg.lease_name) == ("elect", "mm-ha")
    assert (cfg.lease.duration, cfg.lease.renew, cfg.lease.retry, cfg.lease.margin) == (
        15,
        3.0,
        1.5,
        0.0,
    )


def test_the_lease_lives_in_the_first_watched_namespace_outside_a_pod() -> None:
    assert load_config(namespaces=["ml-*", "team-a"], env={}).lease_namespace == "team-a"
    assert load_config(env={}).lease_namespace == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEASE_DURATION_SECONDS": "2.5"}, "LEASE_DURATION_SECONDS"),
        ({"LEASE_RENEW_SECONDS": "-1"}, "LEASE_RENEW_SECONDS"),
        ({"LEASE_RETRY_SECONDS": "soon"}, "LEASE_RETRY_SECONDS"),
        ({"LEASE_MARGIN_SECONDS": "x"}, "LEASE_MARGIN_SECONDS"),
        ({"LEASE_DURATION_SECONDS": "3"}, "shorter than its duration"),
        ({"LEASE_NAME": "../x"}, "LEASE_NAME"),
        ({"LEASE_NAMESPACE": "a/b"}, "LEASE_NAMESPACE"),
    ],
)
def test_bad_lease_settings_are_refused_with_the_setting_named(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(env=env)
