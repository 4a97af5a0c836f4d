"""Ready-made SLI queries for the metrics common model servers export.

A spec names a template (``template: {name: mlserver, model: fraud}``) instead of
writing PromQL. Each template knows the server's metric and label names:

``mlserver`` (Seldon MLServer)
    Counters ``model_infer_request_success`` / ``model_infer_request_failure``
    (exposed with the ``_total`` suffix, labels ``model`` and ``version``) for the error
    ratio; the REST server's histogram ``rest_server_request_duration_seconds``
    (starlette-exporter: ``method``, ``path``, ``status_code``, ``app_name``; the prefix
    is MLServer's ``metrics_rest_server_prefix``, ``rest_server`` by default) for latency,
    limited to the inference paths.
``kserve`` (KServe's Python model server: sklearn, xgboost, lightgbm ... runtimes)
    The histogram ``request_predict_seconds`` (label ``model_name``) for latency. It
    exports no error counter, so it has no error-ratio SLI: use the ``mlserver``
    template for an InferenceService served by MLServer, or write PromQL.
``seldon`` (Seldon Core v2)
    The counter ``seldon_model_infer_total`` (labels ``model``, ``server``, ``code``,
    ``method_type`` ...; ``code`` is the HTTP status or the gRPC code) for the error
    ratio; the server-wide histogram ``seldon_model_infer_api_seconds`` (labels
    ``server``, ``server_replica``, ``method``, ``code``; no model label) for latency.

Queries are rendered per window: ``$window`` in a template (or in a user's own query)
becomes a Prometheus duration such as ``5m`` or ``417ms``, so the burn-rate windows can
each be asked for. A counter that has never been incremented does not exist yet, so
the queries add ``or vector(0)`` to each counter that may be missing (no failures yet,
or no successes when every request fails). A total of zero, or an empty total, is
reported by the SLO as InsufficientData, never as a pass.

Latency SLOs need two things from a histogram: the percentile
(``histogram_quantile``, in seconds) and, for the error budget, the requests at or
under the threshold. The latter reads the bucket whose upper bound ``le`` equals the
threshold, so it only exists when ``thresholdMs`` is a bucket boundary (e.g. 250 ms
with the default buckets); otherwise its query is empty and only the percentile counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from modelmonitor.core.slo.budget import format_duration
from modelmonitor.core.spec import AnomalySpec, SLOSpec

WINDOW_PLACEHOLDER = re.compile(r"\$\{window\}|\$window\b")
# PromQL string literals ("..." and '...' with backslash escapes, `...` raw): text a user
# wrote, such as a label value, where a placeholder is never replaced.
_STRING_OR_WINDOW = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`|' + WINDOW_PLACEHOLDER.pattern
)
_SELECTOR_PLACEHOLDER = re.compile(r"\{selector(?:_and)?\}")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class TemplateError(ValueError):
    """An unknown template, or one asked for an SLI it does not have."""


@dataclass(frozen=True)
class SLITemplate:
    """The metric and label names one model server exports.

    ``errors``/``total`` and ``latency_histogram`` may be None when the server exports
    no such metric. ``{selector}`` in the counter queries is replaced by the label
    matchers (model, plus the user's own labels), ``$window`` by each window.
    """

    name: str
    server: str
    model_label: str | None
    errors: str | None
    total: str | None
    latency_histogram: str | None
    latency_model_label: str | None
    latency_matchers: Mapping[str, str]
    notes: str


TEMPLATES: Mapping[str, SLITemplate] = {
    "mlserver": SLITemplate(
        name="mlserver",
        server="MLServer",
        model_label="model",
        errors="sum(increase(model_infer_request_failure_total{selector}[$window])) or vector(0)",
        total=(
            "(sum(increase(model_infer_request_success_total{selector}[$window])) or vector(0))"
            " + (sum(increase(model_infer_request_failure_total{selector}[$window]))"
            " or vector(0))"
        ),
        latency_histogram="rest_server_request_duration_seconds",
        latency_model_label=None,
        # Grouped paths read /v2/models/{model_name}/infer; ungrouped ones carry the name.
        latency_matchers={"path": "/v2/models/[^/]+(/versions/[^/]+)?/infer"},
        notes="latency is the REST server's, over all models' inference paths",
    ),
    "kserve": SLITemplate(
        name="kserve",
        server="KServe model server",
        model_label=None,
        errors=None,
        total=None,
        latency_histogram="request_predict_seconds",
        latency_model_label="model_name",
        latency_matchers={},
        notes="no error counter: latency SLOs only",
    ),
    "seldon": SLITemplate(
        name="seldon",
        server="Seldon Core v2",
        model_label="model",
        errors=(
            'sum(increase(seldon_model_infer_total{selector_and}code!~"2..|OK"}[$window]))'
            " or vector(0)"
        ),
        total="sum(increase(seldon_model_infer_total{selector}[$window]))",
        latency_histogram="seldon_model_infer_api_seconds",
        latency_model_label=None,
        latency_matchers={},
        notes="latency is the inference server's (label server), not per model",
    ),
}


def get_template(name: str) -> SLITemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise TemplateError(
            f"unknown SLI template {name!r}; expected one of {', '.join(sorted(TEMPLATES))}"
        ) from None


@dataclass(frozen=True)
class ErrorRatioQueries:
    """Bad and all events over one window (counts; their ratio is the error ratio)."""

    errors: str
    total: str


@dataclass(frozen=True)
class LatencyQueries:
    """``percentile``: seconds. ``fast``/``total``: requests at or under the threshold,
    and all requests, over the window (``fast`` is empty unless the threshold is a
    bucket boundary)."""

    percentile: str
    fast: str
    total: str


def quote_label_value(value: str) -> str:
    """A PromQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def label_matchers(labels: Mapping[str, str], regex: Mapping[str, str] | None = None) -> str:
    """``a="x",b=~"y"`` (no braces), label names validated, values quoted."""
    parts = []
    for op, items in (("=", labels), ("=~", regex or {})):
        for name, value in sorted(items.items()):
            if not _LABEL_NAME.match(name):
                raise TemplateError(f"not a Prometheus label name: {name!r}")
            parts.append(f"{name}{op}{quote_label_value(value)}")
    return ",".join(parts)


def render_window(query: str, window_seconds: float) -> str:
    """Replace ``$window`` / ``${window}`` with a Prometheus duration, outside string
    literals only: ``job="$window"`` is a label value the user wrote and stays."""
    duration = format_duration(window_seconds)
    return _STRING_OR_WINDOW.sub(
        lambda m: duration if WINDOW_PLACEHOLDER.fullmatch(m.group()) else m.group(), query
    )


def has_window(query: str) -> bool:
    """Whether a query can be asked per window (``$window`` outside string literals)."""
    return any(WINDOW_PLACEHOLDER.fullmatch(m.group()) for m in _STRING_OR_WINDOW.finditer(query))


def _selector_labels(
    model_label: str | None, model: str | None, labels: Mapping[str, str] | None
) -> dict[str, str]:
    selected = dict(labels or {})
    if model_label is not None and model:
        selected.setdefault(model_label, model)
    return selected


def render_error_ratio(
    template: SLITemplate | str,
    *,
    window_seconds: float,
    model: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> ErrorRatioQueries:
    """The error and total queries of ``template`` over one window."""
    t = get_template(template) if isinstance(template, str) else template
    if t.errors is None or t.total is None:
        raise TemplateError(f"template {t.name!r} ({t.server}) has no error-ratio SLI: {t.notes}")
    matchers = label_matchers(_selector_labels(t.model_label, model, labels))
    selector = "{" + matchers + "}"
    selector_and = "{" + (matchers + "," if matchers else "")

    def fill(query: str) -> str:
        # the window first, then the selectors in one pass: a label value the user wrote
        # ("$window", "{selector}") is never read as a placeholder
        text = render_window(query, window_seconds)
        return _SELECTOR_PLACEHOLDER.sub(
            lambda m: selector_and if m.group() == "{selector_and}" else selector, text
        )

    return ErrorRatioQueries(errors=fill(t.errors), total=fill(t.total))


def le_pattern(threshold_seconds: float) -> str:
    """A regex for the ``le`` label of the bucket bounded at ``threshold_seconds``.

    Client libraries spell bounds differently (Python ``1.0``, Go ``1``), so every
    spelling is allowed. Dots are written ``[.]`` to avoid escaping backslashes.
    """
    spellings = {repr(float(threshold_seconds)), f"{threshold_seconds:g}"}
    spellings |= {s.removesuffix(".0") for s in spellings}
    return "|".join(sorted(s.replace(".", "[.]").replace("+", "[+]") for s in spellings))


def render_latency(
    template: SLITemplate | str,
    *,
    percentile: float,
    threshold_ms: float,
    window_seconds: float,
    model: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> LatencyQueries:
    """The percentile, fast-request and all-request queries of ``template``."""
    t = get_template(template) if isinstance(template, str) else template
    if t.latency_histogram is None:
        raise TemplateError(f"template {t.name!r} ({t.server}) has no latency SLI: {t.notes}")
    if not 0 < percentile <= 100:
        raise TemplateError(f"percentile must be in (0, 100], got {percentile:g}")
    selected = _selector_labels(t.latency_model_label, model, labels)
    base = label_matchers(selected, t.latency_matchers)
    window = format_duration(window_seconds)
    h = t.latency_histogram
    quantile = f"{percentile / 100:.6g}"
    with_le = ",".join(p for p in (base, f'le=~"{le_pattern(threshold_ms / 1000)}"') if p)
    return LatencyQueries(
        percentile=(
            f"histogram_quantile({quantile}, sum by (le) (rate({h}_bucket{{{base}}}[{window}])))"
        ),
        fast=f"sum(increase({h}_bucket{{{with_le}}}[{window}]))",
        total=f"sum(increase({h}_count{{{base}}}[{window}]))",
    )


@dataclass(frozen=True)
class WindowQueries:
    """What to ask Prometheus about one SLO over one window.

    Error ratio: ``errors`` and ``total``. Latency: ``percentile`` (seconds), and
    ``fast``/``total`` when the budget can be computed (templates only).
    ``per_window`` is False when the user's own queries have no ``$window``: they then
    give one answer, whatever the window.
    """

    window_seconds: float
    errors: str | None = None
    total: str | None = None
    fast: str | None = None
    percentile: str | None = None
    per_window: bool = True


def slo_window_queries(slo: SLOSpec, window_seconds: float) -> WindowQueries:
    """The queries of a ``source: prometheus`` SLO for one window (template or own PromQL)."""
    tpl = slo.template
    if slo.latency is not None:
        lat = slo.latency
        if tpl is not None:
            q = render_latency(
                tpl.name,
                percentile=lat.percentile,
                threshold_ms=lat.threshold_ms,
                window_seconds=window_seconds,
                model=tpl.model,
                labels=tpl.labels,
            )
            return WindowQueries(
                window_seconds, total=q.total, fast=q.fast, percentile=q.percentile
            )
        if not lat.query:
            raise TemplateError(f"SLO {slo.name!r}: latency.query or a template is required")
        return WindowQueries(
            window_seconds,
            percentile=render_window(lat.query, window_seconds),
            per_window=has_window(lat.query),
        )
    if tpl is not None:
        er = render_error_ratio(
            tpl.name, window_seconds=window_seconds, model=tpl.model, labels=tpl.labels
        )
        return WindowQueries(window_seconds, errors=er.errors, total=er.total)
    ratio = slo.error_ratio
    if ratio is None or not ratio.errors or not ratio.total:
        raise TemplateError(
            f"SLO {slo.name!r}: errorRatio.errors and .total, or a template, are required"
        )
    return WindowQueries(
        window_seconds,
        errors=render_window(ratio.errors, window_seconds),
        total=render_window(ratio.total, window_seconds),
        per_window=has_window(ratio.errors) and has_window(ratio.total),
    )


def anomaly_query(anomaly: AnomalySpec, window_seconds: float) -> str:
    """The PromQL of one ``spec.anomalies[]`` series, its rates over ``window_seconds``.

    ``query``: the user's own, ``$window`` replaced. ``sli`` with a template: latency is
    the template's percentile in seconds, traffic the requests per second, errorRatio
    failed over all requests (NaN, so no point, when there was no request).
    """
    if anomaly.query is not None:
        return render_window(anomaly.query, window_seconds)
    tpl = anomaly.template
    if tpl is None or anomaly.sli is None:
        raise TemplateError(f"series {anomaly.name!r}: query, or sli and template, are required")
    if anomaly.sli == "latency":
        return render_latency(
            tpl.name,
            percentile=anomaly.percentile,
            threshold_ms=1000.0,  # only the percentile query is used
            window_seconds=window_seconds,
            model=tpl.model,
            labels=tpl.labels,
        ).percentile
    counts = render_error_ratio(
        tpl.name, window_seconds=window_seconds, model=tpl.model, labels=tpl.labels
    )
    if anomaly.sli == "traffic":
        return f"({counts.total}) / {window_seconds:g}"
    return f"({counts.errors}) / ({counts.total})"
