"""Probe an inference endpoint: send rows, collect predictions, latencies and errors.

Two layers here, over the pure codecs of :mod:`modelmonitor.core.codecs.inference` (one
per protocol: request bodies from rows, one prediction per row from a response), so that
everything but the socket is testable without a network:

* a thin :class:`Transport`: one POST that returns the status and body, or raises
  :class:`TransportError` naming a timeout or a connection failure
  (:class:`AiohttpTransport` in production, a fake in unit tests);
* :func:`probe`: batching, bounded concurrency, per-request timeouts, retries with
  exponential backoff and jitter (connection errors and 5xx only), and the assembly of a
  :class:`ProbeResult`. Failures are recorded in the result, never raised: an endpoint
  that answers nothing yields a result whose ``failure`` is ``EndpointUnreachable``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
import numpy as np

from modelmonitor.adapters.outbound import (
    BufferBusy,
    FenceError,
    Outbound,
    OutboundRefused,
    describe,
    find_refusal,
)
from modelmonitor.core.codecs.inference import (
    DEFAULT_JSON_PATH,
    PROTOCOLS,
    V2_LAYOUTS,
    V2_NUMERIC_DATATYPES,
    BadResponseError,
    BatchOutput,
    IntArray,
    RowBatch,
    V2Options,
    decode_json,
    encode_request,
    make_batches,
    parse_predictions,
    prediction_values,
)
from modelmonitor.core.dataset import Dataset, FeatureType, FloatArray
from modelmonitor.core.outbound import redact_url, sanitize
from modelmonitor.core.spec import EndpointSpec, PerformanceSpec, PredictionSpec, ProbeSpec
from modelmonitor.core.url_paths import has_dot_segment
from modelmonitor.sources.probe_result import (
    ENDPOINT_UNREACHABLE,
    OPERATOR_BUSY,
    OUTBOUND_REFUSED,
    ErrorKind,
    ProbeErrors,
    ProbeResult,
    empty_result,
    expected_labels,
    prediction_column,
)

RETRYABLE = frozenset({ErrorKind.CONNECTION, ErrorKind.HTTP_5XX})
_NO_HTTP_ANSWER = frozenset({ErrorKind.CONNECTION, ErrorKind.TIMEOUT})


class TransportError(Exception):
    """A request that got no HTTP answer: ``kind`` is TIMEOUT or CONNECTION; ``refused``
    when the outbound fence refused the address (nothing was sent); ``unmeasured`` when
    the answer was not read for the operator's own reasons (its body budget was spent):
    neither counts for or against the endpoint."""

    def __init__(
        self, kind: ErrorKind, message: str, *, refused: bool = False, unmeasured: bool = False
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.refused = refused
        self.unmeasured = unmeasured


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeConfig:
    """Everything :func:`probe` needs besides the rows; see :func:`config_from_spec`."""

    url: str  # the base URL, e.g. http://model.ns.svc:8080
    protocol: Literal["v1", "v2", "json"] = "v2"
    model: str | None = None  # required for v1 and v2
    path: str | None = None  # json only; default /predict
    input_field: str = "instances"  # json only; a dotted path nests the rows (a.b)
    output_field: str = "predictions"  # json only; a dotted path reads nested outputs
    timeout_seconds: float = 2.0
    concurrency: int = 4
    retries: int = 2
    batch_size: int = 1
    backoff_seconds: float = 0.05  # the first retry waits between half and all of this
    backoff_max_seconds: float = 2.0
    prediction_type: FeatureType = "categorical"
    classes: tuple[str, ...] | None = None  # class names for probability columns
    v2: V2Options = field(default_factory=V2Options)
    headers: Mapping[str, str] = field(default_factory=dict)
    max_messages: int = 3  # error messages kept per kind
    fail_fast_after: int = 8  # stop after this many attempts got no answer and none did

    def __post_init__(self) -> None:
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.protocol in ("v1", "v2") and not self.model:
            problems.append(f"protocol {self.protocol} needs a model name")
        elif self.protocol in ("v1", "v2") and self.model in (".", ".."):
            problems.append(f"model name {self.model!r} would leave the inference path")
        if self.protocol == "json" and has_dot_segment(self._json_path):
            problems.append(f"path {self._json_path!r} may not contain '.' or '..' segments")
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url {self.url!r} must start with http:// or https://")
        if not self.timeout_seconds > 0:
            problems.append("timeout_seconds must be > 0")
        if self.concurrency < 1 or self.batch_size < 1 or self.retries < 0:
            problems.append("concurrency and batch_size must be >= 1, retries >= 0")
        if self.v2.layout not in V2_LAYOUTS:
            problems.append(f"v2 layout {self.v2.layout!r} is not one of {V2_LAYOUTS}")
        if self.v2.numeric_datatype not in V2_NUMERIC_DATATYPES:
            problems.append(f"v2 datatype must be one of {', '.join(V2_NUMERIC_DATATYPES)}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def _json_path(self) -> str:
        path = self.path or DEFAULT_JSON_PATH
        return path if path.startswith("/") else f"/{path}"

    @property
    def request_path(self) -> str:
        """The path, percent-quoted: what quoting cannot neutralise (``.``/``..``
        segments, which HTTP clients collapse) is refused in __post_init__."""
        model = urllib.parse.quote(self.model or "", safe="")
        if self.protocol == "v1":
            return f"/v1/models/{model}:predict"
        if self.protocol == "v2":
            return f"/v2/models/{model}/infer"
        return urllib.parse.quote(self._json_path, safe="/:@!$&'()*+,;=-._~")

    @property
    def request_url(self) -> str:
        return self.url.rstrip("/") + self.request_path


def config_from_spec(
    endpoint: EndpointSpec,
    probe_spec: ProbeSpec,
    *,
    base_url: str,
    default_model: str,
    prediction: PredictionSpec | None = None,
    performance: PerformanceSpec | None = None,
) -> ProbeConfig:
    """The probe settings of a monitor: ``default_model`` is ``spec.target.name``."""
    return ProbeConfig(
        url=base_url,
        protocol=endpoint.protocol,
        model=endpoint.model or default_model,
        path=endpoint.path,
        input_field=endpoint.input_field,
        output_field=endpoint.output_field,
        timeout_seconds=probe_spec.timeout_seconds,
        concurrency=probe_spec.concurrency,
        retries=probe_spec.retries,
        batch_size=probe_spec.batch_size,
        prediction_type=prediction.type if prediction is not None else "categorical",
        v2=v2_options(performance),
    )


def v2_options(performance: PerformanceSpec | None) -> V2Options:
    """Ask for the prediction and the probability outputs when spec.performance names one."""
    if performance is None or performance.probability_output is None:
        return V2Options()
    pred, prob = performance.prediction_output, performance.probability_output
    return V2Options(outputs=(pred, prob), output_name=pred, probability_output=prob)


# --- rows ------------------------------------------------------------------------------


def sample_rows(rows: Dataset, n: int, *, seed: int | None = None) -> Dataset:
    """Up to ``n`` rows drawn without replacement, kept in their original order."""
    if n >= rows.n_rows:
        return rows
    rng = np.random.default_rng(seed)
    return rows.take(np.sort(rng.choice(rows.n_rows, size=n, replace=False)))


# --- codecs: the endpoint's settings applied ----------------------------------------------


def build_request(config: ProbeConfig, batch: RowBatch) -> dict[str, Any]:
    """The JSON body for ``batch`` in ``config.protocol``."""
    return encode_request(config.protocol, batch, v2=config.v2, input_field=config.input_field)


def parse_response(config: ProbeConfig, payload: Any, n_rows: int) -> BatchOutput:
    """One prediction per row from a decoded response body; BadResponseError otherwise."""
    return parse_predictions(
        config.protocol, payload, n_rows, v2=config.v2, output_field=config.output_field
    )


# --- predictions -------------------------------------------------------------------------


# --- transport ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpReply:
    """An answer; ``error`` when it could not be read (too large, a refused redirect)."""

    status: int
    body: bytes
    error: str = ""


class Transport(Protocol):
    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        """POST ``body``; return the reply, or raise TransportError (timeout, connection)."""


_CONNECT_TIMEOUTS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None
)


class AiohttpTransport:
    """The production transport over one fenced aiohttp session (not owned: the caller
    closes it); bodies are read within ``fence.limits.probe`` bytes."""

    def __init__(self, session: aiohttp.ClientSession, fence: Outbound) -> None:
        self._session = session
        self._fence = fence

    async def post(
        self, url: str, body: bytes, *, timeout: float, headers: Mapping[str, str]
    ) -> HttpReply:
        all_headers = {"Content-Type": "application/json", **headers}
        try:
            reply = await self._fence.fetch(
                self._session,
                "POST",
                url,
                cap=self._fence.limits.probe,
                data=body,
                headers=all_headers,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=timeout),
            )
        except OutboundRefused as exc:
            raise TransportError(ErrorKind.CONNECTION, str(exc), refused=True) from exc
        except BufferBusy as exc:
            raise TransportError(ErrorKind.CONNECTION, str(exc), unmeasured=True) from exc
        except FenceError as exc:  # answered, but not readable: too large, a redirect
            return HttpReply(0, b"", error=str(exc))
        except _CONNECT_TIMEOUTS as exc:
            raise TransportError(
                ErrorKind.CONNECTION, f"connect timeout after {timeout:g}s"
            ) from exc
        except TimeoutError as exc:
            raise TransportError(ErrorKind.TIMEOUT, f"no answer within {timeout:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            refused = find_refusal(exc) is not None
            raise TransportError(ErrorKind.CONNECTION, describe(exc, url), refused=refused) from exc
        return HttpReply(reply.status, reply.body)


# --- results ----------------------------------------------------------------------------


# --- the probe --------------------------------------------------------------------------


@dataclass
class _Outcome:
    rows: IntArray
    latency_ms: float = 0.0
    attempts: int = 0
    values: list[Any] | None = None  # set on success
    probabilities: FloatArray | None = None
    kind: ErrorKind | None = None
    message: str = ""
    sent: bool = True
    refused: bool = False  # the fence refused the address: nothing reached the endpoint
    unmeasured: bool = False  # answered, but not read (the operator's budget): not an SLI


def backoff_delay(attempt: int, config: ProbeConfig, rng: random.Random) -> float:
    """Seconds before retry ``attempt`` (0-based): exponential, capped, with jitter.

    The cap doubles from ``backoff_seconds`` each attempt; the delay is drawn uniformly
    from its upper half, so concurrent retries spread out but never come back at once.
    """
    cap = min(config.backoff_max_seconds, config.backoff_seconds * (2.0**attempt))
    return rng.uniform(cap / 2.0, cap)


class _Prober:
    def __init__(
        self,
        config: ProbeConfig,
        transport: Transport,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.transport = transport
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.semaphore = asyncio.Semaphore(config.concurrency)
        self.unanswered = 0  # attempts that got no HTTP answer, while none has got one
        self.answered_any = False
        self.attempts = 0

    def gave_up(self) -> bool:
        return not self.answered_any and self.unanswered >= self.config.fail_fast_after

    async def send(self, rows: IntArray, batch: RowBatch, body: bytes) -> _Outcome:
        """One request with its retries; it holds a concurrency slot throughout, backoff
        included, so retries never let more requests at a struggling server."""
        outcome = _Outcome(rows)
        async with self.semaphore:
            for attempt in range(self.config.retries + 1):
                if self.gave_up():
                    outcome.sent = attempt > 0
                    break
                await self._attempt(batch, body, outcome)
                if outcome.kind not in RETRYABLE or attempt == self.config.retries:
                    break
                await self.sleep(backoff_delay(attempt, self.config, self.rng))
        return outcome

    async def _attempt(self, batch: RowBatch, body: bytes, outcome: _Outcome) -> None:
        config = self.config
        self.attempts += 1
        outcome.attempts += 1
        start = self.clock()
        try:
            reply = await self.transport.post(
                config.request_url, body, timeout=config.timeout_seconds, headers=config.headers
            )
        except TransportError as exc:
            outcome.latency_ms = (self.clock() - start) * 1000.0
            if exc.unmeasured:
                outcome.kind, outcome.message, outcome.unmeasured = None, str(exc), True
                return
            outcome.kind, outcome.message = exc.kind, str(exc)
            outcome.refused = exc.refused
            self.unanswered += 1
        else:
            outcome.latency_ms = (self.clock() - start) * 1000.0
            self.answered_any = True
            self._read(reply, batch, outcome)

    def _read(self, reply: HttpReply, batch: RowBatch, outcome: _Outcome) -> None:
        status = reply.status
        outcome.kind, outcome.message = None, ""
        if reply.error:
            outcome.kind, outcome.message = ErrorKind.BAD_RESPONSE, reply.error
            return
        if 200 <= status < 300:
            try:
                out = parse_response(self.config, decode_json(reply.body), batch.n_rows)
                outcome.values = prediction_values(
                    out, self.config.prediction_type, self.config.classes
                )
                outcome.probabilities = out.probabilities
            except BadResponseError as exc:
                # The reason may quote the body (field names, a snippet): keep it short.
                outcome.kind, outcome.message = ErrorKind.BAD_RESPONSE, sanitize(str(exc))
            return
        detail = _error_detail(reply.body)
        if status >= 500:
            outcome.kind = ErrorKind.HTTP_5XX
        elif status >= 400:
            outcome.kind = ErrorKind.HTTP_4XX
        else:
            outcome.kind = ErrorKind.BAD_RESPONSE
        outcome.message = f"HTTP {status}" + (f": {detail}" if detail else "")


def _error_detail(body: bytes) -> str:
    """The server's error message, short: a JSON ``error``/``detail`` field or the text."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        text = body.decode("utf-8", "replace").strip()
    else:
        text = ""
        if isinstance(payload, Mapping):
            for key in ("error", "detail", "message"):
                if key in payload:
                    text = str(payload[key])
                    break
        text = text or json.dumps(payload)
    return sanitize(text)


async def probe(
    config: ProbeConfig,
    rows: Dataset,
    *,
    features: Sequence[str] | None = None,
    label_column: str | None = None,
    transport: Transport | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    outbound: Outbound | None = None,
) -> ProbeResult:
    """Send ``rows`` to the endpoint and measure what comes back.

    ``outbound``: the fence the requests go through (default: the strict one).

    ``features``: the model's inputs, in order (default: every column but
    ``label_column``). ``label_column``: the golden set's expected values. Raise
    ValueError only for a call that cannot be made (a feature or the label column
    missing); every failure of the endpoint is recorded in the result.
    """
    names = list(features) if features is not None else [c for c in rows if c != label_column]
    if label_column is not None and label_column not in rows:
        raise ValueError(f"probe rows lack the label column {label_column!r}")
    batches = [
        (idx, batch, json.dumps(build_request(config, batch), allow_nan=False).encode())
        for idx, batch in make_batches(rows, names, config.batch_size)
    ]
    if not batches:
        return empty_result(config.prediction_type)
    started = clock()
    if transport is None:
        fence = outbound or Outbound()
        async with fence.session(limit=config.concurrency) as session:
            outcomes = await _run(
                config, AiohttpTransport(session, fence), batches, clock, sleep, rng
            )
    else:
        outcomes = await _run(config, transport, batches, clock, sleep, rng)
    sent = [o for o in outcomes if o.sent and not o.unmeasured]
    if not sent and any(o.unmeasured for o in outcomes):
        busy = next(o.message for o in outcomes if o.unmeasured)
        message = f"{redact_url(config.request_url)}: {busy}"
        return empty_result(config.prediction_type, failure=OPERATOR_BUSY, message=message)
    if sent and all(o.refused for o in sent):
        # A fence refusal is the monitor's configuration, not the model's availability:
        # no request counts for or against an SLO.
        message = f"{redact_url(config.request_url)}: {sent[0].message}"
        return empty_result(config.prediction_type, failure=OUTBOUND_REFUSED, message=message)
    attempts = sum(o.attempts for o in outcomes)
    return _assemble(config, rows, label_column, outcomes, attempts, clock() - started)


async def _run(
    config: ProbeConfig,
    transport: Transport,
    batches: Sequence[tuple[IntArray, RowBatch, bytes]],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random | None,
) -> list[_Outcome]:
    prober = _Prober(config, transport, clock=clock, sleep=sleep, rng=rng or random.Random())
    return list(await asyncio.gather(*(prober.send(*item) for item in batches)))


def _assemble(
    config: ProbeConfig,
    rows: Dataset,
    label_column: str | None,
    outcomes: Sequence[_Outcome],
    attempts: int,
    duration: float,
) -> ProbeResult:
    sent = [o for o in outcomes if o.sent and not o.unmeasured]
    answered = [o for o in sent if o.values is not None]
    counts: dict[ErrorKind, int] = {}
    messages: dict[ErrorKind, list[str]] = {}
    for o in sent:
        if o.kind is None:
            continue
        counts[o.kind] = counts.get(o.kind, 0) + 1
        kept = messages.setdefault(o.kind, [])
        if len(kept) < config.max_messages and o.message not in kept:
            kept.append(o.message)
    idx = np.concatenate([o.rows for o in answered]) if answered else np.zeros(0, dtype=np.intp)
    values = [v for o in answered for v in (o.values or [])]
    probabilities = None
    widths = {o.probabilities.shape[1] for o in answered if o.probabilities is not None}
    if answered and len(widths) == 1 and all(o.probabilities is not None for o in answered):
        probabilities = np.concatenate(
            [o.probabilities for o in answered if o.probabilities is not None]
        )
    labels = None
    if label_column is not None:
        labels = expected_labels(rows[label_column], idx, config.prediction_type)
    failure, message = None, ""
    if sent and not answered and all(o.kind in _NO_HTTP_ANSWER for o in sent):
        failure = ENDPOINT_UNREACHABLE
        first = next(iter(messages.values()), [""])[0] if messages else ""
        message = f"{redact_url(config.request_url)}: no answer to {len(sent)} request(s): {first}"
    return ProbeResult(
        n_sent=sum(o.rows.shape[0] for o in sent),
        n_skipped=sum(o.rows.shape[0] for o in outcomes if not o.sent or o.unmeasured),
        predictions=prediction_column(values, config.prediction_type),
        rows=idx,
        latencies_ms=np.asarray([o.latency_ms for o in sent], dtype=np.float64),
        request_ok=np.asarray([o.values is not None for o in sent], dtype=bool),
        errors=ProbeErrors(counts, {k: tuple(v) for k, v in messages.items()}),
        attempts=attempts,
        duration_seconds=duration,
        probabilities=probabilities,
        labels=labels,
        failure=failure,
        failure_message=message,
    )
