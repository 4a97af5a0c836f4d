"""Services on the harness node: the kube-proxy and CoreDNS parts of the node agent.

:class:`ServiceNetwork` watches Services and EndpointSlices (list, then watch, again
after a dropped watch) and keeps two things in step with them: the ClusterIP routes of
:class:`~tests.cluster.service_proxy.ServiceProxy` (the service CIDR is routed to ``lo``
like the pod CIDR) and the names of :class:`~tests.cluster.cluster_dns.ClusterDns` on
port 53 of the node's address. Both run on one asyncio loop in a thread of its own; the
two watches have a thread each. Where the service CIDR cannot be routed (no
CAP_NET_ADMIN) or port 53 cannot be bound, that part is off with a logged warning and
pods keep the host's resolver, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.cluster.api import ApiError, KubeApi, Obj
from tests.cluster.cluster_dns import ClusterDns, host_nameserver
from tests.cluster.network import ensure_local_route
from tests.cluster.service_proxy import ServiceProxy
from tests.cluster.service_table import ServiceTable, build_table

log = logging.getLogger(__name__)

SERVICES = "/api/v1/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
T = TypeVar("T")


class ServiceNetwork:
    """ClusterIP routing and cluster DNS for the pods of one node agent."""

    def __init__(self, api: KubeApi, dns_ip: str, service_cidr: str, *, dns_port: int = 53):
        self.api = api
        self.dns_ip = dns_ip
        self.service_cidr = service_cidr
        self.dns_port = dns_port
        self.routing = False
        self.dns: ClusterDns | None = None
        self.proxy = ServiceProxy()
        self.table = ServiceTable()
        self._stores: dict[str, dict[str, Obj]] = {SERVICES: {}, SLICES: {}}
        self._synced: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="node services", daemon=True
        )
        self.changed = threading.Condition()

    def start(self) -> ServiceNetwork:
        self._loop_thread.start()
        problem = ensure_local_route(ipaddress.IPv4Network(self.service_cidr))
        self.routing = problem is None
        if problem is not None:
            log.warning(
                "service CIDR %s not routed (%s): no ClusterIPs", self.service_cidr, problem
            )
        dns = ClusterDns(self.dns_ip, lambda: self.table, host_nameserver(not_ip=self.dns_ip))
        try:
            self._run(dns.start(self.dns_port))
            self.dns = dns
        except OSError as exc:
            log.warning("cluster DNS cannot listen on %s:%s: %s", self.dns_ip, self.dns_port, exc)
        for path in (SERVICES, SLICES):
            thread = threading.Thread(
                target=self._watch_loop, args=(path,), name=f"node watch {path}", daemon=True
            )
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            self._run(self.proxy.close())
            if self.dns is not None:
                self._run(self.dns.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        # The listeners and connections are closed above. A watch thread notices
        # ``_stopping`` at its next event or bookmark only (it is blocked reading the
        # stream); it is a daemon that touches nothing but its store, so it is not waited for.
        self._loop_thread.join(timeout=2)
        if not self._loop.is_running():
            self._loop.close()

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Whether both watches have listed once (within ``timeout`` seconds)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self._synced) == 2, timeout)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- the watches ----------------------------------------------------------------------
    def _watch_loop(self, path: str) -> None:
        while not self._stopping.is_set():
            try:
                listed = self.api.get(path)
                with self._lock:
                    self._stores[path] = {_key(o): o for o in listed["items"]}
                self._synced.add(path)
                self._sync()
                version = listed["metadata"]["resourceVersion"]
                while not self._stopping.is_set():
                    version = self._follow(path, version)
            except ApiError as exc:
                if exc.status != 410:
                    log.warning("node services: watch %s: %s", path, exc)
                    self._stopping.wait(1.0)
            except Exception:
                log.exception("node services: watch %s failed", path)
                self._stopping.wait(1.0)

    def _follow(self, path: str, version: str) -> str:
        for event in self.api.watch(
            path, self._stopping, resourceVersion=version, allowWatchBookmarks="true"
        ):
            obj = event["object"]
            if event["type"] == "ERROR":
                raise ApiError(int(obj.get("code", 0)), str(obj.get("message")))
            version = obj["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            with self._lock:
                if event["type"] == "DELETED":
                    self._stores[path].pop(_key(obj), None)
                else:
                    self._stores[path][_key(obj)] = obj
            self._sync()
        return version

    def _sync(self) -> None:
        """Recompute the table and apply its routes (on the loop, serialized)."""
        with self._lock:
            table = build_table(self._stores[SERVICES].values(), self._stores[SLICES].values())
            self.table = table
        if self.routing and not self._stopping.is_set():
            with contextlib.suppress(Exception):
                # The newest table when it runs: two watches may sync at once.
                self._run(self._apply_newest())
        with self.changed:
            self.changed.notify_all()

    async def _apply_newest(self) -> None:
        await self.proxy.apply(self.table.routes)


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"
