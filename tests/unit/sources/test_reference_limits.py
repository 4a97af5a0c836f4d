"""The operator's reference path against inputs that decode to huge tables.

A ConfigMap (binaryData) or a URL can hold a 530 KB gzip that inflates to 512 MiB, or a
180 KiB Parquet file of 40M rows; decoding either whole took 1.4 GiB and more, again
after every restart. Each is refused before decoding, with a status reason, and the
refusal is remembered while the source does not change.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from modelmonitor.adapters.files import ReadLimits
from modelmonitor.core.spec import ReferenceSpec
from modelmonitor.sources.reference import ReferenceCache, ReferenceLoadError
from tests.hostile_files import MiB, gzip_bomb, parquet_claiming_rows


class CountingData(dict[str, str]):
    """A ConfigMap's binaryData that counts how often its content is read."""

    reads = 0

    def __getitem__(self, key: str) -> str:
        type(self).reads += 1
        return super().__getitem__(key)


class Objects:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.items.get(name)


def _configmap(key: str, content: bytes, version: str = "1") -> dict[str, Any]:
    data = CountingData({key: base64.b64encode(content).decode()})
    return {"metadata": {"resourceVersion": version}, "data": {}, "binaryData": data}


def _ref(key: str) -> ReferenceSpec:
    return ReferenceSpec(source="configMap", config_map_name="ref", config_map_key=key)


def _load_peak(cache: ReferenceCache, ref: ReferenceSpec) -> tuple[int, ReferenceLoadError]:
    tracemalloc.start()
    try:
        with pytest.raises(ReferenceLoadError) as info:
            asyncio.run(cache.load("ml", "m", ref))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, info.value


def test_a_gzip_bomb_reference_is_refused_early(tmp_path: Path) -> None:
    objects = Objects()
    objects.items["ref"] = _configmap("ref.csv.gz", gzip_bomb(tmp_path / "b.gz").read_bytes())
    peak, error = _load_peak(ReferenceCache(objects), _ref("ref.csv.gz"))
    assert error.reason == "ReferenceTooLarge"
    assert "reference decodes to more than 5,000,000 rows" in str(error)
    assert "modelmonitor baseline" in str(error)
    # the payload itself is ~0.7 MB of base64; inflating 512 MiB would need 512 MiB
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_a_parquet_reference_of_40m_rows_is_refused_before_decoding(tmp_path: Path) -> None:
    objects = Objects()
    content = parquet_claiming_rows(tmp_path / "p.parquet").read_bytes()
    objects.items["ref"] = _configmap("ref.parquet", content)
    peak, error = _load_peak(ReferenceCache(objects), _ref("ref.parquet"))
    assert error.reason == "ReferenceTooLarge"
    assert "40,000,000 rows, more than 5,000,000" in str(error)
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_a_refusal_is_remembered_until_the_source_changes() -> None:
    objects = Objects()
    csv = b"a,b\n" + b"1,x\n" * 50
    objects.items["ref"] = _configmap("ref.csv", csv)
    cache = ReferenceCache(objects, limits=ReadLimits(max_rows=10))
    CountingData.reads = 0
    for _ in range(3):
        with pytest.raises(ReferenceLoadError, match="more than 10 rows"):
            asyncio.run(cache.load("ml", "m", _ref("ref.csv")))
    assert CountingData.reads == 1  # decoded once, not on every run
    objects.items["ref"] = _configmap("ref.csv", b"a,b\n1,x\n", version="2")
    assert asyncio.run(cache.load("ml", "m", _ref("ref.csv"))).profile.n_rows == 1


def test_an_unreachable_source_is_retried() -> None:
    class Failing:
        def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            from modelmonitor.core.cluster import ReferenceLookupError

            raise ReferenceLookupError("API server unavailable")

    cache = ReferenceCache(Failing())
    for _ in range(2):
        with pytest.raises(ReferenceLoadError) as info:
            asyncio.run(cache.load("ml", "m", _ref("ref.csv")))
        assert info.value.reason == "ReferenceUnavailable"
        assert info.value.version is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c.update(n=-1), "columns[0] ('x').n: must be an integer >= 0"),
        (lambda c: c.update(min=5.0, max=1.0), "columns[0] ('x').min: 5.0 is greater than max"),
        (lambda c: c.update(n="many"), "columns[0] ('x').n: must be an integer"),
        (lambda c: c.pop("n_missing"), "columns[0] ('x').n_missing: missing"),
    ],
)
def test_a_tampered_profile_reference_is_refused_naming_the_field(change: Any, field: str) -> None:
    import numpy as np

    from modelmonitor.core.dataset import Dataset, Feature
    from modelmonitor.core.stats.profile import ReferenceProfile

    ds = Dataset.from_mapping({"x": list(np.arange(10.0))})
    doc = ReferenceProfile.from_dataset(ds, [Feature("x", "numerical")]).to_dict()
    change(doc["columns"][0])
    objects = Objects()
    objects.items["ref"] = _configmap("profile.json", json.dumps(doc).encode())
    with pytest.raises(ReferenceLoadError) as info:
        asyncio.run(ReferenceCache(objects).load("ml", "m", _ref("profile.json")))
    assert info.value.reason == "ReferenceUnreadable"
    assert field in str(info.value)


def test_a_run_with_a_refused_reference_is_degraded_and_has_no_verdict(tmp_path: Path) -> None:
    from modelmonitor.core.verdict import degraded_condition
    from tests.unit.operator.test_runner import Objects as Cluster
    from tests.unit.operator.test_runner import monitor, run, runner

    content = parquet_claiming_rows(tmp_path / "p.parquet").read_bytes()
    binary = {"ref.parquet": base64.b64encode(content).decode()}
    cluster = Cluster(
        {("ConfigMap", "ref"): {"metadata": {"resourceVersion": "7"}, "binaryData": binary}}
    )
    spec = monitor(
        reference={"configMapRef": {"name": "ref", "key": "ref.parquet"}},
        data={"probe": {}},
    )
    inline = runner(cluster)
    for _ in range(2):  # the second run reports the remembered refusal
        report = run(spec, inline)
        assert report.problems[0].reason == "ReferenceTooLarge"
        assert "40,000,000 rows" in report.problems[0].message
        assert report.drift.status == "unavailable"
        condition = degraded_condition(report)
        assert (condition.status, condition.reason) == ("True", "ReferenceTooLarge")
