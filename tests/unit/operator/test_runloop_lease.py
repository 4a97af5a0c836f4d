"""The run loop behind the Lease's fence: a standby never runs, writes or acts, and a
replica that loses the Lease stops before its next step (no cluster; fake clock)."""

from __future__ import annotations

import asyncio
from typing import Any

from modelmonitor.engine.remediation import Remediator
from modelmonitor.engine.runloop import LoopDeps, run_loop
from modelmonitor.engine.slots import RunSlots
from tests.unit.actions.fake_api import FakeApi
from tests.unit.operator.test_runloop import (
    T0,
    Clock,
    CountingExecutor,
    Runner,
    Stopped,
    Writer,
    body,
    remediating_body,
)


class Switch:
    """Leadership that a test turns on and off; counts the waits of a standby."""

    def __init__(self, leading: bool) -> None:
        self.on = leading
        self.waits = 0

    def leading(self) -> bool:
        return self.on

    async def wait_leading(self, timeout: float) -> None:
        self.waits += 1
        await asyncio.sleep(0)


def deps_for(
    obj: dict[str, Any],
    clock: Clock,
    leader: Any,
    executor: CountingExecutor,
    runner: Runner | None = None,
) -> tuple[LoopDeps, Writer]:
    writer = Writer(obj)
    remediator = Remediator(api=FakeApi(), executors={"notify": executor}, clock=clock)
    deps = LoopDeps(
        runner or Runner(clock),
        writer,
        RunSlots(1),
        lambda event: None,
        lambda *_: None,
        clock,
        remediator=remediator,
        leader=leader,
    )
    return deps, writer


def test_a_standby_never_runs_writes_or_acts() -> None:
    clock = Clock()
    runner = Runner(clock)
    obj = remediating_body()
    obj["status"]["incident"] = {
        "id": "m-1",
        "state": "Remediating",
        "acted": {"notify": "pending"},
        "pending": [{"id": "m-1-notify-1", "action": "notify", "incident": "m-1"}],
    }
    executor = CountingExecutor()
    leader = Switch(False)
    deps, writer = deps_for(obj, clock, leader, executor, runner)
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 120), deps))
    assert runner.starts == []
    assert writer.patches == []
    assert executor.requests == []  # the pending request waits for the leader
    assert leader.waits > 0


def test_a_standby_that_becomes_leader_carries_out_the_pending_request_once() -> None:
    clock = Clock()
    obj = remediating_body()
    pending = {"id": "m-1-notify-1", "action": "notify", "incident": "m-1", "trigger": "drift"}
    obj["status"]["incident"] = {
        "id": "m-1",
        "state": "Remediating",
        "acted": {"notify": "pending"},
        "pending": [pending],
    }
    executor = CountingExecutor()
    leader = Switch(False)

    class TakeOver(Stopped):
        async def wait(self, timeout: float | None = None) -> bool:
            if (clock.now - T0).total_seconds() >= 20:
                leader.on = True  # the old holder's lease ran out
            return await super().wait(timeout)

    deps, _ = deps_for(obj, clock, leader, executor)
    asyncio.run(run_loop("ml", "m", obj, TakeOver(clock, 60), deps))
    assert [r.id for r in executor.requests] == [pending["id"]]
    assert obj["status"]["incident"]["pending"] == []


def test_the_lease_lost_after_the_decision_leaves_the_action_to_the_next_leader() -> None:
    """Fencing right before the action: the intent is written, nothing is carried out."""
    clock = Clock()
    obj = remediating_body()
    executor = CountingExecutor()
    leader = Switch(True)
    deps, writer = deps_for(obj, clock, leader, executor)
    real = writer.update_monitor_status

    def losing_after_the_intent(namespace: str, name: str, compute: Any) -> Any:
        written = real(namespace, name, compute)
        if written and (written[1].get("incident") or {}).get("pending"):
            leader.on = False  # the renewal failed while the intent was being written
        return written

    writer.update_monitor_status = losing_after_the_intent  # type: ignore[method-assign]
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 400), deps))
    assert executor.requests == []
    assert [p["action"] for p in obj["status"]["incident"]["pending"]] == ["notify"]


def test_a_verdict_finished_after_the_lease_was_lost_is_not_written() -> None:
    clock = Clock()
    leader = Switch(True)

    class LosingRunner(Runner):
        async def run(self, namespace: str, name: str, spec: Any, status: Any) -> Any:
            report = await super().run(namespace, name, spec, status)
            leader.on = False  # lost while the run was under way
            return report

    obj = body("60s")
    deps, writer = deps_for(obj, clock, leader, CountingExecutor(), LosingRunner(clock))
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 200), deps))
    assert writer.patches == []
