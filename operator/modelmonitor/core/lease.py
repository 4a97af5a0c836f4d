"""Leader election on a coordination.k8s.io/v1 Lease: the decisions, without the API.

Several operator replicas share one Lease; the one named in ``spec.holderIdentity``
runs the monitors, the others stand by. Each replica calls :func:`decide` with the Lease
as read (or None when absent), what it has seen of it before (:class:`Observation`) and
the time of its own monotonic clock, and writes what :func:`lease_spec` returns with
the Lease's ``resourceVersion``, so two candidates never both win: the API server takes
one write and refuses the other with 409 Conflict.

Clocks: as client-go's leader election does, a candidate never compares the Lease's
``renewTime`` (another machine's wall clock) with its own. It counts the lease's
duration from the moment it *saw* the record change, on its own monotonic clock. The
holder counts its tenure from the moment it *sent* its last successful write, minus a
safety margin (:func:`tenure_until`). A candidate sees a write only after it was sent, so
the holder's tenure always ends before any candidate may take over: both clocks measure
the same real seconds, however far their wall clocks are apart. Before every action the
holder checks :func:`holds` against its own clock (fencing); past its tenure it acts no
more, whether or not the renewal is still on its way.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

LEASE_API = "/apis/coordination.k8s.io/v1"


class LeaseApi(Protocol):
    """The Lease calls election makes (``adapters/kube.py``); each raises
    :class:`~modelmonitor.core.cluster.ApiError` on failure (409: someone else wrote first)."""

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LeaseSettings:
    """How the Lease is held (LEASE_DURATION_SECONDS, LEASE_RENEW_SECONDS,
    LEASE_RETRY_SECONDS, LEASE_MARGIN_SECONDS).

    ``duration``: how long a record stays valid without renewal (the Lease's
    ``leaseDurationSeconds``, a whole number); ``renew``: how often the holder renews;
    ``retry``: how often a standby (or a holder whose renewal failed) tries again;
    ``margin``: how long before the end of its duration the holder stops acting.
    The worst takeover after the holder dies is about ``duration + retry``.
    """

    duration: int = 10
    renew: float = 2.0
    retry: float = 1.0
    margin: float = 2.0

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why these settings cannot hold a lease safely, or None."""
        for name, value in (("renew", self.renew), ("retry", self.retry)):
            if not math.isfinite(value) or value <= 0:
                return f"lease {name} interval must be a positive number of seconds, got {value}"
        if not math.isfinite(self.margin) or self.margin < 0:
            return f"lease margin must be >= 0 seconds, got {self.margin}"
        if self.duration < 1:
            return f"lease duration must be a whole number of seconds >= 1, got {self.duration}"
        if self.renew + self.margin >= self.duration:
            return (
                f"lease renew interval ({self.renew:g}s) plus margin ({self.margin:g}s) must be "
                f"shorter than its duration ({self.duration}s): the holder would lose the "
                "lease between two renewals"
            )
        return None


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease that election reads (``spec`` and ``metadata.resourceVersion``)."""

    holder: str = ""  # "" = free (released)
    duration: int = 0
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0
    version: str = ""

    @classmethod
    def parse(cls, obj: Mapping[str, Any] | None) -> LeaseRecord | None:
        """The record of a Lease object as the API returns it; None for None.

        Fields of the wrong type read as absent: a Lease someone else wrote badly is
        free to take once it expires, never a reason to crash.
        """
        if obj is None:
            return None
        spec = obj.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        metadata = obj.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}

        def text(value: Any) -> str:
            return value if isinstance(value, str) else ""

        def whole(value: Any) -> int:
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(
            holder=text(spec.get("holderIdentity")),
            duration=max(0, whole(spec.get("leaseDurationSeconds"))),
            acquire_time=text(spec.get("acquireTime")),
            renew_time=text(spec.get("renewTime")),
            transitions=max(0, whole(spec.get("leaseTransitions"))),
            version=text(metadata.get("resourceVersion")),
        )


@dataclass(frozen=True)
class Observation:
    """A record as last seen, and when (monotonic seconds) it was first seen so."""

    key: tuple[str, str, str, str, int, int]
    seen_at: float


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    """What a candidate knows after reading ``record`` at ``now``.

    The time restarts only when the record changed (every write changes its
    resourceVersion; the holder, renewal, duration too): an unchanged record keeps the
    time it was first seen, so a dead holder's lease runs out.
    """
    key = (
        ("", "", "", "", 0, -1)
        if record is None
        else (
            record.version,
            record.holder,
            record.renew_time,
            record.acquire_time,
            record.duration,
            record.transitions,
        )
    )
    if previous is not None and previous.key == key:
        return previous
    return Observation(key, now)


class Decision(StrEnum):
    CREATE = "create"  # no Lease yet: create it, holding it
    ACQUIRE = "acquire"  # free or expired: take it over
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # someone else's and still valid: stand by


def decide(
    identity: str,
    record: LeaseRecord | None,
    seen: Observation,
    now: float,
    settings: LeaseSettings,
) -> Decision:
    """What this candidate does with the Lease as read at ``now`` (monotonic)."""
    if record is None:
        return Decision.CREATE
    if record.holder == identity:
        return Decision.RENEW
    if not record.holder:
        return Decision.ACQUIRE
    # The holder's own duration counts; a record without one gets ours.
    duration = record.duration if record.duration > 0 else settings.duration
    if now - seen.seen_at >= duration:
        return Decision.ACQUIRE
    return Decision.WAIT


def _micro(when: dt.datetime) -> str:
    """A MicroTime as the API writes it (RFC 3339, microseconds, UTC)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(
    identity: str,
    record: LeaseRecord | None,
    decision: Decision,
    wall: dt.datetime,
    settings: LeaseSettings,
) -> dict[str, Any]:
    """The Lease's ``spec`` after ``decision`` (never called for WAIT)."""
    if decision is Decision.WAIT:
        raise ValueError("nothing to write while standing by")
    stamp = _micro(wall)
    if decision is Decision.RENEW and record is not None:
        return {
            "holderIdentity": identity,
            "leaseDurationSeconds": settings.duration,
            "acquireTime": record.acquire_time or stamp,
            "renewTime": stamp,
            "leaseTransitions": record.transitions,
        }
    # a new holder: one more transition (client-go counts them the same way)
    transitions = 0 if record is None else record.transitions + 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": settings.duration,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_spec(record: LeaseRecord, wall: dt.datetime) -> dict[str, Any]:
    """The spec that hands the Lease back on a clean shutdown: no holder, so the next
    candidate takes it at its next try instead of after the whole duration."""
    stamp = _micro(wall)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": record.acquire_time or stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def tenure_until(sent_at: float, settings: LeaseSettings) -> float:
    """Until when (monotonic) the holder may act after a write sent at ``sent_at``
    succeeded: the lease's duration less the margin, counted from the send."""
    return sent_at + settings.duration - settings.margin


def holds(tenure: float, now: float) -> bool:
    """The fence: may the holder still act at ``now`` (its own monotonic clock)?"""
    return now < tenure
