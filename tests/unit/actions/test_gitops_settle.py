"""The pause waits until a Flux owner has taken its suspension in, before rolling back.

A kustomize-controller reconcile that read the spec before the suspension may still be
applying the bad revision; rolling back at once would lose the rollback to it (seen in
tests/e2e/test_flux_gitops.py against a real Flux).
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.actions import registry
from modelmonitor.actions.gitops import guarded
from modelmonitor.core.cluster import NamespacedApi
from modelmonitor.core.incident import Outcome
from tests.unit.actions import test_rollback as rb
from tests.unit.actions.fake_api import FakeApi
from tests.unit.actions.test_gitops import FLUX, KS_PATH, NS, kustomization, owned_by, spec


class _Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class _FluxCatchingUp(FakeApi):
    """kustomize-controller still busy: the suspended generation is observed only after
    ``reads`` more reads of the Kustomization (its reconcile in flight meanwhile)."""

    def __init__(self, reads: int | None) -> None:
        super().__init__()
        self.reads = reads

    def get(self, path: str) -> dict[str, Any] | None:
        obj = super().get(path)
        if path == KS_PATH and obj is not None and obj["spec"].get("suspend") is True:
            if self.reads is not None and self.reads <= 0:
                obj["status"]["observedGeneration"] = obj["metadata"]["generation"]
            elif self.reads is not None:
                self.reads -= 1
        return obj


def _catching_up(reads: int | None) -> FakeApi:
    api = _FluxCatchingUp(reads)
    for path, obj in owned_by(FLUX).objects.items():
        api.objects[path] = obj
    ks = kustomization()
    ks["metadata"]["generation"] = 3
    ks["status"]["observedGeneration"] = 2  # the spec with suspend is not seen yet
    api.put(KS_PATH, ks)
    return api


def test_pause_rolls_back_only_once_flux_has_taken_the_suspension_in() -> None:
    api, clock = _catching_up(reads=3), _Clock()
    executor = guarded(registry.ROLLBACK_BY_KIND, sleep=clock.sleep, clock=lambda: clock.now)
    result = executor(NamespacedApi(api, NS), spec("pause"), rb.request())
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert result.details["gitOps"]["settled"] is True
    assert len(clock.slept) == 3  # polled until observedGeneration reached the generation
    ks_reads = [i for i, call in enumerate(api.calls) if call == ("GET", KS_PATH)]
    rolled = api.calls.index(("PATCH", rb.DEPLOY_PATH))
    assert ks_reads[-1] < rolled  # the rollback came after the last wait


def test_pause_rolls_back_anyway_when_flux_never_takes_it_in() -> None:
    api, clock = _catching_up(reads=None), _Clock()
    executor = guarded(
        registry.ROLLBACK_BY_KIND, settle_seconds=2.0, sleep=clock.sleep, clock=lambda: clock.now
    )
    result = executor(NamespacedApi(api, NS), spec("pause"), rb.request())
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert result.details["gitOps"]["settled"] is False
    assert sum(clock.slept) == pytest.approx(2.0)  # bounded: the guard watches from here
    assert api.objects[KS_PATH]["spec"]["suspend"] is True
