"""Which replica runs the monitors: a Lease held with short renewals (:mod:`core.lease`).

:class:`LeaseElector` tries the Lease every ``retry`` seconds while standing by and
renews it every ``renew`` seconds while holding it; :meth:`LeaseElector.leading` is the
fence the run loop checks right before it starts a run, writes a verdict or carries out
an action. It answers from this process's monotonic clock alone, so a holder that can
no longer renew (API server unreachable, process stalled) stops acting when its tenure
ends, before any other replica can take the Lease over. With one replica
(``STANDALONE``) :class:`AlwaysLeading` stands in.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelmonitor.core.cluster import ApiError
from modelmonitor.core.lease import (
    Decision,
    LeaseApi,
    LeaseRecord,
    LeaseSettings,
    Observation,
    decide,
    holds,
    lease_spec,
    observe,
    released_spec,
    tenure_until,
)

log = logging.getLogger(__name__)

CONFLICT = 409


class Leadership(Protocol):
    """What the run loop asks: may this replica act now, and a way to wait until it may."""

    def leading(self) -> bool: ...

    async def wait_leading(self, timeout: float) -> None: ...


class AlwaysLeading:
    """A single replica: it always leads (no Lease)."""

    def leading(self) -> bool:
        return True

    async def wait_leading(self, timeout: float) -> None:
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class LeaseElector:
    """Holds the Lease ``namespace/name`` for ``identity`` when it can."""

    api: LeaseApi
    namespace: str
    name: str
    identity: str
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], dt.datetime] = _now
    # called with True when this replica starts leading, False when it stops
    on_change: Callable[[bool], None] = field(default=lambda leading: None)
    _tenure: float = -math.inf
    _seen: Observation | None = None
    _published: bool | None = None  # None: nothing published yet
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    # -- the fence ---------------------------------------------------------------------
    def leading(self) -> bool:
        return holds(self._tenure, self.monotonic())

    async def wait_leading(self, timeout: float) -> None:
        """Return once leading, or after ``timeout`` seconds."""
        if self.leading():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)

    # -- one try (blocking; the async loop runs it in a thread) --------------------------
    def attempt(self) -> float:
        """Read the Lease, decide, write; return the seconds until the next try."""
        settings = self.settings
        try:
            record = LeaseRecord.parse(self.api.get_lease(self.namespace, self.name))
        except ApiError as exc:
            log.warning("reading lease %s/%s: %s", self.namespace, self.name, exc)
            return settings.retry
        now = self.monotonic()
        self._seen = observe(self._seen, record, now)
        decision = decide(self.identity, record, self._seen, now, settings)
        if decision is Decision.WAIT:
            self._tenure = -math.inf  # someone else holds it (perhaps took it from us)
            return settings.retry
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record is not None:
            metadata["resourceVersion"] = record.version
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": lease_spec(self.identity, record, decision, self.wall(), settings),
        }
        sent = self.monotonic()
        try:
            if record is None:
                written = self.api.create_lease(self.namespace, body)
            else:
                written = self.api.replace_lease(self.namespace, self.name, body)
        except ApiError as exc:
            if exc.status == CONFLICT:
                # another replica wrote first: whoever it is holds the lease now
                self._tenure = -math.inf
                log.info("lease %s/%s: another replica wrote first", self.namespace, self.name)
            else:
                log.warning("writing lease %s/%s: %s", self.namespace, self.name, exc)
            return settings.retry
        self._tenure = tenure_until(sent, settings)
        self._seen = observe(self._seen, LeaseRecord.parse(written), self.monotonic())
        if decision is not Decision.RENEW:
            log.info(
                "lease %s/%s acquired by %s (%s)",
                self.namespace,
                self.name,
                self.identity,
                decision,
            )
        return settings.renew

    def release(self) -> None:
        """Stop acting at once, then hand the Lease back if this replica still holds it,
        so that a standby takes over at its next try (a clean shutdown, a rolling update)."""
        was_leading = self.leading()
        self._tenure = -math.inf
        if not was_leading:
            return
        try:
            record = LeaseRecord.parse(self.api.get_lease(self.namespace, self.name))
            if record is None or record.holder != self.identity:
                return
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": record.version,
                },
                "spec": released_spec(record, self.wall()),
            }
            self.api.replace_lease(self.namespace, self.name, body)
            log.info("lease %s/%s released", self.namespace, self.name)
        except ApiError as exc:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, exc)

    # -- the task ------------------------------------------------------------------------
    def publish(self) -> None:
        """Tell the metrics and the waiting loops when leading starts or stops."""
        now = self.leading()
        if now:
            self._event.set()
        else:
            self._event.clear()
        if now != self._published:
            first = self._published is None
            self._published = now
            log.info(
                "%s lease %s/%s as %s",
                "leading with" if now else "standing by for",
                self.namespace,
                self.name,
                self.identity,
            )
            if now or not first:
                self.on_change(now)  # a standby from the start has lost nothing

    async def run(self) -> None:
        """Try, renew and publish until cancelled (then :meth:`release` is the caller's)."""
        while True:
            try:
                delay = await asyncio.to_thread(self.attempt)
            except Exception:  # a bug or an unexpected answer: never stop competing
                log.exception("lease %s/%s: attempt failed", self.namespace, self.name)
                delay = self.settings.retry
            self.publish()
            if self.leading():
                # wake when the tenure ends, should the renewals fail until then
                delay = min(delay, max(0.0, self._tenure - self.monotonic()) + 0.01)
            await asyncio.sleep(delay)
            self.publish()
