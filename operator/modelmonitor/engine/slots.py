"""The operator's run slots, shared fairly between namespaces.

At most ``capacity`` runs are in progress at once across all monitors, and no namespace
holds more than its share (:func:`modelmonitor.core.scheduling.next_namespace` decides who
is next; this module only does the waiting). A tenant whose monitors all hang therefore
holds at most its share, each for at most the run's deadline, and the other namespaces
keep their schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from modelmonitor.core.scheduling import namespace_share, next_namespace


class RunSlots:
    """A fair semaphore keyed by namespace: ``async with slots.hold(ns): ...``."""

    def __init__(self, capacity: int, per_namespace: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"run slots must be at least 1, got {capacity}")
        self.capacity = capacity
        self.per_namespace = per_namespace  # 0: the automatic share
        self.running: dict[str, int] = {}
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._grants = itertools.count()
        self._served: dict[str, int] = {}  # namespace -> grant number of its last slot

    @property
    def in_use(self) -> int:
        return sum(self.running.values())

    def waiting(self, namespace: str) -> int:
        return len(self._queues.get(namespace, ()))

    def share(self) -> int:
        """The current share of one namespace (for status and metrics)."""
        active = len({ns for ns, n in self.running.items() if n > 0} | set(self._queues))
        return namespace_share(self.capacity, active, self.per_namespace)

    @asynccontextmanager
    async def hold(self, namespace: str) -> AsyncIterator[None]:
        """Wait for a slot within ``namespace``'s share, hold it for the block."""
        await self._acquire(namespace)
        try:
            yield
        finally:
            self._release(namespace)

    async def _acquire(self, namespace: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(namespace, deque()).append(future)
        self._grant()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(namespace)  # granted as we were cancelled: give it back
            else:
                self._forget(namespace, future)
            raise

    def _release(self, namespace: str) -> None:
        left = self.running.get(namespace, 0) - 1
        if left > 0:
            self.running[namespace] = left
        else:
            self.running.pop(namespace, None)
        self._grant()

    def _forget(self, namespace: str, future: asyncio.Future[None]) -> None:
        queue = self._queues.get(namespace)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(future)
        if not queue:
            del self._queues[namespace]
        self._grant()  # a waiter leaving may let another namespace's share grow

    def _grant(self) -> None:
        while True:
            turns = {ns: self._served.get(ns, -1) for ns in self._queues}
            chosen = next_namespace(self.running, turns, self.capacity, self.per_namespace)
            if chosen is None:
                return
            queue = self._queues[chosen]
            future = queue.popleft()
            if not queue:
                del self._queues[chosen]
            if future.done():  # cancelled while queued; _forget cleans up the rest
                continue
            self.running[chosen] = self.running.get(chosen, 0) + 1
            self._served[chosen] = next(self._grants)
            future.set_result(None)
