"""The node's DNS codec (tests/cluster/dns_wire.py) against hand-built RFC 1035 packets."""

from __future__ import annotations

import random
import struct

import pytest

from tests.cluster import dns_wire
from tests.cluster.dns_wire import Query, decode_name, decode_query, encode_name, encode_response


def query_packet(name: str, qtype: int = dns_wire.TYPE_A, *, ident: int = 0x1234) -> bytes:
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # RD set
    return header + encode_name(name) + struct.pack("!HH", qtype, dns_wire.CLASS_IN)


def parse_answers(packet: bytes) -> tuple[int, int, list[str]]:
    """(flags, rcode, A addresses) of a response, decoded independently of the encoder."""
    _ident, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", packet)
    offset = 12
    for _ in range(qd):
        decoded = decode_name(packet, offset)
        assert decoded is not None
        offset = decoded[1] + 4
    addresses = []
    for _ in range(an):
        decoded = decode_name(packet, offset)
        assert decoded is not None
        offset = decoded[1]
        rtype, _rclass, _ttl, length = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        if rtype == dns_wire.TYPE_A:
            addresses.append(".".join(str(b) for b in packet[offset : offset + length]))
        offset += length
    assert offset == len(packet)
    return flags, flags & 0xF, addresses


def test_a_query_round_trip() -> None:
    query = decode_query(query_packet("Web.NS.svc.cluster.local."))
    assert query == Query(0x1234, 0x0100, "web.ns.svc.cluster.local", 1, 1)
    packet = encode_response(query, dns_wire.RCODE_OK, ("10.96.3.4", "10.96.3.5"))
    flags, rcode, addresses = parse_answers(packet)
    assert rcode == 0
    assert addresses == ["10.96.3.4", "10.96.3.5"]
    assert flags & 0x8000
    assert flags & 0x0400
    assert flags & 0x0100
    assert struct.unpack_from("!H", packet)[0] == 0x1234


def test_compressed_name_is_followed() -> None:
    # The question name: "a" then a pointer to "svc.cluster.local" stored after it.
    tail = encode_name("svc.cluster.local")
    header = struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0)
    name_at = 12
    question = b"\x01a" + struct.pack("!H", 0xC000 | (name_at + 2 + 2 + 4)) + b"\x00\x01\x00\x01"
    packet = header + question + tail
    # question = label(2) + pointer(2) + type/class(4); the tail starts right after.
    query = decode_query(packet)
    assert query is not None
    assert query.name == "a.svc.cluster.local"
    assert query.qtype == dns_wire.TYPE_A


def test_pointer_loop_and_bad_pointers_are_refused() -> None:
    header = struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0)
    loop = header + struct.pack("!H", 0xC000 | 12) + b"\x00\x01\x00\x01"
    assert decode_query(loop) is None
    beyond = header + struct.pack("!H", 0xC000 | 500) + b"\x00\x01\x00\x01"
    assert decode_query(beyond) is None
    reserved = header + b"\x41abc\x00\x00\x01\x00\x01"
    assert decode_query(reserved) is None


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00" * 11,
        struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + encode_name("a") + b"\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + encode_name("a") + b"\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05ab",
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + encode_name("a") + b"\x00",
    ],
    ids=["empty", "short-header", "a-response", "two-questions", "cut-label", "cut-type"],
)
def test_malformed_packets_are_ignored(packet: bytes) -> None:
    assert decode_query(packet) is None


def test_random_garbage_never_raises() -> None:
    rng = random.Random(1035)
    base = query_packet("web.ns.svc.cluster.local")
    for _ in range(5000):
        mutated = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        decode_query(bytes(mutated[: rng.randint(0, len(mutated))]))
        decode_query(bytes(rng.randrange(256) for _ in range(rng.randint(0, 80))))


def test_name_longer_than_255_is_refused() -> None:
    labels = b"".join(b"\x3f" + b"x" * 63 for _ in range(5)) + b"\x00"
    packet = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + labels + b"\x00\x01\x00\x01"
    assert decode_query(packet) is None
    with pytest.raises(ValueError, match="invalid DNS label"):
        encode_name("x" * 64 + ".local")


def test_other_types_get_an_empty_answer() -> None:
    query = decode_query(query_packet("web.ns.svc.cluster.local", dns_wire.TYPE_AAAA))
    assert query is not None
    _flags, rcode, addresses = parse_answers(
        encode_response(query, dns_wire.RCODE_OK, ("10.96.3.4",))
    )
    assert (rcode, addresses) == (0, [])
    srv = decode_query(query_packet("web.ns.svc.cluster.local", 33))
    assert srv is not None
    assert parse_answers(encode_response(srv, dns_wire.RCODE_OK, ("10.96.3.4",)))[2] == []


def test_nxdomain_carries_no_answer() -> None:
    query = decode_query(query_packet("nope.ns.svc.cluster.local"))
    assert query is not None
    _flags, rcode, addresses = parse_answers(encode_response(query, dns_wire.RCODE_NXDOMAIN))
    assert (rcode, addresses) == (dns_wire.RCODE_NXDOMAIN, [])


def test_udp_answer_is_truncated_with_tc() -> None:
    query = decode_query(query_packet("big.ns.svc.cluster.local"))
    assert query is not None
    many = tuple(f"10.244.1.{i}" for i in range(1, 100))
    packet = encode_response(query, dns_wire.RCODE_OK, many)
    assert len(packet) <= dns_wire.UDP_LIMIT
    flags, _rcode, addresses = parse_answers(packet)
    assert flags & 0x0200
    assert 0 < len(addresses) < len(many)
    full = encode_response(query, dns_wire.RCODE_OK, many, limit=None)
    assert parse_answers(full)[2] == list(many)


def test_error_answer_keeps_the_id() -> None:
    packet = query_packet("x", ident=99)
    answer = dns_wire.encode_error(packet, dns_wire.RCODE_REFUSED)
    assert answer is not None
    ident, flags, *_ = struct.unpack_from("!HHHHHH", answer)
    assert ident == 99
    assert flags & 0x8000
    assert flags & 0xF == dns_wire.RCODE_REFUSED
    assert dns_wire.encode_error(b"\x00", dns_wire.RCODE_REFUSED) is None
