"""Random and mutated hostile input to every parser of untrusted data.

The spec parser, the CloudEvents decoder, the saved-profile loader and the reference
loaders each get random documents, mutations of good ones and random bytes: each may
refuse them only with its own error type (never another exception, never a crash of
the process) and allocates a bounded amount of memory per example (tracemalloc).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmonitor.core.codecs.cloudevents import (
    BATCH_CONTENT_TYPE,
    REQUEST_TYPE,
    RESPONSE_TYPE,
    STRUCTURED_CONTENT_TYPE,
    MalformedEventError,
    parse_events,
)
from modelmonitor.core.dataset import Dataset, Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.spec import SpecError, parse_spec
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.profile_check import ProfileError, parse_profile
from modelmonitor.sources.reference import ColumnPlan, ReferenceLoadError, parse_reference_bytes
from tests.unit.fuzz.strategies import JSON, mutated

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[3]
#: Examples per test: 150 keeps the file under 30 s. A deep run:
#: ``FUZZ_EXAMPLES=10000 pytest tests/unit/fuzz --timeout=0`` (minutes per test).
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def bounded(limit: int = 32 * MiB) -> Iterator[None]:
    """Fail when the block allocates more than ``limit`` bytes at its peak."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak allocation {peak / MiB:.1f} MiB"


def _refuses_only(error: type[BaseException], action: Callable[[], Any]) -> None:
    with bounded(), suppress(error):
        action()


# --- the spec parser ------------------------------------------------------------------------


def _example_specs() -> list[Any]:
    specs = []
    for path in sorted((ROOT / "docs" / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ModelMonitor":
                specs.append(doc["spec"])
    assert specs
    return specs


SPECS = _example_specs()


@FUZZ
@given(spec=st.one_of(mutated(SPECS), JSON))
def test_the_spec_parser_raises_only_spec_errors(spec: Any) -> None:
    if not isinstance(spec, dict):
        spec = {"value": spec}
    _refuses_only(SpecError, lambda: parse_spec(spec))


# --- the CloudEvents decoder -------------------------------------------------------------------

_GOOD_DATA = [
    {"instances": [[1.0, 2.0], [3.0, 4.0]]},
    {"predictions": [0, 1]},
    {"inputs": [{"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]}]},
    {"outputs": [{"name": "p", "shape": [2], "datatype": "INT64", "data": [0, 1]}]},
]
_GOOD_EVENTS = [
    {
        "specversion": "1.0",
        "id": "x",
        "type": kind,
        "source": "s",
        "datacontenttype": "application/json",
        "data": data,
    }
    for kind in (REQUEST_TYPE, RESPONSE_TYPE)
    for data in _GOOD_DATA
]
_HEADER_NAMES = st.sampled_from(
    ["ce-specversion", "ce-type", "ce-id", "ce-time", "ce-namespace", "ce-source", "ce-endpoint"]
)


@st.composite
def cloud_requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    media = draw(
        st.sampled_from(
            [STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE, "application/json", "", "text/plain"]
        )
    )
    headers = {"Content-Type": media}
    if draw(st.booleans()):
        headers.update(
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-type": draw(st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE, "other"])),
            }
        )
    headers.update(draw(st.dictionaries(_HEADER_NAMES, st.text(max_size=30), max_size=4)))
    body_kind = draw(st.sampled_from(["bytes", "json", "event", "batch", "data"]))
    if body_kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif body_kind == "json":
        body = json.dumps(draw(JSON)).encode()
    elif body_kind == "event":
        body = json.dumps(draw(mutated(_GOOD_EVENTS))).encode()
    elif body_kind == "batch":
        body = json.dumps(draw(st.lists(mutated(_GOOD_EVENTS), max_size=3))).encode()
    else:
        body = json.dumps(draw(mutated(_GOOD_DATA))).encode()
    return headers, body


@FUZZ
@given(request=cloud_requests())
def test_the_cloudevents_decoder_raises_only_malformed_event_errors(
    request: tuple[dict[str, str], bytes],
) -> None:
    headers, body = request
    _refuses_only(MalformedEventError, lambda: parse_events(headers, body))


# --- the saved-profile loader -------------------------------------------------------------------


def _good_profiles() -> list[Any]:
    rng = np.random.default_rng(3)
    ds = Dataset.from_mapping(
        {"x": list(rng.normal(size=3000)), "c": list(rng.choice(["a", "b"], 3000))}
    )
    features = [Feature("x", "numerical"), Feature("c", "categorical")]
    exact = ReferenceProfile.from_dataset(ds, features, exact_limit=None).to_dict()
    sketched = ReferenceProfile.from_dataset(ds, features, exact_limit=10).to_dict()
    return [exact, sketched]


PROFILES = _good_profiles()


def _use(profile: ReferenceProfile) -> None:
    """What a run does with an accepted profile: read quantiles, bins and counts."""
    for col in profile.columns.values():
        if col.type == "numerical" and col.n:
            col.quantiles(np.array([0.1, 0.5, 0.9]))
            col.bin_proportions(10)
            col.cdf(np.array([0.0]))
        col.missing_share  # noqa: B018


@st.composite
def sketch_bytes_flipped(draw: st.DrawFn) -> Any:
    doc = json.loads(json.dumps(PROFILES[1]))
    col = doc["columns"][0]
    raw = bytearray(base64.b64decode(col["sketch"]))
    for _ in range(draw(st.integers(1, 4))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    col["sketch"] = base64.b64encode(bytes(raw)).decode()
    return doc


@FUZZ
@given(doc=st.one_of(mutated(PROFILES), sketch_bytes_flipped(), JSON, st.binary(max_size=300)))
def test_the_profile_loader_raises_only_profile_errors(doc: Any) -> None:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()

    def load() -> None:
        _use(parse_profile(payload))

    _refuses_only(ProfileError, load)


# --- the reference loaders -----------------------------------------------------------------------


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


_GOOD_FILES = {
    "csv": b"a,b\n1,x\n2,y\n3,x\n",
    "jsonl": b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n',
    "parquet": _parquet(pa.table({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]})),
    "npy": (lambda b: (np.save(b, np.arange(6.0).reshape(3, 2)), b.getvalue())[1])(io.BytesIO()),
    "profile": json.dumps(PROFILES[1]).encode(),
}


@st.composite
def reference_payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(_GOOD_FILES)))
    good = bytearray(_GOOD_FILES[fmt])
    kind = draw(st.sampled_from(["random", "flipped", "cut", "gzip"]))
    if kind == "random":
        payload = draw(st.binary(max_size=400))
    elif kind == "flipped":
        for _ in range(draw(st.integers(1, 6))):
            good[draw(st.integers(0, len(good) - 1))] = draw(st.integers(0, 255))
        payload = bytes(good)
    elif kind == "cut":
        payload = bytes(good[: draw(st.integers(0, len(good)))])
    else:
        payload = gzip.compress(draw(st.binary(max_size=200)) if draw(st.booleans()) else good)
    return fmt, payload


@FUZZ
@given(item=reference_payloads())
def test_the_reference_loaders_raise_only_reference_load_errors(item: tuple[str, bytes]) -> None:
    fmt, payload = item
    limits = ReadLimits(max_decoded_bytes=4 * MiB, max_rows=10_000, max_cells=100_000)

    def load() -> None:
        loaded = parse_reference_bytes(
            payload,
            fmt=fmt,
            name_hint=f"ref.{fmt}",
            plan=ColumnPlan(),
            version="v",
            source="fuzz",
            limits=limits,
        )
        _use(loaded.profile)

    _refuses_only(ReferenceLoadError, load)
