"""A partitioned window under an object-storage prefix, against a local HTTP server that
plays a bucket, including a hostile one: every listing and body stays bounded, every
refusal is a status reason with a message and no secret, and nothing crashes.

The server only plays S3's HTTP side (ListObjectsV2 XML, object bodies, error XML) and
records what arrives; that a real S3 server accepts the signed listing is tested end to
end against versitygw (tests/e2e/test_partitions_object_storage.py).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
from collections.abc import Awaitable, Callable
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.dataset import Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.object_storage import LIST_PAGE_KEYS
from modelmonitor.core.outbound import OutboundPolicy, ResponseLimits
from modelmonitor.core.spec import KeyRef, ObjectStorageSpec
from modelmonitor.core.spec.model import PartitionsSpec
from modelmonitor.sources.object_partitions import (
    EXTRA_LIST_PAGES,
    PartitionsError,
    PrefixWindow,
    read_prefix_window,
)
from tests.unit.loopback import LOOPBACK_ALLOWED

SECRET_KEY = "s3cr3t-value-never-shown"
FEATURES = [Feature("x", "numerical"), Feature("c", "categorical")]
PREFIX = "exports/day=1/"


class Secrets:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append((kind, namespace, name))
        if (kind, namespace, name) != ("Secret", "ml", "creds"):
            return None
        data = {"id": "AKIDTEST", "key": SECRET_KEY}
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def part(base: str, prefix: str = PREFIX, max_objects: int = 1000) -> PartitionsSpec:
    refs = {
        "accessKeyId": KeyRef("Secret", "creds", "id", "spec.data.partitions.s3.secretRef.a"),
        "secretAccessKey": KeyRef("Secret", "creds", "key", "spec.data.partitions.s3.secretRef.b"),
    }
    stored = ObjectStorageSpec(
        provider="s3",
        bucket="lake",
        key=prefix,
        secret_name="creds",
        credentials=refs,
        endpoint=base,
        path_style=True,
    )
    return PartitionsSpec(object_storage=stored, max_objects=max_objects)


def parquet(seed: int, n: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    table = pa.table({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], size=n)})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def csv(seed: int, n: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    values, labels = rng.normal(size=n), rng.choice(["a", "b"], n)
    lines = ["x,c"] + [f"{v},{c}" for v, c in zip(values, labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


class Bucket:
    """Objects by key; ListObjectsV2 pages of ``page`` keys; knobs for misbehaviour."""

    def __init__(self, objects: dict[str, bytes], page: int = LIST_PAGE_KEYS) -> None:
        self.objects = objects
        self.page = page
        self.listed_sizes: dict[str, int] = {}  # lie about sizes in the listing
        self.endless = False  # every page truncated, a new token each time
        self.listing_body: bytes | None = None  # a raw listing answer
        self.status = 200
        self.lists = 0
        self.gets: list[str] = []
        self.auth: list[str] = []

    def listing(self, prefix: str, token: str | None) -> bytes:
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        start = int(token) if token else 0
        chunk = keys[start : start + self.page]
        more = self.endless or start + self.page < len(keys)
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key>"
            f"<Size>{self.listed_sizes.get(k, len(self.objects[k]))}</Size></Contents>"
            for k in chunk
        )
        nxt = f"<NextContinuationToken>{start + self.page}</NextContinuationToken>" if more else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>lake</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{contents}{nxt}"
            "</ListBucketResult>"
        ).encode()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization", ""))
        if self.status != 200:
            xml = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>"
            return web.Response(status=self.status, body=xml)
        if request.query.get("list-type") == "2":
            self.lists += 1
            assert request.path == "/lake"
            if self.listing_body is not None:
                return web.Response(body=self.listing_body)
            body = self.listing(request.query["prefix"], request.query.get("continuation-token"))
            return web.Response(body=body, content_type="application/xml")
        key = request.path.removeprefix("/lake/")
        self.gets.append(key)
        return web.Response(body=self.objects[key])


Test = Callable[[str], Awaitable[None]]


def scenario(test: Test, bucket: Bucket) -> None:
    async def run() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", bucket.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            await test(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    asyncio.run(run())


async def window(
    spec: PartitionsSpec, outbound: Outbound = LOOPBACK_ALLOWED, secrets: Secrets | None = None
) -> PrefixWindow:
    return await read_prefix_window(
        spec,
        FEATURES,
        namespace="ml",
        lookup=secrets or Secrets(),
        outbound=outbound,
        limits=ReadLimits(),
    )


async def refused(spec: PartitionsSpec, outbound: Outbound = LOOPBACK_ALLOWED) -> PartitionsError:
    with pytest.raises(PartitionsError) as info:
        await window(spec, outbound)
    assert SECRET_KEY not in str(info.value)
    return info.value


def test_a_paginated_prefix_is_merged_like_one_file() -> None:
    objects = {f"{PREFIX}part-{i:03d}.parquet": parquet(i) for i in range(55)}
    objects[f"{PREFIX}extra/part-a.csv"] = csv(100)
    objects[f"{PREFIX}extra/part-b.csv.gz"] = gzip.compress(csv(101))
    objects[f"{PREFIX}_SUCCESS"] = b""
    objects[f"{PREFIX}.part-000.parquet.crc"] = b"crc"
    objects[f"{PREFIX}notes.txt"] = b"not data"
    objects["exports/day=2/part-000.parquet"] = parquet(999)  # outside the prefix
    bucket = Bucket(objects, page=7)  # 8+ pages

    async def test(base: str) -> None:
        got = await window(part(base))
        assert (got.objects, got.profile.n_rows) == (57, 57 * 40)
        # the same rows profiled at once
        rows: list[pa.Table] = [pq.read_table(io.BytesIO(parquet(i))) for i in range(55)]
        xs = np.concatenate([t.column("x").to_numpy() for t in rows])
        for seed in (100, 101):
            text = csv(seed).decode().splitlines()[1:]
            xs = np.concatenate([xs, [float(line.split(",")[0]) for line in text]])
        assert got.profile.columns["x"].n == len(xs)
        assert got.profile.columns["x"].mean == pytest.approx(xs.mean(), rel=1e-9)

    scenario(test, bucket)
    assert bucket.lists == -(-59 // 7)
    assert all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/") for a in bucket.auth)
    assert "exports/day=2/part-000.parquet" not in bucket.gets
    assert not any(k.endswith(("_SUCCESS", ".crc", ".txt")) for k in bucket.gets)


def test_more_data_objects_than_max_objects_refuse_the_window_unread() -> None:
    bucket = Bucket({f"{PREFIX}p-{i:04d}.csv": csv(i, 3) for i in range(30)}, page=10)

    async def test(base: str) -> None:
        error = await refused(part(base, max_objects=25))
        assert error.reason == "PartitionsTooLarge"
        assert "more than 25 data objects" in str(error)

    scenario(test, bucket)
    assert bucket.gets == []  # nothing was read


def test_an_endless_listing_stops_at_its_page_budget() -> None:
    """A hostile server: every page truncated, a fresh token each time, no data."""
    bucket = Bucket({f"{PREFIX}_SUCCESS": b""}, page=1)
    bucket.endless = True

    async def test(base: str) -> None:
        error = await refused(part(base, max_objects=1))
        assert error.reason == "PartitionsTooLarge"
        assert "did not end within" in str(error)

    scenario(test, bucket)
    assert bucket.lists == 1 + EXTRA_LIST_PAGES


def test_a_huge_object_is_refused_by_its_listed_size_before_any_get() -> None:
    bucket = Bucket({f"{PREFIX}a.csv": csv(1), f"{PREFIX}b.csv": csv(2)})
    bucket.listed_sizes[f"{PREFIX}b.csv"] = 50 << 30  # 50 GiB

    async def test(base: str) -> None:
        error = await refused(part(base))
        assert error.reason == "PartitionsTooLarge"
        assert f"{PREFIX}b.csv is 53,687,091,200 bytes" in str(error)

    scenario(test, bucket)
    assert bucket.gets == []


def test_an_object_larger_than_listed_is_cut_off_by_the_fence() -> None:
    bucket = Bucket({f"{PREFIX}a.csv": csv(1, n=5000)})
    bucket.listed_sizes[f"{PREFIX}a.csv"] = 10  # the listing lies
    small = Outbound(OutboundPolicy.parse(["127.0.0.0/8"]), ResponseLimits(reference=4096))

    async def test(base: str) -> None:
        error = await refused(part(base), small)
        assert error.reason == "PartitionsTooLarge"
        assert "over the 4096-byte limit" in str(error)

    scenario(test, bucket)


@pytest.mark.parametrize(
    "key",
    [
        "exports/day=1/../../secrets/x.csv",  # climbs out of the prefix on the server
        "exports/other/x.csv",  # not under the prefix
        "exports/day=1//x.csv",  # an empty segment
    ],
)
def test_a_listed_key_outside_the_prefix_refuses_the_window(key: str) -> None:
    bucket = Bucket({f"{PREFIX}a.csv": csv(1)})
    bucket.listing_body = (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<IsTruncated>false</IsTruncated><Contents><Key>{escape(key)}</Key><Size>3</Size>"
        "</Contents></ListBucketResult>"
    ).encode()

    async def test(base: str) -> None:
        error = await refused(part(base))
        assert error.reason == "PartitionsUnreadable"
        assert "not a safe key under the prefix" in str(error)

    scenario(test, bucket)
    assert bucket.gets == []


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
            "DOCTYPE",
        ),
        (b"<ListBucketResult><Contents><Key>x", "not XML"),
        (b"<Error><Code>Nope</Code></Error>", "not a ListBucketResult"),
        (
            b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
            "no continuation",
        ),
        (
            b"<ListBucketResult><Contents><Key>exports/day=1/a.csv</Key><Size>-5</Size>"
            b"</Contents></ListBucketResult>",
            "without a key or a size",
        ),
    ],
)
def test_a_malformed_listing_is_unreadable_not_a_crash(body: bytes, said: str) -> None:
    bucket = Bucket({})
    bucket.listing_body = body

    async def test(base: str) -> None:
        error = await refused(part(base))
        assert error.reason == "PartitionsUnreadable"
        assert said in str(error)

    scenario(test, bucket)


def test_an_oversized_listing_page_is_refused_by_the_fence() -> None:
    bucket = Bucket({})
    bucket.listing_body = b"<ListBucketResult>" + b" " * (5 << 20) + b"</ListBucketResult>"

    async def test(base: str) -> None:
        error = await refused(part(base))
        assert error.reason == "PartitionsTooLarge"

    scenario(test, bucket)


def test_no_data_object_and_access_denied_are_reasons() -> None:
    bucket = Bucket({f"{PREFIX}_SUCCESS": b""})

    async def test(base: str) -> None:
        error = await refused(part(base))
        assert error.reason == "PartitionsUnreadable"
        assert "no data object" in str(error)
        bucket.status = 403
        error = await refused(part(base))
        assert error.reason == "PartitionsAccessDenied"
        assert "HTTP 403 AccessDenied" in str(error)
        assert "Secret creds" in str(error)

    scenario(test, bucket)


def test_the_fence_refuses_a_blocked_endpoint_before_listing() -> None:
    bucket = Bucket({f"{PREFIX}a.csv": csv(1)})

    async def test(base: str) -> None:
        error = await refused(part(base), Outbound())  # loopback refused by default
        assert error.reason == "OutboundRefused"

    scenario(test, bucket)
    assert bucket.lists == 0


def test_credentials_come_from_the_monitors_namespace_only() -> None:
    bucket = Bucket({f"{PREFIX}a.csv": csv(1)})
    spec = part("http://127.0.0.1:9")
    assert spec.object_storage is not None
    other = PartitionsSpec(
        object_storage=ObjectStorageSpec(
            **{**spec.object_storage.__dict__, "secret_name": "elsewhere"}
        )
    )
    secrets = Secrets()

    async def test(base: str) -> None:
        with pytest.raises(PartitionsError) as info:
            await window(other, secrets=secrets)
        assert info.value.reason == "SecretNotFound"

    scenario(test, bucket)
    assert secrets.calls == [("Secret", "ml", "elsewhere")]
    assert bucket.lists == 0


def test_a_full_tmp_is_unavailable_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = Bucket({f"{PREFIX}a.csv": csv(1)})

    def full(self: object, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_bytes", full)

    async def test(base: str) -> None:
        error = await refused(part(base))
        assert error.reason == "PartitionsUnavailable"
        assert "No space left on device" in str(error)

    scenario(test, bucket)
