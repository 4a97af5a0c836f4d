"""Leader election's decisions (core/lease.py) and the elector over a fake Lease API."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from modelmonitor.core.cluster import ApiError
from modelmonitor.core.lease import (
    Decision,
    LeaseRecord,
    LeaseSettings,
    decide,
    holds,
    lease_spec,
    observe,
    released_spec,
    tenure_until,
)
from modelmonitor.engine.leader import LeaseElector

S = LeaseSettings(duration=10, renew=2.0, retry=1.0, margin=2.0)
WALL = dt.datetime(2026, 12, 7, 16, 0, tzinfo=dt.UTC)


def record(holder: str = "b", renew: str = "t1", **kw: Any) -> LeaseRecord:
    return LeaseRecord(holder=holder, duration=kw.pop("duration", 10), renew_time=renew, **kw)


# -- settings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"renew": 0}, "renew interval must be a positive"),
        ({"retry": float("nan")}, "retry interval must be a positive"),
        ({"margin": -1}, "margin must be >= 0"),
        ({"duration": 0}, "duration must be a whole number"),
        ({"duration": 4, "renew": 2, "margin": 2}, "must be shorter than its duration"),
    ],
)
def test_settings_that_cannot_hold_a_lease_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaseSettings(**kw)


# -- parsing -------------------------------------------------------------------------------
def test_a_lease_is_read_from_the_api_object() -> None:
    obj = {
        "metadata": {"resourceVersion": "42"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 10,
            "acquireTime": "x",
            "renewTime": "y",
            "leaseTransitions": 3,
        },
    }
    assert LeaseRecord.parse(obj) == LeaseRecord("a", 10, "x", "y", 3, "42")
    assert LeaseRecord.parse(None) is None


def test_a_badly_written_lease_reads_as_absent_fields_not_a_crash() -> None:
    obj = {
        "metadata": "nope",
        "spec": {"holderIdentity": 7, "leaseDurationSeconds": "10", "leaseTransitions": True},
    }
    assert LeaseRecord.parse(obj) == LeaseRecord()
    assert LeaseRecord.parse({"spec": None}) == LeaseRecord()


# -- decisions -----------------------------------------------------------------------------
def test_no_lease_is_created_and_an_own_lease_renewed() -> None:
    seen = observe(None, None, 0.0)
    assert decide("a", None, seen, 0.0, S) is Decision.CREATE
    mine = record("a")
    assert decide("a", mine, observe(None, mine, 0.0), 100.0, S) is Decision.RENEW


def test_a_released_lease_is_taken_at_once() -> None:
    free = record("")
    assert decide("a", free, observe(None, free, 5.0), 5.0, S) is Decision.ACQUIRE


def test_another_holder_s_lease_is_taken_only_after_it_went_unrenewed_for_its_duration() -> None:
    held = record("b", "t1")
    seen = observe(None, held, 100.0)
    assert decide("a", held, seen, 100.0, S) is Decision.WAIT
    seen = observe(seen, held, 109.9)  # unchanged: the first sighting counts
    assert seen.seen_at == 100.0
    assert decide("a", held, seen, 109.9, S) is Decision.WAIT
    assert decide("a", held, seen, 110.0, S) is Decision.ACQUIRE


def test_a_renewal_restarts_the_count() -> None:
    seen = observe(None, record("b", "t1"), 100.0)
    renewed = record("b", "t2")
    seen = observe(seen, renewed, 108.0)
    assert seen.seen_at == 108.0
    assert decide("a", renewed, seen, 117.0, S) is Decision.WAIT
    assert decide("a", renewed, seen, 118.0, S) is Decision.ACQUIRE


def test_the_holder_s_own_duration_counts_not_ours() -> None:
    long = record("b", duration=60)
    seen = observe(None, long, 0.0)
    assert decide("a", long, seen, 30.0, S) is Decision.WAIT
    assert decide("a", long, seen, 60.0, S) is Decision.ACQUIRE
    no_duration = record("b", duration=0)  # written by someone else, badly: ours counts
    assert decide("a", no_duration, observe(None, no_duration, 0.0), 10.0, S) is Decision.ACQUIRE


def test_wall_clocks_never_matter_a_far_future_renew_time_still_expires() -> None:
    """The candidate never compares renewTime with its own clock (skew-proof)."""
    skewed = record("b", renew="2099-01-01T00:00:00.000000Z")
    seen = observe(None, skewed, 0.0)
    assert decide("a", skewed, seen, 10.0, S) is Decision.ACQUIRE


def test_written_specs() -> None:
    created = lease_spec("a", None, Decision.CREATE, WALL, S)
    assert created == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 10,
        "acquireTime": "2026-12-07T16:00:00.000000Z",
        "renewTime": "2026-12-07T16:00:00.000000Z",
        "leaseTransitions": 0,
    }
    mine = LeaseRecord("a", 10, "2026-12-07T15:00:00.000000Z", "x", 4, "9")
    renewed = lease_spec("a", mine, Decision.RENEW, WALL, S)
    assert renewed["acquireTime"] == "2026-12-07T15:00:00.000000Z"
    assert renewed["leaseTransitions"] == 4
    taken = lease_spec("a", record("b", transitions=4), Decision.ACQUIRE, WALL, S)
    assert taken["leaseTransitions"] == 5
    assert taken["holderIdentity"] == "a"
    with pytest.raises(ValueError, match="nothing to write"):
        lease_spec("a", mine, Decision.WAIT, WALL, S)
    released = released_spec(mine, WALL)
    assert released["holderIdentity"] == ""
    assert released["leaseDurationSeconds"] == 1


# -- the fence -----------------------------------------------------------------------------
def test_the_holder_stops_acting_before_any_candidate_may_take_over() -> None:
    """Sent at 100, seen by a candidate no earlier: the holder's tenure (sent + duration -
    margin) ends strictly before the candidate's earliest takeover (seen + duration)."""
    sent = 100.0
    tenure = tenure_until(sent, S)
    assert holds(tenure, 107.9)
    assert not holds(tenure, 108.0)
    seen_by_candidate = observe(None, record("b"), sent + 0.001)
    earliest = seen_by_candidate.seen_at + S.duration
    assert tenure < earliest


# -- the elector over a fake API -----------------------------------------------------------
class FakeLeases:
    """One Lease kept as the API server would: resourceVersion, 409 on a stale write."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ApiError(0, "no answer from the API server")

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.obj)

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        if self.obj is not None:
            raise ApiError(409, "AlreadyExists")
        return self._store(body)

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.obj is not None
        if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict")
        return self._store(body)

    def _store(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(dict(body))
        obj["metadata"] = {**obj["metadata"], "resourceVersion": str(self.version)}
        self.obj = obj
        return copy.deepcopy(obj)


class Mono:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def elector(api: FakeLeases, identity: str, mono: Mono, changes: list[bool]) -> LeaseElector:
    return LeaseElector(
        api,
        "ops",
        "modelmonitor",
        identity,
        S,
        monotonic=mono,
        wall=lambda: WALL,
        on_change=changes.append,
    )


def test_two_electors_never_lead_at_once_and_the_standby_takes_over_in_duration_plus_retry() -> (
    None
):
    api, mono = FakeLeases(), Mono()
    changes_a: list[bool] = []
    changes_b: list[bool] = []
    a = elector(api, "a", mono, changes_a)
    b = elector(api, "b", mono, changes_b)
    assert a.attempt() == S.renew
    assert b.attempt() == S.retry
    a.publish()
    b.publish()
    assert a.leading()
    assert not b.leading()
    assert changes_a == [True]
    assert changes_b == []
    # a renews every 2 s and b tries every 1 s for a minute: only a ever leads
    for step in range(60):
        mono.t += 1.0
        if step % 2 == 0:
            a.attempt()
        b.attempt()
        assert not (a.leading() and b.leading())
        assert a.leading()
    # a dies (no more renewals) right after renewing: b takes over within duration + retry
    a.attempt()
    died = mono.t
    while not b.leading():
        mono.t += S.retry
        b.attempt()
        assert not (a.leading() and b.leading()), "the dead holder's fence must end first"
        assert mono.t - died <= S.duration + S.retry
    b.publish()
    assert changes_b == [True]
    assert api.obj is not None
    assert api.obj["spec"]["holderIdentity"] == "b"
    assert api.obj["spec"]["leaseTransitions"] == 1


def test_a_holder_that_cannot_renew_stops_acting_at_the_end_of_its_tenure() -> None:
    api, mono = FakeLeases(), Mono()
    changes: list[bool] = []
    a = elector(api, "a", mono, changes)
    a.attempt()
    a.publish()
    sent = mono.t
    api.down = True
    while a.leading():
        mono.t += 0.5
        assert a.attempt() == S.retry
    assert mono.t - sent == pytest.approx(S.duration - S.margin)
    a.publish()
    assert changes == [True, False]


def test_a_holder_whose_lease_was_taken_stops_at_once() -> None:
    api, mono = FakeLeases(), Mono()
    a = elector(api, "a", mono, [])
    a.attempt()
    assert api.obj is not None
    api.obj["spec"]["holderIdentity"] = "intruder"  # e.g. a replica that saw it expire
    api.obj["metadata"]["resourceVersion"] = "99"
    api.version = 99
    mono.t += 0.5
    a.attempt()
    assert not a.leading()


def test_a_conflicting_write_means_someone_else_won() -> None:
    api, mono = FakeLeases(), Mono()
    a = elector(api, "a", mono, [])
    a.attempt()
    real_replace = api.replace_lease

    def racing(namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        api.version += 1
        assert api.obj is not None
        api.obj["metadata"]["resourceVersion"] = str(api.version)
        return real_replace(namespace, name, body)

    api.replace_lease = racing  # type: ignore[method-assign]
    mono.t += 2
    assert a.attempt() == S.retry
    assert not a.leading()


def test_release_hands_the_lease_to_the_standby_at_its_next_try() -> None:
    api, mono = FakeLeases(), Mono()
    a = elector(api, "a", mono, [])
    b = elector(api, "b", mono, [])
    a.attempt()
    b.attempt()
    a.release()
    assert not a.leading()
    assert api.obj is not None
    assert api.obj["spec"]["holderIdentity"] == ""
    mono.t += S.retry
    b.attempt()
    assert b.leading()


def test_a_read_failure_keeps_the_tenure_until_it_ends() -> None:
    api, mono = FakeLeases(), Mono()
    a = elector(api, "a", mono, [])
    a.attempt()
    api.down = True
    mono.t += 3
    a.attempt()
    assert a.leading()  # still inside its tenure


def test_the_leader_metrics_follow_the_elector() -> None:
    from prometheus_client import CollectorRegistry

    from modelmonitor.adapters.metrics import MetricsRecorder

    registry = CollectorRegistry()
    metrics = MetricsRecorder(registry)
    api, mono = FakeLeases(), Mono()
    a = elector(api, "a", mono, [])
    a.on_change = metrics.record_leadership
    a.publish()  # a standby from the start: 0, nothing lost
    assert registry.get_sample_value("modelmonitor_leader") == 0.0
    a.attempt()
    a.publish()
    assert registry.get_sample_value("modelmonitor_leader") == 1.0
    api.down = True
    mono.t += S.duration
    a.publish()
    assert registry.get_sample_value("modelmonitor_leader") == 0.0
    for change in ("acquired", "lost"):
        value = registry.get_sample_value(
            "modelmonitor_leader_transitions_total", {"change": change}
        )
        assert value == 1.0, change


def test_the_elector_task_wakes_a_waiting_loop_when_it_starts_leading() -> None:
    """The asyncio side: ``run`` publishes, ``wait_leading`` returns once leading."""
    import asyncio

    fast = LeaseSettings(duration=2, renew=0.2, retry=0.1, margin=0.5)
    api = FakeLeases()
    a = LeaseElector(api, "ops", "modelmonitor", "a", fast, wall=lambda: WALL)

    async def scenario() -> float:
        task = asyncio.create_task(a.run())
        loop = asyncio.get_running_loop()
        started = loop.time()
        await a.wait_leading(5.0)
        waited = loop.time() - started
        assert a.leading()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return waited

    assert asyncio.run(scenario()) < 1.0
    a.release()
    assert api.obj is not None
    assert api.obj["spec"]["holderIdentity"] == ""


def test_an_unexpected_failure_never_ends_the_elector_task() -> None:
    import asyncio

    fast = LeaseSettings(duration=2, renew=0.2, retry=0.05, margin=0.5)
    api = FakeLeases()
    calls = {"n": 0}
    real_get = api.get_lease

    def flaky(namespace: str, name: str) -> dict[str, Any] | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("unexpected")
        return real_get(namespace, name)

    api.get_lease = flaky  # type: ignore[method-assign]
    a = LeaseElector(api, "ops", "modelmonitor", "a", fast, wall=lambda: WALL)

    async def scenario() -> bool:
        task = asyncio.create_task(a.run())
        await a.wait_leading(2.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return a.leading()

    assert asyncio.run(scenario())
    assert calls["n"] >= 2
