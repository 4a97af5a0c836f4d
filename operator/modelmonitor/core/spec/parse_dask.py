"""``spec.schedule.dask``: an existing scheduler or an ephemeral cluster per run.

Exactly one of ``scheduler`` (``tcp://host:port``, reached through the outbound fence)
and ``cluster`` (a dask-kubernetes DaskJob per run, core/daskjobs.py). The CRD's schema
and CEL say the same; this parser repeats it for monitors applied before the CRD was
upgraded, as a problem on the field rather than a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import DaskClusterSpec, DaskSpec

MAX_CLUSTER_WORKERS = 32
RESOURCE_KEYS = frozenset({"requests", "limits"})

_DASK_HOST = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"|[0-9]{1,3}(\.[0-9]{1,3}){3})$"
)


def parse_dask(r: FieldReader, data: Mapping[str, Any], path: str) -> DaskSpec | None:
    dask = r.obj(data, "dask", path)
    if dask is None:
        return None
    where = f"{path}.dask"
    if "scheduler" in dask and "cluster" in dask:
        r.problem(where, "sets both scheduler and cluster: exactly one of them")
        return None
    if "scheduler" not in dask and "cluster" not in dask:
        r.problem(f"{where}.scheduler", "is required, or spec.schedule.dask.cluster instead")
        return None
    if "cluster" in dask:
        cluster = _parse_cluster(r, dask, where)
        return None if cluster is None else DaskSpec(cluster=cluster)
    address = r.string(dask, "scheduler", where, required=True)
    if address is None:
        return None
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if (
        not address.startswith("tcp://")
        or len(address) > 270
        or not _DASK_HOST.match(host)
        or not port.isdigit()
        or not 1 <= int(port) <= 65535
    ):
        r.problem(f"{where}.scheduler", f"must be tcp://host:port, got {address!r}")
        return None
    return DaskSpec(scheduler=address)


def _parse_cluster(r: FieldReader, dask: Mapping[str, Any], path: str) -> DaskClusterSpec | None:
    if dask.get("cluster") is None:  # ``cluster: {}`` is the defaults, ``cluster:`` too
        return DaskClusterSpec()
    data = r.obj(dask, "cluster", path)
    if data is None:
        return None
    where = f"{path}.cluster"
    workers = r.integer(
        data,
        "workers",
        where,
        default=DaskClusterSpec.workers,
        low=1,
        high=MAX_CLUSTER_WORKERS,
    )
    resources = dict(r.obj(data, "resources", where) or {})
    for key in sorted(set(resources) - RESOURCE_KEYS):
        r.problem(f"{where}.resources.{key}", "is not requests or limits")
    for key in sorted(set(resources) & RESOURCE_KEYS):
        if not isinstance(resources[key], Mapping):
            r.problem(f"{where}.resources.{key}", "must be an object")
    return DaskClusterSpec(workers=workers, resources=resources)
