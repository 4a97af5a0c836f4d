"""What a ModelMonitor spec says, as typed, immutable objects, and the names it may use.

:class:`MonitorSpec` and its parts are what every layer reads; :mod:`.parse` builds them
from the object's ``spec`` mapping. The defaults of these dataclasses are the spec's
defaults: the parser takes them from here, and a unit test holds the CRD's defaults
equal to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelmonitor.core.action_names import NONE, ActionName

# The vocabularies the spec accepts come from the registries that implement them (drift
# methods, protocols, corrections) or from the core's own list (actions: the actions'
# registry is held to it); the ones below have no registry in the core, and
# tests/unit/test_vocabulary.py holds each against its implementation and the CRD.
ACTIONS = (*(a.value for a in ActionName), NONE)  # what an action list may hold
TARGET_KINDS = ("Deployment", "InferenceService", "External")
REFERENCE_FORMATS = ("auto", "csv", "jsonl", "parquet", "npy", "profile")
FEATURE_TYPES = ("numerical", "categorical")
SCHEDULE_MODES = ("inline", "job", "dask")
SLO_SOURCES = ("probe", "prometheus")
NOTIFY_FORMATS = ("slack", "json")
SINK_TYPES = ("alertmanager", "pagerduty", "slack", "teams", "webhook", "cloudevents")
SEVERITIES = ("warning", "critical")
MAX_SINKS = 8
PAGERDUTY_URL = "https://events.pagerduty.com"
SLI_TEMPLATE_NAMES = ("mlserver", "kserve", "seldon")
ANOMALY_SLIS = ("latency", "traffic", "errorRatio")  # spec.anomalies[].sli
PERFORMANCE_TASKS = ("classification",)
PERFORMANCE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")

# The defaults older CRDs wrote into the deprecated numeric duration fields. Objects
# created then still hold them; next to the new duration field such a value is ignored
# (see FieldReader.duration_or_legacy) rather than refused.
LEGACY_DEFAULTS: dict[str, float] = {
    "spec.data.probe.timeoutSeconds": 2,
    "spec.data.payloadLog.windowSeconds": 3600,
    "spec.prometheus.timeoutSeconds": 5,
    "spec.actions.cooldownSeconds": 600,
    "spec.actions.scale.stabilizationSeconds": 300,
}

MIN_INTERVAL_SECONDS = 10.0
MAX_INTERVAL_SECONDS = 24 * 3600.0
# A run's deadline (spec.schedule.runTimeout): a run holds an operator-wide slot while it
# lasts, so the CRD and the parser cap it.
MIN_RUN_TIMEOUT_SECONDS = 1.0
MAX_RUN_TIMEOUT_SECONDS = 3600.0


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
class DaskClusterSpec:
    """Mode dask's ephemeral cluster: created per run as a dask-kubernetes DaskJob.

    ``workers`` worker pods (and one scheduler pod) run the operator's run image;
    ``resources`` (requests/limits) apply to each worker's container.
    """

    workers: int = 2
    resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DaskSpec:
    """Mode dask: exactly one of an existing scheduler (``tcp://host:port``) or an
    ephemeral cluster per run (``cluster``), where the run pod profiles the partitions."""

    scheduler: str | None = None
    cluster: DaskClusterSpec | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    interval_seconds: float = 60.0
    mode: Literal["inline", "job", "dask"] = "inline"
    run_timeout_seconds: float = 600.0
    job_active_deadline_seconds: int = 600
    job_resources: Mapping[str, Any] = field(default_factory=dict)
    dask: DaskSpec | None = None

    @property
    def in_job(self) -> bool:
        """A run happens in a Job's pod (modes job and dask)."""
        return self.mode in ("job", "dask")


@dataclass(frozen=True)
class ObjectStorageSpec:
    """One object in S3 (or an S3-compatible server), Google Cloud Storage or Azure Blob.

    ``bucket`` is the S3/GCS bucket or the Azure container; ``key`` the object key or
    blob name. ``credentials`` maps what each value is (``accessKeyId``,
    ``secretAccessKey``, ``sessionToken``; ``accountKey``; ``sasToken``) to the key of
    the one Secret (``secretRef.name``) it is read from.
    """

    provider: Literal["s3", "gcs", "azureBlob"]
    bucket: str
    key: str
    secret_name: str
    credentials: Mapping[str, KeyRef] = field(default_factory=dict)
    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    account: str | None = None  # Azure: the storage account

    def refs(self) -> tuple[KeyRef, ...]:
        """Every Secret key the credentials are read from."""
        return tuple(self.credentials.values())


@dataclass(frozen=True)
class ReferenceSpec:
    source: Literal["configMap", "url", "pvc", "inline", "s3", "gcs", "azureBlob"]
    format: str = "auto"
    config_map_name: str | None = None
    config_map_key: str | None = None
    url: str | None = None
    claim_name: str | None = None
    path: str | None = None
    inline_rows: tuple[Mapping[str, Any], ...] = ()
    object_storage: ObjectStorageSpec | None = None


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


MAX_PAYLOAD_SAMPLES = 200_000


MAX_KAFKA_BOOTSTRAP = 8


KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSASLSpec:
    """``spec.data.payloadLog.kafka.sasl``: the user the consumer authenticates as.

    ``allow_without_tls``: the user said SASL may run over a plaintext connection (PLAIN
    then sends the password in clear; refused unless set)."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    username: KeyRef
    password: KeyRef
    allow_without_tls: bool = False


@dataclass(frozen=True)
class KafkaSpec:
    """``spec.data.payloadLog.kafka``: the topic the payload log is read from.

    ``consumer_group`` None: the operator's default for the monitor
    (:func:`modelmonitor.core.kafka.default_group`). ``tls`` None: a plaintext
    connection; ``sasl`` None: no authentication."""

    bootstrap_servers: tuple[tuple[str, int], ...]
    topic: str
    consumer_group: str | None = None
    tls: PrometheusTLSSpec | None = None  # the same shape as spec.prometheus.tlsConfig
    sasl: KafkaSASLSpec | None = None

    @property
    def security_protocol(self) -> str:
        """Kafka's name for the connection: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        if self.sasl is None:
            return "SSL" if self.tls is not None else "PLAINTEXT"
        return "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT"

    def refs(self) -> tuple[KeyRef, ...]:
        """Every Secret and ConfigMap key the connection's credentials are read from."""
        refs: list[KeyRef] = []
        if self.tls is not None:
            refs.extend(r for r in (self.tls.ca, self.tls.cert, self.tls.key) if r is not None)
        if self.sasl is not None:
            refs.extend((self.sasl.username, self.sasl.password))
        return tuple(refs)


@dataclass(frozen=True)
class PayloadLogSpec:
    window_seconds: int = 3600
    # min/maxSamples are at most MAX_PAYLOAD_SAMPLES (the CRD's maximum, see docs/sources.md)
    min_samples: int = 500
    max_samples: int = 50000
    kafka: KafkaSpec | None = None  # None: the window is fed over HTTP only


#: How many data objects a prefix's window may have by default, and at most (the CRD's).
DEFAULT_MAX_OBJECTS = 1000
MAX_OBJECTS = 10_000


@dataclass(frozen=True)
class PartitionsSpec:
    """A partitioned current window, streamed partition by partition into one profile:
    the files a folder or glob names inside a claim (``claim_name``, ``path``; job mode
    only), or the objects under a prefix in object storage (``object_storage``, whose
    ``key`` is the prefix; inline or job mode), at most ``max_objects`` of them."""

    claim_name: str = ""
    path: str = ""
    object_storage: ObjectStorageSpec | None = None
    max_objects: int = DEFAULT_MAX_OBJECTS

    @property
    def shown(self) -> str:
        """How messages name the window: ``s3://bucket/prefix`` or ``claim: path``."""
        stored = self.object_storage
        if stored is not None:
            return f"{'gs' if stored.provider == 'gcs' else 's3'}://{stored.bucket}/{stored.key}"
        return f"{self.claim_name}: {self.path}"


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
    # spec.slos[].burnRate.windowScale: multiplies the 30-day workbook's alert windows;
    # None (the default) scales them to the SLO window (core.slo.budget.slo_alerts).
    window_scale: float | None = None
    # probeErrors: {} (or the older errorRatio: {} with source probe) - failed probe
    # requests are the bad events; error_ratio is then an ErrorRatioSpec without queries.
    probe_errors: bool = False


# spec.anomalies: a range query holds at most this many points per series (lookback /
# step), so a series costs at most ~320 KiB in the operator's cache; a query asks for at
# most MAX_POINTS_PER_QUERY (Prometheus refuses more than 11,000 per series).
MAX_ANOMALY_POINTS = 20_160
MAX_ANOMALIES = 10
MIN_ANOMALY_STEP_SECONDS = 10.0
MAX_ANOMALY_STEP_SECONDS = 3600.0
MAX_ANOMALY_SEASON_SECONDS = 28 * 86400.0
MIN_ANOMALY_SEASON_SECONDS = 3600.0


@dataclass(frozen=True)
class AnomalySpec:
    """One series judged against its robust seasonal baseline (spec.anomalies[]).

    The series is ``query`` (PromQL, one series; ``$window`` becomes the rate window) or
    an ``sli`` of a ``template``: latency (the ``percentile``, seconds), traffic
    (requests per second) or errorRatio.
    """

    name: str
    query: str | None = None
    sli: Literal["latency", "traffic", "errorRatio"] | None = None
    template: SLITemplateSpec | None = None
    percentile: float = 95.0
    step_seconds: float = 300.0
    lookback_seconds: float = 14 * 86400.0
    seasons: tuple[float, ...] = (86400.0,)
    sensitivity: float = 3.0
    for_seconds: float = 600.0
    warmup_cycles: int = 2
    absolute_floor: float = 0.0
    relative_floor: float = 0.05

    @property
    def points(self) -> float:
        return self.lookback_seconds / self.step_seconds


LABEL_SOURCES = ("http", "configMap")


@dataclass(frozen=True)
class LabelsSpec:
    """Late labels: ``{id, label}`` batches POSTed to the collector (``http``) or an
    ``id,label`` CSV in a ConfigMap key (``configMap``, read again when it changes),
    joined by request id to the payload log's served predictions, which wait
    ``delay_seconds`` for them (at most ``max_predictions``, within the window's byte
    share). See docs/statistics.md."""

    source: Literal["http", "configMap"] = "http"
    delay_seconds: float = 86400.0
    max_predictions: int = 100000
    config_map_name: str | None = None  # source configMap
    config_map_key: str | None = None


@dataclass(frozen=True)
class PerformanceSpec:
    """Estimated (and, with a golden set's labels, realized) model performance.

    ``target`` and ``probabilities`` are reference columns: the true label and the
    model's class probabilities (one column: the positive class's; else one per class,
    in the model's output order). A metric breaches when the interval's upper bound is
    below ``minimum[m]`` or below the reference's value less ``max_drop[m]``.
    """

    target: str
    probabilities: tuple[str, ...]
    task: Literal["classification"] = "classification"
    metrics: tuple[str, ...] = PERFORMANCE_METRICS
    minimum: Mapping[str, float] = field(default_factory=dict)
    max_drop: Mapping[str, float] = field(default_factory=dict)
    confidence: float = 0.95
    min_rows: int = 100
    # Open Inference Protocol outputs to ask for (v2 only); None: read what comes back.
    probability_output: str | None = None
    prediction_output: str = "predict"
    # late labels joined to served predictions (None: only a golden probe set's labels)
    labels: LabelsSpec | None = None

    def thresholds(self) -> tuple[str, ...]:
        """The metrics with a floor or a drop limit: the ones that can breach."""
        return tuple(m for m in self.metrics if m in self.minimum or m in self.max_drop)


@dataclass(frozen=True)
class KeyRef:
    """One key of a Secret or ConfigMap in the monitor's namespace."""

    kind: Literal["Secret", "ConfigMap"]
    name: str
    key: str
    field: str  # where the spec names it, for messages (spec.prometheus.basicAuth.password)


@dataclass(frozen=True)
class HeaderSpec:
    """A header sent with every query: a plain ``value`` or one read from a Secret."""

    name: str
    value: str | None = None
    secret: KeyRef | None = None


@dataclass(frozen=True)
class PrometheusTLSSpec:
    ca: KeyRef | None = None  # a PEM bundle; None: the system's trust store
    cert: KeyRef | None = None  # the client certificate (tls.crt of a kubernetes.io/tls Secret)
    key: KeyRef | None = None  # its private key (tls.key of the same Secret)
    server_name: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class PrometheusSpec:
    url: str
    timeout_seconds: float = 5.0
    bearer_token: KeyRef | None = None  # spec.prometheus.authorization.credentials
    authorization_type: str = "Bearer"
    basic_auth: tuple[KeyRef, KeyRef] | None = None  # (username, password)
    headers: tuple[HeaderSpec, ...] = ()
    tls: PrometheusTLSSpec | None = None

    def refs(self) -> tuple[KeyRef, ...]:
        """Every Secret and ConfigMap key this server's credentials are read from."""
        refs: list[KeyRef] = []
        if self.bearer_token is not None:
            refs.append(self.bearer_token)
        if self.basic_auth is not None:
            refs.extend(self.basic_auth)
        refs.extend(h.secret for h in self.headers if h.secret is not None)
        if self.tls is not None:
            refs.extend(r for r in (self.tls.ca, self.tls.cert, self.tls.key) if r is not None)
        return tuple(refs)


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
class SinkSpec:
    """One receiver of incident notifications (``spec.alerting.sinks[]``).

    ``url``: Alertmanager's base URL, or PagerDuty's Events API base (default
    :data:`PAGERDUTY_URL`). ``secret``: PagerDuty's routing key, or the webhook URL of
    slack, teams, webhook and cloudevents (a credential: only ever read from a Secret).
    """

    name: str
    type: Literal["alertmanager", "pagerduty", "slack", "teams", "webhook", "cloudevents"]
    min_severity: Literal["warning", "critical"] = "warning"
    url: str | None = None
    secret: KeyRef | None = None
    labels: tuple[tuple[str, str], ...] = ()
    resend_seconds: int = 60


@dataclass(frozen=True)
class AlertingSpec:
    """``spec.alerting``: who hears the incidents (nobody by default) and a link for people."""

    sinks: tuple[SinkSpec, ...] = ()
    link: str | None = None


@dataclass(frozen=True)
class ActionsSpec:
    dry_run: bool = False
    cooldown_seconds: int = 600
    consecutive_breaches: int = 3
    max_actions_per_hour: int = 3
    on_slo_breach: tuple[str, ...] = ()
    on_drift: tuple[str, ...] = ()
    on_performance_drop: tuple[str, ...] = ()
    scale: ScaleSpec | None = None
    notify: NotifySpec | None = None
    retrain_job_template: Mapping[str, Any] | None = None
    # what rollback does when a GitOps tool owns the target: refuse | pause | ignore
    gitops: str = "refuse"

    def uses(self, action: str) -> bool:
        return (
            action in self.on_slo_breach
            or action in self.on_drift
            or action in self.on_performance_drop
        )


@dataclass(frozen=True)
class MonitorSpec:
    target: TargetSpec
    # None: a monitor without drift or data quality checks (SLOs only); the parser
    # requires it whenever a check needs it (see parse.reference_needs).
    reference: ReferenceSpec | None = None
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    features: tuple[FeatureSpec, ...] = ()
    prediction: PredictionSpec | None = None
    probe: ProbeSpec | None = None
    payload_log: PayloadLogSpec | None = None
    partitions: PartitionsSpec | None = None
    drift: DriftSpec = field(default_factory=DriftSpec)
    slos: tuple[SLOSpec, ...] = ()
    prometheus: PrometheusSpec | None = None
    actions: ActionsSpec = field(default_factory=ActionsSpec)
    performance: PerformanceSpec | None = None
    alerting: AlertingSpec = field(default_factory=AlertingSpec)
    anomalies: tuple[AnomalySpec, ...] = ()
    # Deprecated fields the spec still uses: (field path, what replaces it).
    deprecations: tuple[tuple[str, str], ...] = ()
