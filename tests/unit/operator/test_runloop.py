"""The per-monitor loop with an injected clock, runner and status writer (no cluster)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

from modelmonitor.core.incident import Incident
from modelmonitor.core.report import DriftSummary, FeatureSummary, Report
from modelmonitor.core.spec import MonitorSpec, parse_spec
from modelmonitor.core.verdict import Event, Verdict
from modelmonitor.engine.remediation import Remediator, confirmed_event, planned_event
from modelmonitor.engine.runloop import LoopDeps, run_loop
from modelmonitor.engine.slots import RunSlots
from tests.unit.actions.fake_api import FakeApi, merge_patch

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Stopped:
    """Stops after ``limit`` seconds of fake time; waiting advances the clock."""

    def __init__(self, clock: Clock, limit: float) -> None:
        self.clock = clock
        self.limit = limit

    def __bool__(self) -> bool:
        return (self.clock.now - T0).total_seconds() >= self.limit

    async def wait(self, timeout: float | None = None) -> bool:
        self.clock.advance(timeout or 0)
        await asyncio.sleep(0)
        return bool(self)


class Runner:
    def __init__(self, clock: Clock, drifted: bool = True) -> None:
        self.clock = clock
        self.starts: list[dt.datetime] = []
        self.active = 0
        self.max_active = 0
        self.drifted = drifted

    async def run(self, namespace: str, name: str, spec: MonitorSpec, status: Any) -> Report:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.starts.append(self.clock.now)
        self.clock.advance(2)  # a run takes 2 s
        await asyncio.sleep(0)
        self.active -= 1
        feats = (FeatureSummary("a", "psi", 0.5, None, 0.25, self.drifted),)
        drift = DriftSummary(
            "ok", self.drifted, int(self.drifted), 1, float(self.drifted), 0.5, feats
        )
        return Report(self.clock.now - dt.timedelta(seconds=2), 2.0, "inline", 100, drift)


class Writer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.patches: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []  # status after each write

    def update_monitor_status(self, namespace: str, name: str, compute: Any) -> Any:
        patch = compute(self.body)
        if patch is None:
            return None
        self.patches.append(patch)
        # what the API server does with the operator's merge patch (RFC 7386)
        self.body["status"] = merge_patch(self.body.get("status", {}), patch)
        self.states.append(copy.deepcopy(self.body["status"]))
        return self.body, patch


def body(interval: str = "60s") -> dict[str, Any]:
    return {
        "metadata": {"name": "m", "namespace": "ml", "generation": 1},
        "spec": {
            "target": {"name": "t"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "schedule": {"interval": interval},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Configured"}]},
    }


def run(
    obj: dict[str, Any], runner: Runner, clock: Clock, limit: float
) -> tuple[Writer, list[Event], list[float]]:
    writer = Writer(obj)
    events: list[Event] = []
    lags: list[float] = []

    def on_verdict(report: Report, verdict: Verdict, lag: float) -> None:
        lags.append(lag)

    deps = LoopDeps(runner, writer, RunSlots(1), events.append, on_verdict, clock)
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, limit), deps))
    return writer, events, lags


def test_runs_on_schedule_one_at_a_time() -> None:
    clock = Clock()
    runner = Runner(clock)
    writer, events, lags = run(body("60s"), runner, clock, limit=300)
    assert 4 <= len(runner.starts) <= 6
    gaps = [(b - a).total_seconds() for a, b in zip(runner.starts, runner.starts[1:], strict=False)]
    assert all(60 <= g <= 60 + 6 + 5 for g in gaps), gaps  # interval + jitter (+ idle step)
    assert runner.max_active == 1
    assert writer.patches[-1]["phase"] == "Drifted"
    assert writer.patches[-1]["lastRun"]["samples"] == 100
    assert [e.reason for e in events] == ["DriftDetected"]  # once, not per run
    assert all(lag < 6 for lag in lags)


def test_not_ready_monitor_never_runs() -> None:
    clock = Clock()
    runner = Runner(clock)
    obj = body()
    obj["status"] = {
        "conditions": [{"type": "Ready", "status": "False", "reason": "TargetNotFound"}]
    }
    writer, _, _ = run(obj, runner, clock, limit=200)
    assert runner.starts == []
    assert writer.patches == []


def test_restart_continues_schedule_from_status() -> None:
    clock = Clock()
    runner = Runner(clock)
    obj = body("60s")
    obj["status"]["lastRun"] = {
        "time": (T0 - dt.timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    }
    run(obj, runner, clock, limit=100)
    # The first run waits for the rest of the interval instead of running at once.
    assert runner.starts
    assert (runner.starts[0] - T0).total_seconds() >= 29


# --- remediation through the loop -------------------------------------------------------


class CountingExecutor:
    """Stands in for an action's API calls; the e2e tests run the real executors."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, api: Any, spec: MonitorSpec, request: Any) -> Any:
        from modelmonitor.core.incident import ActionResult, Outcome

        self.requests.append(request)
        return ActionResult(Outcome.SUCCEEDED, "Notified", f"sent {request.id}", {"status": 200})


def remediating_body(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj = body("60s")
    obj["metadata"]["uid"] = "uid-1"
    obj["metadata"]["annotations"] = dict(annotations or {})
    obj["spec"]["actions"] = {
        "consecutiveBreaches": 2,
        "onDrift": ["notify"],
        "notify": {"webhookSecretRef": {"name": "s", "key": "url"}},
    }
    return obj


def posted_once(api: FakeApi) -> list[Event]:
    """The keyed Events (an incident's intent) posted through the API, by name."""
    return [
        Event(obj["type"], obj["reason"], obj["message"], obj["metadata"]["name"])
        for path, obj in api.objects.items()
        if path.startswith("/api/v1/namespaces/ml/events/")
    ]


def run_remediating(
    obj: dict[str, Any], executor: CountingExecutor, limit: float, api: FakeApi | None = None
) -> tuple[Writer, list[Event], list[tuple[str, str]]]:
    """The loop with a remediator; the Events returned: the edge's, then the keyed ones."""
    from modelmonitor.engine.remediation import Remediator

    clock = Clock()
    writer = Writer(obj)
    events: list[Event] = []
    counted: list[tuple[str, str]] = []
    api = api if api is not None else FakeApi()
    remediator = Remediator(api=api, executors={"notify": executor}, clock=clock)
    deps = LoopDeps(
        Runner(clock),
        writer,
        RunSlots(1),
        events.append,
        lambda *_: None,
        clock,
        remediator=remediator,
        on_action=lambda action, result: counted.append((action, result)),
    )
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, limit), deps))
    return writer, [*events, *posted_once(api)], counted


def test_the_decision_is_written_before_acting_and_acted_on_once() -> None:
    executor = CountingExecutor()
    obj = remediating_body()
    writer, events, counted = run_remediating(obj, executor, limit=400)
    assert [r.action for r in executor.requests] == ["notify"]  # once per incident
    planned = [p for p in writer.patches if (p.get("incident") or {}).get("pending")]
    assert planned, "the intent must be written before the executor runs"
    assert planned[0]["incident"]["pending"][0]["id"] == executor.requests[0].id
    status = obj["status"]
    assert status["incident"]["pending"] == []
    assert status["lastAction"]["result"] == "succeeded"
    assert [e.reason for e in events].count("Notified") == 1
    assert "IncidentConfirmed" in [e.reason for e in events]
    assert counted == [("notify", "succeeded")]


def test_a_request_left_pending_by_a_stopped_operator_is_carried_out_once() -> None:
    executor = CountingExecutor()
    obj = remediating_body()
    pending = {
        "id": "m-20260601-085900-notify-1",
        "action": "notify",
        "incident": "m-20260601-085900",
        "trigger": "drift",
        "dryRun": False,
    }
    obj["status"]["incident"] = {
        "id": "m-20260601-085900",
        "state": "Remediating",
        "acted": {"notify": "pending"},
        "pending": [pending],
    }
    run_remediating(obj, executor, limit=30)
    assert [r.id for r in executor.requests] == [pending["id"]]
    assert obj["status"]["incident"]["pending"] == []
    assert obj["status"]["lastAction"]["id"] == pending["id"]


def test_the_pause_annotation_stops_a_pending_request() -> None:
    executor = CountingExecutor()
    obj = remediating_body({"modelmonitor.io/paused": "true"})
    _, _, counted = run_remediating(obj, executor, limit=400)
    assert executor.requests == []
    assert ("notify", "suppressed") in counted
    assert obj["status"]["lastAction"]["reason"] == "Paused"


def test_without_remediation_the_verdict_is_written_alone() -> None:
    from modelmonitor.engine.remediation import NoRemediation

    clock = Clock()
    assert isinstance(
        LoopDeps(Runner(clock), Writer({}), RunSlots(1), print, print).remediator,
        NoRemediation,
    )
    obj = remediating_body()  # actions configured, and a request left pending
    left = {"id": "m-20260601-085900", "state": "Remediating", "pending": [{"id": "x-notify-1"}]}
    obj["status"]["incident"] = copy.deepcopy(left)
    writer, events, _ = run(obj, Runner(clock), clock, limit=400)
    assert len(writer.patches) >= 5
    for patch in writer.patches:  # the verdict's keys only
        assert not {"incident", "lastAction", "actionHistory", "healthyRevisions"} & set(patch)
    assert obj["status"]["incident"] == left  # nobody acts on it
    assert [e.reason for e in events] == ["DriftDetected"]


class FlippingRunner(Runner):
    """Drifted for ``bad`` runs, then healthy for ``good``, over and over."""

    def __init__(self, clock: Clock, bad: int, good: int) -> None:
        super().__init__(clock)
        self.pattern = [True] * bad + [False] * good

    async def run(self, namespace: str, name: str, spec: MonitorSpec, status: Any) -> Report:
        self.drifted = self.pattern[len(self.starts) % len(self.pattern)]
        return await super().run(namespace, name, spec, status)


def test_every_incident_acts_afresh_nothing_lingers_from_the_last_one() -> None:
    from modelmonitor.engine.remediation import Remediator

    executor = CountingExecutor()
    obj = remediating_body()
    obj["spec"]["actions"].update(consecutiveBreaches=1, cooldownSeconds=0)
    clock = Clock()
    writer = Writer(obj)
    remediator = Remediator(api=FakeApi(), executors={"notify": executor}, clock=clock)
    deps = LoopDeps(
        FlippingRunner(clock, bad=2, good=2),
        writer,
        RunSlots(1),
        lambda event: None,
        lambda *_: None,
        clock,
        remediator=remediator,
    )
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 8 * 61), deps))
    incidents = [r.incident for r in executor.requests]
    assert len(incidents) >= 2, incidents
    assert len(set(incidents)) == len(incidents)  # one notify per incident, each incident
    for state in writer.states:
        incident = state.get("incident") or {}
        if incident.get("state") in ("Suspect", "Breached", "Remediating"):
            # an open incident carries nothing of the closed one before it
            assert "closedAt" not in incident, incident
            assert set(incident.get("acted") or {}) <= {"notify"}


class HangsAfterFirstRun(Runner):
    """Drifted once, then hangs (a probe endpoint that stopped answering)."""

    async def run(self, namespace: str, name: str, spec: MonitorSpec, status: Any) -> Report:
        if self.starts:
            self.starts.append(self.clock.now)
            await asyncio.sleep(3600)
        return await super().run(namespace, name, spec, status)


def test_runs_stopped_at_their_deadline_never_confirm_an_incident() -> None:
    from modelmonitor.engine.remediation import Remediator

    clock = Clock()
    obj = remediating_body()
    obj["spec"]["schedule"]["runTimeout"] = "1s"
    executor = CountingExecutor()
    writer = Writer(obj)
    events: list[Event] = []
    runner = HangsAfterFirstRun(clock)
    remediator = Remediator(api=None, executors={"notify": executor}, clock=clock)  # type: ignore[arg-type]
    deps = LoopDeps(runner, writer, RunSlots(1), events.append, lambda *_: None, clock)
    deps.remediator = remediator
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 200), deps))
    assert len(runner.starts) >= 3  # one drifted run, then at least two that hung
    assert executor.requests == []  # consecutiveBreaches 2 is never reached
    degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RunTimedOut")
    assert obj["status"]["incident"]["state"] == "Suspect"
    assert "RunTimedOut" in [e.reason for e in events]


# --- a run that raises ------------------------------------------------------------------


class FailingRunner(Runner):
    """Good (drifted) for ``good`` runs, then raises like a bug on unforeseen input."""

    def __init__(self, clock: Clock, good: int) -> None:
        super().__init__(clock)
        self.good = good

    async def run(self, namespace: str, name: str, spec: MonitorSpec, status: Any) -> Report:
        if len(self.starts) >= self.good:
            self.starts.append(self.clock.now)
            self.clock.advance(1)
            raise TypeError(
                "unhashable type: 'dict' at https://user:pw@ref.example/rows.csv?token=s3cret\n"
                "second line with more detail"
            )
        return await super().run(namespace, name, spec, status)


def test_a_run_that_raises_reports_degraded_and_the_loop_goes_on() -> None:
    clock = Clock()
    runner = FailingRunner(clock, good=1)
    lags: list[float] = []
    obj = body("60s")
    writer = Writer(obj)
    events: list[Event] = []
    phases: list[str] = []

    def on_verdict(report: Report, verdict: Verdict, lag: float) -> None:
        phases.append(verdict.phase.value)
        lags.append(lag)

    deps = LoopDeps(runner, writer, RunSlots(1), events.append, on_verdict, clock)
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 300), deps))
    assert len(runner.starts) >= 4  # it kept its schedule after the failure
    status = obj["status"]
    assert status["phase"] == "Degraded"  # not the last good run's "Drifted"
    by_type = {c["type"]: c for c in status["conditions"]}
    degraded = by_type["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "RunFailed")
    assert degraded["message"].startswith("the run failed: TypeError: unhashable type: 'dict'")
    assert "pw" not in degraded["message"]
    assert "s3cret" not in degraded["message"]
    assert "second line" not in degraded["message"]
    assert by_type["Ready"]["status"] == "True"  # still scheduled: the next run may pass
    assert by_type["DriftDetected"]["status"] == "True"  # not re-checked: kept
    assert status["lastRun"]["time"] == writer.states[-1]["lastRun"]["time"]
    assert status["lastRun"]["samples"] == 0
    assert phases[0] == "Drifted"
    assert set(phases[1:]) == {"Degraded"}
    # one Event when the condition turned, not one per failing run
    assert [e.reason for e in events] == ["DriftDetected", "RunFailed"]
    assert events[1].type == "Warning"


def test_a_run_that_raises_never_remediates() -> None:
    from modelmonitor.engine.remediation import Remediator

    executor = CountingExecutor()
    obj = remediating_body()
    obj["spec"]["actions"].update(consecutiveBreaches=1)
    clock = Clock()
    writer = Writer(obj)
    remediator = Remediator(api=FakeApi(), executors={"notify": executor}, clock=clock)
    deps = LoopDeps(
        FailingRunner(clock, good=0),
        writer,
        RunSlots(1),
        lambda event: None,
        lambda *_: None,
        clock,
        remediator=remediator,
    )
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 400), deps))
    assert len(writer.patches) >= 5
    assert executor.requests == []
    for patch in writer.patches:
        assert not {"incident", "lastAction", "actionHistory", "healthyRevisions"} & set(patch)
    assert obj["status"]["phase"] == "Degraded"


# --- the Events of an intent, once even across a restart ---------------------------------


def left_pending(obj: dict[str, Any]) -> dict[str, Any]:
    """Status as an operator stopped right after writing the intent leaves it."""
    pending = {
        "id": "m-20260601-085900-notify-1",
        "action": "notify",
        "incident": "m-20260601-085900",
        "trigger": "drift",
        "reason": "1/1 features drifted",
        "dryRun": False,
    }
    obj["status"]["incident"] = {
        "id": "m-20260601-085900",
        "state": "Remediating",
        "breaches": 2,
        "reason": "1/1 features drifted",
        "acted": {"notify": "pending"},
        "pending": [pending],
    }
    return pending


def test_the_intent_events_are_posted_once_with_stable_names() -> None:
    executor = CountingExecutor()
    api = FakeApi()
    obj = remediating_body()
    _, events, _ = run_remediating(obj, executor, limit=400, api=api)
    (request,) = executor.requests
    keyed = [e for e in events if e.reason in ("IncidentConfirmed", "ActionPlanned")]
    assert sorted(e.reason for e in keyed) == ["ActionPlanned", "IncidentConfirmed"]
    planned = next(e for e in keyed if e.reason == "ActionPlanned")
    assert planned.message == (
        f"carrying out notify ({request.id}) for incident {request.incident}"
    )
    assert planned.type == "Warning"
    # posted once more (as a restarted operator would): refused by name, still one each
    remediator = Remediator(api=api, executors={}, clock=Clock())
    incident = next(e for e in keyed if e.reason == "IncidentConfirmed")
    spec = parse_spec(obj["spec"])
    again = [
        confirmed_event(Incident.from_dict({"id": request.incident}), spec),
        planned_event(request),
    ]
    remediator.announce(obj, again)
    assert len(posted_once(api)) == 2
    assert {e.key for e in posted_once(api)} == {incident.key, planned.key}


def test_a_restart_posts_the_lost_intent_events_once() -> None:
    executor = CountingExecutor()
    api = FakeApi()
    obj = remediating_body()
    pending = left_pending(obj)
    _, events, _ = run_remediating(obj, executor, limit=30, api=api)
    assert [r.id for r in executor.requests] == [pending["id"]]
    keyed = posted_once(api)
    assert [(e.type, e.reason, e.message) for e in keyed] == [
        (
            "Warning",
            "IncidentConfirmed",
            "incident m-20260601-085900: 2 breaching runs in a row (consecutiveBreaches 2): "
            "1/1 features drifted",
        ),
        (
            "Warning",
            "ActionPlanned",
            f"carrying out notify ({pending['id']}) for incident m-20260601-085900",
        ),
    ]
    assert [e.reason for e in events].count("Notified") == 1


def test_intent_events_posted_before_the_stop_are_not_posted_again() -> None:
    api = FakeApi()
    first = remediating_body()
    left_pending(first)
    # the first operator posted them and stopped before acting: its status is kept
    remediator = Remediator(api=api, executors={}, clock=Clock())
    remediator.announce(first, remediator.announcements(first, parse_spec(first["spec"])))
    assert len(posted_once(api)) == 2
    posts = len([c for c in api.calls if c[0] == "POST"])
    executor = CountingExecutor()
    run_remediating(first, executor, limit=30, api=api)
    assert len(executor.requests) == 1
    assert len(posted_once(api)) == 2  # each Event once
    assert len([c for c in api.calls if c[0] == "POST"]) == posts + 2  # tried, refused (409)


def test_without_pending_intent_nothing_is_announced() -> None:
    obj = remediating_body()
    obj["status"]["incident"] = {"id": "m-1", "state": "Breached", "breaches": 2}
    remediator = Remediator(api=FakeApi(), executors={}, clock=Clock())
    assert remediator.announcements(obj, parse_spec(obj["spec"])) == []


class RaisingSource:
    """A source with a bug: it raises instead of recording a problem."""

    key = "broken"
    supplies_rows = True

    def configured(self, spec: MonitorSpec) -> bool:
        return True

    async def gather(self, ctx: Any) -> Any:
        raise KeyError("nested")


def test_the_real_runner_s_exception_reaches_status_as_run_failed() -> None:
    from modelmonitor.engine.runner import InlineRunner
    from modelmonitor.sources.registry import Registry
    from tests.unit.operator.test_runner import runner as inline_runner

    clock = Clock()
    inline = InlineRunner(inline_runner().clients, sources=Registry("source", [RaisingSource()]))
    obj = body("60s")
    obj["spec"]["reference"] = {"inline": [{"a": {"b": 1}}, {"a": {"b": 2}}]}
    writer = Writer(obj)
    events: list[Event] = []
    deps = LoopDeps(inline, writer, RunSlots(1), events.append, lambda *_: None, clock)
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 130), deps))
    assert len(writer.patches) >= 2  # every run reported, none skipped
    degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "RunFailed"
    assert "KeyError: 'nested'" in degraded["message"]
    assert obj["status"]["phase"] == "Degraded"


class FailingWriter(Writer):
    """The API server refuses the failed run's write (e.g. a conflict storm)."""

    def update_monitor_status(self, namespace: str, name: str, compute: Any) -> Any:
        raise RuntimeError("apiserver down")


def test_a_failed_run_that_cannot_be_written_does_not_stop_the_loop() -> None:
    clock = Clock()
    runner = FailingRunner(clock, good=0)
    obj = body("60s")
    deps = LoopDeps(runner, FailingWriter(obj), RunSlots(1), lambda _: None, lambda *_: None, clock)
    asyncio.run(run_loop("ml", "m", obj, Stopped(clock, 300), deps))
    assert len(runner.starts) >= 4
