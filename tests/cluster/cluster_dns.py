"""The node's cluster DNS, standing in for CoreDNS: UDP and TCP on port 53 of the node's
address in the pod block.

It is the authority for ``cluster.local``: ``<svc>.<ns>.svc.cluster.local`` answers with
the ClusterIP (a headless Service: its ready endpoint IPs, and ``<hostname>.<svc>...``
for endpoints with a hostname), any other name there is NXDOMAIN, and questions other
than A about an existing name get an empty answer. Other names are forwarded to the
host's resolver (the first nameserver of its /etc/resolv.conf), as CoreDNS forwards
for pods with dnsPolicy ClusterFirst; with no usable upstream they are REFUSED.
Packets that are not a well-formed query are dropped, never answered with a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from pathlib import Path

from tests.cluster import dns_wire
from tests.cluster.service_table import ServiceTable, is_cluster_name

log = logging.getLogger(__name__)

PORT = 53
FORWARD_TIMEOUT = 3.0
FORWARD_RESEND = 0.5  # a UDP question to the upstream is sent again after this long
MAX_FORWARDS = 64  # concurrent forwarded questions; more get SERVFAIL
TCP_IDLE_SECONDS = 10.0


def host_nameserver(
    resolv_conf: Path = Path("/etc/resolv.conf"), *, not_ip: str = ""
) -> tuple[str, int] | None:
    """The host's first IPv4 nameserver (None if none), never ``not_ip`` (ourselves)."""
    with contextlib.suppress(OSError):
        for line in resolv_conf.read_text().splitlines():
            words = line.split()
            ipv4 = len(words) >= 2 and ":" not in words[1]
            if ipv4 and words[0] == "nameserver" and words[1] != not_ip:
                return words[1], PORT
    return None


class ClusterDns:
    """Answers from the current :class:`ServiceTable` (``table()``), forwards the rest."""

    def __init__(
        self, ip: str, table: Callable[[], ServiceTable], upstream: tuple[str, int] | None
    ) -> None:
        self.ip = ip
        self.port = PORT
        self.upstream = upstream
        self._table = table
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._forwards = asyncio.Semaphore(MAX_FORWARDS)
        self._tasks: set[asyncio.Task[None]] = set()
        self.answered = 0
        self.dropped = 0

    async def start(self, port: int = PORT) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.ip, port)
        )
        self._udp = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._tcp = await asyncio.start_server(self._serve_tcp, self.ip, self.port)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def answer_local(self, packet: bytes, *, udp: bool) -> bytes | None:
        """The answer to a cluster name, an error, or None: drop it (or forward, below)."""
        query = dns_wire.decode_query(packet)
        if query is None:
            self.dropped += 1
            return None
        if query.opcode != 0:
            return dns_wire.encode_error(packet, dns_wire.RCODE_NOTIMP)
        if not is_cluster_name(query.name):
            return None
        limit = dns_wire.UDP_LIMIT if udp else None
        records = self._table().lookup(query.name)
        self.answered += 1
        if records is None:
            return dns_wire.encode_response(query, dns_wire.RCODE_NXDOMAIN, limit=limit)
        return dns_wire.encode_response(query, dns_wire.RCODE_OK, records, limit=limit)

    async def answer(self, packet: bytes, *, udp: bool) -> bytes | None:
        local = self.answer_local(packet, udp=udp)
        if local is not None or dns_wire.decode_query(packet) is None:
            return local
        if not self.upstream:
            return dns_wire.encode_error(packet, dns_wire.RCODE_REFUSED)
        if self._forwards.locked():
            return dns_wire.encode_error(packet, dns_wire.RCODE_SERVFAIL)
        async with self._forwards:
            try:
                return await asyncio.wait_for(_forward(self.upstream, packet), FORWARD_TIMEOUT)
            except (OSError, TimeoutError):
                return dns_wire.encode_error(packet, dns_wire.RCODE_SERVFAIL)

    def spawn(self, packet: bytes, reply: Callable[[bytes], None]) -> None:
        async def run() -> None:
            out = await self.answer(packet, udp=True)
            if out is not None:
                reply(out)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                packet = await asyncio.wait_for(
                    reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE_SECONDS
                )
                out = await self.answer(packet, udp=False)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: ClusterDns) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        local = self.server.answer_local(data, udp=True)
        if local is not None and self.transport is not None:
            self.transport.sendto(local, addr)
        elif dns_wire.decode_query(data) is not None and self.transport is not None:
            transport = self.transport
            self.server.spawn(data, lambda out: transport.sendto(out, addr))


class _ForwardProtocol(asyncio.DatagramProtocol):
    def __init__(self, ident: bytes) -> None:
        self.ident = ident
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data[:2] == self.ident and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _forward(upstream: tuple[str, int], packet: bytes) -> bytes:
    """The upstream's answer to ``packet`` (UDP on a socket of its own, sent again while
    no answer comes: a lost datagram would otherwise cost the whole timeout)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _ForwardProtocol(packet[:2]), remote_addr=upstream
    )
    try:
        while True:
            transport.sendto(packet)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(protocol.done), FORWARD_RESEND)
    finally:
        transport.close()
