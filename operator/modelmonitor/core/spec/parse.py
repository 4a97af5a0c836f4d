"""Parse and validate a ModelMonitor spec into the typed, immutable objects of :mod:`.model`.

The CRD schema and its CEL rules refuse most bad input at the API server. This module
repeats the cross-field rules (so a spec that reached us through an older CRD, or a
job-mode run reading it from a file, is held to the same rules) and adds the semantic
checks a schema cannot express. Every problem names the offending field.

Defaults come from the dataclasses of :mod:`.model`, and equal the CRD's defaults (a
unit test keeps the two in step), so a spec parsed without API-server defaulting means
the same thing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from modelmonitor.core.action_names import ActionName
from modelmonitor.core.codecs.inference import PROTOCOLS
from modelmonitor.core.names import key_problem, service_name_problem, subdomain_problem
from modelmonitor.core.spec.fields import FieldReader, SpecError
from modelmonitor.core.spec.model import (
    FEATURE_TYPES,
    LEGACY_DEFAULTS,
    MAX_INTERVAL_SECONDS,
    MAX_PAYLOAD_SAMPLES,
    MAX_RUN_TIMEOUT_SECONDS,
    MIN_INTERVAL_SECONDS,
    MIN_RUN_TIMEOUT_SECONDS,
    REFERENCE_FORMATS,
    SCHEDULE_MODES,
    TARGET_KINDS,
    DriftSpec,
    EndpointSpec,
    FeatureSpec,
    MonitorSpec,
    MultivariateSpec,
    PayloadLogSpec,
    PredictionSpec,
    ProbeSpec,
    ReferenceSpec,
    ScheduleSpec,
    TargetSpec,
)
from modelmonitor.core.spec.parse_actions import parse_actions
from modelmonitor.core.spec.parse_alerting import parse_alerting
from modelmonitor.core.spec.parse_anomalies import parse_anomalies
from modelmonitor.core.spec.parse_dask import parse_dask
from modelmonitor.core.spec.parse_kafka import parse_kafka
from modelmonitor.core.spec.parse_object_storage import (
    OBJECT_STORAGE_SOURCES,
    parse_object_storage,
)
from modelmonitor.core.spec.parse_partitions import parse_partitions
from modelmonitor.core.spec.parse_performance import check_performance, parse_performance
from modelmonitor.core.spec.parse_prometheus import parse_prometheus
from modelmonitor.core.spec.parse_slos import parse_slos
from modelmonitor.core.stats.correction import CORRECTIONS
from modelmonitor.core.stats.methods import AUTO, METHOD_NAMES, REGISTRY, threshold_problem
from modelmonitor.core.url_paths import path_segment_problem, url_path_problem
from modelmonitor.core.volume_paths import volume_path_problem


def parse_spec(spec: Mapping[str, Any]) -> MonitorSpec:
    """Parse a ``ModelMonitor.spec`` mapping; raise :class:`SpecError` listing all problems."""
    r = FieldReader()
    target = _parse_target(r, spec)
    reference = _parse_reference(r, spec)
    schedule = _parse_schedule(r, spec)
    features = _parse_features(r, spec)
    prediction = _parse_prediction(r, spec)
    probe, payload_log = _parse_data(r, spec)
    partitions = parse_partitions(r, spec)
    drift = _parse_drift(r, spec)
    slos = parse_slos(r, spec)
    prometheus = parse_prometheus(r, spec)
    actions = parse_actions(r, spec)
    performance = parse_performance(r, spec)
    alerting = parse_alerting(r, spec)
    anomalies = parse_anomalies(r, spec)

    if target is None:
        raise SpecError(r.problems or [("spec.target", "is required")])
    result = MonitorSpec(
        target=target,
        reference=reference,
        schedule=schedule,
        features=features,
        prediction=prediction,
        probe=probe,
        payload_log=payload_log,
        partitions=partitions,
        drift=drift,
        slos=slos,
        prometheus=prometheus,
        actions=actions,
        performance=performance,
        alerting=alerting,
        anomalies=anomalies,
        deprecations=tuple(r.deprecations),
    )
    _cross_checks(r, result, reference_given=spec.get("reference") is not None)
    if r.problems:
        raise SpecError(r.problems)
    return result


def _parse_target(r: FieldReader, spec: Mapping[str, Any]) -> TargetSpec | None:
    data = r.obj(spec, "target", "spec")
    if data is None:
        r.problem("spec.target", "is required")
        return None
    path = "spec.target"
    name = r.name(data, "name", path, subdomain_problem)
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
            service_name = r.name(service, "name", f"{ep_path}.service", service_name_problem)
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
            model=_url_piece(r, ep, "model", ep_path, path_segment_problem),
            path=_url_piece(r, ep, "path", ep_path, url_path_problem),
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


def _url_piece(
    r: FieldReader,
    data: Mapping[str, Any],
    key: str,
    path: str,
    rule: Callable[[str], str | None],
) -> str | None:
    """An optional piece of the request URL's path; invalid: recorded, never used."""
    value = r.string(data, key, path)
    problem = rule(value) if value is not None else None
    if problem is not None:
        r.problem(f"{path}.{key}", problem)
        return None
    return value


def _parse_reference(r: FieldReader, spec: Mapping[str, Any]) -> ReferenceSpec | None:
    data = r.obj(spec, "reference", "spec")
    if data is None:
        return None  # optional: _cross_checks requires it where a check needs it
    return _parse_reference_like(r, data, "spec.reference")


def _parse_reference_like(
    r: FieldReader, data: Mapping[str, Any], path: str
) -> ReferenceSpec | None:
    fmt = (
        r.string(data, "format", path, default=ReferenceSpec.format, choices=REFERENCE_FORMATS)
        or ReferenceSpec.format
    )
    kinds = ("configMapRef", "url", "pvc", "inline", *OBJECT_STORAGE_SOURCES)
    present = [k for k in kinds if data.get(k) is not None]
    if len(present) != 1:
        sources = (
            "configMapRef, url, s3, gcs, azureBlob or inline"
            if "probe" in path
            else ("configMapRef, url, pvc, s3, gcs, azureBlob or inline")
        )
        r.problem(path, f"set exactly one of {sources}")
        return None
    kind = present[0]
    if kind == "configMapRef":
        ref = r.obj(data, "configMapRef", path) or {}
        return ReferenceSpec(
            source="configMap",
            format=fmt,
            config_map_name=r.name(ref, "name", f"{path}.configMapRef", subdomain_problem),
            config_map_key=r.name(ref, "key", f"{path}.configMapRef", key_problem),
        )
    if kind in OBJECT_STORAGE_SOURCES:
        stored = parse_object_storage(r, data, kind, path)
        if stored is None:
            return None
        return ReferenceSpec(source=stored.provider, format=fmt, object_storage=stored)
    if kind == "url":
        url = r.string(data, "url", path, required=True)
        if url is not None and not re.match(r"^https?://\S+$", url):
            r.problem(f"{path}.url", "must be an http:// or https:// URL")
        return ReferenceSpec(source="url", format=fmt, url=url)
    if kind == "pvc":
        pvc = r.obj(data, "pvc", path) or {}
        file = r.string(pvc, "path", f"{path}.pvc", required=True)
        problem = None if file is None else volume_path_problem(file)
        if problem is not None:
            r.problem(f"{path}.pvc.path", problem)
        return ReferenceSpec(
            source="pvc",
            format=fmt,
            claim_name=r.name(pvc, "claimName", f"{path}.pvc", subdomain_problem),
            path=file,
        )
    rows = data.get("inline")
    if not isinstance(rows, list) or not rows or not all(isinstance(x, Mapping) for x in rows):
        r.problem(f"{path}.inline", "must be a non-empty list of objects (one per row)")
        rows = []
    return ReferenceSpec(source="inline", format=fmt, inline_rows=tuple(rows))


def _parse_schedule(r: FieldReader, spec: Mapping[str, Any]) -> ScheduleSpec:
    data = r.obj(spec, "schedule", "spec") or {}
    path = "spec.schedule"
    interval = r.duration(data, "interval", path, default=ScheduleSpec.interval_seconds)
    if interval is not None and not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        r.problem(f"{path}.interval", "must be between 10s and 24h")
    mode = r.string(data, "mode", path, default=ScheduleSpec.mode, choices=SCHEDULE_MODES)
    timeout = r.duration(data, "runTimeout", path, default=ScheduleSpec.run_timeout_seconds)
    if timeout is not None and not MIN_RUN_TIMEOUT_SECONDS <= timeout <= MAX_RUN_TIMEOUT_SECONDS:
        r.problem(f"{path}.runTimeout", "must be between 1s and 1h")
    job = r.obj(data, "job", path) or {}
    dask = parse_dask(r, data, path)
    if (mode == "dask") != (dask is not None) and mode is not None:
        r.problem(f"{path}.dask", "is set exactly when spec.schedule.mode is 'dask'")
    return ScheduleSpec(
        dask=dask,
        interval_seconds=interval or ScheduleSpec.interval_seconds,
        mode=mode or ScheduleSpec.mode,  # type: ignore[arg-type]
        run_timeout_seconds=timeout or ScheduleSpec.run_timeout_seconds,
        job_active_deadline_seconds=r.integer(
            job,
            "activeDeadlineSeconds",
            f"{path}.job",
            default=ScheduleSpec.job_active_deadline_seconds,
            low=10,
            high=86400,
        ),
        job_resources=dict(r.obj(job, "resources", f"{path}.job") or {}),
    )


def _parse_features(r: FieldReader, spec: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
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
            check_method_fits(r, f"{path}.method", method, ftype)
        out.append(FeatureSpec(name, ftype or FeatureSpec.type, method, threshold))  # type: ignore[arg-type]
    return tuple(out)


def check_method_fits(r: FieldReader, path: str, method: str, ftype: str) -> None:
    allowed = REGISTRY["numerical" if ftype == "numerical" else "categorical"]
    if method != AUTO and method not in allowed:
        r.problem(
            path,
            f"method {method!r} does not apply to a {ftype} feature; "
            f"use auto or one of {', '.join(sorted(allowed))}",
        )


def _parse_prediction(r: FieldReader, spec: Mapping[str, Any]) -> PredictionSpec | None:
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
    r: FieldReader, spec: Mapping[str, Any]
) -> tuple[ProbeSpec | None, PayloadLogSpec | None]:
    data = r.obj(spec, "data", "spec") or {}
    probe = payload = None
    p = r.obj(data, "probe", "spec.data")
    if p is not None:
        path = "spec.data.probe"
        probe = ProbeSpec(
            samples=r.integer(p, "samples", path, default=ProbeSpec.samples, low=1, high=100000),
            timeout_seconds=r.duration_or_legacy(
                p,
                "timeout",
                "timeoutSeconds",
                path,
                unit=1.0,
                default=ProbeSpec.timeout_seconds,
                legacy_default=LEGACY_DEFAULTS["spec.data.probe.timeoutSeconds"],
                low=0,
                high=300,
                low_open=True,
            ),
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
            window_seconds=round(
                r.duration_or_legacy(
                    pl,
                    "window",
                    "windowSeconds",
                    path,
                    unit=1.0,
                    default=PayloadLogSpec.window_seconds,
                    legacy_default=LEGACY_DEFAULTS["spec.data.payloadLog.windowSeconds"],
                    low=60,
                    high=604800,
                    integer=True,
                )
            ),
            min_samples=r.integer(
                pl,
                "minSamples",
                path,
                default=PayloadLogSpec.min_samples,
                low=1,
                high=MAX_PAYLOAD_SAMPLES,
            ),
            max_samples=r.integer(
                pl,
                "maxSamples",
                path,
                default=PayloadLogSpec.max_samples,
                low=1,
                high=MAX_PAYLOAD_SAMPLES,
            ),
        )
        if payload.min_samples > payload.max_samples:
            r.problem(f"{path}.minSamples", "must not exceed maxSamples")
        kafka = parse_kafka(r, pl, path)
        if kafka is not None:
            payload = dataclasses.replace(payload, kafka=kafka)
    return probe, payload


def _parse_probe_dataset(
    r: FieldReader, probe: Mapping[str, Any], path: str
) -> ReferenceSpec | None:
    data = r.obj(probe, "dataset", path)
    if data is None:
        return None
    if data.get("pvc") is not None:
        r.problem(f"{path}.dataset.pvc", "is not supported for the probe set")
        return None
    return _parse_reference_like(r, data, f"{path}.dataset")


def _parse_drift(r: FieldReader, spec: Mapping[str, Any]) -> DriftSpec:
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


def _cross_checks(r: FieldReader, spec: MonitorSpec, *, reference_given: bool) -> None:
    """Rules that relate fields to each other (the CRD's CEL rules, and more)."""
    if any(s.source == "prometheus" for s in spec.slos) and spec.prometheus is None:
        r.problem("spec.prometheus", "is required when an SLO has source 'prometheus'")
    if spec.anomalies and spec.prometheus is None:
        r.problem("spec.prometheus", "is required when spec.anomalies is set")
    if any(s.source == "probe" for s in spec.slos) and spec.probe is None:
        r.problem("spec.data.probe", "is required when an SLO has source 'probe'")
    if spec.probe is not None and spec.target.endpoint is None:
        r.problem("spec.target.endpoint", "is required when spec.data.probe is set")
    if spec.payload_log is not None and spec.schedule.mode != "inline":
        r.problem("spec.data.payloadLog", "needs spec.schedule.mode 'inline'")
    part = spec.partitions
    if part is not None and part.object_storage is None and not spec.schedule.in_job:
        r.problem(
            "spec.data.partitions", "needs spec.schedule.mode 'job' or 'dask' (with claimName)"
        )
    if spec.schedule.mode == "dask" and (part is None or part.object_storage is not None):
        r.problem(
            "spec.schedule.mode",
            "'dask' needs spec.data.partitions with claimName (the engine profiles the "
            "partitions on the claim)",
        )
    if spec.reference is None:
        # a reference that was written but refused has its own problems already
        for need in () if reference_given else reference_needs(spec):
            r.problem("spec.reference", f"is required: {need}")
    elif spec.reference.source == "pvc" and not spec.schedule.in_job:
        r.problem("spec.reference.pvc", "needs spec.schedule.mode 'job' or 'dask'")
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
            check_method_fits(
                r, f"spec.features[{i}] (spec.drift.method)", spec.drift.method, feature.type
            )
    _check_thresholds(r, spec)
    prediction_name = (spec.prediction or PredictionSpec()).name
    for i, feature in enumerate(spec.features):
        if feature.name == prediction_name:
            r.problem(
                f"spec.features[{i}].name",
                f"{prediction_name!r} is also the prediction column (spec.prediction.name, "
                "default 'prediction'): the model's output would replace this input; "
                "rename one of them",
            )
    if spec.prediction is not None:
        label = spec.prediction.label_column
        if label is not None and label in features:
            r.problem("spec.prediction.labelColumn", f"{label!r} is also listed as a feature")
        if label is not None and label == spec.prediction.name:
            r.problem("spec.prediction.labelColumn", "must differ from spec.prediction.name")
    check_performance(r, spec)
    for i, slo in enumerate(spec.slos):
        if slo.window_seconds < spec.schedule.interval_seconds:
            r.problem(f"spec.slos[{i}].window", "must be at least spec.schedule.interval")


def reference_needs(spec: MonitorSpec) -> list[str]:
    """What in ``spec`` needs ``spec.reference``, one phrase each (empty: nothing does).

    The CRD holds the same rules (and messages) as CEL.
    """
    needs = []
    if spec.payload_log is not None:
        needs.append("spec.data.payloadLog takes the logged requests' columns from it")
    if spec.probe is not None and spec.probe.dataset is None:
        needs.append("spec.data.probe sends a sample of it (or set spec.data.probe.dataset)")
    if spec.partitions is not None:
        needs.append("spec.data.partitions is read with its columns and types")
    if spec.performance is not None:
        needs.append("spec.performance calibrates the model's probabilities on it")
    if (spec.probe is not None or spec.payload_log is not None) and spec.drift.enabled:
        needs.append(
            "drift detection and data quality (spec.drift.enabled, on by default) compare "
            "the current data with it; set spec.drift.enabled: false to check SLOs only"
        )
    return needs


def _check_thresholds(r: FieldReader, spec: MonitorSpec) -> None:
    """Each threshold on its method's scale (a p-value level below 1, and so on)."""
    drift = spec.drift
    if drift.threshold is not None and (bad := threshold_problem(drift.method, drift.threshold)):
        r.problem("spec.drift.threshold", f"{bad} (spec.drift.method {drift.method!r})")
    for i, feature in enumerate(spec.features):
        method = feature.method or drift.method
        if feature.threshold is not None and (bad := threshold_problem(method, feature.threshold)):
            r.problem(f"spec.features[{i}].threshold", f"{bad} (method {method!r})")
