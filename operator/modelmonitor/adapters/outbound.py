"""The outbound fence: every HTTP request the operator makes goes through an :class:`Outbound`.

What it enforces (the decisions are :mod:`modelmonitor.core.outbound`'s):

* **Addresses.** Each address is checked right before the socket connects to it, on
  the exact ``sockaddr`` that ``connect`` gets, so a name that resolves to a public
  address when checked and to 169.254.169.254 when used (DNS rebinding) cannot get
  through: aiohttp connects to the addresses its resolver returned, and our
  ``socket_factory`` refuses a forbidden one before the socket exists; urllib (the
  webhook) connects through :meth:`Outbound.create_connection`, which resolves, checks
  and connects to the checked address itself. The resolver also drops forbidden
  addresses, so a name with one allowed address still works and a refused one gets a
  clear message. Proxies from the environment are never used (they would move the
  check to the proxy's address).
* **Redirects.** Never to another origin (scheme, host, port). Same-origin redirects
  are followed by :meth:`Outbound.fetch` up to ``policy.max_redirects`` hops, each hop
  a new request through the same checks; a POST follows only 307/308 (which keep the
  method and body). The webhook (urllib) follows none.
* **Bodies.** :meth:`Outbound.fetch` reads at most ``cap`` bytes, refusing a declared
  Content-Length over the cap without reading and stopping a stream at the cap (the
  connection is then closed, not drained); all bodies being read at once draw on one
  process-wide budget (``limits.buffer``), so concurrency x cap cannot exceed it, and
  each namespace holds at most its share of it (:func:`modelmonitor.core.outbound.buffer_share`;
  the namespace is the :meth:`Outbound.for_namespace` view's); a reader that would
  overdraw either is refused (:class:`BufferBusy`), not made to wait.
"""

from __future__ import annotations

import copy
import http.client
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from modelmonitor.core.outbound import (
    BufferVerdict,
    OutboundPolicy,
    ResponseLimits,
    buffer_refusal,
    redact_url,
    refusal,
    refused_message,
    same_origin,
    sanitize,
    too_large_message,
)

CHUNK = 64 * 1024
# The metric's label for each refusal reason of core.outbound.refusal.
_RULES = {
    "link-local address": "link_local",
    "loopback address": "loopback",
    "unspecified address": "unspecified",
    "the Kubernetes API server": "api_server",
    "not a numeric address": "not_numeric",
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FenceError(Exception):
    """A request the fence stopped; its text is safe to show (no body, no secrets)."""


class OutboundRefused(FenceError, OSError):  # noqa: N818 (named as the status reason)
    """The destination address is not allowed. An OSError, so that the HTTP clients
    treat it as a connection failure (and never send anything)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(refused_message(address, reason))
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


class RedirectRefused(FenceError):  # noqa: N818
    """A redirect to another origin, one hop too many, or one a POST cannot follow."""


class ResponseTooLarge(FenceError):  # noqa: N818
    """A body over its cap; it was not read to the end."""


@dataclass(frozen=True)
class Reply:
    """An answer read within its cap: the status, reason phrase, headers and body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    url: str  # after same-origin redirects


class BufferBusy(FenceError):  # noqa: N818
    """The process-wide body budget, or this namespace's share of it, is spent by other
    requests: this answer was not read.
    Not the endpoint's fault, so never counted against it."""


class ByteBudget:
    """The bytes of response bodies being read at once, process-wide, taken chunk by
    chunk as they arrive, and each namespace's part of them. A reader that would go past
    ``total``, or past its namespace's share (:func:`~modelmonitor.core.outbound.buffer_share`),
    gets :class:`BufferBusy` at once rather than waiting: a wait would show up as the
    endpoint's latency (and could breach another team's SLO), a refusal is reported as
    not measured. Used from the event loop only (not thread-safe)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self.held: dict[str, int] = {}  # namespace -> bytes it holds now (none: absent)

    def take(self, n: int, namespace: str | None = None, cap: int = 0) -> None:
        """Take ``n`` bytes for a read of at most ``cap`` by ``namespace`` (None: drawn on
        the whole buffer only, for a read on no monitor's behalf)."""
        if namespace is None:
            verdict: BufferVerdict = "budget" if n > self.free else None
            mine = 0
        else:
            mine = self.held.get(namespace, 0)
            active = len(self.held) + (0 if mine else 1)
            verdict = buffer_refusal(self.total, self.total - self.free, mine, active, n, cap)
        if verdict == "budget":
            raise BufferBusy(
                f"the operator's response buffer ({self.total} bytes, OUTBOUND_BUFFER_BYTES) "
                "is in use by other requests; not read this time"
            )
        if verdict == "share":
            who = f"namespace {namespace}" if namespace else "this reader"
            raise BufferBusy(
                f"{who}'s share of the operator's response buffer "
                f"({self.total} bytes, OUTBOUND_BUFFER_BYTES, shared between the namespaces "
                "reading) is in use by its other requests; not read this time"
            )
        self.free -= n
        if namespace is not None and mine + n > 0:
            self.held[namespace] = mine + n

    def give(self, n: int, namespace: str | None = None) -> None:
        self.free += n
        if namespace is None:
            return
        left = self.held.get(namespace, 0) - n
        if left > 0:
            self.held[namespace] = left
        else:
            self.held.pop(namespace, None)


class Outbound:
    """The fence with its settings: the aiohttp sessions and the urllib opener to use.

    ``namespace``: whose behalf bodies are read on, for the buffer's per-namespace share;
    :meth:`for_namespace` gives each monitor's run its view of the one fence."""

    def __init__(
        self, policy: OutboundPolicy | None = None, limits: ResponseLimits | None = None
    ) -> None:
        self.policy = policy or OutboundPolicy()
        self.limits = limits or ResponseLimits()
        self.budget = ByteBudget(self.limits.buffer)
        self.blocked: dict[str, int] = {}  # requests stopped, by rule (a metric)
        self.namespace = ""  # the operator's own reads, unless a view says whose

    def for_namespace(self, namespace: str) -> Outbound:
        """This fence reading on behalf of ``namespace``'s monitors: the same policy,
        budget and counters, its bodies counted against that namespace's share."""
        view = copy.copy(self)
        view.namespace = namespace
        return view

    @property
    def buffer_held(self) -> Mapping[str, int]:
        """Bytes of bodies being read now, by namespace (a metric)."""
        return dict(self.budget.held)

    def _count(self, rule: str) -> None:
        key = _RULES.get(rule, rule)
        self.blocked[key] = self.blocked.get(key, 0) + 1

    # -- the address check ---------------------------------------------------------------------
    def check(self, address: str, port: int) -> None:
        """Raise :class:`OutboundRefused` unless connecting to ``address:port`` is allowed."""
        reason = refusal(self.policy, address, port)
        if reason is not None:
            self._count(reason)
            raise OutboundRefused(address, reason)

    def _socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        self.check(str(sockaddr[0]), int(sockaddr[1]))
        return socket.socket(family=family, type=type_, proto=proto)

    # -- aiohttp ---------------------------------------------------------------------------------
    def session(
        self, *, limit: int = 100, tls: ssl.SSLContext | None = None, **kwargs: Any
    ) -> aiohttp.ClientSession:
        """A session whose every connection is checked; never uses environment proxies.

        ``tls``: how to verify servers and which client certificate to present (a
        monitor's CA bundle); None is the system's trust store. The same fenced
        connector either way, so TLS settings never open a way around the fence."""
        connector = aiohttp.TCPConnector(
            limit=limit,
            resolver=_FencedResolver(self),
            socket_factory=self._socket_factory,
            ssl=tls if tls is not None else True,
        )
        return aiohttp.ClientSession(connector=connector, trust_env=False, **kwargs)

    async def fetch(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        cap: int,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        server_hostname: str | None = None,
        encoded: bool = False,
    ) -> Reply:
        """One request, same-origin redirects followed, the body read within ``cap``.

        ``encoded``: ``url`` is already percent-quoted and is sent byte for byte (a
        signed request: the signature covers the path as written).

        Raises :class:`FenceError` (refused, redirect, too large) or what aiohttp raises
        (``aiohttp.ClientError``, ``TimeoutError``); :func:`describe` words either safely.
        """
        hops = 0
        options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        if server_hostname is not None:  # the name to verify the certificate against
            options["server_hostname"] = server_hostname
        while True:
            async with session.request(
                method,
                yarl.URL(url, encoded=True) if encoded else url,
                data=data,
                headers=dict(headers or {}),
                allow_redirects=False,
                **options,
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    url = self._next_hop(method, url, location, resp.status, hops)
                    hops += 1
                    continue
                body = await self.read(resp, cap)
                return Reply(resp.status, resp.reason or "", resp.headers, body, url)

    def _next_hop(self, method: str, url: str, location: str, status: int, hops: int) -> str:
        target = urllib.parse.urljoin(url, location)
        if not same_origin(url, target):
            self._count("redirect")
            raise RedirectRefused(
                f"redirect from {redact_url(url)} to {redact_url(target)} refused: "
                "another host (redirects are followed on the same host only)"
            )
        if hops >= self.policy.max_redirects:
            raise RedirectRefused(
                f"{redact_url(url)}: more than {self.policy.max_redirects} redirects"
            )
        if method not in ("GET", "HEAD") and status not in (307, 308):
            raise RedirectRefused(
                f"{method} {redact_url(url)} redirected with HTTP {status}, which would drop "
                f"the body; use the URL it points to ({redact_url(target)})"
            )
        return target

    async def read(self, resp: aiohttp.ClientResponse, cap: int) -> bytes:
        """The body of ``resp``, at most ``cap`` bytes, else :class:`ResponseTooLarge`."""
        length = resp.content_length
        if length is not None and length > cap:
            self._count("too_large")
            raise ResponseTooLarge(too_large_message(cap, length))
        held = 0
        try:
            if length is not None:  # all of it at once: refused before any is read
                self.budget.take(length, self.namespace, cap)
                held = length
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > cap:
                    self._count("too_large")
                    raise ResponseTooLarge(too_large_message(cap))
                if size > held:
                    self.budget.take(size - held, self.namespace, cap)
                    held = size
                chunks.append(chunk)
            return b"".join(chunks)
        except BufferBusy:
            self._count("buffer_busy")
            raise
        finally:
            self.budget.give(held, self.namespace)

    # -- urllib (the webhook) ------------------------------------------------------------------
    def create_connection(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """Resolve ``host``, refuse forbidden addresses, connect to an allowed one."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        refused: OutboundRefused | None = None
        last: OSError | None = None
        for family, type_, proto, _, sockaddr in infos:
            try:
                self.check(str(sockaddr[0]), int(sockaddr[1]))
            except OutboundRefused as exc:
                refused = refused or exc
                continue
            sock = socket.socket(family, type_, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        if last is not None:
            raise last
        if refused is not None:
            raise refused
        raise OSError(f"{host} resolved to no address")

    def opener(self) -> urllib.request.OpenerDirector:
        """An opener that checks every address, follows no redirect and ignores proxies."""
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            _NoRedirect(),
            _FencedHTTPHandler(self),
            _FencedHTTPSHandler(self),
        )


class _FencedResolver(AbstractResolver):
    """The system resolver, with the forbidden addresses dropped (a clear refusal when
    none is left). The ``socket_factory`` still checks each address at connect time."""

    def __init__(self, fence: Outbound) -> None:
        self._fence = fence
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if refusal(self._fence.policy, r["host"], r["port"]) is None]
        if not allowed and results:
            first = results[0]
            self._fence.check(first["host"], first["port"])
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """No redirect: urllib would turn a POST into a bodiless GET (301-303), and a webhook
    that redirects is a configuration error; the 30x is the answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _FencedHTTPConnection(http.client.HTTPConnection):
    fence: Outbound

    def connect(self) -> None:
        self.sock = self.fence.create_connection(self.host, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _FencedHTTPSConnection(http.client.HTTPSConnection, _FencedHTTPConnection):
    """HTTPSConnection.connect wraps what ``super().connect()`` (ours) connected."""


class _FencedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, fence: Outbound) -> None:
        super().__init__()
        self._fence = fence

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        def connection(host: str, /, **kwargs: Any) -> http.client.HTTPConnection:
            conn = _FencedHTTPConnection(host, **kwargs)
            conn.fence = self._fence
            return conn

        return self.do_open(connection, req)


class _FencedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, fence: Outbound) -> None:
        super().__init__()
        self._fence = fence
        self._tls = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        def connection(host: str, /, **kwargs: Any) -> http.client.HTTPConnection:
            conn = _FencedHTTPSConnection(host, context=self._tls, **kwargs)
            conn.fence = self._fence
            return conn

        return self.do_open(connection, req)


def describe(exc: BaseException, url: str = "") -> str:
    """A failed request in words fit for status: the fence's own message, or the error's
    class and a sanitized text with ``url`` redacted (aiohttp quotes URLs verbatim)."""
    refused = find_refusal(exc)
    if refused is not None:
        return str(refused)
    if isinstance(exc, FenceError):
        return str(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL {redact_url(url)}" if url else "invalid URL"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        detail = getattr(cause, "verify_message", "") or type(cause).__name__
        return f"TLS: the certificate of {exc.host}:{exc.port} is not trusted: {sanitize(detail)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        detail = cause.strerror or type(cause).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {sanitize(detail)}"
    text = str(exc)
    if url:
        text = text.replace(url, redact_url(url))
    return f"{type(exc).__name__}: {sanitize(text)}" if text else type(exc).__name__


def find_refusal(exc: BaseException | None) -> OutboundRefused | None:
    """The :class:`OutboundRefused` behind ``exc`` (aiohttp and urllib wrap it), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OutboundRefused):
            return exc
        inner = getattr(exc, "os_error", None) or getattr(exc, "reason", None)
        if isinstance(inner, BaseException) and inner is not exc:
            found = find_refusal(inner)
            if found is not None:
                return found
        exc = exc.__cause__ or exc.__context__
    return None


def api_server_endpoints(urls: Iterable[str]) -> list[tuple[str, int]]:
    """The (address, port) pairs of the API server URLs, names resolved (at startup)."""
    endpoints: list[tuple[str, int]] = []
    for url in urls:
        parts = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
        host = parts.hostname
        if not host:
            continue
        port = parts.port or (80 if parts.scheme == "http" else 443)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            continue
        endpoints.extend((str(info[4][0]), port) for info in infos)
    return endpoints
