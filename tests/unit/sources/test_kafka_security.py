"""Kafka over TLS and SASL: the spec, the credentials read from Secrets, the TLS context
a consumer gets, and the words a failed connection is reported in.

The TLS contexts are checked with a real handshake against a loopback TLS server that
presents the test CA's certificate; the SASL exchange itself and a real broker's
refusals are tested in tests/e2e/test_kafka_secure.py.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmonitor.adapters import kafka as kafka_client
from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.kafka import MAX_CLIENT_ID_CHARS, client_id, connection_failure
from modelmonitor.core.spec import SpecError
from modelmonitor.sources.payload import kafka_auth
from modelmonitor.sources.payload.kafka_auth import load_kafka_auth
from modelmonitor.sources.payload.kafka_feed import KafkaFeed
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.prometheus_auth import CredentialsUnavailable
from tests.tls_certs import TestCA, make_ca
from tests.unit.sources.test_kafka_payload import _spec
from tests.unit.sources.test_prometheus_auth import NS, Objects, server_tls

PASSWORD = "pw-7c1e90d2b4"
BASE = {"bootstrapServers": ["kafka.ml.svc:9093"], "topic": "logs"}
CA_REF = {"ca": {"secretKeyRef": {"name": "kafka-ca", "key": "ca.crt"}}}
SASL = {
    "mechanism": "SCRAM-SHA-512",
    "username": {"name": "kafka-user", "key": "user"},
    "password": {"name": "kafka-user", "key": "password"},
}


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return make_ca()


def _kafka(**extra: Any) -> Any:
    return _spec({**BASE, **extra}).payload_log.kafka


def _objects(ca: TestCA, password: str = PASSWORD) -> Objects:
    objects = Objects().secret("kafka-ca", ca_crt=ca.ca.cert)
    objects.secret("kafka-user", user="monitor", password=password + "\n")
    return objects.secret("kafka-client", tls_crt=ca.client.cert, tls_key=ca.client.key)


# -- the spec ------------------------------------------------------------------------------
def test_spec_reads_tls_and_sasl() -> None:
    spec = _kafka(tlsConfig={**CA_REF, "serverName": "kafka.test"}, sasl=SASL)
    assert spec.security_protocol == "SASL_SSL"
    assert spec.tls.ca.name == "kafka-ca"
    assert spec.tls.server_name == "kafka.test"
    assert spec.sasl.mechanism == "SCRAM-SHA-512"
    assert (spec.sasl.password.name, spec.sasl.password.key) == ("kafka-user", "password")
    assert {r.field for r in spec.refs()} == {
        "spec.data.payloadLog.kafka.tlsConfig.ca.secretKeyRef",
        "spec.data.payloadLog.kafka.sasl.username",
        "spec.data.payloadLog.kafka.sasl.password",
    }
    assert _kafka(tlsConfig={}).security_protocol == "SSL"
    assert _kafka().security_protocol == "PLAINTEXT"
    assert _kafka().refs() == ()


def test_sasl_without_tls_is_refused_unless_allowed() -> None:
    with pytest.raises(SpecError) as err:
        _kafka(sasl=SASL)
    assert "spec.data.payloadLog.kafka.sasl" in str(err.value)
    assert "unencrypted" in str(err.value)
    assert "allowWithoutTLS" in str(err.value)
    allowed = _kafka(sasl={**SASL, "allowWithoutTLS": True})
    assert allowed.security_protocol == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"tlsConfig": {"insecureSkipVerify": True}}, "tlsConfig.insecureSkipVerify", "CA"),
        ({"sasl": {**SASL, "mechanism": "GSSAPI"}}, "sasl.mechanism", "SCRAM-SHA-256"),
        (
            {"tlsConfig": {}, "sasl": {k: v for k, v in SASL.items() if k != "password"}},
            "sasl.password",
            "required",
        ),
        (
            {"tlsConfig": {}, "sasl": {**SASL, "username": {"name": "Bad_Name", "key": "u"}}},
            "sasl.username.name",
            "",
        ),
        ({"tlsConfig": {"serverName": "not a name"}}, "tlsConfig.serverName", "DNS"),
        ({"tlsConfig": {"ca": {}}}, "tlsConfig.ca", "exactly one"),
    ],
)
def test_bad_tls_and_sasl_fields_are_named(extra: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        _kafka(**extra)
    paths = [p for p, _ in err.value.problems]
    assert f"spec.data.payloadLog.kafka.{field}" in paths, err.value.problems
    assert words in str(err.value)


# -- the credentials -----------------------------------------------------------------------
def test_credentials_become_kafka_python_settings(ca: TestCA) -> None:
    objects = _objects(ca)
    spec = _kafka(tlsConfig=CA_REF, sasl=SASL)
    config = load_kafka_auth(objects, NS, spec)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "monitor"
    assert config["sasl_plain_password"] == PASSWORD  # the trailing newline dropped
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert config["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert config["ssl_context"].check_hostname
    assert {name for _, _, name in objects.reads} == {"kafka-ca", "kafka-user"}
    plain = load_kafka_auth(objects, NS, _kafka(sasl={**SASL, "allowWithoutTLS": True}))
    assert plain["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in plain


@pytest.mark.parametrize(
    ("objects", "reason"),
    [
        (Objects(), "SecretNotFound"),
        (Objects().secret("kafka-user", user="monitor", password=""), "InvalidCredentials"),
        (
            Objects().secret("kafka-user", user="monitor", password="x" * 5000),
            "InvalidCredentials",
        ),
        (Objects().secret("kafka-user", user=b"\xff\xfe", password=PASSWORD), "InvalidCredentials"),
    ],
    ids=["absent", "empty", "too-long", "not-utf8"],
)
def test_unusable_sasl_secrets_are_named_never_shown(objects: Objects, reason: str) -> None:
    spec = _kafka(sasl={**SASL, "allowWithoutTLS": True})
    with pytest.raises(CredentialsUnavailable) as err:
        load_kafka_auth(objects, NS, spec)
    assert err.value.reason == reason
    assert "kafka-user" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert "xxxx" not in str(err.value)


def test_an_oversized_ca_bundle_is_refused(ca: TestCA) -> None:
    objects = Objects().secret("kafka-ca", ca_crt=ca.ca.cert * 2000)
    with pytest.raises(CredentialsUnavailable, match="larger than 262144 bytes"):
        load_kafka_auth(objects, NS, _kafka(tlsConfig=CA_REF))


def test_a_ca_that_is_not_pem_is_refused(ca: TestCA) -> None:
    objects = Objects().secret("kafka-ca", ca_crt="not a certificate")
    with pytest.raises(CredentialsUnavailable) as err:
        load_kafka_auth(objects, NS, _kafka(tlsConfig=CA_REF))
    assert err.value.reason == "InvalidCredentials"
    assert "not a PEM CA bundle" in str(err.value)


@pytest.fixture
def tls_server(ca: TestCA, tmp_path: Path) -> Iterator[int]:
    """A loopback TLS server presenting the test CA's server certificate."""
    context = server_tls(ca, tmp_path, client_ca=ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def _handshake(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.recv(2)


def test_the_context_trusts_the_given_ca_and_nothing_else(ca: TestCA, tls_server: int) -> None:
    trusted = load_kafka_auth(_objects(ca), NS, _kafka(tlsConfig=CA_REF))["ssl_context"]
    assert _handshake(trusted, tls_server) == b"ok"
    other = load_kafka_auth(_objects(make_ca()), NS, _kafka(tlsConfig=CA_REF))["ssl_context"]
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(other, tls_server)


def test_server_name_replaces_the_host_the_certificate_is_checked_against(
    ca: TestCA, tls_server: int
) -> None:
    right = _kafka(tlsConfig={**CA_REF, "serverName": "prometheus.test"})  # in the SAN
    assert _handshake(load_kafka_auth(_objects(ca), NS, right)["ssl_context"], tls_server) == b"ok"
    wrong = _kafka(tlsConfig={**CA_REF, "serverName": "kafka.elsewhere.test"})
    with pytest.raises(ssl.SSLCertVerificationError, match=r"kafka\.elsewhere\.test"):
        _handshake(load_kafka_auth(_objects(ca), NS, wrong)["ssl_context"], tls_server)


def test_client_key_files_are_private_and_removed(
    ca: TestCA, tls_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certificate and key reach OpenSSL through files: 0600 in a 0700 directory of
    their own, gone once loaded."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen: list[tuple[str, int]] = []
    original = kafka_auth._ServerNameContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        for path in (certfile, keyfile, os.path.dirname(certfile)):
            seen.append((str(path), stat.S_IMODE(os.stat(path).st_mode)))
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(kafka_auth._ServerNameContext, "load_cert_chain", spy)
    tls = {**CA_REF, "clientCertSecretRef": {"name": "kafka-client"}, "serverName": "localhost"}
    context = load_kafka_auth(_objects(ca), NS, _kafka(tlsConfig=tls))["ssl_context"]
    assert [mode for _, mode in seen] == [0o600, 0o600, 0o700]
    assert list(scratch.iterdir()) == []  # removed
    assert _handshake(context, tls_server) == b"ok"


# -- a failed connection, in words ---------------------------------------------------------
def test_connection_failures_read_as_what_went_wrong() -> None:
    sasl = connection_failure(
        "SaslAuthenticationFailedError",
        "[Error 58] SaslAuthenticationFailedError: SaslAuthenticationFailedError:"
        " Authentication failed during authentication due to invalid credentials with SASL"
        " mechanism SCRAM-SHA-256",
    )
    assert sasl is not None
    assert sasl.startswith("SASL authentication failed (Authentication")
    tls = connection_failure(
        "KafkaConnectionError",
        "Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable"
        " to get local issuer certificate (_ssl.c:1006)",
    )
    assert tls is not None
    assert "not trusted" in tls
    assert "unable to get local issuer" in tls
    alert = connection_failure(
        "KafkaConnectionError",
        "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)",
    )
    assert alert is not None
    assert "SSLV3_ALERT_BAD_CERTIFICATE" in alert
    assert "clientCertSecretRef" in alert
    assert connection_failure("KafkaConnectionError", "socket disconnected") is None


def test_client_ids_are_unique_per_monitor_even_when_cut() -> None:
    assert client_id("ml", "fraud") == "modelmonitor-ml-fraud"
    long_a, long_b = client_id("ml", "m" * 200 + "a"), client_id("ml", "m" * 200 + "b")
    assert long_a != long_b
    assert len(long_a) == len(long_b) == MAX_CLIENT_ID_CHARS


def test_the_io_threads_log_names_the_failure_of_its_client() -> None:
    errors = pytest.importorskip("kafka.errors")
    kafka_client._register_factory()
    exc = errors.SaslAuthenticationFailedError(
        "Authentication failed: Invalid username or password"
    )

    def log_from(thread_name: str) -> None:
        logging.getLogger("kafka.net.manager").warning("Bootstrap connection failed: %s", exc)

    for name in ("kafka-io-client-a", "some-other-thread"):
        t = threading.Thread(target=log_from, args=(name,), name=name)
        t.start()
        t.join()
    failure = kafka_client.last_failure("client-a")
    assert failure is not None
    assert "SASL authentication failed" in failure
    assert "Invalid username or password" in failure
    assert kafka_client.last_failure("some-other-thread") is None
    kafka_client.forget_failure("client-a")
    assert kafka_client.last_failure("client-a") is None


def test_a_feed_without_its_secret_says_so_in_the_window() -> None:
    """No Secret: no connection is attempted, and the window (hence the run's Degraded
    reason PayloadSourceUnavailable) names the Secret and the field."""
    pytest.importorskip("kafka")
    store = PayloadStore()
    spec = _spec({**BASE, "tlsConfig": CA_REF, "sasl": SASL})
    store.register(NS, "m", spec, "token")
    feed = KafkaFeed(
        NS,
        "m",
        spec.payload_log.kafka,
        store,
        Outbound(),
        max_value_bytes=1 << 20,
        lookup=Objects(),
    )
    feed.start()
    try:
        window = store.window(NS, "m")
        for _ in range(100):
            if window.source_problem:
                break
            threading.Event().wait(0.05)
        assert window.source_problem is not None
        assert "SecretNotFound" in window.source_problem
        assert "kafka-ca" in window.source_problem
    finally:
        feed.stop()
