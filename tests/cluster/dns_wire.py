"""The DNS wire format (RFC 1035), as much as the node's cluster DNS needs: decode a
query, encode an answer of A records. Pure: no sockets.

Decoding never raises on hostile input: a packet that is not a well-formed standard
query yields None (the server drops it), compression pointers are followed with a hop
limit so a pointer loop cannot spin, and every length is checked against the packet.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_OK = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

HEADER = struct.Struct("!HHHHHH")
UDP_LIMIT = 512  # without EDNS, a UDP answer larger than this is truncated (TC bit)
MAX_NAME = 255
MAX_LABEL = 63
MAX_POINTER_HOPS = 16

_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080


@dataclass(frozen=True)
class Query:
    """A standard query's header fields and its one question."""

    id: int
    flags: int
    name: str  # lower case, no trailing dot ("" for the root)
    qtype: int
    qclass: int

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & _RD)


def decode_name(packet: bytes, offset: int) -> tuple[str, int] | None:
    """The name at ``offset`` and the offset after it (compression pointers followed)."""
    labels: list[str] = []
    length = 0
    end = -1  # where the name ends in the packet: after the first pointer, if any
    hops = 0
    while True:
        if offset >= len(packet):
            return None
        size = packet[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(packet) or hops >= MAX_POINTER_HOPS:
                return None
            hops += 1
            if end < 0:
                end = offset + 2
            offset = ((size & 0x3F) << 8) | packet[offset + 1]
            continue
        if size & 0xC0:
            return None  # the reserved label types (0x40, 0x80)
        offset += 1
        if size == 0:
            break
        label = packet[offset : offset + size]
        if len(label) < size:
            return None
        length += size + 1
        if length > MAX_NAME:
            return None
        labels.append(label.decode("ascii", errors="replace").lower())
        offset += size
    return ".".join(labels), end if end >= 0 else offset


def encode_name(name: str) -> bytes:
    """``name`` in wire form, uncompressed; ValueError for a label the format cannot hold."""
    out = bytearray()
    for label in name.strip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii")
        if not raw or len(raw) > MAX_LABEL:
            raise ValueError(f"invalid DNS label {label!r}")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise ValueError(f"DNS name too long: {name!r}")
    return bytes(out)


def decode_query(packet: bytes) -> Query | None:
    """The query in ``packet``; None for anything but a request with exactly one question."""
    if len(packet) < HEADER.size:
        return None
    ident, flags, qdcount, _an, _ns, _ar = HEADER.unpack_from(packet)
    if flags & _QR or qdcount != 1:
        return None
    decoded = decode_name(packet, HEADER.size)
    if decoded is None:
        return None
    name, offset = decoded
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    return Query(ident, flags, name, qtype, qclass)


def encode_response(
    query: Query,
    rcode: int,
    addresses: tuple[str, ...] = (),
    *,
    ttl: int = 5,
    authoritative: bool = True,
    limit: int | None = UDP_LIMIT,
) -> bytes:
    """The answer to ``query``: one A record per address (only for an A question).

    With a ``limit`` (UDP), records that do not fit are left out and the TC bit is set,
    so the client asks again over TCP.
    """
    flags = _QR | (query.opcode << 11) | _RA | (query.flags & _RD) | (rcode & 0xF)
    if authoritative:
        flags |= _AA
    question = encode_name(query.name) + struct.pack("!HH", query.qtype, query.qclass)
    records = []
    if rcode == RCODE_OK and query.qtype == TYPE_A and query.qclass == CLASS_IN:
        for address in addresses:
            packed = ipaddress.IPv4Address(address).packed
            # 0xC00C: a pointer to the question's name, right after the header.
            records.append(struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4) + packed)
    size = HEADER.size + len(question)
    fitting = []
    for record in records:
        if limit is not None and size + len(record) > limit:
            flags |= _TC
            break
        fitting.append(record)
        size += len(record)
    header = HEADER.pack(query.id, flags, 1, len(fitting), 0, 0)
    return header + question + b"".join(fitting)


def encode_error(packet: bytes, rcode: int) -> bytes | None:
    """A bare error answer (no question) to a packet whose header at least is readable."""
    if len(packet) < HEADER.size:
        return None
    ident, flags, *_ = HEADER.unpack_from(packet)
    if flags & _QR:
        return None
    out_flags = _QR | (flags & 0x7800) | (flags & _RD) | _RA | (rcode & 0xF)
    return HEADER.pack(ident, out_flags, 0, 0, 0, 0)
