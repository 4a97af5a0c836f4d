"""Fair shares of the run slots: the pure decision, and queueing measured with many namespaces.

The simulations drive :func:`next_namespace` (what :class:`RunSlots` asks) with a clock of
their own; the same workload under first-come-first-served shows what fairness buys.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from modelmonitor.core.scheduling import namespace_share, next_namespace


def test_the_automatic_share_keeps_a_reserve_for_newcomers() -> None:
    assert namespace_share(16, 1) == 12  # a quarter stays free for namespaces to come
    assert namespace_share(16, 2) == 6
    assert namespace_share(16, 100) == 1  # never zero: every namespace can run
    assert namespace_share(1, 1) == 1
    assert namespace_share(2, 1) == 1


def test_a_configured_cap_replaces_the_automatic_share() -> None:
    assert namespace_share(16, 1, cap=4) == 4
    assert namespace_share(16, 50, cap=4) == 4
    assert namespace_share(16, 1, cap=100) == 16  # never more than the slots


def test_a_namespace_at_its_share_waits_although_slots_are_free() -> None:
    assert next_namespace({"hostile": 12}, {"hostile": 7}, 16) is None
    assert next_namespace({"hostile": 12}, {"hostile": 7, "team": 9}, 16) == "team"
    assert next_namespace({"hostile": 4}, {"hostile": 7}, 16, cap=4) is None


def test_fewest_held_first_then_served_longest_ago() -> None:
    running = {"a": 2, "b": 1}
    assert next_namespace(running, {"a": 1, "b": 5, "c": 9}, 16) == "c"
    assert next_namespace(running, {"a": 1, "b": 5}, 16) == "b"
    assert next_namespace({}, {"x": 3, "y": 2}, 16) == "y"
    assert next_namespace({}, {"x": -1, "y": -1}, 16) == "x"  # never served: in order


def test_no_slot_is_granted_beyond_capacity() -> None:
    assert next_namespace({"a": 1, "b": 1}, {"c": 0}, 2) is None
    assert next_namespace({}, {}, 2) is None


# --- measured queueing ---------------------------------------------------------------------

# (slots held, each waiting namespace's oldest ticket, when each was last served, capacity)
Chooser = Callable[[Mapping[str, int], Mapping[str, int], Mapping[str, int], int], str | None]


def fair(
    running: Mapping[str, int],
    heads: Mapping[str, int],
    served: Mapping[str, int],
    capacity: int,
) -> str | None:
    """What RunSlots asks: turns are when each waiting namespace was last served."""
    return next_namespace(running, {ns: served.get(ns, -1) for ns in heads}, capacity)


def first_come(
    running: Mapping[str, int],
    heads: Mapping[str, int],
    served: Mapping[str, int],
    capacity: int,
) -> str | None:
    """The old single semaphore: the oldest waiting run, whoever it belongs to."""
    if sum(running.values()) >= capacity or not heads:
        return None
    return min(heads, key=lambda ns: heads[ns])


@dataclass
class Simulation:
    """Monitors that run every ``interval`` s for ``duration`` s, on ``capacity`` slots."""

    capacity: int
    choose: Chooser
    monitors: list[tuple[str, float, float]]  # (namespace, duration, interval)
    waits: dict[str, list[float]] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)  # slot-seconds per namespace

    def run(self, until: float) -> None:
        tickets = itertools.count()
        events: list[tuple[float, int, str, int]] = []  # (time, order, kind, monitor)
        n = len(self.monitors)
        for i, (_, _, interval) in enumerate(self.monitors):
            # first runs spread over the interval, as core.scheduling.start_offset does
            heapq.heappush(events, (i * interval / n, next(tickets), "due", i))
        queues: dict[str, list[tuple[int, float, int]]] = {}
        running: dict[str, int] = {}
        served: dict[str, int] = {}
        grants = itertools.count()
        while events:
            now, _, kind, i = heapq.heappop(events)
            if now > until:
                break
            ns, _, interval = self.monitors[i]
            if kind == "due":
                queues.setdefault(ns, []).append((next(tickets), now, i))
            else:  # done: the monitor's next run is due one interval later
                running[ns] -= 1
                heapq.heappush(events, (now + interval, next(tickets), "due", i))
            while True:
                heads = {n: q[0][0] for n, q in queues.items() if q}
                chosen = self.choose(running, heads, served, self.capacity)
                if chosen is None:
                    break
                _, queued_at, j = queues[chosen].pop(0)
                running[chosen] = running.get(chosen, 0) + 1
                served[chosen] = next(grants)
                self.waits.setdefault(chosen, []).append(now - queued_at)
                run_for = self.monitors[j][1]
                self.busy[chosen] = self.busy.get(chosen, 0.0) + run_for
                heapq.heappush(events, (now + run_for, next(tickets), "done", j))


def hostile_workload() -> list[tuple[str, float, float]]:
    """20 monitors that always hit a 60 s deadline, 50 teams of 2 quick monitors (their
    load: 2 slots on average)."""
    hostile = [("hostile", 60.0, 10.0)] * 20
    teams = [(f"team-{t:02d}", 0.2, 10.0) for t in range(50) for _ in range(2)]
    return hostile + teams


@pytest.mark.parametrize("capacity", [16, 64])
def test_hanging_monitors_in_one_namespace_do_not_delay_fifty_others(capacity: int) -> None:
    hostile = [("hostile", 60.0, 10.0)] * (capacity + 4)  # more than every slot
    workload = hostile + hostile_workload()[20:]
    fair_run = Simulation(capacity, fair, workload)
    fair_run.run(until=600)
    fifo_run = Simulation(capacity, first_come, workload)
    fifo_run.run(until=600)

    def worst_team_wait(sim: Simulation) -> float:
        return max(max(w) for ns, w in sim.waits.items() if ns != "hostile")

    # Fair: a team's run waits at most for another team's short run, never for the hostile
    # namespace's 60 s runs: far below the 10 s interval.
    assert worst_team_wait(fair_run) < 2.0, worst_team_wait(fair_run)
    # The same workload on one first-come-first-served semaphore: the hanging runs hold
    # every slot and the teams wait most of a deadline (what the rule prevents).
    assert worst_team_wait(fifo_run) > 30.0, worst_team_wait(fifo_run)
    # The hostile namespace still runs: at most its share, never nothing.
    assert fair_run.busy["hostile"] > 0


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def test_saturated_namespaces_get_equal_slot_time_whatever_their_monitor_count() -> None:
    # 40 namespaces always ready to run: one with 200 monitors, 39 with 3 each.
    monitors = [("big", 5.0, 0.0)] * 200
    monitors += [(f"ns-{n:02d}", 5.0, 0.0) for n in range(39) for _ in range(3)]
    fair_run = Simulation(16, fair, monitors)
    fair_run.run(until=1200)
    fifo_run = Simulation(16, first_come, monitors)
    fifo_run.run(until=1200)
    fair_index = jain(list(fair_run.busy.values()))
    fifo_index = jain(list(fifo_run.busy.values()))
    assert fair_index > 0.95, fair_index
    assert fifo_index < 0.5, fifo_index  # first come: "big" takes ~2/3 of all slot time
    total = sum(fair_run.busy.values())
    assert fair_run.busy["big"] / total < 2.5 / 40  # about one namespace's worth
