"""Parse and validate a ModelMonitor spec into typed, immutable objects.

The CRD schema and its CEL rules refuse most bad input at the API server. This module
repeats the cross-field rules (so a spec that reached us through an older CRD, or a
job-mode run reading it from a file, is held to the same rules) and adds the semantic
checks a schema cannot express. Every problem names the offending field.

Defaults here equal the CRD's defaults (a unit test keeps the two in step), so a
spec parsed without API-server defaulting means the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelmonitor.core.action_names import NONE, ActionName
from modelmonitor.core.codecs.inference import PROTOCOLS
from modelmonitor.core.stats.correction import CORRECTIONS
from modelmonitor.core.stats.methods import AUTO, METHOD_NAMES, REGISTRY

# The vocabularies the spec accepts come from the registries that implement them (drift
# methods, protocols, corrections) or from the core's own list (actions: the actions'
# registry is held to it); the ones below have no registry in the core, and
# tests/unit/test_vocabulary.py holds each against its implementation and the CRD.
ACTIONS = (*(a.value for a in ActionName), NONE)  # what an action list may hold
TARGET_KINDS = ("Deployment", "InferenceService", "External")
REFERENCE_FORMATS = ("auto", "csv", "jsonl", "parquet", "npy", "profile")
FEATURE_TYPES = ("numerical", "categorical")
SCHEDULE_MODES = ("inline", "job")
SLO_SOURCES = ("probe", "prometheus")
NOTIFY_FORMATS = ("slack", "json")
SLI_TEMPLATE_NAMES = ("mlserver", "kserve", "seldon")

MIN_INTERVAL_SECONDS = 10.0
MAX_INTERVAL_SECONDS = 24 * 3600.0

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class SpecError(ValueError):
    """One or more problems in a spec; ``problems`` maps field paths to messages."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in self.problems))


def parse_duration(text: str) -> float:
    """Parse a duration like ``90s``, ``1h30m``, ``500ms`` or ``28d`` into seconds."""
    value = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 5m, 1h30m, 28d)")
    return total


@dataclass(frozen=True)
class EndpointSpec:
    protocol: Literal["v1", "v2", "json"] = "v2"
    service_name: str | None = None
    service_port: int | None = None
    url: str | None = None
    model: str | None = None
    path: str | None = None
    input_field: str = "instances"
    output_field: str = "predictions"


@dataclass(frozen=True)
class TargetSpec:
    name: str
    kind: Literal["Deployment", "InferenceService", "External"] = "Deployment"
    endpoint: EndpointSpec | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    interval_seconds: float = 60.0
    mode: Literal["inline", "job"] = "inline"
    job_active_deadline_seconds: int = 600
    job_resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceSpec:
    source: Literal["configMap", "url", "pvc", "inline"]
    format: str = "auto"
    config_map_name: str | None = None
    config_map_key: str | None = None
    url: str | None = None
    claim_name: str | None = None
    path: str | None = None
    inline_rows: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: Literal["numerical", "categorical"] = "numerical"
    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class PredictionSpec:
    name: str = "prediction"
    type: Literal["numerical", "categorical"] = "categorical"
    label_column: str | None = None


@dataclass(frozen=True)
class ProbeSpec:
    samples: int = 200
    timeout_seconds: float = 2.0
    concurrency: int = 4
    retries: int = 2
    batch_size: int = 1
    dataset: ReferenceSpec | None = None  # the probe set; None = a sample of the reference


@dataclass(frozen=True)
class PayloadLogSpec:
    window_seconds: int = 3600
    min_samples: int = 500
    max_samples: int = 50000


@dataclass(frozen=True)
class MultivariateSpec:
    enabled: bool = False
    permutations: int = 200
    max_samples: int = 1000


@dataclass(frozen=True)
class DriftSpec:
    enabled: bool = True
    method: str = "auto"
    threshold: float | None = None
    correction: Literal["bonferroni", "fdr", "none"] = "bonferroni"
    drift_share: float = 0.5
    min_samples: int = 30
    multivariate: MultivariateSpec = field(default_factory=MultivariateSpec)


@dataclass(frozen=True)
class LatencySpec:
    threshold_ms: float
    percentile: float = 95.0
    query: str | None = None


@dataclass(frozen=True)
class ErrorRatioSpec:
    errors: str | None = None
    total: str | None = None


@dataclass(frozen=True)
class SLITemplateSpec:
    """Ready-made queries for a model server's metrics (see sources/sli_templates)."""

    name: Literal["mlserver", "kserve", "seldon"]
    model: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SLOSpec:
    name: str
    source: Literal["probe", "prometheus"] = "probe"
    objective: float = 99.0
    window_seconds: float = 28 * 86400.0
    latency: LatencySpec | None = None
    error_ratio: ErrorRatioSpec | None = None
    template: SLITemplateSpec | None = None
    # Multiplies the burn-rate alert windows (spec.slos[].burnRate.windowScale).
    window_scale: float = 1.0


@dataclass(frozen=True)
class PrometheusSpec:
    url: str
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class ScaleSpec:
    max_replicas: int
    step: int = 1
    stabilization_seconds: int = 300


@dataclass(frozen=True)
class NotifySpec:
    secret_name: str
    secret_key: str
    format: Literal["slack", "json"] = "json"


@dataclass(frozen=True)
class ActionsSpec:
    dry_run: bool = False
    cooldown_seconds: int = 600
    consecutive_breaches: int = 3
    max_actions_per_hour: int = 3
    on_slo_breach: tuple[str, ...] = ()
    on_drift: tuple[str, ...] = ()
    scale: ScaleSpec | None = None
    notify: NotifySpec | None = None
    retrain_job_template: Mapping[str, Any] | None = None

    def uses(self, action: str) -> bool:
        return action in self.on_slo_breach or action in self.on_drift


@dataclass(frozen=True)
class MonitorSpec:
    target: TargetSpec
    reference: ReferenceSpec
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    features: tuple[FeatureSpec, ...] = ()
    prediction: PredictionSpec | None = None
    probe: ProbeSpec | None = None
    payload_log: PayloadLogSpec | None = None
    drift: DriftSpec = field(default_factory=DriftSpec)
    slos: tuple[SLOSpec, ...] = ()
    prometheus: PrometheusSpec | None = None
    actions: ActionsSpec = field(default_factory=ActionsSpec)


class _Reader:
    """Typed access to a nested mapping that records problems instead of raising early."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def obj(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(f"{path}.{key}", "must be an object")
            return None
        return value

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: str | None = None,
        required: bool = False,
        choices: Sequence[str] | None = None,
    ) -> str | None:
        value = data.get(key, default)
        if value is None:
            if required:
                self.problem(f"{path}.{key}", "is required")
            return None
        if not isinstance(value, str) or (required and not value):
            self.problem(f"{path}.{key}", "must be a non-empty string")
            return default
        if choices is not None and value not in choices:
            self.problem(
                f"{path}.{key}",
                f"unsupported value {value!r}; expected one of {', '.join(choices)}",
            )
            return default
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: float | None,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float | None:
        value = data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"{path}.{key}", "must be a number")
            return default
        number = float(value)
        if low is not None and (number < low or (low_open and number == low)):
            self.problem(f"{path}.{key}", f"must be {'>' if low_open else '>='} {low:g}")
        if high is not None and (number > high or (high_open and number == high)):
            self.problem(f"{path}.{key}", f"must be {'<' if high_open else '<='} {high:g}")
        return number

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: int,
        low: int | None = None,
        high: int | None = None,
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", "must be an integer")
            return default
        if low is not None and value < low:
            self.problem(f"{path}.{key}", f"must be >= {low}")
        if high is not None and value > high:
            self.problem(f"{path}.{key}", f"must be <= {high}")
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", "must be true or false")
            return default
        return value

    def duration(
        self, data: Mapping[str, Any], key: str, path: str, *, default: float
    ) -> float | None:
        """Seconds; ``default`` when absent, None (and a problem) when not a duration."""
        text = data.get(key)
        if text is None:
            return default
        if not isinstance(text, str):
            self.problem(f"{path}.{key}", "must be a duration string such as 60s or 5m")
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.problem(f"{path}.{key}", str(exc))
            return None

    def action_list(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list):
            self.problem(f"{path}.{key}", "must be a list")
            return ()
        for item in value:
            if item not in ACTIONS:
                self.problem(
                    f"{path}.{key}", f"unsupported action {item!r}; expected one of {ACTIONS}"
                )
        if NONE in value and len(value) > 1:
            self.problem(f"{path}.{key}", "'none' cannot be combined with other actions")
        if len(set(value)) != len(value):
            self.problem(f"{path}.{key}", "lists an action twice")
        return tuple(a for a in value if a in ACTIONS and a != NONE)


def parse_spec(spec: Mapping[str, Any]) -> MonitorSpec:
    """Parse a ``ModelMonitor.spec`` mapping; raise :class:`SpecError` listing all problems."""
    r = _Reader()
    target = _parse_target(r, spec)
    reference = _parse_reference(r, spec)
    schedule = _parse_schedule(r, spec)
    features = _parse_features(r, spec)
    prediction = _parse_prediction(r, spec)
    probe, payload_log = _parse_data(r, spec)
    drift = _parse_drift(r, spec)
    slos = _parse_slos(r, spec)
    prometheus = _parse_prometheus(r, spec)
    actions = _parse_actions(r, spec)

    if target is None or reference is None:
        raise SpecError(r.problems or [("spec", "target and reference are required")])
    result = MonitorSpec(
        target=target,
        reference=reference,
        schedule=schedule,
        features=features,
        prediction=prediction,
        probe=probe,
        payload_log=payload_log,
        drift=drift,
        slos=slos,
        prometheus=prometheus,
        actions=actions,
    )
    _cross_checks(r, result)
    if r.problems:
        raise SpecError(r.problems)
    return result


def _parse_target(r: _Reader, spec: Mapping[str, Any]) -> TargetSpec | None:
    data = r.obj(spec, "target", "spec")
    if data is None:
        r.problem("spec.target", "is required")
        return None
    path = "spec.target"
    name = r.string(data, "name", path, required=True)
    kind = r.string(data, "kind", path, default=TargetSpec.kind, choices=TARGET_KINDS)
    endpoint = None
    ep = r.obj(data, "endpoint", path)
    if ep is not None:
        ep_path = f"{path}.endpoint"
        service = r.obj(ep, "service", ep_path)
        url = r.string(ep, "url", ep_path)
        if (service is None) == (url is None):
            r.problem(ep_path, "set exactly one of service or url")
        if url is not None and not re.match(r"^https?://\S+$", url):
            r.problem(f"{ep_path}.url", "must be an http:// or https:// URL")
        service_name = service_port = None
        if service is not None:
            service_name = r.string(service, "name", f"{ep_path}.service", required=True)
            port = r.integer(service, "port", f"{ep_path}.service", default=0, low=1, high=65535)
            service_port = port or None
        json_map = r.obj(ep, "json", ep_path) or {}
        endpoint = EndpointSpec(
            protocol=r.string(
                ep, "protocol", ep_path, default=EndpointSpec.protocol, choices=PROTOCOLS
            ),  # type: ignore[arg-type]
            service_name=service_name,
            service_port=service_port,
            url=url,
            model=r.string(ep, "model", ep_path),
            path=r.string(ep, "path", ep_path),
            input_field=r.string(
                json_map, "inputField", f"{ep_path}.json", default=EndpointSpec.input_field
            )
            or EndpointSpec.input_field,
            output_field=r.string(
                json_map, "outputField", f"{ep_path}.json", default=EndpointSpec.output_field
            )
            or EndpointSpec.output_field,
        )
    if kind == "External" and (endpoint is None or endpoint.url is None):
        r.problem(f"{path}.endpoint.url", "is required when spec.target.kind is External")
    if name is None:
        return None
    return TargetSpec(name=name, kind=kind or TargetSpec.kind, endpoint=endpoint)  # type: ignore[arg-type]


def _parse_reference(r: _Reader, spec: Mapping[str, Any]) -> ReferenceSpec | None:
    data = r.obj(spec, "reference", "spec")
    path = "spec.reference"
    if data is None:
        r.problem(path, "is required")
        return None
    return _parse_reference_like(r, data, path)


def _parse_reference_like(r: _Reader, data: Mapping[str, Any], path: str) -> ReferenceSpec | None:
    fmt = (
        r.string(data, "format", path, default=ReferenceSpec.format, choices=REFERENCE_FORMATS)
        or ReferenceSpec.format
    )
    present = [k for k in ("configMapRef", "url", "pvc", "inline") if data.get(k) is not None]
    if len(present) != 1:
        sources = (
            "configMapRef, url or inline"
            if "probe" in path
            else ("configMapRef, url, pvc or inline")
        )
        r.problem(path, f"set exactly one of {sources}")
        return None
    kind = present[0]
    if kind == "configMapRef":
        ref = r.obj(data, "configMapRef", path) or {}
        return ReferenceSpec(
            source="configMap",
            format=fmt,
            config_map_name=r.string(ref, "name", f"{path}.configMapRef", required=True),
            config_map_key=r.string(ref, "key", f"{path}.configMapRef", required=True),
        )
    if kind == "url":
        url = r.string(data, "url", path, required=True)
        if url is not None and not re.match(r"^https?://\S+$", url):
            r.problem(f"{path}.url", "must be an http:// or https:// URL")
        return ReferenceSpec(source="url", format=fmt, url=url)
    if kind == "pvc":
        pvc = r.obj(data, "pvc", path) or {}
        return ReferenceSpec(
            source="pvc",
            format=fmt,
            claim_name=r.string(pvc, "claimName", f"{path}.pvc", required=True),
            path=r.string(pvc, "path", f"{path}.pvc", required=True),
        )
    rows = data.get("inline")
    if not isinstance(rows, list) or not rows or not all(isinstance(x, Mapping) for x in rows):
        r.problem(f"{path}.inline", "must be a non-empty list of objects (one per row)")
        rows = []
    return ReferenceSpec(source="inline", format=fmt, inline_rows=tuple(rows))


def _parse_schedule(r: _Reader, spec: Mapping[str, Any]) -> ScheduleSpec:
    data = r.obj(spec, "schedule", "spec") or {}
    path = "spec.schedule"
    interval = r.duration(data, "interval", path, default=ScheduleSpec.interval_seconds)
    if interval is not None and not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        r.problem(f"{path}.interval", "must be between 10s and 24h")
    mode = r.string(data, "mode", path, default=ScheduleSpec.mode, choices=SCHEDULE_MODES)
    job = r.obj(data, "job", path) or {}
    return ScheduleSpec(
        interval_seconds=interval or ScheduleSpec.interval_seconds,
        mode=mode or ScheduleSpec.mode,  # type: ignore[arg-type]
        job_active_deadline_seconds=r.integer(
            job,
            "activeDeadlineSeconds",
            f"{path}.job",
            default=ScheduleSpec.job_active_deadline_seconds,
            low=10,
            high=86400,
        ),
        job_resources=dict(job.get("resources") or {}),
    )


def _parse_features(r: _Reader, spec: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
    items = spec.get("features") or []
    if not isinstance(items, list):
        r.problem("spec.features", "must be a list")
        return ()
    out: list[FeatureSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"spec.features[{i}]"
        if not isinstance(item, Mapping):
            r.problem(path, "must be an object with name and type")
            continue
        name = r.string(item, "name", path, required=True)
        ftype = r.string(item, "type", path, default=FeatureSpec.type, choices=FEATURE_TYPES)
        method = r.string(item, "method", path, choices=METHOD_NAMES)
        threshold = r.number(item, "threshold", path, default=None, low=0)
        if name is None:
            continue
        if name in seen:
            r.problem(f"{path}.name", f"duplicate feature {name!r}")
        seen.add(name)
        if method is not None and ftype is not None:
            _check_method_fits(r, f"{path}.method", method, ftype)
        out.append(FeatureSpec(name, ftype or FeatureSpec.type, method, threshold))  # type: ignore[arg-type]
    return tuple(out)


def _check_method_fits(r: _Reader, path: str, method: str, ftype: str) -> None:
    allowed = REGISTRY["numerical" if ftype == "numerical" else "categorical"]
    if method != AUTO and method not in allowed:
        r.problem(
            path,
            f"method {method!r} does not apply to a {ftype} feature; "
            f"use auto or one of {', '.join(sorted(allowed))}",
        )


def _parse_prediction(r: _Reader, spec: Mapping[str, Any]) -> PredictionSpec | None:
    data = r.obj(spec, "prediction", "spec")
    if data is None:
        return None
    path = "spec.prediction"
    return PredictionSpec(
        name=r.string(data, "name", path, default=PredictionSpec.name) or PredictionSpec.name,
        type=r.string(  # type: ignore[arg-type]
            data, "type", path, default=PredictionSpec.type, choices=FEATURE_TYPES
        ),
        label_column=r.string(data, "labelColumn", path),
    )


def _parse_data(
    r: _Reader, spec: Mapping[str, Any]
) -> tuple[ProbeSpec | None, PayloadLogSpec | None]:
    data = r.obj(spec, "data", "spec") or {}
    probe = payload = None
    p = r.obj(data, "probe", "spec.data")
    if p is not None:
        path = "spec.data.probe"
        probe = ProbeSpec(
            samples=r.integer(p, "samples", path, default=ProbeSpec.samples, low=1, high=100000),
            timeout_seconds=r.number(
                p,
                "timeoutSeconds",
                path,
                default=ProbeSpec.timeout_seconds,
                low=0,
                high=300,
                low_open=True,
            )
            or ProbeSpec.timeout_seconds,
            concurrency=r.integer(
                p, "concurrency", path, default=ProbeSpec.concurrency, low=1, high=64
            ),
            retries=r.integer(p, "retries", path, default=ProbeSpec.retries, low=0, high=10),
            batch_size=r.integer(
                p, "batchSize", path, default=ProbeSpec.batch_size, low=1, high=10000
            ),
            dataset=_parse_probe_dataset(r, p, path),
        )
    pl = r.obj(data, "payloadLog", "spec.data")
    if pl is not None:
        path = "spec.data.payloadLog"
        payload = PayloadLogSpec(
            window_seconds=r.integer(
                pl,
                "windowSeconds",
                path,
                default=PayloadLogSpec.window_seconds,
                low=60,
                high=604800,
            ),
            min_samples=r.integer(
                pl, "minSamples", path, default=PayloadLogSpec.min_samples, low=1, high=1000000
            ),
            max_samples=r.integer(
                pl, "maxSamples", path, default=PayloadLogSpec.max_samples, low=1, high=1000000
            ),
        )
        if payload.min_samples > payload.max_samples:
            r.problem(f"{path}.minSamples", "must not exceed maxSamples")
    return probe, payload


def _parse_probe_dataset(r: _Reader, probe: Mapping[str, Any], path: str) -> ReferenceSpec | None:
    data = r.obj(probe, "dataset", path)
    if data is None:
        return None
    if data.get("pvc") is not None:
        r.problem(f"{path}.dataset.pvc", "is not supported for the probe set")
        return None
    return _parse_reference_like(r, data, f"{path}.dataset")


def _parse_drift(r: _Reader, spec: Mapping[str, Any]) -> DriftSpec:
    data = r.obj(spec, "drift", "spec") or {}
    path = "spec.drift"
    mv = r.obj(data, "multivariate", path) or {}
    mv_path = f"{path}.multivariate"
    return DriftSpec(
        enabled=r.boolean(data, "enabled", path, default=DriftSpec.enabled),
        method=r.string(data, "method", path, default=DriftSpec.method, choices=METHOD_NAMES)
        or DriftSpec.method,
        threshold=r.number(data, "threshold", path, default=DriftSpec.threshold, low=0),
        correction=r.string(  # type: ignore[arg-type]
            data, "correction", path, default=DriftSpec.correction, choices=CORRECTIONS
        ),
        drift_share=r.number(
            data, "driftShare", path, default=DriftSpec.drift_share, low=0, high=1, low_open=True
        )
        or DriftSpec.drift_share,
        min_samples=r.integer(
            data, "minSamples", path, default=DriftSpec.min_samples, low=1, high=1000000
        ),
        multivariate=MultivariateSpec(
            enabled=r.boolean(mv, "enabled", mv_path, default=MultivariateSpec.enabled),
            permutations=r.integer(
                mv,
                "permutations",
                mv_path,
                default=MultivariateSpec.permutations,
                low=10,
                high=10000,
            ),
            max_samples=r.integer(
                mv, "maxSamples", mv_path, default=MultivariateSpec.max_samples, low=10, high=5000
            ),
        ),
    )


def _parse_slos(r: _Reader, spec: Mapping[str, Any]) -> tuple[SLOSpec, ...]:
    items = spec.get("slos") or []
    if not isinstance(items, list):
        r.problem("spec.slos", "must be a list")
        return ()
    out: list[SLOSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"spec.slos[{i}]"
        if not isinstance(item, Mapping):
            r.problem(path, "must be an object")
            continue
        name = r.string(item, "name", path, required=True)
        source = r.string(item, "source", path, default=SLOSpec.source, choices=SLO_SOURCES)
        objective = r.number(
            item,
            "objective",
            path,
            default=SLOSpec.objective,
            low=0,
            high=100,
            low_open=True,
            high_open=True,
        )
        window = r.duration(item, "window", path, default=SLOSpec.window_seconds)
        lat = r.obj(item, "latency", path)
        err = r.obj(item, "errorRatio", path)
        tpl = _parse_slo_template(r, item, path, source, lat, err)
        burn = r.obj(item, "burnRate", path) or {}
        scale = r.number(
            burn,
            "windowScale",
            f"{path}.burnRate",
            default=SLOSpec.window_scale,
            low=0,
            high=1,
            low_open=True,
        )
        if (lat is None) == (err is None):
            r.problem(path, "set exactly one of latency or errorRatio")
        latency = error_ratio = None
        if lat is not None:
            threshold = r.number(
                lat, "thresholdMs", f"{path}.latency", default=None, low=0, low_open=True
            )
            if threshold is None:
                r.problem(f"{path}.latency.thresholdMs", "is required")
            latency = LatencySpec(
                threshold_ms=threshold or 0.0,
                percentile=r.number(
                    lat,
                    "percentile",
                    f"{path}.latency",
                    default=LatencySpec.percentile,
                    low=0,
                    high=100,
                    low_open=True,
                )
                or LatencySpec.percentile,
                query=r.string(lat, "query", f"{path}.latency"),
            )
            if source == "prometheus" and not latency.query and tpl is None:
                r.problem(f"{path}.latency.query", "is required for source prometheus")
        if err is not None:
            error_ratio = ErrorRatioSpec(
                errors=r.string(err, "errors", f"{path}.errorRatio"),
                total=r.string(err, "total", f"{path}.errorRatio"),
            )
            if (
                source == "prometheus"
                and tpl is None
                and not (error_ratio.errors and error_ratio.total)
            ):
                r.problem(
                    f"{path}.errorRatio",
                    "errors and total queries are required for source prometheus",
                )
        if name is None:
            continue
        if name in seen:
            r.problem(f"{path}.name", f"duplicate SLO {name!r}")
        seen.add(name)
        out.append(
            SLOSpec(
                name=name,
                source=source or SLOSpec.source,  # type: ignore[arg-type]
                objective=objective or SLOSpec.objective,
                window_seconds=window or SLOSpec.window_seconds,
                latency=latency,
                error_ratio=error_ratio,
                template=tpl,
                window_scale=scale or SLOSpec.window_scale,
            )
        )
    return tuple(out)


_PROM_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _parse_slo_template(
    r: _Reader,
    item: Mapping[str, Any],
    path: str,
    source: str | None,
    lat: Mapping[str, Any] | None,
    err: Mapping[str, Any] | None,
) -> SLITemplateSpec | None:
    data = r.obj(item, "template", path)
    if data is None:
        return None
    tpath = f"{path}.template"
    name = r.string(data, "name", tpath, required=True, choices=SLI_TEMPLATE_NAMES)
    labels = r.obj(data, "labels", tpath) or {}
    for key, value in labels.items():
        if not _PROM_LABEL.match(str(key)):
            r.problem(f"{tpath}.labels", f"{key!r} is not a Prometheus label name")
        if not isinstance(value, str):
            r.problem(f"{tpath}.labels.{key}", "must be a string")
    if source != "prometheus":
        r.problem(tpath, "an SLO template needs source prometheus")
    if (lat is not None and lat.get("query")) or (
        err is not None and (err.get("errors") or err.get("total"))
    ):
        r.problem(tpath, "set either template or your own queries, not both")
    if name == "kserve" and err is not None:
        r.problem(
            f"{tpath}.name",
            "template kserve has no error-ratio SLI (KServe's model server exports only "
            "latency histograms); use template mlserver or your own queries",
        )
    if name is None:
        return None
    return SLITemplateSpec(
        name=name,  # type: ignore[arg-type]
        model=r.string(data, "model", tpath),
        labels={str(k): str(v) for k, v in labels.items()},
    )


def _parse_prometheus(r: _Reader, spec: Mapping[str, Any]) -> PrometheusSpec | None:
    data = r.obj(spec, "prometheus", "spec")
    if data is None:
        return None
    path = "spec.prometheus"
    url = r.string(data, "url", path, required=True)
    if url is not None and not re.match(r"^https?://\S+$", url):
        r.problem(f"{path}.url", "must be an http:// or https:// URL")
    return PrometheusSpec(
        url=url or "",
        timeout_seconds=r.number(
            data,
            "timeoutSeconds",
            path,
            default=PrometheusSpec.timeout_seconds,
            low=0,
            high=120,
            low_open=True,
        )
        or PrometheusSpec.timeout_seconds,
    )


def _parse_actions(r: _Reader, spec: Mapping[str, Any]) -> ActionsSpec:
    data = r.obj(spec, "actions", "spec") or {}
    path = "spec.actions"
    scale = notify = None
    s = r.obj(data, "scale", path)
    if s is not None:
        scale = ScaleSpec(
            max_replicas=r.integer(s, "maxReplicas", f"{path}.scale", default=0, low=1, high=1000),
            step=r.integer(s, "step", f"{path}.scale", default=ScaleSpec.step, low=1, high=100),
            stabilization_seconds=r.integer(
                s,
                "stabilizationSeconds",
                f"{path}.scale",
                default=ScaleSpec.stabilization_seconds,
                low=0,
                high=86400,
            ),
        )
    n = r.obj(data, "notify", path)
    if n is not None:
        ref = r.obj(n, "webhookSecretRef", f"{path}.notify")
        if ref is None:
            r.problem(f"{path}.notify.webhookSecretRef", "is required")
            ref = {}
        notify = NotifySpec(
            secret_name=r.string(ref, "name", f"{path}.notify.webhookSecretRef", required=True)
            or "",
            secret_key=r.string(ref, "key", f"{path}.notify.webhookSecretRef", required=True) or "",
            format=r.string(  # type: ignore[arg-type]
                n, "format", f"{path}.notify", default=NotifySpec.format, choices=NOTIFY_FORMATS
            ),
        )
    retrain = r.obj(data, "retrain", path)
    template = None
    if retrain is not None:
        template = r.obj(retrain, "jobTemplate", f"{path}.retrain")
        if template is None:
            r.problem(f"{path}.retrain.jobTemplate", "is required")
    return ActionsSpec(
        dry_run=r.boolean(data, "dryRun", path, default=ActionsSpec.dry_run),
        cooldown_seconds=r.integer(
            data, "cooldownSeconds", path, default=ActionsSpec.cooldown_seconds, low=0, high=604800
        ),
        consecutive_breaches=r.integer(
            data,
            "consecutiveBreaches",
            path,
            default=ActionsSpec.consecutive_breaches,
            low=1,
            high=100,
        ),
        max_actions_per_hour=r.integer(
            data,
            "maxActionsPerHour",
            path,
            default=ActionsSpec.max_actions_per_hour,
            low=1,
            high=100,
        ),
        on_slo_breach=r.action_list(data, "onSLOBreach", path),
        on_drift=r.action_list(data, "onDrift", path),
        scale=scale,
        notify=notify,
        retrain_job_template=template,
    )


def _cross_checks(r: _Reader, spec: MonitorSpec) -> None:
    """Rules that relate fields to each other (the CRD's CEL rules, and more)."""
    if any(s.source == "prometheus" for s in spec.slos) and spec.prometheus is None:
        r.problem("spec.prometheus", "is required when an SLO has source 'prometheus'")
    if any(s.source == "probe" for s in spec.slos) and spec.probe is None:
        r.problem("spec.data.probe", "is required when an SLO has source 'probe'")
    if spec.probe is not None and spec.target.endpoint is None:
        r.problem("spec.target.endpoint", "is required when spec.data.probe is set")
    if spec.payload_log is not None and spec.schedule.mode != "inline":
        r.problem("spec.data.payloadLog", "needs spec.schedule.mode 'inline'")
    if spec.reference.source == "pvc" and spec.schedule.mode != "job":
        r.problem("spec.reference.pvc", "needs spec.schedule.mode 'job'")
    actions = spec.actions
    rollback_kinds = ("Deployment", "InferenceService")
    if actions.uses(ActionName.ROLLBACK) and spec.target.kind not in rollback_kinds:
        r.problem(
            "spec.actions", "'rollback' needs spec.target.kind Deployment or InferenceService"
        )
    if actions.uses(ActionName.SCALE):
        if spec.target.kind != "Deployment":
            r.problem("spec.actions", "'scale' needs spec.target.kind Deployment")
        if actions.scale is None:
            r.problem("spec.actions.scale", "is required when an action list contains 'scale'")
    if actions.uses(ActionName.NOTIFY) and actions.notify is None:
        r.problem("spec.actions.notify", "is required when an action list contains 'notify'")
    if actions.uses(ActionName.RETRAIN) and actions.retrain_job_template is None:
        r.problem("spec.actions.retrain", "is required when an action list contains 'retrain'")
    features = {f.name: f for f in spec.features}
    for i, feature in enumerate(spec.features):
        if feature.method is None and spec.drift.method != AUTO:
            _check_method_fits(
                r, f"spec.features[{i}] (spec.drift.method)", spec.drift.method, feature.type
            )
    if spec.prediction is not None:
        label = spec.prediction.label_column
        if label is not None and label in features:
            r.problem("spec.prediction.labelColumn", f"{label!r} is also listed as a feature")
        if label is not None and label == spec.prediction.name:
            r.problem("spec.prediction.labelColumn", "must differ from spec.prediction.name")
    for i, slo in enumerate(spec.slos):
        if slo.window_seconds < spec.schedule.interval_seconds:
            r.problem(f"spec.slos[{i}].window", "must be at least spec.schedule.interval")
