"""Reference loading from every source, cached until the source changes.

URL loading talks to a real HTTP server on loopback (aiohttp's test server).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any, get_args, get_type_hints

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from modelmonitor.core.dataset import CategoricalColumn, Dataset, Feature
from modelmonitor.core.spec import FeatureSpec, ReferenceSpec
from modelmonitor.sources.reference import (
    LOADERS,
    PROBE_POOL_ROWS,
    ColumnPlan,
    ReferenceCache,
    ReferenceLoadError,
    build_reference,
)
from modelmonitor.sources.registry import UnknownSourceError
from tests.unit.loopback import LOOPBACK_ALLOWED

CSV = "amount,country\n1.5,de\n2.5,fr\n3.5,de\n"


class Objects:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls = 0

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls += 1
        return self.items.get((kind, name))


def cm(
    data: dict[str, str], version: str = "1", binary: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "data": data, "binaryData": binary or {}}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_configmap_csv_loaded_once_until_changed() -> None:
    objects = Objects()
    objects.items[("ConfigMap", "ref")] = cm({"reference.csv": CSV})
    cache = ReferenceCache(objects)
    ref = ReferenceSpec(source="configMap", config_map_name="ref", config_map_key="reference.csv")

    async def scenario() -> None:
        first = await cache.load("ml", "m", ref)
        assert first.profile.n_rows == 3
        assert [f.name for f in first.features] == ["amount", "country"]
        assert first.rows is not None
        assert first.rows.n_rows == 3
        again = await cache.load("ml", "m", ref)
        assert again is first  # same resourceVersion: not re-profiled
        objects.items[("ConfigMap", "ref")] = cm({"reference.csv": CSV + "4.5,it\n"}, version="2")
        changed = await cache.load("ml", "m", ref)
        assert changed is not first
        assert changed.profile.n_rows == 4

    run(scenario())


def test_configmap_binary_parquet_and_declared_types() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"code": [1, 2, 1, 3], "x": [0.1, 0.2, 0.3, 0.4]}), buf)
    objects = Objects()
    objects.items[("ConfigMap", "ref")] = cm(
        {}, binary={"ref.parquet": base64.b64encode(buf.getvalue()).decode()}
    )
    ref = ReferenceSpec(source="configMap", config_map_name="ref", config_map_key="ref.parquet")
    loaded = run(
        ReferenceCache(objects).load(
            "ml",
            "m",
            ref,
            ColumnPlan.from_spec((FeatureSpec("code", "categorical"), FeatureSpec("x"))),
        )
    )
    assert [(f.name, f.type) for f in loaded.features] == [
        ("code", "categorical"),
        ("x", "numerical"),
    ]


def test_configmap_missing_and_key_missing() -> None:
    objects = Objects()
    cache = ReferenceCache(objects)
    ref = ReferenceSpec(source="configMap", config_map_name="ref", config_map_key="r.csv")
    with pytest.raises(ReferenceLoadError) as info:
        run(cache.load("ml", "m", ref))
    assert info.value.reason == "ReferenceNotFound"
    objects.items[("ConfigMap", "ref")] = cm({"other.csv": CSV})
    with pytest.raises(ReferenceLoadError, match="no such key"):
        run(cache.load("ml", "m", ref))


def test_unparsable_reference_is_reported() -> None:
    objects = Objects()
    objects.items[("ConfigMap", "ref")] = cm({"r.parquet": "not parquet"})
    ref = ReferenceSpec(source="configMap", config_map_name="ref", config_map_key="r.parquet")
    with pytest.raises(ReferenceLoadError) as info:
        run(ReferenceCache(objects).load("ml", "m", ref))
    assert info.value.reason == "ReferenceUnreadable"
    assert "ConfigMap ml/ref" in str(info.value)


def test_inline_rows_with_declared_categorical_codes() -> None:
    rows = (
        {"plan": 1, "monthly": 20.0},
        {"plan": 2, "monthly": 55.0},
        {"plan": 1, "monthly": None},
    )
    ref = ReferenceSpec(source="inline", inline_rows=rows)
    loaded = run(
        ReferenceCache(Objects()).load(
            "ml", "m", ref, ColumnPlan.from_spec((FeatureSpec("plan", "categorical"),))
        )
    )
    assert [(f.name, f.type) for f in loaded.features] == [("plan", "categorical")]
    assert loaded.rows is not None
    col = loaded.rows["plan"]
    assert isinstance(col, CategoricalColumn)
    assert sorted(col.categories) == ["1", "2"]


def test_saved_profile_file(tmp_path: Any) -> None:
    ds = Dataset.from_mapping({"a": np.arange(50.0)})
    profile = build_reference(ds, version="v", source="s").profile
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile.to_dict()))
    cache = ReferenceCache(Objects(), volume_root=str(tmp_path))
    loaded = run(cache.load("ml", "m", ReferenceSpec(source="pvc", path="profile.json")))
    assert loaded.rows is None
    assert loaded.profile.n_rows == 50


def test_missing_file(tmp_path: Any) -> None:
    ref = ReferenceSpec(source="pvc", claim_name="data", path="nope.csv")
    with pytest.raises(ReferenceLoadError) as info:
        run(ReferenceCache(Objects(), volume_root=str(tmp_path)).load("ml", "m", ref))
    assert info.value.reason == "ReferenceNotFound"
    assert str(tmp_path) not in str(info.value)  # the path as the spec wrote it


# -- pvc: the file is read inside the claim's mount, never outside ------------------------


@pytest.fixture
def volume(tmp_path: Any) -> Any:
    """A mounted claim with ``data/ref.csv``, next to a file it must not reach."""
    root = tmp_path / "mount"
    (root / "data").mkdir(parents=True)
    (root / "data" / "ref.csv").write_text(CSV)
    (tmp_path / "token").write_text("amount,country\n9,secret\n")
    return root


def load_pvc(root: Any, path: str) -> Any:
    ref = ReferenceSpec(source="pvc", claim_name="data", path=path)
    return run(ReferenceCache(Objects(), volume_root=str(root)).load("ml", "m", ref))


@pytest.mark.parametrize("path", ["data/ref.csv", "/data/ref.csv", "./data//ref.csv"])
def test_pvc_path_is_inside_the_claim(volume: Any, path: str) -> None:
    loaded = load_pvc(volume, path)
    assert loaded.rows is not None
    assert loaded.rows.n_rows == 3
    assert loaded.source == f"pvc data: {path}"


@pytest.mark.parametrize("path", ["../token", "data/../../token", "/../token", ".."])
def test_pvc_path_that_climbs_out_is_refused(volume: Any, path: str) -> None:
    with pytest.raises(ReferenceLoadError) as info:
        load_pvc(volume, path)
    assert info.value.reason == "ReferenceUnreadable"
    assert "inside the volume" in str(info.value)


def test_a_link_on_the_volume_that_leads_outside_is_refused(volume: Any) -> None:
    (volume / "data" / "escape.csv").symlink_to(volume.parent / "token")
    (volume / "up").symlink_to(volume.parent)
    for path in ("data/escape.csv", "up/token"):
        with pytest.raises(ReferenceLoadError) as info:
            load_pvc(volume, path)
        assert info.value.reason == "ReferenceUnreadable"
        assert "leads outside the volume" in str(info.value)
        assert "token" not in str(info.value).replace(path, "")  # the target is not named


def test_a_link_that_stays_on_the_volume_is_followed(volume: Any) -> None:
    (volume / "current.csv").symlink_to(volume / "data" / "ref.csv")
    assert load_pvc(volume, "current.csv").rows.n_rows == 3


def test_a_directory_is_not_a_reference(volume: Any) -> None:
    with pytest.raises(ReferenceLoadError) as info:
        load_pvc(volume, "/data/")
    assert info.value.reason == "ReferenceNotFound"


def test_a_pvc_reference_outside_a_job_pod_is_unavailable(volume: Any) -> None:
    ref = ReferenceSpec(source="pvc", claim_name="data", path=str(volume / "data" / "ref.csv"))
    with pytest.raises(ReferenceLoadError) as info:
        run(ReferenceCache(Objects()).load("ml", "m", ref))  # no mount: the operator itself
    assert info.value.reason == "ReferenceUnavailable"


def test_extras_kept_when_present_and_typed() -> None:
    objects = Objects()
    objects.items[("ConfigMap", "ref")] = cm({"r.csv": "a,b,prediction\n1,2,0\n3,4,1\n"})
    ref = ReferenceSpec(source="configMap", config_map_name="ref", config_map_key="r.csv")
    plan = ColumnPlan.from_spec(
        (FeatureSpec("a"),),
        (Feature("prediction", "categorical"), Feature("label", "categorical")),
    )
    loaded = run(ReferenceCache(objects).load("ml", "m", ref, plan))
    assert [(f.name, f.type) for f in loaded.features] == [
        ("a", "numerical"),
        ("prediction", "categorical"),
    ]
    with pytest.raises(ReferenceLoadError, match="no column"):
        run(
            ReferenceCache(objects).load("ml", "x", ref, ColumnPlan.from_spec((FeatureSpec("zz"),)))
        )


def test_probe_pool_is_bounded() -> None:
    ds = Dataset.from_mapping({"a": np.arange(PROBE_POOL_ROWS * 3, dtype=float)})
    loaded = build_reference(ds, ColumnPlan((Feature("a", "numerical"),)), version="v", source="s")
    assert loaded.rows is not None
    assert loaded.rows.n_rows == PROBE_POOL_ROWS
    assert loaded.profile.n_rows == PROBE_POOL_ROWS * 3


async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_url_etag_and_size_limit() -> None:
    hits: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(request.headers.get("If-None-Match"))
        if request.match_info["name"] == "big.csv":
            return web.Response(body=b"a\n" + b"1\n" * 5000)
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304)
        return web.Response(body=CSV.encode(), headers={"ETag": '"v1"'})

    async def scenario() -> None:
        runner, base = await _serve(handler)
        try:
            cache = ReferenceCache(Objects(), max_bytes=4096, outbound=LOOPBACK_ALLOWED)
            ref = ReferenceSpec(source="url", url=f"{base}/reference.csv")
            first = await cache.load("ml", "m", ref)
            second = await cache.load("ml", "m", ref)
            assert second is first
            assert hits == [None, '"v1"']
            with pytest.raises(ReferenceLoadError) as info:
                await cache.load("ml", "big", ReferenceSpec(source="url", url=f"{base}/big.csv"))
            assert info.value.reason == "ReferenceTooLarge"
        finally:
            await runner.cleanup()

    run(scenario())


def test_unreachable_url() -> None:
    ref = ReferenceSpec(source="url", url="http://127.0.0.1:9/reference.csv")
    with pytest.raises(ReferenceLoadError) as info:
        run(
            ReferenceCache(Objects(), http_timeout=2, outbound=LOOPBACK_ALLOWED).load(
                "ml", "m", ref
            )
        )
    assert info.value.reason == "ReferenceUnavailable"


def test_monitors_sharing_a_reference_share_one_entry() -> None:
    objects = Objects()
    objects.items[("ConfigMap", "ref")] = cm({"reference.csv": CSV})
    cache = ReferenceCache(objects, max_entries=2)
    ref = ReferenceSpec(source="configMap", config_map_name="ref", config_map_key="reference.csv")

    async def scenario() -> None:
        loaded = [await cache.load("ml", f"m{i}", ref) for i in range(10)]
        assert all(x is loaded[0] for x in loaded)  # profiled once for ten monitors

    run(scenario())


def test_every_reference_source_of_the_spec_has_its_loader() -> None:
    sources = get_args(get_type_hints(ReferenceSpec)["source"])
    assert set(LOADERS.keys()) == set(sources)
    assert [LOADERS[s].key for s in sources] == list(sources)


def test_an_unknown_reference_source_is_an_error_not_a_file_read() -> None:
    objects = Objects()
    ref = ReferenceSpec(source="hdfs", path="/etc/hostname")  # type: ignore[arg-type]
    with pytest.raises(UnknownSourceError, match="no reference source 'hdfs'; known: configMap"):
        run(ReferenceCache(objects).load("ml", "m", ref))
    assert objects.calls == 0
