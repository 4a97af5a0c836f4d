"""The node's ClusterIP relay and cluster DNS server on real loopback sockets
(tests/cluster/service_proxy.py, cluster_dns.py), without a cluster."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.cluster import dns_wire
from tests.cluster.cluster_dns import ClusterDns, host_nameserver
from tests.cluster.service_proxy import ServiceProxy
from tests.cluster.service_table import ServiceTable
from tests.unit.test_dns_wire import parse_answers, query_packet


async def echo_server(tag: bytes) -> tuple[asyncio.Server, int]:
    """Echoes what it reads, prefixed with ``tag``, until the client half-closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(tag + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def exchange(ip: str, port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(payload)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_relay_round_robin_and_half_close() -> None:
    asyncio.run(with_proxy(_round_robin))


def test_refused_backend_falls_over_and_no_backend_refuses() -> None:
    asyncio.run(with_proxy(_fall_over))


async def with_proxy(body: Callable[[ServiceProxy], Awaitable[None]]) -> None:
    proxy = ServiceProxy()
    try:
        await asyncio.wait_for(body(proxy), 20)
    finally:
        await proxy.close()


async def _round_robin(proxy: ServiceProxy) -> None:
    one, port_one = await echo_server(b"one:")
    two, port_two = await echo_server(b"two:")
    cluster = ("127.0.0.2", free_port())
    await proxy.apply({cluster: (("127.0.0.1", port_one), ("127.0.0.1", port_two))})
    answers = {await exchange(*cluster, b"hello") for _ in range(4)}
    assert answers == {b"one:hello", b"two:hello"}
    big = bytes(range(256)) * 4096  # 1 MiB, more than a relay chunk
    assert await exchange(*cluster, big) in (b"one:" + big, b"two:" + big)
    assert proxy.relayed == 5
    one.close()
    two.close()


async def _fall_over(proxy: ServiceProxy) -> None:
    live, port = await echo_server(b"ok:")
    cluster = ("127.0.0.2", free_port())
    await proxy.apply({cluster: (("127.0.0.1", free_port()), ("127.0.0.1", port))})
    for _ in range(3):
        assert await exchange(*cluster, b"x") == b"ok:x"
    # The Service lost its endpoints: no listener, connections are refused at once.
    await proxy.apply({})
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionRefusedError):
        await exchange(*cluster, b"x")
    assert loop.time() - started < 0.5
    await proxy.apply({cluster: (("127.0.0.1", port),)})
    assert await exchange(*cluster, b"y") == b"ok:y"
    live.close()


def test_close_ends_relayed_connections() -> None:
    asyncio.run(_close_ends())


async def _close_ends() -> None:
    proxy = ServiceProxy()
    holder_conns: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holder_conns.append(writer)

    backend = await asyncio.start_server(hold, "127.0.0.1", 0)
    cluster = ("127.0.0.2", free_port())
    await proxy.apply({cluster: (("127.0.0.1", backend.sockets[0].getsockname()[1]),)})
    reader, writer = await asyncio.open_connection(*cluster)
    writer.write(b"open")
    await writer.drain()
    await asyncio.sleep(0.1)
    await asyncio.wait_for(proxy.close(), 2)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    backend.close()


def udp_query(ip: str, port: int, packet: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (ip, port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def tcp_query(ip: str, port: int, packet: bytes) -> bytes:
    with socket.create_connection((ip, port), timeout=2) as sock:
        sock.sendall(struct.pack("!H", len(packet)) + packet)
        size = struct.unpack("!H", sock.recv(2))[0]
        data = b""
        while len(data) < size:
            data += sock.recv(size - len(data))
        return data


TABLE = ServiceTable(
    names={
        "web.ns.svc.cluster.local": ("10.96.1.2",),
        "big.ns.svc.cluster.local": tuple(f"10.244.2.{i}" for i in range(1, 60)),
    }
)


async def in_thread(fn: Callable[[], bytes | None]) -> bytes | None:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


class _Upstream(asyncio.DatagramProtocol):
    """A stand-in for the host's resolver: every A question is 192.0.2.7."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns_wire.decode_query(data)
        if query is not None:
            answer = dns_wire.encode_response(
                query, dns_wire.RCODE_OK, ("192.0.2.7",), authoritative=False
            )
            self.transport.sendto(answer, addr)


def test_dns_server_answers_drops_and_forwards() -> None:
    asyncio.run(_dns_server())


async def _dns_server() -> None:
    loop = asyncio.get_running_loop()
    upstream, _ = await loop.create_datagram_endpoint(_Upstream, local_addr=("127.0.0.3", 0))
    upstream_addr = upstream.get_extra_info("sockname")
    server = ClusterDns("127.0.0.2", lambda: TABLE, upstream=upstream_addr)
    await server.start(0)
    port = server.port

    async def udp(packet: bytes, timeout: float = 2.0) -> bytes | None:
        return await in_thread(lambda: udp_query("127.0.0.2", port, packet, timeout))

    try:
        # "example.org" is not a cluster name: forwarded, and the upstream's answer relayed.
        answer = await udp(query_packet("example.org"))
        assert answer is not None
        assert parse_answers(answer)[1:] == (0, ["192.0.2.7"])
        answer = await udp(query_packet("web.ns.svc.cluster.local"))
        assert answer is not None
        assert parse_answers(answer)[1:] == (0, ["10.96.1.2"])
        answer = await udp(query_packet("nope.ns.svc.cluster.local"))
        assert answer is not None
        assert parse_answers(answer)[1] == dns_wire.RCODE_NXDOMAIN
        assert await udp(b"\xff" * 7, 0.3) is None
        big = query_packet("big.ns.svc.cluster.local")
        truncated = await udp(big)
        assert truncated is not None
        assert truncated[2] & 0x02  # TC
        full = await in_thread(lambda: tcp_query("127.0.0.2", port, big))
        assert full is not None
        assert len(parse_answers(full)[2]) == 59
        assert server.dropped == 1
        server.upstream = None
        refused = await udp(query_packet("example.org"))
        assert refused is not None
        assert refused[3] & 0xF == dns_wire.RCODE_REFUSED
    finally:
        await server.close()
        upstream.close()


def test_host_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nnameserver fd00::1\nnameserver 10.244.1.1\nnameserver 10.0.0.53\n")
    assert host_nameserver(conf, not_ip="10.244.1.1") == ("10.0.0.53", 53)
    assert host_nameserver(conf / "missing") is None
