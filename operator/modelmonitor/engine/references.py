"""Check that what a monitor references exists: the part of validation a schema cannot do.

Pure: the caller passes an :class:`ObjectLookup` (the Kubernetes adapter in production,
a dictionary in unit tests), and gets back the problems, each with a precise reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelmonitor.core.cluster import ObjectLookup, ReferenceLookupError
from modelmonitor.core.key_refs import not_found_message, ref_value
from modelmonitor.core.spec import KeyRef, MonitorSpec
from modelmonitor.core.status import Reason


@dataclass(frozen=True)
class ReferenceProblem:
    reason: Reason
    message: str


def check_references(
    spec: MonitorSpec, namespace: str, lookup: ObjectLookup
) -> list[ReferenceProblem]:
    """Return what is missing, most important first (the target, then data, then secrets)."""
    problems: list[ReferenceProblem] = []
    try:
        _check_target(spec, namespace, lookup, problems)
        _check_reference(spec, namespace, lookup, problems)
        _check_secrets(spec, namespace, lookup, problems)
    except ReferenceLookupError as exc:
        problems.append(
            ReferenceProblem(Reason.LOOKUP_FAILED, f"could not check references: {exc}")
        )
    return problems


def _check_target(
    spec: MonitorSpec, namespace: str, lookup: ObjectLookup, problems: list[ReferenceProblem]
) -> None:
    target = spec.target
    if target.kind in ("Deployment", "InferenceService") and (
        lookup.get(target.kind, namespace, target.name) is None
    ):
        problems.append(
            ReferenceProblem(
                Reason.TARGET_NOT_FOUND,
                f"{target.kind} {namespace}/{target.name} (spec.target.name) does not exist",
            )
        )
    endpoint = target.endpoint
    if endpoint is not None and endpoint.service_name is not None:
        service = lookup.get("Service", namespace, endpoint.service_name)
        if service is None:
            problems.append(
                ReferenceProblem(
                    Reason.SERVICE_NOT_FOUND,
                    f"Service {namespace}/{endpoint.service_name} "
                    "(spec.target.endpoint.service.name) does not exist",
                )
            )
        else:
            ports = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
            if endpoint.service_port not in ports:
                problems.append(
                    ReferenceProblem(
                        Reason.SERVICE_NOT_FOUND,
                        f"Service {namespace}/{endpoint.service_name} has no port "
                        f"{endpoint.service_port} (spec.target.endpoint.service.port); "
                        f"it has {', '.join(str(p) for p in ports) or 'none'}",
                    )
                )


def _check_reference(
    spec: MonitorSpec, namespace: str, lookup: ObjectLookup, problems: list[ReferenceProblem]
) -> None:
    ref = spec.reference
    if ref is None or ref.source != "configMap" or ref.config_map_name is None:
        return
    cm = lookup.get("ConfigMap", namespace, ref.config_map_name)
    where = f"ConfigMap {namespace}/{ref.config_map_name} (spec.reference.configMapRef)"
    if cm is None:
        problems.append(ReferenceProblem(Reason.REFERENCE_NOT_FOUND, f"{where} does not exist"))
        return
    keys = set((cm.get("data") or {}).keys()) | set((cm.get("binaryData") or {}).keys())
    if ref.config_map_key not in keys:
        problems.append(
            ReferenceProblem(
                Reason.REFERENCE_NOT_FOUND,
                f"{where} has no key {ref.config_map_key!r}; keys: "
                f"{', '.join(sorted(keys)) or 'none'}",
            )
        )


def _check_secrets(
    spec: MonitorSpec, namespace: str, lookup: ObjectLookup, problems: list[ReferenceProblem]
) -> None:
    if spec.prometheus is not None:
        _check_key_refs(spec.prometheus.refs(), namespace, lookup, problems)
    kafka = spec.payload_log.kafka if spec.payload_log is not None else None
    if kafka is not None:
        _check_key_refs(kafka.refs(), namespace, lookup, problems)
    probe_set = spec.probe.dataset if spec.probe is not None else None
    for ref in (spec.reference, probe_set):
        if ref is not None and ref.object_storage is not None:
            _check_key_refs(ref.object_storage.refs(), namespace, lookup, problems)
    if spec.partitions is not None and spec.partitions.object_storage is not None:
        _check_key_refs(spec.partitions.object_storage.refs(), namespace, lookup, problems)
    notify = spec.actions.notify
    if notify is None:
        return
    secret = lookup.get("Secret", namespace, notify.secret_name)
    data = (secret or {}).get("data") or {}
    string_data = (secret or {}).get("stringData") or {}
    if secret is None or (notify.secret_key not in data and notify.secret_key not in string_data):
        # One message for both: it is read by people who may not read Secrets themselves,
        # and must not tell them whether a Secret of that name exists.
        where = f"Secret {namespace}/{notify.secret_name} (spec.actions.notify.webhookSecretRef)"
        problems.append(
            ReferenceProblem(
                Reason.SECRET_NOT_FOUND,
                f"{where} does not exist or has no key {notify.secret_key!r}",
            )
        )


def _check_key_refs(
    refs: tuple[KeyRef, ...],
    namespace: str,
    lookup: ObjectLookup,
    problems: list[ReferenceProblem],
) -> None:
    """Each Secret/ConfigMap key is there (one message for an absent object or key)."""
    for ref in refs:
        if ref_value(lookup.get(ref.kind, namespace, ref.name), ref) is None:
            reason = (
                Reason.SECRET_NOT_FOUND if ref.kind == "Secret" else Reason.CONFIG_MAP_NOT_FOUND
            )
            problems.append(ReferenceProblem(reason, not_found_message(namespace, ref)))
