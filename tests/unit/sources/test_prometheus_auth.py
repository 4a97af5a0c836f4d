"""spec.prometheus credentials: parsed, read from Secrets/ConfigMaps, sent to a real server.

The servers are real local aiohttp servers (plain HTTP, TLS with a throwaway CA, and
TLS that requires a client certificate); the Secrets and ConfigMaps come from a small
in-memory lookup shaped like the API's answers. The real Prometheus behind its own
``--web.config.file`` is in tests/e2e/test_prometheus_auth.py.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from modelmonitor.core.spec import PrometheusSpec, SpecError, parse_spec
from modelmonitor.sources.base import Clients, RunContext
from modelmonitor.sources.prometheus import (
    PrometheusClient,
    PrometheusResponseError,
    PrometheusUnavailable,
)
from modelmonitor.sources.prometheus_auth import CredentialsUnavailable, load_prometheus_auth
from modelmonitor.sources.prometheus_source import PrometheusSource
from modelmonitor.sources.reference import ReferenceCache
from tests.tls_certs import TestCA, make_ca
from tests.unit.loopback import LOOPBACK_ALLOWED

T = TypeVar("T")
NS = "ml"
TOKEN = "tok-3f9a1c7e55d24b"
VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]},
}


class Objects:
    """Secrets and ConfigMaps of namespace ``ml`` as the API returns them."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads: list[tuple[str, str, str]] = []

    def secret(self, name: str, **data: str | bytes) -> Objects:
        encoded = {
            k.replace("_", "."): base64.b64encode(
                v if isinstance(v, bytes) else v.encode()
            ).decode()
            for k, v in data.items()
        }
        self.items[("Secret", name)] = {"kind": "Secret", "data": encoded}
        return self

    def config_map(self, name: str, **data: str) -> Objects:
        self.items[("ConfigMap", name)] = {
            "kind": "ConfigMap",
            "data": {k.replace("_", "."): v for k, v in data.items()},
        }
        return self

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind, namespace, name))
        assert namespace == NS, "read outside the monitor's namespace"
        return self.items.get((kind, name))

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[dict[str, Any]]:
        return []


def spec_with(prometheus: Mapping[str, Any], *, slos: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"name": "m"},
        "reference": {"inline": [{"x": 1}]},
        "prometheus": dict(prometheus),
    }
    if slos:
        spec["slos"] = [
            {
                "name": "errors",
                "source": "prometheus",
                "window": "1h",
                "errorRatio": {"errors": "sum(errors)", "total": "sum(total)"},
            }
        ]
    return spec


def prom(url: str = "http://127.0.0.1:1", **fields: Any) -> PrometheusSpec:
    spec = parse_spec(spec_with({"url": url, **fields})).prometheus
    assert spec is not None
    return spec


def problems(prometheus: Mapping[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        parse_spec(spec_with(prometheus))
    return dict(err.value.problems)


def secret_ref(name: str, key: str) -> dict[str, str]:
    return {"name": name, "key": key}


# -- servers ---------------------------------------------------------------------------------
Check = Callable[[web.Request], bool]


class Server:
    """A Prometheus stand-in that answers only requests ``check`` accepts, else 401 with
    a body that echoes the Authorization header (as some proxies' error pages do)."""

    def __init__(self, check: Check, tls: ssl.SSLContext | None = None) -> None:
        self.check = check
        self.tls = tls
        self.seen: list[Mapping[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        if self.check(request):
            return web.json_response(VECTOR)
        echoed = request.headers.get("Authorization", "none")
        return web.Response(status=401, text=f"401 Unauthorized (you sent Authorization: {echoed})")


def serve(server: Server, call: Callable[[str], Awaitable[T]]) -> T:
    async def main() -> T:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server.tls)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if server.tls else "http"
        try:
            return await call(f"{scheme}://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    return asyncio.run(main())


async def ask(url: str, objects: Objects, **fields: Any) -> float:
    spec = prom(url, **fields)
    auth = await load_prometheus_auth(objects, NS, spec)
    async with PrometheusClient(
        url,
        timeout_seconds=5,
        fence=LOOPBACK_ALLOWED,
        headers=auth.headers,
        tls=auth.tls,
        server_name=auth.server_name,
        secrets=auth.secrets,
    ) as client:
        value = await client.query_value("up")
    assert isinstance(value, float)
    return value


# -- parsing -----------------------------------------------------------------------------------
def test_every_field_parses_into_where_to_read_it() -> None:
    spec = prom(
        "https://thanos.example:443",
        authorization={"credentials": secret_ref("prom-token", "token")},
        headers=[
            {"name": "X-Scope-OrgID", "value": "team-a"},
            {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": secret_ref("keys", "api")}},
        ],
        tlsConfig={
            "ca": {"configMapKeyRef": secret_ref("corp-ca", "ca.crt")},
            "clientCertSecretRef": {"name": "prom-client"},
            "serverName": "thanos.internal",
        },
    )
    assert spec.authorization_type == "Bearer"
    assert [(r.kind, r.name, r.key, r.field) for r in spec.refs()] == [
        ("Secret", "prom-token", "token", "spec.prometheus.authorization.credentials"),
        ("Secret", "keys", "api", "spec.prometheus.headers[1].valueFrom.secretKeyRef"),
        ("ConfigMap", "corp-ca", "ca.crt", "spec.prometheus.tlsConfig.ca.configMapKeyRef"),
        ("Secret", "prom-client", "tls.crt", "spec.prometheus.tlsConfig.clientCertSecretRef"),
        ("Secret", "prom-client", "tls.key", "spec.prometheus.tlsConfig.clientCertSecretRef"),
    ]
    assert spec.headers[0].value == "team-a"
    assert spec.tls is not None
    assert spec.tls.server_name == "thanos.internal"
    assert not spec.tls.insecure_skip_verify
    assert prom().refs() == ()


@pytest.mark.parametrize(
    ("fields", "where", "says"),
    [
        (
            {"authorization": {"credentials": secret_ref("../../kube-system/secrets/x", "k")}},
            "spec.prometheus.authorization.credentials.name",
            "DNS-1123",
        ),
        (
            {"basicAuth": {"username": secret_ref("u", "../k"), "password": secret_ref("p", "k")}},
            "spec.prometheus.basicAuth.username.key",
            "not starting with '..'",
        ),
        (
            {"basicAuth": {"username": secret_ref("u", "k")}},
            "spec.prometheus.basicAuth.password",
            "required",
        ),
        (
            {
                "authorization": {"credentials": secret_ref("t", "k")},
                "basicAuth": {"username": secret_ref("u", "k"), "password": secret_ref("p", "k")},
            },
            "spec.prometheus",
            "at most one",
        ),
        (
            {"authorization": {"type": "Basic", "credentials": secret_ref("t", "k")}},
            "spec.prometheus.authorization.type",
            "basicAuth",
        ),
        (
            {"headers": [{"name": "X-Scope-OrgID", "value": "a\r\nX-Injected: 1"}]},
            "spec.prometheus.headers[0].value",
            "printable ASCII",
        ),
        (
            {"headers": [{"name": "Host", "value": "evil"}]},
            "spec.prometheus.headers[0].name",
            "HTTP client",
        ),
        (
            {"headers": [{"name": "Bad Name", "value": "v"}]},
            "spec.prometheus.headers[0].name",
            "invalid",
        ),
        (
            {"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]},
            "spec.prometheus.headers[1].name",
            "twice",
        ),
        (
            {
                "authorization": {"credentials": secret_ref("t", "k")},
                "headers": [{"name": "Authorization", "value": "Bearer other"}],
            },
            "spec.prometheus.headers[0].name",
            "already set",
        ),
        (
            {
                "headers": [
                    {
                        "name": "X-A",
                        "value": "v",
                        "valueFrom": {"secretKeyRef": secret_ref("s", "k")},
                    }
                ]
            },
            "spec.prometheus.headers[0]",
            "exactly one",
        ),
        (
            {"headers": [{"name": f"X-{i}", "value": "v"} for i in range(17)]},
            "spec.prometheus.headers",
            "at most 16",
        ),
        ({"tlsConfig": {"insecureSkipVerify": True}}, "spec.prometheus.tlsConfig", "https://"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(
    fields: dict[str, Any], where: str, says: str
) -> None:
    found = problems({"url": "http://prometheus:9090", **fields})
    assert where in found, found
    assert says in found[where]


def test_tls_fields_are_refused_naming_the_field() -> None:
    url = "https://prometheus:9090"
    both = {"configMapKeyRef": secret_ref("a", "k"), "secretKeyRef": secret_ref("b", "k")}
    found = problems({"url": url, "tlsConfig": {"ca": both}})
    assert "exactly one" in found["spec.prometheus.tlsConfig.ca"]
    found = problems(
        {
            "url": url,
            "tlsConfig": {"ca": {"secretKeyRef": secret_ref("a", "k")}, "insecureSkipVerify": True},
        }
    )
    assert "pick one" in found["spec.prometheus.tlsConfig.insecureSkipVerify"]
    found = problems({"url": url, "tlsConfig": {"clientCertSecretRef": {"name": "A/b"}}})
    assert "DNS-1123" in found["spec.prometheus.tlsConfig.clientCertSecretRef.name"]


# -- headers and auth against a real server ----------------------------------------------------
def test_bearer_token_and_tenant_headers_reach_the_server() -> None:
    objects = Objects().secret("prom-token", token=TOKEN + "\n").secret("keys", api="k-123")
    server = Server(
        lambda r: (
            r.headers.get("Authorization") == f"Bearer {TOKEN}"
            and r.headers.get("X-Scope-OrgID") == "team-a"
            and r.headers.get("X-Api-Key") == "k-123"
        )
    )
    fields = {
        "authorization": {"credentials": secret_ref("prom-token", "token")},
        "headers": [
            {"name": "X-Scope-OrgID", "value": "team-a"},
            {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": secret_ref("keys", "api")}},
        ],
    }
    assert serve(server, lambda url: ask(url, objects, **fields)) == 0.5
    # Without them, the same server refuses: the test front is really checking.
    with pytest.raises(PrometheusResponseError):
        serve(server, lambda url: ask(url, objects))
    assert all(r[1] == NS for r in objects.reads)


def test_plain_headers_alone_reach_the_server() -> None:
    """No Secret named at all: the tenant header is still sent."""
    server = Server(lambda r: r.headers.get("X-Scope-OrgID") == "team-a")
    fields = {"headers": [{"name": "X-Scope-OrgID", "value": "team-a"}]}
    assert serve(server, lambda url: ask(url, Objects(), **fields)) == 0.5


def test_basic_auth_reaches_the_server() -> None:
    objects = Objects().secret("prom-basic", username="alice", password="pa ss:wörd")
    expected = "Basic " + base64.b64encode("alice:pa ss:wörd".encode()).decode()
    server = Server(lambda r: r.headers.get("Authorization") == expected)
    fields = {
        "basicAuth": {
            "username": secret_ref("prom-basic", "username"),
            "password": secret_ref("prom-basic", "password"),
        }
    }
    assert serve(server, lambda url: ask(url, objects, **fields)) == 0.5


def test_an_error_page_echoing_the_token_never_shows_it() -> None:
    objects = Objects().secret("prom-token", token=TOKEN)
    server = Server(lambda r: False)
    fields = {"authorization": {"credentials": secret_ref("prom-token", "token")}}
    with pytest.raises(PrometheusResponseError) as err:
        serve(server, lambda url: ask(url, objects, **fields))
    assert server.seen[0]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(err.value)
    assert "[redacted]" in str(err.value)


def test_a_secret_value_that_would_inject_a_header_is_refused() -> None:
    objects = Objects().secret("prom-token", token=f"{TOKEN}\r\nX-Injected: 1")
    spec = prom(authorization={"credentials": secret_ref("prom-token", "token")})
    with pytest.raises(CredentialsUnavailable) as err:
        asyncio.run(load_prometheus_auth(objects, NS, spec))
    assert err.value.reason == "InvalidCredentials"
    assert TOKEN not in str(err.value)
    assert "spec.prometheus.authorization.credentials" in str(err.value)


def test_a_missing_secret_and_a_missing_key_read_the_same() -> None:
    spec = prom(authorization={"credentials": secret_ref("prom-token", "token")})
    messages = []
    for objects in (Objects(), Objects().secret("prom-token", other="x")):
        with pytest.raises(CredentialsUnavailable) as err:
            asyncio.run(load_prometheus_auth(objects, NS, spec))
        assert err.value.reason == "SecretNotFound"
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "other" not in messages[0]
    assert "prom-token" in messages[0]
    assert "'token'" in messages[0]


def test_auth_objects_never_show_credentials_in_repr() -> None:
    objects = Objects().secret("prom-token", token=TOKEN)
    spec = prom(authorization={"credentials": secret_ref("prom-token", "token")})
    auth = asyncio.run(load_prometheus_auth(objects, NS, spec))
    assert auth.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(auth)
    assert TOKEN not in repr(PrometheusClient("http://p:9090", headers=auth.headers))


# -- TLS -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> TestCA:
    return make_ca()


def server_tls(ca: TestCA, tmp_path: Path, *, client_ca: TestCA | None = None) -> ssl.SSLContext:
    (tmp_path / "s.crt").write_bytes(ca.server.cert)
    (tmp_path / "s.key").write_bytes(ca.server.key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.ca.cert.decode())
    return context


def test_a_private_ca_from_a_configmap_or_a_secret_is_trusted(ca: TestCA, tmp_path: Path) -> None:
    server = Server(lambda r: True, tls=server_tls(ca, tmp_path))
    objects = Objects().config_map("corp-ca", ca_crt=ca.ca.cert.decode())
    objects.secret("corp-ca-secret", ca_crt=ca.ca.cert)
    with pytest.raises(PrometheusUnavailable) as err:  # the system's trust store
        serve(server, lambda url: ask(url, objects, tlsConfig={}))
    assert "not trusted" in str(err.value)
    from_cm = {"ca": {"configMapKeyRef": secret_ref("corp-ca", "ca.crt")}}
    assert serve(server, lambda url: ask(url, objects, tlsConfig=from_cm)) == 0.5
    from_secret = {"ca": {"secretKeyRef": secret_ref("corp-ca-secret", "ca.crt")}}
    assert serve(server, lambda url: ask(url, objects, tlsConfig=from_secret)) == 0.5


def test_server_name_is_what_the_certificate_is_checked_against(ca: TestCA, tmp_path: Path) -> None:
    server = Server(lambda r: True, tls=server_tls(ca, tmp_path))
    objects = Objects().config_map("corp-ca", ca_crt=ca.ca.cert.decode())
    tls = {"ca": {"configMapKeyRef": secret_ref("corp-ca", "ca.crt")}}
    good = {**tls, "serverName": "prometheus.test"}
    assert serve(server, lambda url: ask(url, objects, tlsConfig=good)) == 0.5
    with pytest.raises(PrometheusUnavailable):
        serve(server, lambda url: ask(url, objects, tlsConfig={**tls, "serverName": "other.test"}))


def test_another_ca_is_not_trusted_and_insecure_skip_verify_skips(
    ca: TestCA, tmp_path: Path
) -> None:
    server = Server(lambda r: True, tls=server_tls(ca, tmp_path))
    other = make_ca("another CA")
    objects = Objects().config_map("other-ca", ca_crt=other.ca.cert.decode())
    tls = {"ca": {"configMapKeyRef": secret_ref("other-ca", "ca.crt")}}
    with pytest.raises(PrometheusUnavailable):
        serve(server, lambda url: ask(url, objects, tlsConfig=tls))
    skip = {"insecureSkipVerify": True}
    assert serve(server, lambda url: ask(url, objects, tlsConfig=skip)) == 0.5


def test_a_client_certificate_is_presented_when_the_server_requires_one(
    ca: TestCA, tmp_path: Path
) -> None:
    server = Server(lambda r: True, tls=server_tls(ca, tmp_path, client_ca=ca))
    objects = Objects().config_map("corp-ca", ca_crt=ca.ca.cert.decode())
    objects.secret("prom-client", tls_crt=ca.client.cert, tls_key=ca.client.key)
    tls: dict[str, Any] = {"ca": {"configMapKeyRef": secret_ref("corp-ca", "ca.crt")}}
    with pytest.raises(PrometheusUnavailable):
        serve(server, lambda url: ask(url, objects, tlsConfig=tls))
    mtls = {**tls, "clientCertSecretRef": {"name": "prom-client"}}
    assert serve(server, lambda url: ask(url, objects, tlsConfig=mtls)) == 0.5
    # A certificate of another CA is refused by the server.
    other = make_ca("another CA")
    objects.secret("prom-client", tls_crt=other.client.cert, tls_key=other.client.key)
    with pytest.raises(PrometheusUnavailable):
        serve(server, lambda url: ask(url, objects, tlsConfig=mtls))


def test_broken_pem_is_reported_without_its_contents(ca: TestCA) -> None:
    objects = Objects().config_map("corp-ca", ca_crt="not a certificate SENTINEL")
    objects.secret("prom-client", tls_crt=ca.client.cert, tls_key=b"SENTINEL-KEY")
    for tls, where in (
        ({"ca": {"configMapKeyRef": secret_ref("corp-ca", "ca.crt")}}, "tlsConfig.ca"),
        ({"clientCertSecretRef": {"name": "prom-client"}}, "tlsConfig.clientCertSecretRef"),
    ):
        spec = prom("https://127.0.0.1:1", tlsConfig=tls)
        with pytest.raises(CredentialsUnavailable) as err:
            asyncio.run(load_prometheus_auth(objects, NS, spec))
        assert err.value.reason == "InvalidCredentials"
        assert where in str(err.value)
        assert "SENTINEL" not in str(err.value)


# -- the source: read at each run, problems without values -------------------------------------
def context(objects: Objects, url: str) -> RunContext:
    spec = parse_spec(
        spec_with(
            {"url": url, "authorization": {"credentials": secret_ref("prom-token", "token")}},
            slos=True,
        )
    )
    clients = Clients(
        references=ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),  # type: ignore[arg-type]
        lookup=objects,
        outbound=LOOPBACK_ALLOWED,
        prometheus_min_window_seconds=1,
    )
    started = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    return RunContext(NS, "watch", spec, {}, started, None, clients)


def test_a_rotated_token_is_used_from_the_next_run_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    objects = Objects().secret("prom-token", token="first-token-0001")
    accepted = {"token": "first-token-0001"}
    server = Server(lambda r: r.headers.get("Authorization") == f"Bearer {accepted['token']}")

    async def two_runs(url: str) -> list[Any]:
        source = PrometheusSource()
        first = await source.gather(context(objects, url))
        objects.secret("prom-token", token="second-token-0002")
        accepted["token"] = "second-token-0002"
        second = await source.gather(context(objects, url))
        objects.secret("prom-token", token="stale-token-0003")  # the server was not told
        third = await source.gather(context(objects, url))
        return [first, second, third]

    first, second, third = serve(server, two_runs)
    assert first.problems == ()
    assert second.problems == ()
    (problem,) = third.problems
    assert "stale-token-0003" not in problem.message
    assert "stale-token-0003" not in repr(third.slos)
    for token in ("first-token-0001", "second-token-0002", "stale-token-0003"):
        assert token not in caplog.text


def test_a_missing_secret_is_a_problem_and_no_query_is_sent() -> None:
    server = Server(lambda r: True)

    async def run(url: str) -> Any:
        return await PrometheusSource().gather(context(Objects(), url))

    gathered = serve(server, run)
    (problem,) = gathered.problems
    assert problem.reason == "SecretNotFound"
    assert "spec.prometheus.authorization.credentials" in problem.message
    assert server.seen == []
    (outcome,) = gathered.slos
    assert "does not exist or has no key" in repr(outcome)
