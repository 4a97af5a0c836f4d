"""What a data source is: the :class:`Source` protocol, what it is given, what it gives.

A run (:mod:`modelmonitor.engine.runner`) loads the reference, then asks every source the
spec configures, in the order of the registry (:data:`modelmonitor.sources.builtin.SOURCES`),
for what it measured (a :class:`Gathered`):

* the current window, the rows drift and data quality compare with the reference, or why
  there is none yet (:class:`CurrentData`); a later source's window replaces an earlier
  one's;
* predictions next to their expected answers (:class:`Labelled`): model quality;
* the outcomes of the SLOs whose ``source`` is the source's key, and the event history
  each SLO keeps in status (``sloHistory``);
* problems (a status reason and a message: the monitor turns Degraded, no verdict), and
  details for the Report.

A source never raises for what the world does (an endpoint down, a server refusing a
query): it records a problem and returns what it could measure. It reaches the world
only through the run's :class:`Clients`, so a unit test fakes them at the edge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.anomaly.outcome import AnomalyOutcome
from modelmonitor.core.dataset import Column, Dataset, Feature, FloatArray
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.report import Problem, SLOOutcome
from modelmonitor.core.spec import MonitorSpec, SLOSpec
from modelmonitor.core.stats.partitions import ProfileSchema
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.sources.anomaly_cache import SeriesCache
from modelmonitor.sources.endpoint import EndpointLookup, Resolution
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.probe import Transport
from modelmonitor.sources.reference import LoadedReference, ReferenceCache
from modelmonitor.sources.registry import Registry

#: The status field (and Report detail) holding each SLO's event history.
HISTORY_FIELD = "sloHistory"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DaskProfiler(Protocol):
    """Profile ``paths`` on the Dask scheduler at ``scheduler`` and merge: the merged
    profile and the number of workers that took part."""

    def __call__(
        self, scheduler: str, paths: Sequence[Path], schema: ProfileSchema, limits: ReadLimits
    ) -> tuple[ReferenceProfile, int]: ...


@dataclass(frozen=True)
class Clients:
    """How a run and its sources reach the world; one set per runner."""

    references: ReferenceCache  # the reference, and a probe set
    lookup: EndpointLookup
    clock: Callable[[], dt.datetime] = _utc_now
    resolution: Resolution = "dns"
    transport: Transport | None = None  # tests only; production opens an HTTP session
    payloads: PayloadStore | None = None  # the collector's windows (inline mode only)
    prometheus_min_window_seconds: float = 60.0
    outbound: Outbound = field(default_factory=Outbound)  # the fence every request goes through
    window_root: str | None = None  # where spec.data.partitions' claim is mounted (job mode)
    window_limits: ReadLimits = field(default_factory=ReadLimits)  # caps per partition file
    # spec.schedule.mode dask: the partition step on the monitor's Dask scheduler (the run
    # pod, with the extra installed); None: not installed here
    dask: DaskProfiler | None = None
    # spec.schedule.dask.cluster: the address of the run's own cluster (its DaskJob's
    # scheduler Service, checked by the run pod); None: no such cluster here
    dask_scheduler: str | None = None
    # spec.anomalies' series between runs (a run fetches only the new tail)
    series_cache: SeriesCache = field(default_factory=SeriesCache)


@dataclass(frozen=True)
class RunContext:
    """One run of one monitor, as its sources see it."""

    namespace: str
    name: str
    spec: MonitorSpec
    status: Mapping[str, Any]  # the monitor's status before this run
    started: dt.datetime
    reference: LoadedReference | None  # None: it could not be loaded (a problem says why)
    clients: Clients

    def slos(self, source: str) -> list[SLOSpec]:
        """The spec's SLOs that ``source`` measures."""
        return [slo for slo in self.spec.slos if slo.source == source]

    def stored_history(self, slo: str) -> Any:
        """What status keeps of ``slo``'s events (None before its first run)."""
        return (self.status.get(HISTORY_FIELD) or {}).get(slo)


@dataclass(frozen=True)
class CurrentData:
    """The current window: ``rows``, or None with ``insufficient`` saying why there are
    not enough yet (InsufficientData) or with a problem saying what failed.

    A partitioned window (``spec.data.partitions``) is never held as rows: ``profile`` is
    its merged profile (:mod:`modelmonitor.core.stats.partitions`) and ``rows`` is None.
    """

    rows: Dataset | None
    insufficient: str | None = None
    profile: ReferenceProfile | None = None

    @property
    def window(self) -> Dataset | ReferenceProfile | None:
        """What drift and data quality compare: the rows, else the profile."""
        return self.rows if self.rows is not None else self.profile


@dataclass(frozen=True)
class Labelled:
    """Predictions and the expected answers of the same rows (at least one row)."""

    labels: Column
    predictions: Column


@dataclass(frozen=True)
class Scored:
    """Per-row class probabilities of the window, (rows, columns) in the model's order,
    and the expected labels of the same rows when the source has them (a golden set)."""

    probabilities: FloatArray  # (rows, columns)
    labels: Column | None = None
    # late labels (spec.performance.labels): ``labels`` are the target's, joined by id;
    # these are the feed's counters for status.performance.labels
    label_feed: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Gathered:
    """What one source measured in one run; every part is optional."""

    current: CurrentData | None = None  # None: this source gives no window (this run)
    labelled: Labelled | None = None
    scored: Scored | None = None
    slos: tuple[SLOOutcome, ...] = ()
    histories: Mapping[str, Any] = field(default_factory=dict)  # by SLO name, for status
    problems: tuple[Problem, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)  # merged into Report.details
    anomalies: tuple[AnomalyOutcome, ...] = ()  # spec.anomalies' series (core/anomaly)


class Source(Protocol):
    """A data source; docs/sources.md ("How to add a source") walks through adding one."""

    @property
    def key(self) -> str:
        """The spec's name for it: its data type (``spec.data.<key>``), the ``source``
        of the SLOs it measures."""
        ...

    @property
    def supplies_rows(self) -> bool:
        """Whether it can give the current window. A run asks these sources first, then
        computes the statistics, then asks the sources that give SLIs only."""
        ...

    def configured(self, spec: MonitorSpec) -> bool:
        """Whether ``spec`` asks for this source."""
        ...

    async def gather(self, ctx: RunContext) -> Gathered:
        """Measure; record failures as problems, never raise for them."""
        ...


def configured_sources(registry: Registry[Source], spec: MonitorSpec) -> list[Source]:
    """The sources ``spec`` asks for, in the registry's order.

    Every SLO's ``source`` must be a registered source: an unknown one is an
    :class:`~modelmonitor.sources.registry.UnknownSourceError`.
    """
    for slo in spec.slos:
        registry[slo.source]
    return [source for source in registry if source.configured(spec)]


def prediction_features(spec: MonitorSpec) -> list[Feature]:
    """The prediction and label columns, kept in the reference when it has them."""
    prediction = spec.prediction
    if prediction is None:
        return [Feature("prediction", "categorical"), *performance_features(spec, {"prediction"})]
    extras = [Feature(prediction.name, prediction.type)]
    if prediction.label_column:
        extras.append(Feature(prediction.label_column, prediction.type))
    return extras + performance_features(spec, {f.name for f in extras})


def performance_features(spec: MonitorSpec, skip: set[str] | None = None) -> list[Feature]:
    """spec.performance's label and probability columns: model outputs, never inputs."""
    perf = spec.performance
    if perf is None:
        return []
    skip = skip or set()
    out = [] if perf.target in skip else [Feature(perf.target, "categorical")]
    return out + [Feature(c, "numerical") for c in perf.probabilities if c not in skip]


def input_names(spec: MonitorSpec, reference: LoadedReference) -> list[str]:
    """The model's inputs: the reference's features but the prediction and label columns."""
    skip = {f.name for f in prediction_features(spec)}
    return [f.name for f in reference.features if f.name not in skip]
