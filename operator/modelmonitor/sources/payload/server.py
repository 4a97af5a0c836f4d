"""The payload-log collector's HTTP side: an aiohttp app on a port of its own.

KServe's payload logger POSTs each request and response of an InferenceService as a
CloudEvent to the URL in ``spec.predictor.logger.url``. Two routes take them:

* ``POST /v1/logs/{namespace}/{monitor}``: the events of one monitor (the URL a user
  puts into ``logger.url``);
* ``POST /``: events routed by their ``ce-namespace`` and ``ce-inferenceservicename``
  extensions to every monitor that the ``resolver`` names (by default the store's:
  the monitors whose ``spec.target`` is that InferenceService).

Answers: 202 accepted; 400 with a one-line reason for an event that cannot be read (or
that comes from another InferenceService than the monitor's target); 404 for a monitor
that does not collect payload logs; 413 above ``max_body_bytes``. ``GET /healthz``
answers 200. Everything else - parsing, pairing, windows, counters - lives in the pure
:mod:`modelmonitor.sources.payload`; this module knows nothing of kopf. The port is the
operator's setting (``OperatorConfig.payload_port``: ``--payload-port`` or
``PAYLOAD_PORT``), passed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from modelmonitor.core.codecs.cloudevents import MalformedEventError, PayloadEvent, parse_events
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.payload.window import PayloadWindow

log = logging.getLogger(__name__)

DEFAULT_HOST = "0.0.0.0"
MAX_BODY_BYTES = 4 * 1024 * 1024
OFFLOAD_BYTES = 64 * 1024  # bodies above this are parsed in a worker thread
LOGS_ROUTE = "/v1/logs/{namespace}/{monitor}"
# CloudEvents' HTTP binding takes any 2xx as delivered; KServe's logger logs the status
# of every answer other than 200 (at info level) and never retries.
ACCEPTED = 202

Resolver = Callable[[str, str], Iterable[str]]  # (namespace, InferenceService) -> monitors
Clock = Callable[[], float]


class _Settings:
    def __init__(self, resolver: Resolver, max_body_bytes: int, clock: Clock) -> None:
        self.resolver = resolver
        self.max_body_bytes = max_body_bytes
        self.clock = clock


_STORE = web.AppKey("payload_store", PayloadStore)
_SETTINGS = web.AppKey("payload_settings", _Settings)


class _TooLargeError(Exception):
    pass


def make_app(
    store: PayloadStore,
    *,
    resolver: Resolver | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Clock = time.time,
) -> web.Application:
    """The collector's aiohttp application (see the module docstring for its routes)."""
    app = web.Application(client_max_size=max_body_bytes)
    app[_STORE] = store
    app[_SETTINGS] = _Settings(resolver or store.resolve, max_body_bytes, clock)
    app.router.add_post(LOGS_ROUTE, _monitor_logs)
    app.router.add_post("/", _routed_logs)
    app.router.add_get("/healthz", _healthz)
    return app


async def start_payload_server(
    store: PayloadStore,
    port: int,
    resolver: Resolver | None = None,
    *,
    host: str = DEFAULT_HOST,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Clock = time.time,
) -> web.AppRunner:
    """Serve the collector on ``host:port`` (port 0: a free one, see :func:`bound_port`)
    until :func:`stop_payload_server`."""
    app = make_app(store, resolver=resolver, max_body_bytes=max_body_bytes, clock=clock)
    runner = web.AppRunner(app, access_log=None)  # one line per event would flood the log
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("payload-log collector listening on %s:%d", host, bound_port(runner))
    return runner


async def stop_payload_server(runner: web.AppRunner) -> None:
    await runner.cleanup()


def bound_port(runner: web.AppRunner) -> int:
    """The port the server listens on (the first address)."""
    address: Any = runner.addresses[0]
    return int(address[1])


# --- handlers ------------------------------------------------------------------------------


def _reply(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text.replace("\n", " ") + "\n")


async def _healthz(request: web.Request) -> web.Response:
    return _reply(200, "ok")


async def _monitor_logs(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    settings = request.app[_SETTINGS]
    namespace = request.match_info["namespace"]
    monitor = request.match_info["monitor"]
    window = store.window(namespace, monitor)
    if window is None:
        store.reject("unknown_monitor")
        return _reply(
            404, f"no monitor {namespace}/{monitor} collects payload logs (spec.data.payloadLog)"
        )
    try:
        events = await _events(request, settings.max_body_bytes)
    except _TooLargeError:
        store.reject("too_large")
        return _too_large(settings.max_body_bytes)
    except MalformedEventError as exc:
        window.record_malformed()
        log.debug("payload log %s/%s: %s", namespace, monitor, exc)
        return _reply(400, str(exc))
    for event in events:
        wrong = store.mismatch(namespace, monitor, event)
        if wrong is not None:
            window.record_malformed()
            return _reply(400, wrong)
    return _add(window, events, settings.clock())


async def _routed_logs(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    settings = request.app[_SETTINGS]
    try:
        events = await _events(request, settings.max_body_bytes)
    except _TooLargeError:
        store.reject("too_large")
        return _too_large(settings.max_body_bytes)
    except MalformedEventError as exc:
        store.reject("malformed")
        return _reply(400, str(exc))
    routed: list[tuple[PayloadWindow, PayloadEvent]] = []
    unknown: list[str] = []
    for event in events:
        if not (event.namespace and event.service):
            store.reject("unrouted")
            return _reply(
                400,
                f"{event.kind} {event.id}: POST / routes by the ce-namespace and "
                "ce-inferenceservicename extensions; use /v1/logs/{namespace}/{monitor}",
            )
        windows = [
            w
            for name in settings.resolver(event.namespace, event.service)
            if (w := store.window(event.namespace, name)) is not None
        ]
        if not windows:
            store.reject("unknown_monitor")
            unknown.append(f"{event.namespace}/{event.service}")
        routed.extend((w, event) for w in windows)
    if not routed:
        return _reply(
            404, f"no monitor collects payload logs of InferenceService {', '.join(unknown)}"
        )
    now = settings.clock()
    failures = [r for w, e in routed if (r := _add(w, [e], now)).status != ACCEPTED]
    return failures[0] if failures else _reply(ACCEPTED, "accepted")


def _add(window: PayloadWindow, events: list[PayloadEvent], now: float) -> web.Response:
    for event in events:
        try:
            window.add(event, now)
        except MalformedEventError as exc:
            return _reply(400, str(exc))
    return _reply(ACCEPTED, "accepted")


def _too_large(limit: int) -> web.Response:
    response = _reply(413, f"body larger than {limit} bytes")
    response.force_close()  # do not linger reading the rest of a body we refused
    return response


async def _events(request: web.Request, limit: int) -> list[PayloadEvent]:
    if request.content_length is not None and request.content_length > limit:
        raise _TooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        chunks.append(chunk)
    body = b"".join(chunks)
    headers = dict(request.headers)
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(parse_events, headers, body)
    return parse_events(headers, body)
