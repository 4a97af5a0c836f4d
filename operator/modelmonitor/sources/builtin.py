"""The data sources a run can ask, keyed by the spec's data type, in the order asked.

The payload log comes after the probe: when a monitor has both, the production window
replaces the probe's answers as the current data (the probe still gives its SLIs and
model quality); a partitioned window (job mode) likewise replaces the probe's. Sources
of SLIs only (Prometheus SLOs, then the anomaly series) are asked after the statistics.
"""

from __future__ import annotations

from modelmonitor.sources.anomaly_source import AnomalySource
from modelmonitor.sources.base import Source
from modelmonitor.sources.partitions_source import PartitionsSource
from modelmonitor.sources.payload_source import PayloadLogSource
from modelmonitor.sources.probe_source import ProbeSource
from modelmonitor.sources.prometheus_source import PrometheusSource
from modelmonitor.sources.registry import Registry

SOURCES: Registry[Source] = Registry(
    "data source",
    [ProbeSource(), PayloadLogSource(), PartitionsSource(), PrometheusSource(), AnomalySource()],
)
