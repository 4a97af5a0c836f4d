"""The payload-log collector's HTTP side: an aiohttp app on a port of its own.

KServe's payload logger POSTs each request and response of an InferenceService as a
CloudEvent to the URL in ``spec.predictor.logger.url``. The one route that takes them:

* ``POST /v1/logs/{namespace}/{monitor}/{token}``: the events of one monitor, shown its
  token (the URL a user puts into ``logger.url``, kept in a Secret the monitor owns;
  see :mod:`.tokens`).

* ``POST /v1/labels/{namespace}/{monitor}/{token}``: late labels of the same monitor
  (``spec.performance.labels``), a JSON batch of ``{id, label}``
  (:mod:`modelmonitor.core.codecs.labels`), shown the same token, refused the same way
  (401, 403, 408, 413, counted alike); 400 for a batch that cannot be read; 202 with
  what the join made of the batch (``matched``, ``unknownIds``, ``duplicates``,
  ``late``). A monitor that takes no labels answers 403 as a wrong token does.

Answers: 202 accepted; 401 without a token (``/v1/logs/{namespace}/{monitor}``, or
``POST /``); 403 for a wrong token or a monitor that does not collect payload logs (one
answer for both), and for an event whose CloudEvents extensions name another namespace
or InferenceService than the monitor's target; 400 with a one-line reason for an event
that cannot be read; 408 for a body slower than ``READ_SECONDS``; 413 above
``max_body_bytes``. Every refusal is counted by reason
(``PayloadStore.rejected``), and a refused sender's body is never read. At most
``max_parsing`` bodies are read and decoded at once, so many senders cannot multiply
the memory one body may take. ``GET /healthz`` answers 200. Everything else -
parsing, pairing, windows, counters - lives in the pure
:mod:`modelmonitor.sources.payload`; this module knows nothing of kopf. The port is the
operator's setting (``OperatorConfig.payload_port``: ``--payload-port`` or
``PAYLOAD_PORT``), passed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from modelmonitor.core.codecs.cloudevents import MalformedEventError, PayloadEvent, parse_events
from modelmonitor.core.codecs.labels import LabelBatch, MalformedLabelsError, parse_labels
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.payload.window import PayloadWindow

_Parsed = TypeVar("_Parsed")

log = logging.getLogger(__name__)

DEFAULT_HOST = "0.0.0.0"
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_PARSING = 4  # bodies read and decoded at once
READ_SECONDS = 30.0  # a sender holding a parsing slot longer is cut off
OFFLOAD_BYTES = 64 * 1024  # bodies above this are parsed in a worker thread
LOGS_ROUTE = "/v1/logs/{namespace}/{monitor}/{token}"
LABELS_ROUTE = "/v1/labels/{namespace}/{monitor}/{token}"
# CloudEvents' HTTP binding takes any 2xx as delivered; KServe's logger logs the status
# of every answer other than 200 (at info level) and never retries.
ACCEPTED = 202

Clock = Callable[[], float]


class _Settings:
    def __init__(self, max_body_bytes: int, clock: Clock, max_parsing: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.parsing = asyncio.Semaphore(max_parsing)


_STORE = web.AppKey("payload_store", PayloadStore)
_SETTINGS = web.AppKey("payload_settings", _Settings)


class _TooLargeError(Exception):
    pass


def make_app(
    store: PayloadStore,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Clock = time.time,
    max_parsing: int = MAX_PARSING,
) -> web.Application:
    """The collector's aiohttp application (see the module docstring for its routes)."""
    app = web.Application(client_max_size=max_body_bytes)
    app[_STORE] = store
    app[_SETTINGS] = _Settings(max_body_bytes, clock, max_parsing)
    app.router.add_post(LOGS_ROUTE, _monitor_logs)
    app.router.add_post("/v1/logs/{namespace}/{monitor}", _unauthenticated)
    app.router.add_post(LABELS_ROUTE, _monitor_labels)
    app.router.add_post("/v1/labels/{namespace}/{monitor}", _unauthenticated)
    app.router.add_post("/", _unauthenticated)
    app.router.add_get("/healthz", _healthz)
    return app


async def start_payload_server(
    store: PayloadStore,
    port: int,
    *,
    host: str = DEFAULT_HOST,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Clock = time.time,
) -> web.AppRunner:
    """Serve the collector on ``host:port`` (port 0: a free one, see :func:`bound_port`)
    until :func:`stop_payload_server`."""
    app = make_app(store, max_body_bytes=max_body_bytes, clock=clock)
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


async def _unauthenticated(request: web.Request) -> web.Response:
    """A logger URL without the monitor's token: refused before the body is read."""
    request.app[_STORE].reject("token_missing")
    return _refuse(
        401,
        "this collector takes the events of a monitor only at its logger URL with its "
        "token: /v1/logs/{namespace}/{monitor}/{token}, labels at /v1/labels/... (the monitor's "
        "status.payloadLog names the Secret that holds it)",
    )


async def _monitor_logs(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    settings = request.app[_SETTINGS]
    namespace = request.match_info["namespace"]
    monitor = request.match_info["monitor"]
    refused = store.authenticate(namespace, monitor, request.match_info["token"])
    window = store.window(namespace, monitor) if refused is None else None
    if window is None:
        store.reject(refused or "unknown_monitor")
        # One answer for a wrong token and a monitor that does not collect: a sender
        # without the token learns nothing about which monitors exist.
        return _refuse(
            403,
            f"no monitor {namespace}/{monitor} with this token collects payload logs "
            "(spec.data.payloadLog; the URL is in the Secret named by status.payloadLog)",
        )
    try:
        events = await _read_bounded(request, _events)
    except _BodyRefusedError as refused_body:
        return refused_body.response
    except MalformedEventError as exc:
        window.record_malformed()
        log.debug("payload log %s/%s: %s", namespace, monitor, exc)
        return _reply(400, str(exc))
    for event in events:
        wrong = store.mismatch(namespace, monitor, event)
        if wrong is not None:
            window.record_malformed()
            store.reject("foreign_source")
            return _reply(403, wrong)
    return _add(window, events, settings.clock())


async def _monitor_labels(request: web.Request) -> web.Response:
    """A batch of late labels: the payload route's token check, then the join."""
    store = request.app[_STORE]
    settings = request.app[_SETTINGS]
    namespace = request.match_info["namespace"]
    monitor = request.match_info["monitor"]
    refused = store.authenticate(namespace, monitor, request.match_info["token"])
    window = store.window(namespace, monitor) if refused is None else None
    if window is None or not window.takes_labels:
        store.reject(refused or ("unknown_monitor" if window is None else "labels_off"))
        return _refuse(
            403,
            f"no monitor {namespace}/{monitor} with this token takes labels "
            "(spec.performance.labels; the token is in the Secret named by status.payloadLog)",
        )
    try:
        batch = await _read_bounded(request, _labels)
    except _BodyRefusedError as refused_body:
        return refused_body.response
    except MalformedLabelsError as exc:
        store.reject("malformed")
        log.debug("labels %s/%s: %s", namespace, monitor, exc)
        return _reply(400, str(exc))
    return _join(window, batch, settings.clock())


def _join(window: PayloadWindow, batch: LabelBatch, now: float) -> web.Response:
    outcome = window.add_labels(batch, now)
    if outcome is None:  # labels turned off between the check and now
        return _reply(403, "this monitor takes no labels")
    answer = {"accepted": len(batch), **outcome.as_dict()}
    return web.json_response(answer, status=ACCEPTED)


def _add(window: PayloadWindow, events: list[PayloadEvent], now: float) -> web.Response:
    for event in events:
        try:
            window.add(event, now)
        except MalformedEventError as exc:
            return _reply(400, str(exc))
    return _reply(ACCEPTED, "accepted")


def _refuse(status: int, text: str) -> web.Response:
    response = _reply(status, text)
    response.force_close()  # the body is never read: do not keep the connection for it
    return response


def _too_large(limit: int) -> web.Response:
    response = _reply(413, f"body larger than {limit} bytes")
    response.force_close()  # do not linger reading the rest of a body we refused
    return response


async def _body(request: web.Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (else _TooLargeError, before reading past it)."""
    if request.content_length is not None and request.content_length > limit:
        raise _TooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


class _BodyRefusedError(Exception):
    """A body refused while reading it (too slow, too large): the answer to send."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


async def _read_bounded(
    request: web.Request, parse: Callable[[web.Request, int], Awaitable[_Parsed]]
) -> _Parsed:
    """``parse`` the body under the collector's bounds: one parse at a time past the
    parsing semaphore, READ_SECONDS to arrive, max_body_bytes; a refusal is counted and
    raised as :class:`_BodyRefusedError`. Parse errors pass through to the route."""
    store = request.app[_STORE]
    settings = request.app[_SETTINGS]
    try:
        async with settings.parsing, asyncio.timeout(READ_SECONDS):
            return await parse(request, settings.max_body_bytes)
    except TimeoutError:
        store.reject("slow_body")
        raise _BodyRefusedError(
            _refuse(408, f"the body took longer than {READ_SECONDS:g} s to arrive")
        ) from None
    except _TooLargeError:
        store.reject("too_large")
        raise _BodyRefusedError(_too_large(settings.max_body_bytes)) from None


async def _labels(request: web.Request, limit: int) -> LabelBatch:
    body = await _body(request, limit)
    if len(body) > OFFLOAD_BYTES:
        return await asyncio.to_thread(parse_labels, body)
    return parse_labels(body)


async def _events(request: web.Request, limit: int) -> list[PayloadEvent]:
    body = await _body(request, limit)
    headers = dict(request.headers)
    size = len(body)
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(parse_events, headers, body)
    return parse_events(headers, body)
