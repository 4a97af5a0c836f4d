"""The outbound fence's decisions: may the operator connect to this address, follow this
redirect, show this URL or this body text? Pure: no sockets here.

A monitor names URLs (its reference, its endpoint, its Prometheus, its webhook) that the
operator then requests with its own network position, so a hostile namespace user could
otherwise make it read the cloud's metadata service, the node's loopback or the API
server and get the answer back in status. The adapter
(:mod:`modelmonitor.adapters.outbound`) asks :func:`refusal` for every address it is
about to connect to, after name resolution, so DNS rebinding cannot slip past it.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from modelmonitor.core.scheduling import namespace_share

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_MESSAGE_CHARS = 200

_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class OutboundPolicy:
    """Where the operator's own HTTP requests may go.

    ``allow``: CIDRs an admin opened although they are link-local, loopback or
    unspecified (the operator's setting OUTBOUND_ALLOW_CIDRS). ``api_servers``: the
    Kubernetes API server's (address, port) pairs, refused always, allowlist or not.
    ``max_redirects``: same-origin redirects followed per request; another origin's
    never are.
    """

    allow: tuple[IPNetwork, ...] = ()
    api_servers: frozenset[tuple[IPAddress, int]] = frozenset()
    max_redirects: int = 3

    @classmethod
    def parse(
        cls,
        allow_cidrs: Iterable[str] = (),
        api_servers: Iterable[tuple[str, int]] = (),
        *,
        max_redirects: int = 3,
    ) -> OutboundPolicy:
        """A policy from settings text; ValueError naming a CIDR or address that is not one."""
        allow: list[IPNetwork] = []
        for text in allow_cidrs:
            try:
                allow.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {text!r} ({exc})") from None
        servers = frozenset((_plain(ipaddress.ip_address(a)), int(p)) for a, p in api_servers)
        if max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        return cls(tuple(allow), servers, max_redirects)

    def with_api_servers(self, api_servers: Iterable[tuple[str, int]]) -> OutboundPolicy:
        """This policy, refusing these API server endpoints as well."""
        extra = {(_plain(ipaddress.ip_address(a)), int(p)) for a, p in api_servers}
        return OutboundPolicy(self.allow, self.api_servers | extra, self.max_redirects)


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusal(policy: OutboundPolicy, address: str, port: int) -> str | None:
    """Why connecting to ``address:port`` is refused, or None when it is allowed.

    ``address`` is a numeric IPv4/IPv6 address (an IPv6 scope ``%eth0`` is ignored); text
    that is not one is refused, since the caller must pass what it resolved.
    """
    try:
        ip = _plain(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return "not a numeric address"
    if (ip, port) in policy.api_servers:
        return "the Kubernetes API server"
    if any(ip in net for net in policy.allow if net.version == ip.version):
        return None
    if ip.is_unspecified:
        return "unspecified address"
    if any(ip in net for net in _LINK_LOCAL if net.version == ip.version):
        return "link-local address"
    if any(ip in net for net in _LOOPBACK if net.version == ip.version):
        return "loopback address"
    return None


def refused_message(address: str, reason: str) -> str:
    """The one wording of a refused connection, for status, Events and logs."""
    return f"outbound request to {address} refused: {reason}"


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    """Whether ``b`` is on the same scheme, host and port as ``a``."""
    return origin(a) == origin(b)


def redact_url(url: str) -> str:
    """A URL fit to show: no userinfo, query or fragment (credentials and tokens live
    there), printable and length-capped. ``https://u:p@h/x?token=1`` -> ``https://h/x``."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if parts.query or parts.fragment:
        shown += "?..."
    return sanitize(shown)


def sanitize(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Text from the outside (a body, a reason phrase) fit for status, Events and logs:
    printable, whitespace collapsed, at most ``limit`` characters. A longer text keeps
    its start and its end, since error messages often end with their conclusion
    (Prometheus: "...; many-to-many matching not allowed")."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) <= limit:
        return cleaned
    if limit < 40:
        return cleaned[: max(limit - 3, 0)] + "..."
    head = limit // 2
    tail = limit - head - 5
    return f"{cleaned[:head]} ... {cleaned[-tail:]}"


@dataclass(frozen=True)
class ResponseLimits:
    """How many bytes of an HTTP response body the operator reads, per client, and how
    many it holds at once in all (``buffer``): a body is refused past its cap, unread."""

    probe: int = 1 << 20
    prometheus: int = 8 << 20
    reference: int = 64 << 20
    webhook: int = 64 << 10
    buffer: int = 256 << 20

    def __post_init__(self) -> None:
        for name in ("probe", "prometheus", "reference", "webhook", "buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"response limit {name} must be >= 1 byte")


def too_large_message(limit: int, length: int | None = None) -> str:
    """The one wording of a body over its cap."""
    size = f"{length} bytes, " if length is not None else ""
    return f"response body too large ({size}over the {limit}-byte limit); not read"


# -- the response buffer, shared between namespaces -----------------------------------------
BufferVerdict = Literal["budget", "share"] | None


def buffer_share(budget: int, active: int, body_cap: int) -> int:
    """How many bytes of bodies being read one namespace may hold at once.

    Shared as run slots are (:func:`~modelmonitor.core.scheduling.namespace_share`): the
    budget less a reserve of a quarter, split between the ``active`` namespaces reading
    (the asking one counted), so one team's big answers cannot leave another team's
    unread. Never less than one body of ``body_cap`` (the cap of the read asking), so
    any namespace can read an answer up to its cap however many others read, and never
    more than the budget less the reserve: a single namespace never takes the reserve.
    """
    alone = namespace_share(budget, 1)  # the budget less the reserve
    return min(alone, max(body_cap, namespace_share(budget, active)))


def buffer_refusal(
    budget: int, held: int, held_namespace: int, active: int, n: int, body_cap: int
) -> BufferVerdict:
    """Whether a namespace holding ``held_namespace`` bytes may take ``n`` more while all
    readers hold ``held``: None, or why not: ``"budget"`` (the whole buffer would be
    overdrawn) or ``"share"`` (the namespace would pass :func:`buffer_share`)."""
    if held + n > budget:
        return "budget"
    if held_namespace + n > buffer_share(budget, active, body_cap):
        return "share"
    return None
