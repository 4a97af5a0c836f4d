"""The run loop delivers the outbox: after a run, on backoff, and after a restart.

The loop, the Remediator and the outbox are the real ones; the runner, the status writer
and the clock are the unit suite's fakes (tests/unit/operator/test_runloop.py), and the
POST is a recording function standing in for the fenced one (our own ``Post`` interface).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

from modelmonitor.adapters.webhook import HttpResponse
from modelmonitor.engine.remediation import Remediator
from modelmonitor.engine.runloop import LoopDeps, run_loop
from modelmonitor.engine.slots import RunSlots
from tests.unit.actions.fake_api import FakeApi
from tests.unit.operator.test_runloop import Clock, Runner, Stopped, Writer, body


class Receiver:
    """Answers ``statuses`` in turn (then 200) and records every POST."""

    def __init__(self, clock: Clock, statuses: tuple[int, ...] = ()) -> None:
        self.clock = clock
        self.statuses = list(statuses)
        self.got: list[tuple[Any, str, int]] = []

    def __call__(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> HttpResponse:
        status = self.statuses.pop(0) if self.statuses else 200
        self.got.append((self.clock.now, headers["X-ModelMonitor-Notice-Id"], status))
        return HttpResponse(status, {})


def monitor() -> dict[str, Any]:
    obj = body("60s")
    obj["metadata"]["uid"] = "uid-1"
    obj["spec"]["actions"] = {"consecutiveBreaches": 1}
    obj["spec"]["alerting"] = {
        "sinks": [{"name": "hook", "type": "webhook", "secretRef": {"name": "s", "key": "url"}}]
    }
    return obj


def loop(obj: dict[str, Any], clock: Clock, receiver: Receiver, limit: float) -> list[Any]:
    api = FakeApi()
    api.secrets[("ml", "s", "url")] = "https://hooks.example/in"
    counted: list[Any] = []
    deps = LoopDeps(
        Runner(clock),
        Writer(obj),
        RunSlots(1),
        lambda event: None,
        lambda *_: None,
        clock,
        remediator=Remediator(api=api, executors={}, clock=clock, post=receiver),
        on_notification=lambda *labels: counted.append(labels),
    )
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, limit), deps, idle_seconds=1))
    return counted


def test_the_opening_is_delivered_right_after_the_run_that_confirmed_it() -> None:
    clock = Clock()
    obj = monitor()
    receiver = Receiver(clock)
    counted = loop(obj, clock, receiver, limit=30)
    incident = obj["status"]["incident"]["id"]
    assert [n for _, n, _ in receiver.got] == [f"{incident}-opened"]
    assert obj["status"]["alerting"]["outbox"] == []
    assert counted == [("hook", "webhook", "delivered")]


def test_a_failing_receiver_is_retried_on_the_backoff_between_runs() -> None:
    clock = Clock()
    obj = monitor()
    receiver = Receiver(clock, statuses=(503, 503, 503))
    counted = loop(obj, clock, receiver, limit=50)
    times = [t for t, _, _ in receiver.got]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # 5 s, 10 s, 20 s (within the loop's 1 s polling), all before the next run at 60 s
    assert [round(g) for g in gaps] == [5, 10, 20]
    assert [s for _, _, s in receiver.got] == [503, 503, 503, 200]
    assert [c[2] for c in counted] == ["retrying", "retrying", "retrying", "delivered"]


def test_a_notice_queued_before_a_restart_is_sent_by_the_next_operator() -> None:
    clock = Clock()
    obj = monitor()
    # the first operator queued the opening, could not deliver it, and stopped
    dead = Receiver(clock, statuses=(599,) * 100)
    loop(obj, clock, dead, limit=3)
    queued = [e["id"] for e in obj["status"]["alerting"]["outbox"]]
    assert len(queued) == 1
    receiver = Receiver(clock)
    loop(obj, clock, receiver, limit=400)  # a new loop: status is all it has
    assert receiver.got[0][1] == queued[0]
    assert obj["status"]["alerting"]["outbox"] == []
