"""The node's ClusterIP relay on real loopback sockets (tests/cluster/service_proxy.py),
without a cluster."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from tests.cluster.service_proxy import ServiceProxy


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
