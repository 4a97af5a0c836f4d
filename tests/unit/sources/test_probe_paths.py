"""The probe's request path cannot be steered out of the inference route.

The attack: ``target.endpoint.model: ..`` or ``path: /team-a/../admin`` - aiohttp (yarl)
collapses dot segments, even percent-encoded ones, before sending, so the request would
reach ``/v2/infer`` or ``/admin`` instead of the model's route. The parser refuses such
values (tests/unit/operator/test_spec_semantics.py); here a real local HTTP server
records the path that actually arrives for what reaches the probe anyway.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from modelmonitor.core.dataset import Dataset
from modelmonitor.sources.probe import HttpReply, ProbeConfig, probe


class Recorder:
    """Posts with a plain aiohttp session (as production does) and keeps the raw paths."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        async with self.session.post(url, data=body, headers=dict(headers)) as resp:
            return HttpReply(resp.status, await resp.read())


def probe_paths(**config: Any) -> list[str]:
    """Probe a local server with ``config``; return the raw paths it received."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        rows = len(json.loads(await request.read()).get("instances", [0]))
        return web.json_response({"predictions": ["a"] * rows})

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            cfg = ProbeConfig(url=f"http://127.0.0.1:{port}/team-a", retries=0, **config)
            async with aiohttp.ClientSession() as session:
                rows = Dataset({"x": np.array([1.0])})
                await probe(cfg, rows, transport=Recorder(session))
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return seen


def test_model_name_stays_one_segment_of_the_inference_path() -> None:
    assert probe_paths(protocol="v2", model="../../admin") == [
        "/team-a/v2/models/..%2F..%2Fadmin/infer"
    ]
    assert probe_paths(protocol="v1", model="%2e%2e") == ["/team-a/v1/models/%252e%252e:predict"]


def test_json_path_cannot_carry_a_query_or_fragment() -> None:
    assert probe_paths(protocol="json", path="/predict?admin=1#x") == [
        "/team-a/predict%3Fadmin=1%23x"
    ]


@pytest.mark.parametrize(
    "config",
    [
        {"protocol": "v2", "model": ".."},
        {"protocol": "v1", "model": "."},
        {"protocol": "json", "path": "/../admin"},
        {"protocol": "json", "path": "/a/./b"},
        {"protocol": "json", "path": "/x/.."},
    ],
)
def test_dot_segments_are_refused_before_any_request(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"inference path|'\.' or '\.\.' segments"):
        ProbeConfig(url="http://127.0.0.1:9/team-a", **config)
