"""RunSlots, the asyncio side of fair shares: real tasks, real cancellation."""

from __future__ import annotations

import asyncio

import pytest

from modelmonitor.engine.slots import RunSlots


async def _hold(slots: RunSlots, namespace: str, release: asyncio.Event) -> None:
    async with slots.hold(namespace):
        await release.wait()


def test_one_namespace_never_holds_more_than_its_share() -> None:
    async def scenario() -> None:
        slots = RunSlots(8)
        release = asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, "hostile", release)) for _ in range(20)]
        await asyncio.sleep(0.01)
        assert slots.running == {"hostile": 6}  # 8 minus a reserve of 2
        assert slots.waiting("hostile") == 14
        # a newcomer finds a free slot at once, although 14 hostile runs queued before it
        async with asyncio.timeout(1):
            async with slots.hold("team"):
                assert slots.running["team"] == 1
        release.set()
        await asyncio.gather(*tasks)
        assert slots.running == {}
        assert slots.in_use == 0

    asyncio.run(scenario())


def test_a_freed_slot_goes_to_the_namespace_below_its_share() -> None:
    async def scenario() -> None:
        slots = RunSlots(4)
        hostile = asyncio.Event()
        stuck = [asyncio.create_task(_hold(slots, "hostile", hostile)) for _ in range(10)]
        await asyncio.sleep(0.01)
        team = asyncio.Event()
        teams = [asyncio.create_task(_hold(slots, f"team-{i}", team)) for i in range(3)]
        await asyncio.sleep(0.01)
        # hostile holds 3 (its share when alone), team-0 the reserved slot; the others wait
        assert slots.running == {"hostile": 3, "team-0": 1}
        hostile.clear()
        stuck[0].cancel()  # one hostile run ends (say, at its deadline)
        await asyncio.sleep(0.01)
        assert slots.running.get("team-1") == 1  # not another hostile run
        assert slots.running["hostile"] == 2
        hostile.set()
        team.set()
        await asyncio.gather(*stuck[1:], *teams)
        assert slots.in_use == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaks_no_slot() -> None:
    async def scenario() -> None:
        slots = RunSlots(1)
        release = asyncio.Event()
        holder = asyncio.create_task(_hold(slots, "a", release))
        await asyncio.sleep(0.01)
        waiters = [asyncio.create_task(_hold(slots, "b", release)) for _ in range(5)]
        await asyncio.sleep(0.01)
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert slots.waiting("b") == 0
        release.set()
        await holder
        assert slots.in_use == 0
        async with asyncio.timeout(1), slots.hold("c"):
            assert slots.in_use == 1

    asyncio.run(scenario())


def test_a_configured_cap_bounds_every_namespace() -> None:
    async def scenario() -> None:
        slots = RunSlots(16, per_namespace=2)
        release = asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, "a", release)) for _ in range(5)]
        await asyncio.sleep(0.01)
        assert slots.running == {"a": 2}
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RunSlots(0)
