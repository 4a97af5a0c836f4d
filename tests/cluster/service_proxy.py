"""ClusterIP routing in user space, as kube-proxy's old ``userspace`` mode did it.

For each (clusterIP, port) with ready backends, a listener on that address (the
service CIDR is routed to ``lo``) accepts connections and relays each one, both ways, to
a backend picked round-robin (the next one is tried when a backend refuses). A route
without ready backends has no listener, so a connection is refused at once, as
kube-proxy's reject rule for a Service without endpoints does. Netfilter, which
kube-proxy uses today, cannot be used on the harness's machine (no iptables, no
modules), hence the relay.

Everything runs on one asyncio loop owned by the caller (:mod:`tests.cluster.services`),
one task per direction of a connection; :meth:`ServiceProxy.close` closes the listeners
and every relayed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Mapping

from tests.cluster.service_table import Backend

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
CHUNK = 256 * 1024


class _Route:
    def __init__(self, backends: tuple[Backend, ...]) -> None:
        self.backends = backends
        self.next = 0
        self.server: asyncio.Server | None = None

    def order(self) -> list[Backend]:
        """The backends to try, starting with the next in turn."""
        start = self.next % max(len(self.backends), 1)
        self.next += 1
        return [*self.backends[start:], *self.backends[:start]]


class ServiceProxy:
    """The listeners and relayed connections of the node's ClusterIP routes."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, int], _Route] = {}
        self._conns: set[asyncio.Task[None]] = set()
        self._applying: asyncio.Lock | None = None
        self.relayed = 0
        self.refused = 0

    @property
    def routes(self) -> dict[tuple[str, int], tuple[Backend, ...]]:
        return {k: r.backends for k, r in self._routes.items() if r.server is not None}

    async def apply(self, routes: Mapping[tuple[str, int], tuple[Backend, ...]]) -> None:
        """Listen for the routes in ``routes``, stop listening for the others."""
        if self._applying is None:
            self._applying = asyncio.Lock()
        async with self._applying:
            await self._apply(routes)

    async def _apply(self, routes: Mapping[tuple[str, int], tuple[Backend, ...]]) -> None:
        for key in [k for k in self._routes if k not in routes]:
            route = self._routes.pop(key)
            if route.server is not None:
                route.server.close()
        for key, backends in routes.items():
            route = self._routes.setdefault(key, _Route(backends))
            route.backends = backends
            if route.server is None:
                await self._listen(key, route)

    async def _listen(self, key: tuple[str, int], route: _Route) -> None:
        ip, port = key

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._conns.add(task)
            try:
                await self._relay(route, reader, writer)
            finally:
                if task is not None:
                    self._conns.discard(task)

        try:
            route.server = await asyncio.start_server(accept, ip, port, backlog=128)
        except OSError as exc:
            # Most likely another test session's agent routes the same ClusterIP (each
            # control plane here allocates from the same CIDR); tried again next sync.
            level = logging.WARNING if exc.errno == errno.EADDRINUSE else logging.ERROR
            log.log(level, "service proxy: cannot listen on %s:%s: %s", ip, port, exc)

    async def _relay(
        self, route: _Route, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        backend_w: asyncio.StreamWriter | None = None
        try:
            for host, port in route.order():
                with contextlib.suppress(OSError, TimeoutError):
                    backend_r, backend_w = await asyncio.wait_for(
                        asyncio.open_connection(host, port), CONNECT_TIMEOUT
                    )
                    break
            if backend_w is None:
                self.refused += 1
                return
            self.relayed += 1
            await asyncio.gather(
                _pump(client_r, backend_w), _pump(backend_r, client_w), return_exceptions=True
            )
        finally:
            for writer in (client_w, backend_w):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()

    async def close(self) -> None:
        """Stop listening and end every relayed connection."""
        for route in self._routes.values():
            if route.server is not None:
                route.server.close()
        self._routes.clear()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side (so request/response protocols that
    shut down their sending side still get their answer)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
