"""``modelmonitor check --current s3://bucket/prefix/``: credentials and endpoint from the
environment, the same reader and caps as a monitor's object-storage window.

The bucket is a local HTTP server playing S3's listing and GETs
(tests/unit/sources/test_prefix_partitions.py); a real S3 server is used end to end in
tests/e2e/test_partitions_object_storage.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from modelmonitor.edge.cli import main
from modelmonitor.edge.offline import UsageError
from modelmonitor.edge.offline_objects import prefix_spec
from tests.unit.sources.test_prefix_partitions import Bucket

PREFIX = "exports/day=1/"


def _table(seed: int, shift: float = 0.0, n: int = 200) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"x": rng.normal(size=n) + shift, "y": rng.normal(size=n)})


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@pytest.fixture
def bucket_url() -> Iterator[tuple[Bucket, str]]:
    objects = {f"{PREFIX}part-{i:02d}.parquet": _parquet(_table(i, 1.0)) for i in range(12)}
    bucket = Bucket(objects, page=5)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", bucket.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    try:
        yield bucket, f"http://127.0.0.1:{holder['port']}"
    finally:
        runner = holder["runner"]
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_prefix_is_checked_like_the_same_rows_in_one_file(
    bucket_url: tuple[Bucket, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket, url = bucket_url
    reference = tmp_path / "reference.parquet"
    pq.write_table(_table(100), reference)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")
    args = ["check", "--reference", str(reference), "--format", "json"]
    assert main([*args, "--current", f"s3://lake/{PREFIX}", "--endpoint-url", url]) == 0
    streamed = json.loads(capsys.readouterr().out)
    one = tmp_path / "one.parquet"
    pq.write_table(pa.concat_tables([_table(i, 1.0) for i in range(12)]), one)
    assert main([*args, "--current", str(one)]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert streamed["current"]["partitions"] == 12
    assert streamed["current"]["rows"] == 12 * 200
    verdicts = {f["name"]: f["drifted"] for f in streamed["features"]}
    assert verdicts == {f["name"]: f["drifted"] for f in whole["features"]}
    assert verdicts == {"x": True, "y": False}
    assert bucket.lists == 3  # 12 keys, 5 a page
    assert all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/") for a in bucket.auth)

    # the fence applies on the command line too: loopback needs OUTBOUND_ALLOW_CIDRS
    monkeypatch.delenv("OUTBOUND_ALLOW_CIDRS")
    assert main([*args, "--current", f"s3://lake/{PREFIX}", "--endpoint-url", url]) == 2
    assert "OutboundRefused" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("current", "env", "said"),
    [
        ("s3://Lake/p/", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "bucket"),
        ("s3://lake/../p/", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "'..'"),
        ("s3://lake", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "empty"),
        ("s3://lake/p/", {"AWS_ACCESS_KEY_ID": "a"}, "AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_bad_prefixes_and_missing_credentials_are_usage_errors(
    current: str, env: dict[str, str], said: str
) -> None:
    with pytest.raises(UsageError, match=said):
        prefix_spec(current, None, env, 1000)


def test_endpoint_and_region_come_from_the_environment() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "AWS_SESSION_TOKEN": "t",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_REGION": "eu-west-1",
    }
    stored = prefix_spec("s3://lake/p/", None, env, 1000).object_storage
    assert stored is not None
    assert (stored.endpoint, stored.region, stored.path_style) == (
        "http://minio:9000",
        "eu-west-1",
        True,
    )
    assert sorted(stored.credentials) == ["accessKeyId", "secretAccessKey", "sessionToken"]
    aws = prefix_spec(
        "s3://lake/p/", None, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, 5
    )
    assert aws.object_storage is not None
    assert (aws.object_storage.endpoint, aws.object_storage.path_style) == (None, False)
    with pytest.raises(UsageError, match="no path"):
        prefix_spec("s3://lake/p/", "http://minio:9000/x", env, 1000)


def test_an_engine_is_refused_for_a_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.parquet"
    pq.write_table(_table(100), reference)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    args = ["check", "--reference", str(reference), "--current", "s3://lake/p/"]
    assert main([*args, "--engine", "dask-local"]) == 2
    err = capsys.readouterr().err
    assert "--engine" in err, err
