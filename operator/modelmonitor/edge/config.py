"""Operator settings from command-line flags and environment variables (flags win).

The one place that reads the environment: every other module gets its settings from an
:class:`OperatorConfig` (tests/unit/test_architecture.py holds this).
"""

from __future__ import annotations

import math
import os
import socket
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelmonitor.core.gitops import GitOpsSettings
from modelmonitor.core.lease import LeaseSettings
from modelmonitor.core.limits import REFERENCE_LIMITS, ReadLimits
from modelmonitor.core.names import label_problem
from modelmonitor.core.outbound import OutboundPolicy, ResponseLimits
from modelmonitor.core.pod_policy import DEFAULT_SERVICE_ACCOUNT
from modelmonitor.core.shard import LabelSelector, parse_selector


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]  # empty = the whole cluster
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 8080
    health_port: int = 8081
    payload_port: int = 8082
    # where KServe's loggers reach the collector (the base of each monitor's logger URL)
    payload_url: str = "http://modelmonitor-payload.modelmonitor-system.svc:8082"
    payload_max_bytes: int = 256 * 1024 * 1024  # the payload store's byte budget
    standalone: bool = False  # one replica: no leader election
    recheck_seconds: float = 5.0
    # Leader election (off when standalone): the Lease's name and namespace, how it is
    # held, and this process's identity in it (pod name + a random suffix).
    lease_name: str = "modelmonitor"
    lease_namespace: str = "default"
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    identity: str = "modelmonitor"
    max_concurrent_runs: int = 16
    # slots one namespace may hold at once; 0 = its fair share (core/scheduling.py)
    max_runs_per_namespace: int = 0
    endpoint_resolution: str = "auto"  # auto | dns | endpointSlices | pods
    prometheus_min_window_seconds: float = 60.0
    job_image: str = "ghcr.io/modelmonitor/modelmonitor:0.1.0"
    job_service_account: str = "modelmonitor-job"
    # ServiceAccounts a retrain jobTemplate may name (in the monitor's namespace)
    retrain_service_accounts: tuple[str, ...] = (DEFAULT_SERVICE_ACCOUNT,)
    # where Argo CD keeps Applications a tracking id names without a namespace, and
    # whether its label tracking (app.kubernetes.io/instance) is trusted (docs/actions.md)
    gitops: GitOpsSettings = field(default_factory=GitOpsSettings)
    in_cluster: bool = False  # inside a pod with a ServiceAccount token
    # The outbound fence: CIDRs opened although link-local/loopback, redirects, body caps
    outbound_allow_cidrs: tuple[str, ...] = ()
    outbound_max_redirects: int = 3
    response_limits: ResponseLimits = field(default_factory=ResponseLimits)
    # KUBERNETES_SERVICE_HOST:PORT in a pod: an API server endpoint the fence refuses
    api_service: str = ""
    # ``modelmonitor job`` only: the Job it runs in (JOB_NAME, JOB_UID from the downward API)
    job_name: str = ""
    job_uid: str = ""
    # ... and in a DaskJob's run pod, the scheduler dask-kubernetes injected
    dask_scheduler_address: str = ""
    # what a reference may decode to (REFERENCE_MAX_DECODED_BYTES, _ROWS, _CELLS)
    reference_max_decoded_bytes: int = REFERENCE_LIMITS.max_decoded_bytes
    reference_max_rows: int = REFERENCE_LIMITS.max_rows
    reference_max_cells: int = REFERENCE_LIMITS.max_cells
    # SHARD_LABEL_SELECTOR: only the monitors whose labels match (None: every monitor)
    shard: LabelSelector | None = None

    @property
    def finalizer(self) -> str:
        """The run loop's finalizer: ``modelmonitor.io/run-loop``, or per shard
        ``<LEASE_NAME>.modelmonitor.io/run-loop``: kopf removes a finalizer of its name
        from an object none of its handlers match, so shards sharing one name would take
        each other's away."""
        return f"{self.annotation_prefix}/run-loop"

    @property
    def annotation_prefix(self) -> str:
        """Where kopf keeps its bookkeeping on each monitor: ``modelmonitor.io``, or per
        shard ``<LEASE_NAME>.modelmonitor.io``, so that deployments sharing the watched
        objects never read each other's handled-state."""
        base = "modelmonitor.io"
        return base if self.shard is None else f"{self.lease_name}.{base}"

    @property
    def reference_limits(self) -> ReadLimits:
        return ReadLimits(
            self.reference_max_decoded_bytes, self.reference_max_rows, self.reference_max_cells
        )

    def reference_limits_env(self) -> dict[str, str]:
        """The reference limits as environment, for a job-mode pod to apply the same caps."""
        return {
            "REFERENCE_MAX_DECODED_BYTES": str(self.reference_max_decoded_bytes),
            "REFERENCE_MAX_ROWS": str(self.reference_max_rows),
            "REFERENCE_MAX_CELLS": str(self.reference_max_cells),
        }

    def resolution(self) -> str:
        """DNS inside a cluster; outside it (development, tests) the ready pods' addresses."""
        if self.endpoint_resolution != "auto":
            return self.endpoint_resolution
        return "dns" if self.in_cluster else "pods"

    scope: str = "cluster"  # cluster | namespace (RBAC limited to the watched namespaces)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def scanning_disabled(self) -> bool:
        """Namespace/CRD scanning needs cluster-wide list rights: off when scoped to fixed
        namespaces (globs still need it)."""
        return self.scope == "namespace" or (
            not self.clusterwide and not any(ch in n for n in self.namespaces for ch in "*?[")
        )

    def outbound_policy(self) -> OutboundPolicy:
        """The fence's policy (the API server endpoints are added where they are known)."""
        return OutboundPolicy.parse(
            self.outbound_allow_cidrs, max_redirects=self.outbound_max_redirects
        )

    def outbound_env(self) -> dict[str, str]:
        """The fence's settings as environment, for job-mode pods to run under the same."""
        limits = self.response_limits
        return {
            "OUTBOUND_ALLOW_CIDRS": ",".join(self.outbound_allow_cidrs),
            "OUTBOUND_MAX_REDIRECTS": str(self.outbound_max_redirects),
            "OUTBOUND_MAX_PROBE_BYTES": str(limits.probe),
            "OUTBOUND_MAX_PROMETHEUS_BYTES": str(limits.prometheus),
            "OUTBOUND_MAX_REFERENCE_BYTES": str(limits.reference),
            "OUTBOUND_MAX_WEBHOOK_BYTES": str(limits.webhook),
            "OUTBOUND_BUFFER_BYTES": str(limits.buffer),
        }

    @property
    def liveness_endpoint(self) -> str:
        return f"http://0.0.0.0:{self.health_port}/healthz"


SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def load_config(
    *,
    namespaces: Sequence[str] | None = None,
    all_namespaces: bool = False,
    log_format: str | None = None,
    log_level: str | None = None,
    metrics_port: int | None = None,
    health_port: int | None = None,
    payload_port: int | None = None,
    standalone: bool = False,
    env: Mapping[str, str] | None = None,
    token_path: str = SERVICE_ACCOUNT_TOKEN,
) -> OperatorConfig:
    """Combine flags and environment (WATCH_NAMESPACES, LOG_FORMAT, LOG_LEVEL, METRICS_PORT,
    HEALTH_PORT, PAYLOAD_PORT, PAYLOAD_URL, PAYLOAD_MAX_BYTES, STANDALONE, SHARD_LABEL_SELECTOR,
    LEASE_NAME, LEASE_NAMESPACE, LEASE_{DURATION,RENEW,RETRY,MARGIN}_SECONDS,
    POD_ID (the pod name, in the Lease identity), MAX_CONCURRENT_RUNS, MAX_RUNS_PER_NAMESPACE,
    ENDPOINT_RESOLUTION,
    PROMETHEUS_MIN_WINDOW_SECONDS, JOB_IMAGE, JOB_SERVICE_ACCOUNT, RETRAIN_SERVICE_ACCOUNTS,
    ARGOCD_NAMESPACE, ARGOCD_LABEL_TRACKING,
    SCOPE, POD_NAMESPACE, RECHECK_SECONDS, OUTBOUND_ALLOW_CIDRS, OUTBOUND_MAX_REDIRECTS,
    OUTBOUND_MAX_{PROBE,PROMETHEUS,REFERENCE,WEBHOOK}_BYTES, OUTBOUND_BUFFER_BYTES,
    REFERENCE_MAX_{DECODED_BYTES,ROWS,CELLS}; KUBERNETES_SERVICE_HOST/PORT and the
    ServiceAccount token at ``token_path`` tell whether it runs in a cluster; JOB_NAME,
    JOB_UID in a job-mode pod) into one config. SCOPE=namespace with no WATCH_NAMESPACES
    watches the operator's own namespace.

    WATCH_NAMESPACES is a comma-separated list (globs allowed); empty or ``*`` means the
    whole cluster. RETRAIN_SERVICE_ACCOUNTS is a comma-separated list of the ServiceAccounts a
    retrain jobTemplate may run as; unset or blank means only ``default``.
    OUTBOUND_ALLOW_CIDRS is a comma-separated list of CIDRs the operator may connect to
    although they are link-local, loopback or unspecified (docs/outbound.md).
    """
    env = os.environ if env is None else env
    if all_namespaces:
        watched: tuple[str, ...] = ()
    elif namespaces:
        watched = tuple(n for arg in namespaces for n in _split(arg))
    else:
        watched = _split(env.get("WATCH_NAMESPACES", ""))
    if "*" in watched:
        watched = ()
    scope = env.get("SCOPE", "cluster").lower()
    if scope not in ("cluster", "namespace"):
        raise ValueError(f"SCOPE must be cluster or namespace, got {scope!r}")
    if scope == "namespace" and not watched:
        own = env.get("POD_NAMESPACE", "")
        if not own:
            raise ValueError("SCOPE=namespace needs WATCH_NAMESPACES or POD_NAMESPACE")
        watched = (own,)
    fmt = (log_format or env.get("LOG_FORMAT") or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    defaults = OperatorConfig
    is_standalone = standalone or env.get("STANDALONE", "").lower() in ("1", "true", "yes")
    lease_namespace = (
        env.get("LEASE_NAMESPACE", "").strip()
        or env.get("POD_NAMESPACE", "").strip()
        or next((n for n in watched if not any(ch in n for ch in "*?[")), "default")
    )
    host = env.get("POD_ID", "").strip() or env.get("HOSTNAME", "").strip() or socket.gethostname()
    lease_name = _lease_name(env.get("LEASE_NAME", "").strip() or defaults.lease_name)
    shard = _shard(env, lease_name, defaults.lease_name)
    return OperatorConfig(
        shard=shard,
        namespaces=watched,
        scope=scope,
        log_format=fmt,
        log_level=(log_level or env.get("LOG_LEVEL") or defaults.log_level).upper(),
        metrics_port=metrics_port or int(env.get("METRICS_PORT", defaults.metrics_port)),
        health_port=health_port or int(env.get("HEALTH_PORT", defaults.health_port)),
        payload_port=payload_port or _port(env, "PAYLOAD_PORT", defaults.payload_port),
        payload_url=_base_url(env.get("PAYLOAD_URL", "").strip() or defaults.payload_url),
        payload_max_bytes=_bytes(env, "PAYLOAD_MAX_BYTES", defaults.payload_max_bytes),
        standalone=is_standalone,
        recheck_seconds=float(env.get("RECHECK_SECONDS", defaults.recheck_seconds)),
        lease_name=lease_name,
        lease_namespace=_lease_name(lease_namespace, "LEASE_NAMESPACE"),
        lease=_lease(env),
        identity=f"{host[:200]}_{uuid.uuid4().hex[:12]}",
        max_concurrent_runs=_count(
            env, "MAX_CONCURRENT_RUNS", defaults.max_concurrent_runs, minimum=1
        ),
        max_runs_per_namespace=_count(
            env, "MAX_RUNS_PER_NAMESPACE", defaults.max_runs_per_namespace, minimum=0
        ),
        endpoint_resolution=_resolution(
            env.get("ENDPOINT_RESOLUTION", defaults.endpoint_resolution)
        ),
        prometheus_min_window_seconds=float(
            env.get("PROMETHEUS_MIN_WINDOW_SECONDS", defaults.prometheus_min_window_seconds)
        ),
        job_image=env.get("JOB_IMAGE", defaults.job_image),
        job_service_account=env.get("JOB_SERVICE_ACCOUNT", defaults.job_service_account),
        retrain_service_accounts=(
            _split(env.get("RETRAIN_SERVICE_ACCOUNTS", "")) or defaults.retrain_service_accounts
        ),
        gitops=_gitops(env),
        in_cluster=bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(token_path),
        outbound_allow_cidrs=_cidrs(env.get("OUTBOUND_ALLOW_CIDRS", "")),
        outbound_max_redirects=_count(
            env, "OUTBOUND_MAX_REDIRECTS", defaults.outbound_max_redirects
        ),
        response_limits=_limits(env),
        api_service=_api_service(env),
        job_name=env.get("JOB_NAME", ""),
        job_uid=env.get("JOB_UID", ""),
        dask_scheduler_address=env.get("DASK_SCHEDULER_ADDRESS", ""),
        reference_max_decoded_bytes=_count(
            env, "REFERENCE_MAX_DECODED_BYTES", defaults.reference_max_decoded_bytes, minimum=1
        ),
        reference_max_rows=_count(
            env, "REFERENCE_MAX_ROWS", defaults.reference_max_rows, minimum=1
        ),
        reference_max_cells=_count(
            env, "REFERENCE_MAX_CELLS", defaults.reference_max_cells, minimum=1
        ),
    )


def _shard(env: Mapping[str, str], lease_name: str, default_name: str) -> LabelSelector | None:
    """SHARD_LABEL_SELECTOR, checked; a shard needs a LEASE_NAME of its own (the
    deployments would otherwise elect one leader between them, and only one would act)."""
    selector = parse_selector(env.get("SHARD_LABEL_SELECTOR", ""))
    if selector is None:
        return None
    if lease_name == default_name:
        raise ValueError(
            "SHARD_LABEL_SELECTOR needs a LEASE_NAME of the shard's own (not "
            f"{default_name!r}): each shard is a deployment that acts beside the others"
        )
    return selector


def _lease_name(value: str, setting: str = "LEASE_NAME") -> str:
    """A Lease or namespace name: a DNS label (it goes into the API path)."""
    problem = label_problem(value)
    if problem:
        raise ValueError(f"{setting}={value!r}: {problem}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={text!r} must be a positive number of seconds")
    return value


def _lease(env: Mapping[str, str]) -> LeaseSettings:
    """LEASE_DURATION_SECONDS (whole), LEASE_RENEW_SECONDS, LEASE_RETRY_SECONDS,
    LEASE_MARGIN_SECONDS, checked together (the renewals must fit in the duration)."""
    d = LeaseSettings()
    margin_text = env.get("LEASE_MARGIN_SECONDS", "").strip()
    try:
        margin = float(margin_text) if margin_text else d.margin
    except ValueError:
        raise ValueError(f"LEASE_MARGIN_SECONDS={margin_text!r} is not a number") from None
    try:
        return LeaseSettings(
            duration=_count(env, "LEASE_DURATION_SECONDS", d.duration, minimum=1),
            renew=_seconds(env, "LEASE_RENEW_SECONDS", d.renew),
            retry=_seconds(env, "LEASE_RETRY_SECONDS", d.retry),
            margin=margin,
        )
    except ValueError as exc:
        raise ValueError(f"LEASE_* settings: {exc}") from None


def _resolution(value: str) -> str:
    if value not in ("auto", "dns", "endpointSlices", "pods"):
        raise ValueError(
            f"ENDPOINT_RESOLUTION must be auto, dns, endpointSlices or pods, got {value!r}"
        )
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    """A TCP port from ``env[name]`` (``default`` when unset or blank)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{name}={text!r} is not a TCP port (1-65535)")
    return int(text)


def _cidrs(value: str) -> tuple[str, ...]:
    """OUTBOUND_ALLOW_CIDRS, each entry checked (ValueError naming the one that is not)."""
    cidrs = _split(value)
    try:
        OutboundPolicy.parse(cidrs)
    except ValueError as exc:
        raise ValueError(f"OUTBOUND_ALLOW_CIDRS: {exc}") from None
    return cidrs


def _count(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum`` from ``env[name]`` (``default`` when unset or blank)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < minimum:
        raise ValueError(f"{name}={text!r} is not a whole number >= {minimum}")
    return int(text)


def _limits(env: Mapping[str, str]) -> ResponseLimits:
    """The response body caps, in bytes (OUTBOUND_MAX_*_BYTES, OUTBOUND_BUFFER_BYTES)."""
    d = ResponseLimits()
    return ResponseLimits(
        probe=_count(env, "OUTBOUND_MAX_PROBE_BYTES", d.probe, minimum=1),
        prometheus=_count(env, "OUTBOUND_MAX_PROMETHEUS_BYTES", d.prometheus, minimum=1),
        reference=_count(env, "OUTBOUND_MAX_REFERENCE_BYTES", d.reference, minimum=1),
        webhook=_count(env, "OUTBOUND_MAX_WEBHOOK_BYTES", d.webhook, minimum=1),
        buffer=_count(env, "OUTBOUND_BUFFER_BYTES", d.buffer, minimum=1),
    )


def _api_service(env: Mapping[str, str]) -> str:
    """``host:port`` of the in-cluster API service (KUBERNETES_SERVICE_HOST/PORT), or ""."""
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    if not host:
        return ""
    port = env.get("KUBERNETES_SERVICE_PORT", "").strip() or "443"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_MIN_PAYLOAD_BYTES = 1024 * 1024


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    """A byte count from ``env[name]`` (``default`` when unset or blank), at least 1 MiB."""
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < _MIN_PAYLOAD_BYTES:
        raise ValueError(f"{name}={text!r} is not a byte count of at least {_MIN_PAYLOAD_BYTES}")
    return int(text)


def _base_url(text: str) -> str:
    """PAYLOAD_URL: http(s)://host[:port][/path], no user, query or fragment (it becomes
    the start of every monitor's logger URL, which the token ends)."""
    parts = urllib.parse.urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"PAYLOAD_URL={text!r} must be http(s)://host[:port][/path] without user, "
            "query or fragment"
        )
    return text.rstrip("/")


def _gitops(env: Mapping[str, str]) -> GitOpsSettings:
    """ARGOCD_NAMESPACE (a namespace name, default argocd) and ARGOCD_LABEL_TRACKING."""
    defaults = GitOpsSettings()
    namespace = env.get("ARGOCD_NAMESPACE", "").strip() or defaults.argocd_namespace
    problem = label_problem(namespace)
    if problem is not None:
        raise ValueError(f"ARGOCD_NAMESPACE {problem}")
    tracking = env.get("ARGOCD_LABEL_TRACKING", "").strip().lower()
    if tracking not in ("", "true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"ARGOCD_LABEL_TRACKING must be true or false, not {tracking!r}")
    return GitOpsSettings(
        argocd_namespace=namespace, argocd_label_tracking=tracking in ("true", "1", "yes")
    )


#: What ``modelmonitor check --current s3://...`` reads from the environment: the AWS
#: tools' credentials, region and endpoint, and the fence's allowlist.
CLI_OBJECT_STORAGE_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "OUTBOUND_ALLOW_CIDRS",
)


def object_storage_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The command line's object storage settings from the environment (set ones only)."""
    env = os.environ if env is None else env
    return {name: env[name] for name in CLI_OBJECT_STORAGE_ENV if env.get(name)}
