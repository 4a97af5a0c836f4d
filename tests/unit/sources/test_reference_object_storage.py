"""Object storage references against a real local HTTP server: signed GETs through the
fence, ETag re-validation, refusals worded without secrets.

The server here only plays the storage's HTTP side (status, ETag, error XML) and records
what arrives; that a real S3 server accepts our signatures is tested end to end against
versitygw (tests/e2e/test_reference_object_storage.py).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiohttp import web

from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.spec import KeyRef, ObjectStorageSpec, ReferenceSpec
from modelmonitor.sources.reference import ReferenceCache, ReferenceLoadError
from tests.unit.loopback import LOOPBACK_ALLOWED

CSV = b"amount,country\n1.5,de\n2.5,fr\n3.5,de\n"
SECRET_KEY = "s3cr3t-value-never-shown"


class Objects:
    """The monitor's Secrets, by (namespace, name); records every lookup."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.secrets = secrets
        self.calls: list[tuple[str, str, str]] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append((kind, namespace, name))
        data = self.secrets.get((namespace, name))
        if kind != "Secret" or data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def s3_ref(base: str, key: str = "team a/rü.csv", secret: str = "creds") -> ReferenceSpec:
    refs = {
        "accessKeyId": KeyRef("Secret", secret, "id", "spec.reference.s3.secretRef.accessKeyIdKey"),
        "secretAccessKey": KeyRef("Secret", secret, "key", "spec.reference.s3.secretRef.x"),
        "sessionToken": KeyRef("Secret", secret, "token", "spec.reference.s3.secretRef.y"),
    }
    stored = ObjectStorageSpec(
        provider="s3",
        bucket="refs",
        key=key,
        secret_name=secret,
        credentials=refs,
        endpoint=base,
        path_style=True,
    )
    return ReferenceSpec(source="s3", object_storage=stored)


CREDS = {("ml", "creds"): {"id": "AKIDTEST", "key": SECRET_KEY, "token": "session-token-1"}}


class Storage:
    """One object whose body and ETag a test changes; records each request."""

    def __init__(self) -> None:
        self.body = CSV
        self.etag = '"v1"'
        self.status = 200
        self.seen: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"path": request.raw_path, **request.headers})
        if self.status != 200:
            xml = b"<?xml version='1.0'?><Error><Code>SignatureDoesNotMatch</Code></Error>"
            return web.Response(status=self.status, body=xml)
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        return web.Response(body=self.body, headers={"ETag": self.etag})


async def serve(storage: Storage) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", storage.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def scenario(test: Any, storage: Storage | None = None) -> None:
    async def run() -> None:
        runner, base = await serve(storage or Storage())
        try:
            await test(base)
        finally:
            await runner.cleanup()

    asyncio.run(run())


def test_signed_get_quoted_key_and_etag_revalidation() -> None:
    storage = Storage()

    async def test(base: str) -> None:
        cache = ReferenceCache(Objects(CREDS), outbound=LOOPBACK_ALLOWED)
        first = await cache.load("ml", "m", s3_ref(base))
        assert first.profile.n_rows == 3
        assert await cache.load("ml", "m", s3_ref(base)) is first  # 304: not read again
        storage.body, storage.etag = CSV + b"4.5,it\n", '"v2"'
        changed = await cache.load("ml", "m", s3_ref(base))
        assert changed.profile.n_rows == 4
        assert changed.source == "s3://refs/team a/rü.csv"

    scenario(test, storage)
    first, second, third = storage.seen
    assert first["path"] == "/refs/team%20a/r%C3%BC.csv"
    assert first["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert first["x-amz-security-token"] == "session-token-1"
    assert "If-None-Match" not in first
    assert second["If-None-Match"] == '"v1"'
    assert "if-none-match" in second["Authorization"]  # signed with the request
    assert third["If-None-Match"] == '"v1"'


def test_wrong_credentials_are_access_denied_without_the_secret() -> None:
    storage = Storage()
    storage.status = 403

    async def test(base: str) -> None:
        cache = ReferenceCache(Objects(CREDS), outbound=LOOPBACK_ALLOWED)
        with pytest.raises(ReferenceLoadError) as info:
            await cache.load("ml", "m", s3_ref(base))
        assert info.value.reason == "ReferenceAccessDenied"
        text = str(info.value)
        assert "HTTP 403 SignatureDoesNotMatch" in text
        assert "Secret ml/creds" in text
        assert SECRET_KEY not in text
        assert "session-token-1" not in text

    scenario(test, storage)


def test_credentials_come_from_the_monitors_namespace_only() -> None:
    storage = Storage()
    elsewhere = {("team-b", "creds"): CREDS[("ml", "creds")]}
    objects = Objects(elsewhere)

    async def test(base: str) -> None:
        cache = ReferenceCache(objects, outbound=LOOPBACK_ALLOWED)
        with pytest.raises(ReferenceLoadError) as info:
            await cache.load("ml", "m", s3_ref(base))
        assert info.value.reason == "SecretNotFound"
        assert "Secret ml/creds" in str(info.value)

    scenario(test, storage)
    assert objects.calls == [("Secret", "ml", "creds")]
    assert storage.seen == []  # no request without its credentials


def test_the_fence_refuses_a_blocked_endpoint_before_sending() -> None:
    storage = Storage()

    async def test(base: str) -> None:
        cache = ReferenceCache(Objects(CREDS), outbound=Outbound())  # loopback refused
        with pytest.raises(ReferenceLoadError) as info:
            await cache.load("ml", "m", s3_ref(base))
        assert info.value.reason == "OutboundRefused"
        assert "loopback" in str(info.value)

    scenario(test, storage)
    assert storage.seen == []


def test_an_object_over_the_size_cap_is_too_large() -> None:
    storage = Storage()
    storage.body = b"a\n" + b"1\n" * 5000

    async def test(base: str) -> None:
        cache = ReferenceCache(Objects(CREDS), max_bytes=4096, outbound=LOOPBACK_ALLOWED)
        with pytest.raises(ReferenceLoadError) as info:
            await cache.load("ml", "m", s3_ref(base, key="big.csv"))
        assert info.value.reason == "ReferenceTooLarge"

    scenario(test, storage)


def test_azure_sas_token_goes_in_the_query_and_never_in_messages() -> None:
    storage = Storage()
    sas = "sv=2022-11-02&sp=r&sig=SECRETSIG%3D"

    def azure(base: str) -> ReferenceSpec:
        ref = KeyRef("Secret", "az", "sas", "spec.reference.azureBlob.secretRef.sasTokenKey")
        stored = ObjectStorageSpec(
            provider="azureBlob",
            bucket="refs",
            key="r.csv",
            secret_name="az",
            credentials={"sasToken": ref},
            endpoint=f"{base}/acct",
            account="acct",
            path_style=True,
        )
        return ReferenceSpec(source="azureBlob", object_storage=stored)

    async def test(base: str) -> None:
        cache = ReferenceCache(Objects({("ml", "az"): {"sas": sas}}), outbound=LOOPBACK_ALLOWED)
        loaded = await cache.load("ml", "m", azure(base))
        assert loaded.source == "az://acct/refs/r.csv"
        storage.status = 403
        storage.etag = '"v2"'
        with pytest.raises(ReferenceLoadError) as info:
            await cache.load("ml", "m", azure(base))
        assert "SECRETSIG" not in str(info.value)

    scenario(test, storage)
    assert storage.seen[0]["path"] == f"/acct/refs/r.csv?{sas}"
    assert storage.seen[0]["x-ms-version"]


def test_an_azure_account_key_signs_with_shared_key() -> None:
    storage = Storage()
    key = base64.b64encode(b"k" * 64).decode()

    async def test(base: str) -> None:
        ref = KeyRef("Secret", "az", "key", "spec.reference.azureBlob.secretRef.accountKeyKey")
        stored = ObjectStorageSpec(
            provider="azureBlob",
            bucket="refs",
            key="r.csv",
            secret_name="az",
            credentials={"accountKey": ref},
            endpoint=f"{base}/acct",
            account="acct",
        )
        objects = Objects({("ml", "az"): {"key": key}})
        cache = ReferenceCache(objects, outbound=LOOPBACK_ALLOWED)
        await cache.load("ml", "m", ReferenceSpec(source="azureBlob", object_storage=stored))

    scenario(test, storage)
    assert storage.seen[0]["Authorization"].startswith("SharedKey acct:")
    assert storage.seen[0]["x-ms-date"].endswith(" GMT")
